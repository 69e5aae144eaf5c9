package edge

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/arena-mesh/arena/protocol"
	"github.com/arena-mesh/arena/router"
)

// sseSink is the router.Sink of an SSE stream: a wake-up channel.
type sseSink chan struct{}

// Notify implements router.Sink.
func (c sseSink) Notify(*router.Subscription) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// serveEvents handles GET /v1/rooms/{room}/events: a Server-Sent Events
// stream of the room's messages. Each event is
//
//	id: EPOCH:SEQ
//	data: {"op":"msg",...}
//
// (the msg frame of the WebSocket protocol). The stream opens with an
// "event: subscribed" carrying the subscribed frame (head, and reset with
// oldest when the resume position is gone), and resumes after the
// Last-Event-ID header or the ?since=EPOCH:SEQ parameter. A comment line
// every 15 s keeps idle streams alive. Since EventSource cannot set
// headers, the token may also come as ?token=.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request, room string) {
	p, err := s.authHTTP(r, true)
	if err != nil {
		s.httpError(w, err)
		return
	}
	if !p.CanSubscribe(room) {
		s.httpError(w, errForbidden(room))
		return
	}
	since, err := parseEventID(r)
	if err != nil {
		s.httpError(w, err)
		return
	}
	if !s.trackStream() {
		s.httpError(w, protocol.Errorf(protocol.CodeUnavailable, "node is draining; try another edge"))
		return
	}
	defer s.untrackStream()

	sink := make(sseSink, 1)
	res, err := s.cfg.Router.Subscribe(r.Context(), router.SubscribeRequest{Room: room, Since: since, Sink: sink})
	if err != nil {
		s.httpError(w, s.routerError(err))
		return
	}
	defer res.Sub.Close()

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	hello := protocol.Subscribed{
		Op:   protocol.OpSubscribed,
		Room: room,
		Head: protocol.Position{Epoch: res.Head.Epoch, Seq: res.Head.Seq},
	}
	if res.Reset {
		hello.Reset = true
		hello.Oldest = &protocol.Position{Epoch: res.Oldest.Epoch, Seq: res.Oldest.Seq}
	}
	hb, _ := json.Marshal(hello)
	buf := append([]byte("event: subscribed\ndata: "), hb...)
	buf = append(buf, "\n\n"...)
	if !s.sseWrite(rc, w, buf) {
		return
	}

	heartbeat := time.NewTicker(sseHeartbeat)
	defer heartbeat.Stop()
	pulled := make([]*router.Message, 0, pullMax)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.streamsDone:
			return
		case <-heartbeat.C:
			if !s.sseWrite(rc, w, []byte(": ping\n\n")) {
				return
			}
			continue
		case <-sink:
		}
		for {
			buf = buf[:0]
			pulled, err = res.Sub.Pull(pulled[:0], pullMax)
			if err != nil {
				if errors.Is(err, router.ErrTooSlow) {
					s.m.slowCloses.Inc()
				} else {
					s.log.Warn().Err(err).Str("room", room).Msg("sse pull failed")
				}
				return
			}
			for _, m := range pulled {
				buf = append(buf, "id: "...)
				buf = strconv.AppendUint(buf, m.Epoch, 10)
				buf = append(buf, ':')
				buf = strconv.AppendUint(buf, m.Seq, 10)
				buf = append(buf, "\ndata: "...)
				buf = append(buf, m.Encoded(encodeMsg)...)
				buf = append(buf, "\n\n"...)
			}
			s.m.deliveries.Add(float64(len(pulled)))
			n := len(pulled)
			clear(pulled)
			if n > 0 && !s.sseWrite(rc, w, buf) {
				return
			}
			if n < pullMax {
				break
			}
		}
	}
}

// sseWrite writes and flushes buf within the write timeout.
func (s *Server) sseWrite(rc *http.ResponseController, w http.ResponseWriter, buf []byte) bool {
	_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	if _, err := w.Write(buf); err != nil {
		return false
	}
	return rc.Flush() == nil
}

// parseEventID reads the resume position of an SSE request:
// Last-Event-ID, else ?since=, as "EPOCH:SEQ". None means live.
func parseEventID(r *http.Request) (*router.Position, error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("since")
	}
	if v == "" {
		return nil, nil
	}
	e, q, ok := strings.Cut(v, ":")
	epoch, err1 := strconv.ParseUint(e, 10, 64)
	seq, err2 := strconv.ParseUint(q, 10, 64)
	if !ok || err1 != nil || err2 != nil || epoch == 0 {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "event id must be EPOCH:SEQ")
	}
	return &router.Position{Epoch: epoch, Seq: seq}, nil
}
