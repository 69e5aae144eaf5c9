package edge

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

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
	var k writerKick
	if st.ready && !st.queued.Load() && !s.closing {
		st.queued.Store(true)
		s.dirty = append(s.dirty, st)
		k = s.kickLocked()
	}
	s.mu.Unlock()
	k.do(s)
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
	var k writerKick
	if !st.queued.Load() && !s.closing {
		st.queued.Store(true)
		s.dirty = append(s.dirty, st)
		k = s.kickLocked()
	}
	s.mu.Unlock()
	k.do(s)
}

// requeue puts subscriptions that still have messages back on the dirty
// list. Only the writer calls it, so no writer needs waking.
func (s *session) requeue(sts []*subState) {
	s.mu.Lock()
	for _, st := range sts {
		if !st.queued.Load() && !st.closed.Load() {
			st.queued.Store(true)
			s.dirty = append(s.dirty, st)
		}
	}
	s.mu.Unlock()
}

// ctrlBuf holds a control queue buffer in ctrlBufs: a session takes one
// when it queues a frame with no writer running and gives it back when
// its writer finds nothing left to do.
type ctrlBuf struct{ b []byte }

var ctrlBufs = sync.Pool{New: func() any { return &ctrlBuf{b: make([]byte, 0, 512)} }}

// releaseCtrlLocked gives the empty control queue buffer back to ctrlBufs.
func (s *session) releaseCtrlLocked() {
	if s.ctrlBuf != nil {
		s.ctrlBuf.b = s.ctrl[:0]
		if cap(s.ctrl) > 4*batchBytes {
			s.ctrlBuf.b = nil // a rare burst's
		}
		ctrlBufs.Put(s.ctrlBuf)
		s.ctrlBuf = nil
	}
	s.ctrl = nil
}

// writerKick is what a caller that queued work (or began closing) must do
// once it has unlocked s.mu: start a writer, or wake the one parked.
type writerKick struct {
	start bool
	wake  chan struct{}
}

// kickLocked is called with work just queued or closing just begun. A
// writer retires (retireWriter) only under s.mu and with nothing queued,
// so work is never left without a writer.
func (s *session) kickLocked() writerKick {
	if !s.writerOn {
		s.writerOn = true
		s.wake = make(chan struct{}, 1)
		return writerKick{start: true, wake: s.wake}
	}
	return writerKick{wake: s.wake}
}

func (k writerKick) do(s *session) {
	switch {
	case k.start:
		go s.writeLoop(k.wake)
	case k.wake != nil:
		select {
		case k.wake <- struct{}{}:
		default:
		}
	}
}

// retireWriter ends the writer goroutine's life if there is still nothing
// to do: it gives up the writer role and the control queue buffer, and
// reports true. The writer calls it after parking writerLingerFor for work.
func (s *session) retireWriter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.ctrlCount > 0 || len(s.dirty) > 0 {
		return false
	}
	s.writerOn = false
	s.wake = nil
	s.releaseCtrlLocked()
	s.dirty = nil
	return true
}

// markWriterDone records that the last writer has closed the socket, for
// the teardown waiting in awaitWriterDone.
func (s *session) markWriterDone() {
	s.mu.Lock()
	s.writerDone = true
	s.space.Broadcast()
	s.mu.Unlock()
}

// awaitWriterDone waits until the last writer has closed the socket.
func (s *session) awaitWriterDone() {
	s.mu.Lock()
	for !s.writerDone {
		s.space.Wait()
	}
	s.mu.Unlock()
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
func (s *session) sendAck(id int64, room string, ack router.Ack) {
	var a [160]byte
	b := append(a[:0], `{"op":"ack","id":`...)
	b = strconv.AppendInt(b, id, 10)
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
	} else if cap(s.ctrl) == 0 {
		// Given back while idle (see nextWork).
		s.ctrlBuf = ctrlBufs.Get().(*ctrlBuf)
		s.ctrl = s.ctrlBuf.b[:0]
	}
	s.ctrl = append(s.ctrl, frame...)
	s.ctrlCount++
	k := s.kickLocked()
	s.mu.Unlock()
	s.srv.m.sendQueued.Inc()
	k.do(s)
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

// takeWork appends the queued control frames to buf and swaps out the
// dirty subscriptions (clearing their queued flags, so that a Notify from
// now on queues them again). Both come from one critical section, and a
// subscription becomes ready only after its subscribed reply is queued,
// so a batch never carries a message before its subscribed reply.
//
// The frames are copied rather than the buffers swapped, so that the
// writer's batch buffer (pooled, grown to batch size) stays the writer's.
func (s *session) takeWork(buf []byte, dirty []*subState) ([]byte, int, []*subState) {
	s.mu.Lock()
	buf, n, dirty := s.takeWorkLocked(buf, dirty)
	s.mu.Unlock()
	if n > 0 {
		s.srv.m.sendQueued.Sub(float64(n))
	}
	return buf, n, dirty
}

func (s *session) takeWorkLocked(buf []byte, dirty []*subState) ([]byte, int, []*subState) {
	buf = append(buf, s.ctrl...)
	s.ctrl = s.ctrl[:0]
	n := s.ctrlCount
	s.ctrlCount = 0
	dirty, s.dirty = s.dirty, dirty[:0]
	for _, st := range dirty {
		st.queued.Store(false)
	}
	if n >= s.srv.cfg.SendQueue {
		s.space.Broadcast()
	}
	return buf, n, dirty
}

// writerStep is what the writer does next.
type writerStep uint8

const (
	stepWrite writerStep = iota // write the work taken
	stepIdle                    // nothing to do: park
	stepClose                   // the session is closing: close the socket and exit for good
)

// nextWork is the writer's critical section: closing first, then the work
// queued (appended to buf, see takeWork), else stepIdle.
func (s *session) nextWork(buf []byte, dirty []*subState) ([]byte, int, []*subState, writerStep) {
	s.mu.Lock()
	switch {
	case s.closing:
		s.mu.Unlock()
		return buf, 0, dirty, stepClose
	case s.ctrlCount == 0 && len(s.dirty) == 0:
		s.mu.Unlock()
		return buf, 0, dirty, stepIdle
	}
	buf, n, dirty := s.takeWorkLocked(buf, dirty)
	s.mu.Unlock()
	if n > 0 {
		s.srv.m.sendQueued.Sub(float64(n))
	}
	return buf, n, dirty, stepWrite
}

// writerScratch is a writer's working memory, pooled so that an idle
// session holds none of it and a writer started per burst of work does
// not allocate it again.
type writerScratch struct {
	buf    []byte // the batch being built
	dirty  []*subState
	pulled []*router.Message
}

var writerScratches = sync.Pool{New: func() any {
	return &writerScratch{pulled: make([]*router.Message, 0, pullMax)}
}}

// writerLinger is how long a writer with nothing to do waits for work
// before it exits: long enough that a connection with traffic keeps its
// writer (starting one per message would cost a goroutine start and stack
// growth each time), short enough that an idle connection soon costs one
// goroutine only.
const writerLinger = time.Second

// writerWarmup is how many WebSocket messages a session writes before its
// writers linger the whole writerLinger. A fresh connection's writer,
// which has written the connect and subscribe replies, exits after a
// tenth of it: while thousands of clients connect, every connection
// keeps a writer goroutine only briefly (each goroutine the node ever ran
// at once leaves a g of about 480 bytes the runtime never frees), and a
// connection with traffic soon writes enough to keep its writer.
const writerWarmup = 10

// writerLingerFor returns how long a writer of a session that has written
// written messages waits for work before it exits.
func writerLingerFor(written int64) time.Duration {
	return writerLinger * time.Duration(min(max(written, 1), writerWarmup)) / writerWarmup
}

// writeLoop is the session's writer: it writes everything ready (control
// frames first, then messages pulled from dirty subscriptions) as
// '\n'-joined frames in one WebSocket message of about batchBytes at most,
// then waits for wake. After writerLingerFor without work it exits, and
// kickLocked starts another when work comes. On fail it closes the socket.
func (s *session) writeLoop(wake chan struct{}) {
	w := writerScratches.Get().(*writerScratch)
	// The linger is timed without a timer operation per delivery: the
	// writer notes when it last had work, and one timer, armed at most
	// once per linger, wakes it to look (a writer of a busy connection
	// goes idle after every message: re-arming a timer each time was a
	// few percent of a node's CPU in fan-out).
	var lingerArmed atomic.Bool
	linger := time.AfterFunc(time.Hour, func() {
		lingerArmed.Store(false)
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	linger.Stop()
	defer linger.Stop()
	lastWork, worked := time.Now(), false
	// cut bounds each write (see write).
	cut := s.startWriteWatch()
	defer cut.stop()
	for {
		buf, frames, dirty, step := s.nextWork(w.buf[:0], w.dirty)
		w.dirty = dirty[:0]
		switch step {
		case stepIdle:
			now := time.Now()
			if worked {
				lastWork, worked = now, false
			}
			d := writerLingerFor(s.outMessages.Load())
			if idle := now.Sub(lastWork); idle >= d {
				if s.retireWriter() {
					w.buf = buf[:0]
					writerScratches.Put(w)
					return
				}
				worked = true // work came meanwhile: the linger starts again
				continue
			} else if !lingerArmed.Load() {
				lingerArmed.Store(true)
				linger.Reset(d - idle)
			}
			// wake alone: fail, which closes s.done, kicks the writer
			// too, and a one-channel receive costs a fraction of a select
			// (the writer of a fan-out subscriber waits here after every
			// delivery).
			<-wake
			continue
		case stepClose:
			s.closeSocket(buf, cut)
			s.markWriterDone()
			w.buf = buf[:0]
			writerScratches.Put(w)
			return
		}
		for i, st := range dirty {
			if len(buf) >= batchBytes {
				s.requeue(dirty[i:])
				break
			}
			if st.closed.Load() {
				continue
			}
			var err error
			w.pulled, err = st.sub.Pull(w.pulled[:0], pullMax)
			if err != nil {
				if errors.Is(err, router.ErrTooSlow) {
					s.fail(closeTooSlow, "too slow: resume from the last seq seen", false)
				} else if !st.closed.Load() {
					s.log.Warn().Err(err).Str("room", st.room).Msg("pull failed")
					s.fail(websocketInternal, "internal error", false)
				}
				break
			}
			for _, m := range w.pulled {
				if len(buf) > 0 {
					buf = append(buf, '\n')
				}
				buf = append(buf, m.Encoded(encodeMsg)...)
			}
			frames += len(w.pulled)
			s.srv.m.deliveries.Add(float64(len(w.pulled)))
			if len(w.pulled) == pullMax {
				s.requeue(dirty[i : i+1])
			}
			clear(w.pulled)
		}
		clear(dirty)
		if len(buf) > 0 {
			if !s.write(buf, frames, cut) {
				// fail was called: no writer starts again.
				s.markWriterDone()
				return
			}
		}
		worked = true
		w.buf = buf[:0]
		if cap(w.buf) > 4*batchBytes {
			w.buf = nil
		}
	}
}

// write writes one WebSocket message of frames frames, bounded by the
// write timeout: cut closes the socket when the write takes that long.
// false means the socket is gone.
func (s *session) write(buf []byte, frames int, cut *writeWatch) bool {
	// The timeout closes the socket itself rather than through a context:
	// coder/websocket keeps the context of the last write until the next
	// one, which would cost an idle session a timerCtx and its channel
	// (and a context derived from s.ctx would keep a children map in
	// s.ctx). Server.cutSessions closes the socket on a hard stop.
	cut.begin()
	var err error
	if s.lean != nil {
		err = s.lean.WriteText(buf)
	} else {
		err = s.conn.Write(context.Background(), websocketText, buf)
	}
	cut.end()
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

// writeWatch bounds the writes of one writer goroutine by
// Config.WriteTimeout without a timer operation per write: a write notes
// when it began, and one timer, alive as long as the writer, looks at it
// at least once per timeout and cuts the socket (cutSocket) when a write
// has gone on that long. It re-arms itself for exactly when the write in
// progress would reach the timeout, so the cut comes as late as with a
// timer per write, never later. (Re-arming a timer for every write and
// stopping it after was a few percent of a node's CPU in fan-out, where
// each delivery is a write of its own.)
type writeWatch struct {
	s       *session
	timeout time.Duration
	base    time.Time    // began holds time since base (monotonic)
	began   atomic.Int64 // when the write in progress began, +1; 0: none
	alive   atomic.Bool  // the writer runs: the timer re-arms itself
	timer   *time.Timer
}

// startWriteWatch starts the write watch of a new writer goroutine.
func (s *session) startWriteWatch() *writeWatch {
	w := &writeWatch{s: s, timeout: s.srv.cfg.WriteTimeout, base: time.Now()}
	w.alive.Store(true)
	w.timer = time.AfterFunc(w.timeout, w.check)
	return w
}

// begin and end bracket a write.
func (w *writeWatch) begin() { w.began.Store(int64(time.Since(w.base)) + 1) }
func (w *writeWatch) end()   { w.began.Store(0) }

// stop ends the watch when its writer exits. A check already running may
// arm the timer once more; it then finds the watch stopped.
func (w *writeWatch) stop() {
	w.alive.Store(false)
	w.timer.Stop()
}

// check runs on the timer: it cuts a write that has gone on for the
// timeout, and otherwise arms the timer for when the write in progress
// would reach it (or a whole timeout, with none in progress).
func (w *writeWatch) check() {
	if !w.alive.Load() {
		return
	}
	next := w.timeout
	if began := w.began.Load(); began != 0 {
		took := time.Since(w.base) - time.Duration(began-1)
		if took >= w.timeout {
			w.s.cutSocket()
			return
		}
		next = w.timeout - took
	}
	w.timer.Reset(next)
}

// cutSocket closes the socket without a close handshake, also when one
// is under way: coder/websocket's CloseNow then only waits for it to end
// (up to its 5 s timeout), so the socket under it is closed first.
func (s *session) cutSocket() {
	if s.sock != nil {
		_ = s.sock.Close()
	}
	_ = s.conn.CloseNow()
}

// closeSocket writes the last control frames if the close asks for it,
// then runs the close handshake.
func (s *session) closeSocket(spare []byte, cut *writeWatch) {
	s.mu.Lock()
	code, text, flush := s.closeCode, s.closeText, s.closeFlush
	s.mu.Unlock()
	if flush {
		if buf, n, _ := s.takeWork(spare, nil); len(buf) > 0 {
			if !s.write(buf, n, cut) {
				return
			}
		}
	}
	_ = s.conn.Close(code, text)
}

// encodeMsg is the msg frame encoder given to router.Message.Encoded: each
// message is encoded once and the bytes shared by every subscriber.
func encodeMsg(m *router.Message) []byte {
	pm := protocol.Msg{Room: m.Room, Epoch: m.Epoch, Seq: m.Seq, TS: m.TS, From: m.From, Key: m.Key, Data: m.Data}
	return protocol.AppendMsg(make([]byte, 0, protocol.MsgCap(&pm)), &pm)
}
