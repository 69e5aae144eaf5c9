package router

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/arena-mesh/arena/mesh"
)

// forwardPublish is PublishAsync for a room homed on home: it queues req
// to the home (key = room, so the home sequences one caller's frames in
// send order) and returns; done gets the home's ack, durable there, or
// ErrUnavailable when none comes within PeerTimeout. Dedup and sequencing
// happen on the home. A home that answers that the room is not (or not
// yet) its own, because the room is moving, gets the publish routed
// again, from a goroutine, until deadline.
func (r *Router) forwardPublish(ctx context.Context, home mesh.NodeID, req PublishRequest, done DoneFunc, deadline time.Time) error {
	var epoch uint64 // our view of the room's epoch, if we mirror it
	r.mu.RLock()
	if rep := r.replicas[req.Room]; rep != nil {
		if rm := rep.established(); rm != nil {
			epoch = rm.epoch
		}
	}
	r.mu.RUnlock()
	id := r.nextReq.Add(1)
	size := 16 + 4*10 + len(req.Room) + len(req.From) + len(req.Key) + len(req.Data)
	frame := appendPublish(make([]byte, 0, size), req.Room, epoch, id, req.From, req.Key, req.Data)
	onReply := func(res callResult) {
		if res.err == nil && (res.f.Code == codeNotHome || res.f.Code == codeRetry) && time.Now().Before(deadline) {
			// The room is moving: route it again once views settle.
			if r.spawn(func() { r.reroute(req, done, deadline) }) {
				return
			}
		}
		if res.err == nil {
			res.err = codeError(home, res.f.Code)
		}
		if res.err != nil {
			done(Ack{}, res.err)
			return
		}
		r.metrics.forwarded.Inc()
		done(Ack{Epoch: res.f.Epoch, Seq: res.f.Seq, TS: res.f.TS, Dup: res.f.Flags&flagDup != 0}, nil)
	}
	expired := func() error { return fmt.Errorf("%w: %s did not answer", ErrUnavailable, home) }
	// Registered before the frame leaves, so that the reply finds it; the
	// timer also bounds the wait for the link's credit below.
	if !r.calls.addAsync(id, home, r.cfg.PeerTimeout, onReply, expired) {
		return ErrClosed
	}
	sctx, cancel := context.WithTimeout(ctx, r.cfg.PeerTimeout)
	err := r.mesh.Send(sctx, home, req.Room, frame)
	cancel()
	if err == nil {
		return nil
	}
	c := r.calls.take(id)
	if c == nil {
		return nil // failed meanwhile (timer, membership, Close): done has its error
	}
	c.timer.Stop()
	switch {
	case errors.Is(err, mesh.ErrClosed) && r.closed.Load():
		return ErrClosed
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return fmt.Errorf("%w: send to %s: %w", ErrUnavailable, home, err)
}

// reroute routes a forwarded publish again after its home answered that
// the room is moving. It runs on its own goroutine.
func (r *Router) reroute(req PublishRequest, done DoneFunc, deadline time.Time) {
	if err := r.waitUntil(r.ctx, nil, deadline); err != nil {
		done(Ack{}, fmt.Errorf("%w: room %q is moving between homes", ErrUnavailable, req.Room))
		return
	}
	if err := r.route(r.ctx, req, done, deadline); err != nil {
		done(Ack{}, err)
	}
}

// remoteHead returns the head of a room homed on home (creating it there
// if new).
func (r *Router) remoteHead(ctx context.Context, home mesh.NodeID, room string) (Position, error) {
	res, err := r.fetch(ctx, home, room, 0, fetchAfter, 0, 0)
	if err != nil {
		return Position{}, err
	}
	return Position{Epoch: res.f.Epoch, Seq: res.f.Head}, nil
}

// remoteHistory answers q for a room homed on home, fetching as many times
// as the home's reply size limit requires.
func (r *Router) remoteHistory(ctx context.Context, home mesh.NodeID, room string, q HistoryQuery) (uint64, []*Message, error) {
	limit := clampLimit(q.Limit)
	mode, seq := fetchTail, uint64(0)
	switch {
	case q.FromOldest:
		mode = fetchAfter // after 0: from the oldest the home retains
	case q.After != 0:
		mode, seq = fetchAfter, q.After
	case q.Before != 0:
		mode, seq = fetchBefore, q.Before
	}
	res, err := r.fetch(ctx, home, room, 0, mode, seq, limit)
	if err != nil {
		return 0, nil, err
	}
	epoch, head, msgs := res.f.Epoch, res.f.Head, res.msgs
	for len(msgs) > 0 && len(msgs) < limit {
		var more []*Message
		if mode == fetchAfter {
			last := msgs[len(msgs)-1].Seq
			if last >= head {
				break
			}
			res, err = r.fetch(ctx, home, room, epoch, fetchAfter, last, limit-len(msgs))
			more = res.msgs
			if err == nil && res.f.Code == codeOK {
				msgs = append(msgs, more...)
			}
		} else {
			if msgs[0].Seq <= 1 {
				break
			}
			res, err = r.fetch(ctx, home, room, epoch, fetchBefore, msgs[0].Seq, limit-len(msgs))
			more = res.msgs
			if err == nil && res.f.Code == codeOK {
				msgs = slices.Concat(more, msgs)
			}
		}
		if err != nil {
			return 0, nil, err
		}
		if res.f.Code != codeOK || len(more) == 0 {
			break // the epoch changed meanwhile, or nothing more is retained
		}
	}
	return epoch, msgs, nil
}

// subscribeRemote subscribes to a room homed on another node through its
// local replica. It returns errNotHome if the room is homed here now.
func (r *Router) subscribeRemote(ctx context.Context, req SubscribeRequest) (SubscribeResult, error) {
	for {
		rep, err := r.replicaFor(ctx, req.Room)
		if err != nil {
			return SubscribeResult{}, err
		}
		rm := rep.rm
		var first uint64
		if req.Since != nil {
			// The home knows what it retains; ask it (limit 0: no messages).
			res, err := r.fetch(ctx, rep.homeID(), rm.name, rm.epoch, fetchAfter, 0, 0)
			if err != nil {
				return SubscribeResult{}, err
			}
			if res.f.Code == codeEpoch {
				r.restartReplica(rep) // the home moved on: mirror the new epoch
				continue
			}
			first = res.f.First
		}
		if res, ok := r.attach(rm, req, first); ok {
			return res, nil
		}
	}
}
