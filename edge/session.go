package edge

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
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
// has upgraded the connection) decodes and handles frames; the writer
// (writeLoop) writes batches of control frames and messages, and exits
// after writerLinger without work (see session_writer.go), so an idle
// connection costs one goroutine. Publishes are handed to the router
// by the reader and answered by the router's done callbacks, at most
// Config.MaxInFlight in flight per session.
//
// Idle connections are what a node holds most of (tens of thousands), so
// a session keeps little: no child logger (sessionLog), no read buffer
// between messages (readBufs), no writer goroutine or write buffers while
// idle, and a lean socket (wsconn.go).
type session struct {
	srv  *Server
	conn *websocket.Conn
	lean *leanConn // conn's socket when lean (wsconn.go), else nil
	id   string
	log  sessionLog

	// ctx is the server's hardCtx, for the router calls the reader makes
	// (which all end before the session does: a context of the session's
	// own would cost it a cancelCtx and a registration in hardCtx for
	// nothing). Reads and writes don't watch it (that would keep a
	// context.AfterFunc per blocked read): Server.cutSessions closes the
	// sockets.
	ctx context.Context

	// Reader-owned state: touched only by the reader goroutine (and by
	// teardown once the writer has stopped).
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

	connectTimer *time.Timer // reader-owned; nil once connected
	isConnected  atomic.Bool // connect completed (read by the connect timer)
	expiryMu     sync.Mutex  // guards expiryTimer
	expiryTimer  *time.Timer

	done        chan struct{} // closed by fail: the writer closes the socket
	writerDone  chan struct{} // closed when the last writer has closed the socket
	outFrames   atomic.Int64  // frames written, for logs
	outMessages atomic.Int64  // WebSocket messages written, for logs

	mu         sync.Mutex // guards everything below
	space      sync.Cond  // on mu: signalled when the control queue empties or closing starts
	ctrl       []byte     // queued control frames, '\n'-separated
	ctrlBuf    *ctrlBuf   // where ctrl's buffer came from, if pooled
	ctrlCount  int        // frames in ctrl
	dirty      []*subState
	writerOn   bool          // a writer goroutine runs (or has closed the socket for good)
	wake       chan struct{} // cap 1: wakes the writer parked for work; nil without writer
	closing    bool
	closeCode  websocket.StatusCode
	closeText  string
	closeFlush bool // write queued control frames before closing
}

func newSession(srv *Server, conn *websocket.Conn, header *auth.Principal, remote string) *session {
	id := rand.Text()[:16]
	s := &session{
		srv:        srv,
		conn:       conn,
		id:         id,
		log:        sessionLog{base: &srv.log, conn: id, remote: remote},
		ctx:        srv.hardCtx,
		header:     header,
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	s.space.L = &s.mu
	return s
}

// run serves the session until the socket closes: it is the reader.
func (s *session) run() {
	s.log.Debug().Msg("session open")
	s.connectTimer = time.AfterFunc(s.srv.cfg.ConnectTimeout, func() {
		if !s.isConnected.Load() {
			s.fail(closePolicy, "connect timeout", true)
		}
	})
	s.readLoop()

	// The socket is closed or closing. Let the writer finish its close
	// handshake, then stop everything the session started.
	s.fail(closeNormal, "", false)
	<-s.writerDone
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
	s.log.Debug().Int64("frames_out", s.outFrames.Load()).Int64("writes", s.outMessages.Load()).
		Msg("session closed")
}

// readLoop reads WebSocket messages until the socket fails. Once the
// session is closing it keeps reading (so that the close handshake
// completes) but ignores data.
//
// The read context has no Done channel, so that a blocked read registers
// nothing (coder/websocket arms a context.AfterFunc per read otherwise);
// the socket is closed instead when the session must end.
//
// Between messages it waits in awaitData when the socket is lean: the
// deepest an idle session's stack gets is then small enough for the GC to
// shrink it to 4 KiB (waiting inside coder/websocket's Reader is about
// 2 KiB deep, which keeps 8 KiB).
func (s *session) readLoop() {
	for {
		if s.lean != nil {
			s.lean.awaitData()
		}
		_, r, err := s.conn.Reader(context.Background())
		if err != nil {
			s.clientClosed = websocket.CloseStatus(err) != -1 && !s.isClosing()
			s.log.Debug().Err(err).Msg("read ended")
			return
		}
		if !s.readMessage(r) {
			return
		}
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

// strikes counts events in a fixed window, to spot abuse.
type strikes struct {
	start time.Time
	n     int
}

// add counts one event at now and reports whether more than limit fell in
// the current window.
func (k *strikes) add(now time.Time, limit int) bool {
	if now.Sub(k.start) > abuseWindow {
		k.start, k.n = now, 0
	}
	k.n++
	return k.n > limit
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
