package edge

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync/atomic"

	"github.com/arena-mesh/arena/protocol"
	"github.com/arena-mesh/arena/router"
)

// subState is one subscription of a session. It is the router.Sink of its
// subscription: Notify marks it dirty and wakes the writer, which pulls
// the messages itself. Nothing is queued per subscriber, so a slow client
// costs a cursor, not memory.
type subState struct {
	sess *session
	room string
	sub  *router.Subscription // set before ready

	// queued is true while the subscription is in sess.dirty (written under
	// sess.mu; read without it as a fast path in Notify).
	queued atomic.Bool
	closed atomic.Bool
	ready  bool // guarded by sess.mu: the subscribed reply is queued

	// pres keeps the session's user present in the room (set with sub,
	// before ready; nil if Enter failed).
	pres *router.PresenceConn
}

// Notify implements router.Sink. It is called on the publish path, so it
// only flags the subscription and wakes the writer.
func (st *subState) Notify(*router.Subscription) {
	if st.queued.Load() || st.closed.Load() {
		return
	}
	s := st.sess
	s.mu.Lock()
	wake := st.ready && !st.queued.Load() && !s.closing
	if wake {
		st.queued.Store(true)
		s.dirty = append(s.dirty, st)
	}
	s.mu.Unlock()
	if wake {
		s.wakeWriter()
	}
}

// close unsubscribes; the writer skips it from now on. The user's
// presence through this subscription ends at once.
func (st *subState) close() { st.closeWith(true) }

// closeWith is close; graceful false (the connection dropped) keeps the
// user present for the router's grace period.
func (st *subState) closeWith(graceful bool) {
	if st.closed.Swap(true) {
		return
	}
	if st.sub != nil {
		st.sub.Close()
	}
	if st.pres != nil {
		st.pres.Leave(graceful)
	}
}

// markReady lets the writer pull st, and queues it once in case messages
// arrived (and Notify was ignored) before it was ready.
func (s *session) markReady(st *subState) {
	s.mu.Lock()
	st.ready = true
	if !st.queued.Load() && !s.closing {
		st.queued.Store(true)
		s.dirty = append(s.dirty, st)
	}
	s.mu.Unlock()
	s.wakeWriter()
}

// requeue puts subscriptions that still have messages back on the dirty
// list.
func (s *session) requeue(sts []*subState) {
	s.mu.Lock()
	for _, st := range sts {
		if !st.queued.Load() && !st.closed.Load() {
			st.queued.Store(true)
			s.dirty = append(s.dirty, st)
		}
	}
	s.mu.Unlock()
	s.wakeWriter()
}

func (s *session) wakeWriter() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// queueMode says what enqueue does when the control queue is full or the
// session is closing.
type queueMode uint8

const (
	// queueWait waits while the queue is full (the reader: back-pressure
	// on the client); the frame is dropped once the session is closing.
	queueWait queueMode = iota
	// queueNoWait never waits: for publish results, which run on router
	// and wal goroutines that must not block. Their room is reserved by
	// the reader before the publish (see handlePub), so the queue stays
	// bounded. Dropped once the session is closing.
	queueNoWait
	// queueForced never waits and is kept even when the session is
	// closing: the frame that comes right before a close.
	queueForced
	// queueEvent never waits (presence and receipt events, from the
	// router's event goroutine). Events are coalesced per interval, so
	// they come in bounded batches; a session whose queue still grows
	// past maxQueuedEvents beyond its other bounds is not reading and
	// is closed with 4010. Dropped once the session is closing.
	queueEvent
)

// sendJSON queues a control frame.
func (s *session) sendJSON(v any) { s.sendMode(v, queueWait) }

// sendForced queues a control frame even when the queue is full (the
// frame that comes right before a close).
func (s *session) sendForced(v any) { s.sendMode(v, queueForced) }

func (s *session) sendMode(v any, mode queueMode) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error().Err(err).Msg("encode frame")
		return
	}
	s.enqueue(b, mode)
}

// sendAck queues the ack of a publish, encoded by hand: it is the most
// frequent control frame. Room names need no JSON escaping. It never
// waits (it runs in the router's done callback).
func (s *session) sendAck(id *int64, room string, ack router.Ack) {
	var a [160]byte
	b := append(a[:0], `{"op":"ack","id":`...)
	b = strconv.AppendInt(b, *id, 10)
	b = append(b, `,"room":"`...)
	b = append(b, room...)
	b = append(b, `","epoch":`...)
	b = strconv.AppendUint(b, ack.Epoch, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, ack.Seq, 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ack.TS, 10)
	if ack.Dup {
		b = append(b, `,"dup":true`...)
	}
	b = append(b, '}')
	s.enqueue(b, queueNoWait)
}

// enqueue appends frame to the control queue. When the queue is full
// (SendQueue frames) a queueWait caller waits until the writer takes
// them: the reader then stops reading, which pushes back on the client
// through TCP, and a client that stops reading altogether is cut by the
// write timeout. Frames queued after the session started closing are
// dropped, except queueForced ones.
func (s *session) enqueue(frame []byte, mode queueMode) {
	s.mu.Lock()
	for mode == queueWait && !s.closing && s.ctrlCount >= s.srv.cfg.SendQueue {
		s.space.Wait()
	}
	if s.closing && mode != queueForced {
		s.mu.Unlock()
		return
	}
	if mode == queueEvent && s.ctrlCount >= s.srv.cfg.SendQueue+s.srv.cfg.MaxInFlight+maxQueuedEvents {
		s.mu.Unlock()
		s.fail(closeTooSlow, "too slow: presence and receipt events overflowed", false)
		return
	}
	if len(s.ctrl) > 0 {
		s.ctrl = append(s.ctrl, '\n')
	}
	s.ctrl = append(s.ctrl, frame...)
	s.ctrlCount++
	s.mu.Unlock()
	s.srv.m.sendQueued.Inc()
	s.wakeWriter()
}

// waitSpace waits, like a queueWait enqueue, until the control queue has
// room for one more frame, and reports false if the session is closing.
// The reader calls it before a publish, whose result is later queued
// without waiting.
func (s *session) waitSpace() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.closing && s.ctrlCount >= s.srv.cfg.SendQueue {
		s.space.Wait()
	}
	return !s.closing
}

// takeWork swaps out the queued control frames and the dirty
// subscriptions (clearing their queued flags, so that a Notify from now
// on queues them again). Both come from one critical section, and a
// subscription becomes ready only after its subscribed reply is queued,
// so a batch never carries a message before its subscribed reply.
func (s *session) takeWork(ctrl []byte, dirty []*subState) ([]byte, int, []*subState) {
	s.mu.Lock()
	ctrl, s.ctrl = s.ctrl, ctrl[:0]
	n := s.ctrlCount
	s.ctrlCount = 0
	dirty, s.dirty = s.dirty, dirty[:0]
	for _, st := range dirty {
		st.queued.Store(false)
	}
	if n >= s.srv.cfg.SendQueue {
		s.space.Broadcast()
	}
	s.mu.Unlock()
	if n > 0 {
		s.srv.m.sendQueued.Sub(float64(n))
	}
	return ctrl, n, dirty
}

// writeLoop is the session's writer: it waits for work, then writes
// everything ready (control frames first, then messages pulled from dirty
// subscriptions) as '\n'-joined frames in one WebSocket message of about
// batchBytes at most. On fail it closes the socket.
func (s *session) writeLoop() {
	defer close(s.writerDone)
	var (
		spare  []byte
		dirty  []*subState
		pulled = make([]*router.Message, 0, pullMax)
	)
	for {
		select {
		case <-s.wake:
		case <-s.done:
			s.closeSocket(spare)
			return
		}
		var buf []byte
		var frames int
		buf, frames, dirty = s.takeWork(spare, dirty)
		for i, st := range dirty {
			if len(buf) >= batchBytes {
				s.requeue(dirty[i:])
				break
			}
			if st.closed.Load() {
				continue
			}
			var err error
			pulled, err = st.sub.Pull(pulled[:0], pullMax)
			if err != nil {
				if errors.Is(err, router.ErrTooSlow) {
					s.fail(closeTooSlow, "too slow: resume from the last seq seen", false)
				} else if !st.closed.Load() {
					s.log.Warn().Err(err).Str("room", st.room).Msg("pull failed")
					s.fail(websocketInternal, "internal error", false)
				}
				break
			}
			for _, m := range pulled {
				if len(buf) > 0 {
					buf = append(buf, '\n')
				}
				buf = append(buf, m.Encoded(encodeMsg)...)
			}
			frames += len(pulled)
			s.srv.m.deliveries.Add(float64(len(pulled)))
			if len(pulled) == pullMax {
				s.requeue(dirty[i : i+1])
			}
			clear(pulled)
		}
		clear(dirty)
		if len(buf) > 0 {
			if !s.write(buf, frames) {
				return
			}
		}
		spare = buf[:0]
		if cap(spare) > 4*batchBytes {
			spare = nil
		}
	}
}

// write writes one WebSocket message of frames frames, bounded by the
// write timeout. false means the socket is gone.
func (s *session) write(buf []byte, frames int) bool {
	ctx, cancel := context.WithTimeout(s.ctx, s.srv.cfg.WriteTimeout)
	err := s.conn.Write(ctx, websocketText, buf)
	cancel()
	if err != nil {
		s.log.Debug().Err(err).Msg("write failed")
		s.fail(closeNormal, "", false)
		_ = s.conn.CloseNow()
		return false
	}
	s.srv.m.wsWrites.Inc()
	s.srv.m.framesOut.Add(float64(frames))
	s.outMessages.Add(1)
	s.outFrames.Add(int64(frames))
	return true
}

// closeSocket writes the last control frames if the close asks for it,
// then runs the close handshake.
func (s *session) closeSocket(spare []byte) {
	s.mu.Lock()
	code, text, flush := s.closeCode, s.closeText, s.closeFlush
	s.mu.Unlock()
	if flush {
		if buf, n, _ := s.takeWork(spare, nil); len(buf) > 0 {
			if !s.write(buf, n) {
				return
			}
		}
	}
	_ = s.conn.Close(code, text)
}

// encodeMsg is the msg frame encoder given to router.Message.Encoded: each
// message is encoded once and the bytes shared by every subscriber.
func encodeMsg(m *router.Message) []byte {
	b := make([]byte, 0, len(m.Data)+len(m.Room)+len(m.From)+len(m.Key)+96)
	return protocol.AppendMsg(b, &protocol.Msg{
		Room: m.Room, Epoch: m.Epoch, Seq: m.Seq, TS: m.TS, From: m.From, Key: m.Key, Data: m.Data,
	})
}
