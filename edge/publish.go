package edge

import (
	"context"
	"errors"
	"time"

	"github.com/arena-mesh/arena/edge/auth"
	"github.com/arena-mesh/arena/protocol"
	"github.com/arena-mesh/arena/router"
)

// checkPublish applies the checks every publish goes through, WebSocket
// or HTTP, in the order a client can fix them: permission, size, rate.
// req.Room and req.Key are already checked by the decoder.
func (s *Server) checkPublish(p *auth.Principal, req router.PublishRequest) error {
	if !p.CanPublish(req.Room) {
		return protocol.Errorf(protocol.CodeForbidden, "no permission to publish to %s", req.Room)
	}
	if err := protocol.DataTooLarge(req.Data, s.cfg.MaxDataBytes); err != nil {
		return err
	}
	if ok, retry := s.limiters.allow(p.User, s.now()); !ok {
		e := protocol.Errorf(protocol.CodeRateLimited, "publish rate limit exceeded")
		e.RetryMS = max(1, retry.Milliseconds()+boolInt(retry%time.Millisecond != 0))
		return e
	}
	return nil
}

// history runs a history query of PROTOCOL.md (before or after a seq, a
// limit defaulting to 50) and converts the messages to wire form. before
// and after are nil when not given; the decoder checked limit's range.
func (s *Server) history(ctx context.Context, room string, before, after *uint64, limit int) (uint64, []protocol.Msg, error) {
	if limit == 0 {
		limit = protocol.DefaultLimit
	}
	q := router.HistoryQuery{Limit: limit}
	switch {
	case before != nil && *before == 0:
		// Nothing comes before seq 1; answer with the epoch only.
		head, err := s.cfg.Router.Head(room)
		if err != nil {
			return 0, nil, s.routerError(err)
		}
		return head.Epoch, []protocol.Msg{}, nil
	case before != nil:
		q.Before = *before
	case after != nil && *after == 0:
		// From the oldest retained message, which is not seq 1 once
		// retention removed the room's first messages.
		q.FromOldest = true
	case after != nil:
		q.After = *after
	}
	epoch, msgs, err := s.cfg.Router.History(ctx, room, q)
	if err != nil {
		return 0, nil, s.routerError(err)
	}
	out := make([]protocol.Msg, len(msgs))
	for i, m := range msgs {
		out[i] = protocol.Msg{Room: m.Room, Epoch: m.Epoch, Seq: m.Seq, TS: m.TS, From: m.From, Key: m.Key, Data: m.Data}
	}
	return epoch, out, nil
}

// routerError turns a router error into the error a client is told,
// logging the ones that need a human.
func (s *Server) routerError(err error) error {
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, router.ErrUnavailable):
		// The room's home cannot be reached now (HTTP 503).
		return protocol.Errorf(protocol.CodeUnavailable, "the room's home cannot be reached now; retry (with the same key)")
	case errors.Is(err, router.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return protocol.Errorf(protocol.CodeUnavailable, "the room is not available now; retry (with the same key)")
	default:
		s.log.Warn().Err(err).Msg("router call failed")
		return protocol.Errorf(protocol.CodeInternal, "internal error")
	}
}

// errForbidden is the error for a room the principal may not subscribe to.
func errForbidden(room string) error {
	return protocol.Errorf(protocol.CodeForbidden, "no permission to subscribe to %s", room)
}

// unixMilli is t in ms since the Unix epoch, or 0 for the zero time.
func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
