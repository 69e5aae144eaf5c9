package edge

import (
	"bytes"
	"context"
	"crypto/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/edge/auth"
	"github.com/arena-mesh/arena/protocol"
)

// session is one WebSocket client connection. It has exactly two
// goroutines: the reader (the HTTP handler goroutine, running run)
// decodes and handles frames; the writer (writeLoop) writes batches of
// control frames and messages. Publishes are handed to the router by the
// reader and answered by the router's done callbacks, at most
// Config.MaxInFlight in flight per session.
type session struct {
	srv  *Server
	conn *websocket.Conn
	id   string
	log  zerolog.Logger

	// ctx ends when the session is torn down or the server cuts every
	// socket; reads and in-flight publishes use it.
	ctx    context.Context
	cancel context.CancelFunc

	// Reader-owned state: touched only by the reader goroutine (and by
	// teardown once the writer has stopped).
	header    *auth.Principal // from the upgrade's Authorization header
	principal *auth.Principal // set by connect; nil before
	subs      map[string]*subState
	abuse     strikes // bad frames
	rateAbuse strikes // rate-limited publishes
	readBuf   bytes.Buffer
	// clientClosed: the client ended the connection with a close frame
	// (not a drop, nor a close the server started): its presence ends
	// at once instead of after the grace period.
	clientClosed bool

	// pubSem holds one token per publish waiting for durability: taken
	// by the reader, given back by the publish's done callback.
	pubSem chan struct{}

	connectTimer *time.Timer
	isConnected  atomic.Bool // connect completed (read by the connect timer)
	expiryMu     sync.Mutex  // guards expiryTimer
	expiryTimer  *time.Timer

	wake        chan struct{} // cap 1: the writer has work
	done        chan struct{} // closed by fail: the writer closes the socket
	writerDone  chan struct{} // closed when the writer returns
	outFrames   atomic.Int64  // frames written, for logs
	outMessages atomic.Int64  // WebSocket messages written, for logs

	mu         sync.Mutex // guards everything below
	space      sync.Cond  // on mu: signalled when the control queue empties or closing starts
	ctrl       []byte     // queued control frames, '\n'-separated
	ctrlCount  int        // frames in ctrl
	dirty      []*subState
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
		log:        srv.log.With().Str("conn", id).Str("remote", remote).Logger(),
		header:     header,
		subs:       make(map[string]*subState),
		pubSem:     make(chan struct{}, srv.cfg.MaxInFlight),
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	s.space.L = &s.mu
	s.ctx, s.cancel = context.WithCancel(srv.hardCtx)
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
	go s.writeLoop()
	s.readLoop()

	// The socket is closed or closing. Let the writer finish its close
	// handshake, then stop everything the session started.
	s.fail(closeNormal, "", false)
	<-s.writerDone
	// Publishes still in flight finish on their own: their done
	// callbacks find the session closing and drop the results.
	s.cancel()
	s.connectTimer.Stop()
	s.stopExpiry()
	for _, st := range s.subs {
		st.closeWith(s.clientClosed)
	}
	s.mu.Lock()
	s.srv.m.sendQueued.Sub(float64(s.ctrlCount))
	s.ctrl, s.ctrlCount, s.dirty = nil, 0, nil
	s.mu.Unlock()
	s.log.Debug().Int64("frames_out", s.outFrames.Load()).Int64("writes", s.outMessages.Load()).
		Msg("session closed")
}

// readLoop reads WebSocket messages until the socket fails. Once the
// session is closing it keeps reading (so that the close handshake
// completes) but ignores data.
func (s *session) readLoop() {
	for {
		_, r, err := s.conn.Reader(s.ctx)
		if err != nil {
			s.clientClosed = websocket.CloseStatus(err) != -1 && !s.isClosing()
			s.log.Debug().Err(err).Msg("read ended")
			return
		}
		s.readBuf.Reset()
		if _, err := s.readBuf.ReadFrom(r); err != nil {
			// Includes the read limit, which closes the socket with 1009.
			s.log.Debug().Err(err).Msg("read ended")
			return
		}
		s.handleMessage(s.readBuf.Bytes())
		if s.readBuf.Cap() > 4*batchBytes {
			// Don't keep a rare huge message's buffer for the session's life.
			s.readBuf = bytes.Buffer{}
		}
	}
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
	s.mu.Unlock()
	close(s.done)
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
	s.connectTimer.Stop()
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
