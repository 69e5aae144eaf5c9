package edge

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/edge/auth"
	"github.com/arena-mesh/arena/protocol"
)

// session is one WebSocket client connection. It has at most two
// goroutines: the reader (run, started by serveWS once the HTTP handler
// has upgraded the connection) decodes and handles frames, and parks
// after readerLinger without data (parkReader: its goroutine exits and
// the server's idle watch starts a new one when data comes); the writer
// (writeLoop) writes batches of control frames and messages, and exits
// after writerLingerFor without work (see session_writer.go). An idle
// connection costs no goroutine. Publishes are handed to the router by
// the reader and answered by the router's done callbacks, at most
// Config.MaxInFlight in flight per session.
//
// Idle connections are what a node holds most of (tens of thousands), so
// a session keeps little: no child logger (sessionLog), no read buffer
// between messages (readBufs), no reader or writer goroutine or write
// buffers while idle, and a lean socket (wsconn.go).
type session struct {
	srv  *Server
	conn *websocket.Conn
	lean *leanConn // conn's socket when lean (wsconn.go), else nil
	sock net.Conn  // the socket under conn (lean or not), for cutSocket
	id   string
	log  sessionLog

	// ctx is the server's hardCtx, for the router calls the reader makes
	// (which all end before the session does: a context of the session's
	// own would cost it a cancelCtx and a registration in hardCtx for
	// nothing). Reads and writes don't watch it (that would keep a
	// context.AfterFunc per blocked read): Server.cutSessions closes the
	// sockets.
	ctx context.Context

	// Reader-owned state: touched only by the reader goroutine (one at a
	// time: a woken reader starts after the parked one let go, see
	// parkReader) and by teardown once the writer has stopped.
	header    *auth.Principal // from the upgrade's Authorization header
	principal *auth.Principal // set by connect; nil before
	subs      subSet
	abuse     strikes // bad frames
	rateAbuse strikes // rate-limited publishes
	// clientClosed: the client ended the connection with a close frame
	// (not a drop, nor a close the server started): its presence ends
	// at once instead of after the grace period.
	clientClosed bool

	// pubSem holds one token per publish waiting for durability: taken
	// by the reader, given back by the publish's done callback. Made by
	// the reader on the first publish (many sessions only subscribe).
	pubSem chan struct{}

	parkID uint64 // the idle watch's name for the session; guarded by the watch

	connectTimer *time.Timer // reader-owned; nil once connected
	isConnected  atomic.Bool // connect completed (read by the connect timer)
	expiryMu     sync.Mutex  // guards expiryTimer
	expiryTimer  *time.Timer

	done        chan struct{} // closed by fail: the writer closes the socket
	outFrames   atomic.Int64  // frames written, for logs
	outMessages atomic.Int64  // WebSocket messages written, for logs (and writerLingerFor)

	mu        sync.Mutex // guards everything below
	space     sync.Cond  // on mu: signalled when the control queue empties, closing starts or the writer is done
	ctrl      []byte     // queued control frames, '\n'-separated
	ctrlBuf   *ctrlBuf   // where ctrl's buffer came from, if pooled
	ctrlCount int        // frames in ctrl
	dirty     []*subState
	writerOn  bool // a writer goroutine runs (or has closed the socket for good)
	// readerParked: the reader goroutine has exited, the socket waits in
	// the idle watch (parkReader).
	readerParked bool
	wake         chan struct{} // cap 1: wakes the writer parked for work; nil without writer
	closing      bool
	closeCode    websocket.StatusCode
	closeText    string
	closeFlush   bool // write queued control frames before closing
	writerDone   bool // the last writer has closed the socket (a flag, not a channel: a session is kept per idle connection)
}

func newSession(srv *Server, conn *websocket.Conn, header *auth.Principal, remote string) *session {
	id := rand.Text()[:16]
	s := &session{
		srv:    srv,
		conn:   conn,
		id:     id,
		log:    sessionLog{base: &srv.log, conn: id, remote: remote},
		ctx:    srv.hardCtx,
		header: header,
		done:   make(chan struct{}),
	}
	s.space.L = &s.mu
	return s
}

// run starts serving the session on the reader goroutine serveWS
// started.
func (s *session) run() {
	s.log.Debug().Msg("session open")
	s.connectTimer = time.AfterFunc(s.srv.cfg.ConnectTimeout, func() {
		if !s.isConnected.Load() {
			s.fail(closePolicy, "connect timeout", true)
		}
	})
	s.read(true)
}

// read is the body of the session's reader goroutine: it reads until the
// socket closes and then tears the session down, or until the connection
// has been idle long enough for the reader to park (parkReader). A parked
// reader's goroutine has exited; wakeReader starts another. first is set
// for the session's first reader.
func (s *session) read(first bool) {
	if s.readLoop(first) {
		return // parked
	}

	// The socket is closed or closing. Let the writer finish its close
	// handshake, then stop everything the session started.
	s.fail(closeNormal, "", false)
	s.awaitWriterDone()
	// Publishes still in flight finish on their own: their done
	// callbacks find the session closing and drop the results.
	if s.connectTimer != nil {
		s.connectTimer.Stop()
	}
	s.stopExpiry()
	s.subs.each(func(st *subState) { st.closeWith(s.clientClosed) })
	s.mu.Lock()
	s.srv.m.sendQueued.Sub(float64(s.ctrlCount))
	s.ctrl, s.ctrlBuf, s.ctrlCount, s.dirty = nil, nil, 0, nil
	s.mu.Unlock()
	s.srv.idle.forget(s)
	s.log.Debug().Int64("frames_out", s.outFrames.Load()).Int64("writes", s.outMessages.Load()).
		Msg("session closed")
	s.srv.untrack(s)
}

// readLoop reads WebSocket messages until the socket fails, and returns
// false; or until the reader parks, and returns true. Once the session is
// closing it keeps reading (so that the close handshake completes) but
// ignores data.
//
// The read context has no Done channel, so that a blocked read registers
// nothing (coder/websocket arms a context.AfterFunc per read otherwise);
// the socket is closed instead when the session must end.
//
// Between messages it waits in awaitData when the socket is lean: the
// deepest an idle session's stack gets is then small enough for the GC to
// shrink it to 4 KiB (waiting inside coder/websocket's Reader is about
// 2 KiB deep, which keeps 8 KiB). After a while there without data the
// reader parks, and the connection costs no goroutine at all: the while is
// readerLinger times the messages this reader goroutine has read, at
// least 1 and at most maxLingerFactor, except on a fresh connection's
// first reader, which waits a tenth of readerLinger until it has read more
// than the connect frame and one frame after it.
func (s *session) readLoop(first bool) (parked bool) {
	linger := s.srv.readerLinger(s)
	read := 0 // messages this reader goroutine has read
	if first {
		read = -1 // the connect frame does not count
	}
	for {
		if s.lean != nil {
			// The more this reader has read, the longer it waits before
			// it parks: a connection with steady traffic keeps its
			// reader, one that wakes for a heartbeat now and then gives
			// it up again soon.
			wait := linger * time.Duration(min(max(read, 1), maxLingerFactor))
			if first && read <= 1 {
				// A fresh connection that has sent its connect and at
				// most one frame more (its subscribe, typically) parks
				// soon, as its writer exits soon (writerLingerFor).
				wait = linger / freshLingerDivisor
			}
			if idle := s.lean.awaitData(wait); idle && s.parkReader() {
				return true
			}
		}
		_, r, err := s.conn.Reader(context.Background())
		if err != nil {
			s.clientClosed = websocket.CloseStatus(err) != -1 && !s.isClosing()
			s.log.Debug().Err(err).Msg("read ended")
			return false
		}
		if !s.readMessage(r) {
			return false
		}
		read++
	}
}

// parkReader hands the idle session's socket to the server's idle watch
// (idle_linux.go) and reports whether the reader goroutine is to exit:
// the watch, or fail, starts a new one (wakeReader). A closing session's
// reader does not park: it reads the close handshake.
//
// The reader must touch nothing of the session's once it has marked
// itself parked, as a new reader may already run: it only registers the
// socket, which the watch serializes.
func (s *session) parkReader() bool {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return false
	}
	s.readerParked = true
	s.srv.m.parkedReaders.Inc()
	s.mu.Unlock()
	if err := s.srv.idle.park(s); err != nil {
		s.log.Debug().Err(err).Msg("reader cannot park")
		// Go on reading, unless a new reader was started meanwhile.
		return !s.unpark()
	}
	return true
}

// unpark clears the parked mark; true if the reader was parked, and so
// whoever clears it must start one.
func (s *session) unpark() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.readerParked
	if was {
		s.readerParked = false
		s.srv.m.parkedReaders.Dec()
	}
	return was
}

// wakeReader starts a reader for the session if its reader is parked:
// its socket has become readable, or the session is ending (fail, a cut
// socket), which the new reader sees through the socket.
func (s *session) wakeReader() {
	if s.unpark() {
		go s.read(false)
	}
}

// readMessage reads one message into a pooled buffer, held only while the
// message is handled, and handles it. false means the socket failed.
func (s *session) readMessage(r io.Reader) bool {
	buf := readBufs.Get().(*bytes.Buffer)
	defer putReadBuf(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		// Includes the read limit, which closes the socket with 1009.
		s.log.Debug().Err(err).Msg("read ended")
		return false
	}
	s.handleMessage(buf.Bytes())
	return true
}

// readBufs pools the buffers messages are read into. The frames decoded
// from a message keep no reference to it (the decoder copies data).
var readBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putReadBuf(b *bytes.Buffer) {
	if b.Cap() > 4*batchBytes {
		return // don't keep a rare huge message's buffer
	}
	b.Reset()
	readBufs.Put(b)
}

// handleMessage handles the frames of one WebSocket message in order.
func (s *session) handleMessage(msg []byte) {
	for line := range protocol.Lines(msg) {
		if s.isClosing() {
			return
		}
		s.handleFrame(line)
	}
}

// isClosing reports whether fail has been called.
func (s *session) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// fail starts closing the session with code and reason: the writer writes
// the queued control frames when flush is set, then runs the close
// handshake. Only the first call counts.
func (s *session) fail(code websocket.StatusCode, reason string, flush bool) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.closing = true
	s.closeCode, s.closeText, s.closeFlush = code, reason, flush
	s.space.Broadcast()
	k := s.kickLocked() // a writer must close the socket
	s.mu.Unlock()
	close(s.done)
	k.do(s)
	s.wakeReader()
	if code == closeTooSlow {
		s.srv.m.slowCloses.Inc()
	}
	if code != closeNormal {
		s.log.Debug().Int("code", int(code)).Str("reason", reason).Msg("closing session")
	}
}

// goAway sends a reconnect frame and closes with 1001 (drain).
func (s *session) goAway(reason string, edges []string) {
	s.sendForced(protocol.Reconnect{Op: protocol.OpReconnect, Reason: reason, Edges: edges})
	s.fail(closeGoingAway, "node going away", true)
}

// connected completes connect with principal p.
func (s *session) connected(p *auth.Principal) {
	s.principal = p
	s.isConnected.Store(true)
	if s.connectTimer != nil {
		s.connectTimer.Stop()
		s.connectTimer = nil
	}
	s.setExpiry(p.Expires)
}

// setExpiry arms the timer that closes the session with 4001 when the
// token expires; a zero time (API keys, dev) never expires.
func (s *session) setExpiry(exp time.Time) {
	s.expiryMu.Lock()
	defer s.expiryMu.Unlock()
	if s.expiryTimer != nil {
		s.expiryTimer.Stop()
		s.expiryTimer = nil
	}
	if exp.IsZero() {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(exp.Sub(s.srv.now()), func() {
		s.expiryMu.Lock()
		current := s.expiryTimer == t
		s.expiryMu.Unlock()
		if !current {
			return // replaced by a refresh while firing
		}
		s.sendForced(protocol.ErrorFrame(nil, protocol.Errorf(protocol.CodeUnauthorized, "token expired")))
		s.srv.m.errorSent(protocol.CodeUnauthorized)
		s.fail(closeUnauthorized, "token expired", true)
	})
	s.expiryTimer = t
}

// stopExpiry disarms the expiry timer.
func (s *session) stopExpiry() {
	s.expiryMu.Lock()
	defer s.expiryMu.Unlock()
	if s.expiryTimer != nil {
		s.expiryTimer.Stop()
		s.expiryTimer = nil
	}
}

// strikes counts events in a fixed window, to spot abuse. It is 16 bytes
// (Unix nanoseconds rather than a time.Time): every session has two.
type strikes struct {
	start int64 // the window's start, Unix nanoseconds
	n     int32
}

// add counts one event at now and reports whether more than limit fell in
// the current window.
func (k *strikes) add(now time.Time, limit int) bool {
	if t := now.UnixNano(); t-k.start > int64(abuseWindow) {
		k.start, k.n = t, 0
	}
	if k.n <= int32(limit) {
		k.n++ // stops past the limit: it cannot wrap
	}
	return int(k.n) > limit
}

// sessionLog logs with the session's conn and remote fields. It adds them
// to each event instead of holding a child zerolog.Logger, whose context
// buffer (512 bytes) every idle session would keep; a session logs little
// and only at Debug in normal operation.
type sessionLog struct {
	base   *zerolog.Logger // the server's
	conn   string
	remote string
}

func (l sessionLog) Debug() *zerolog.Event { return l.with(l.base.Debug()) }
func (l sessionLog) Warn() *zerolog.Event  { return l.with(l.base.Warn()) }
func (l sessionLog) Error() *zerolog.Event { return l.with(l.base.Error()) }

// with adds the session's fields; a nil (disabled) event stays nil.
func (l sessionLog) with(e *zerolog.Event) *zerolog.Event {
	return e.Str("conn", l.conn).Str("remote", l.remote)
}
