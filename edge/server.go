package edge

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/protocol"
)

// Server terminates client connections (WebSocket sessions, SSE streams)
// and serves the HTTP API. It is safe for concurrent use.
type Server struct {
	cfg      Config
	log      zerolog.Logger
	m        *metrics
	limiters *limiters
	handler  http.Handler

	// hardCtx is the parent of every session's context; it is cancelled,
	// and every socket cut (cutSessions), at the end of the close grace
	// period.
	hardCtx    context.Context
	hardCancel context.CancelFunc
	// streamsDone is closed when SSE streams must end (drain or close).
	streamsDone chan struct{}

	mu       sync.Mutex // guards sessions, streams, draining, mqtt
	sessions map[*session]struct{}
	streams  int
	draining bool      // set by Drain and Close: no new clients
	mqtt     mqttState // MQTT listeners and sessions (mqtt.go)

	// wg counts sessions (from track to untrack, whichever goroutine
	// serves them), SSE handler and MQTT session goroutines, so Drain and
	// Close can wait for them.
	wg sync.WaitGroup

	// idle holds the sockets of parked readers (idle_linux.go).
	idle idleWatch
	// lingerOverride replaces readerLinger when set (tests).
	lingerOverride atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

// New validates cfg, fills its defaults and returns a Server. Serve its
// Handler with an http.Server; call Drain and then Close on shutdown.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	mq, err := newMQTTState(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:         cfg,
		log:         cfg.Logger.With().Str("component", "edge").Logger(),
		m:           m,
		limiters:    newLimiters(cfg.PublishRate, cfg.PublishBurst),
		streamsDone: make(chan struct{}),
		sessions:    make(map[*session]struct{}),
		mqtt:        mq,
	}
	s.idle.log = &s.log
	s.hardCtx, s.hardCancel = context.WithCancel(context.Background())
	s.handler = s.routes()
	return s, nil
}

// Handler returns the HTTP handler of every client-facing endpoint:
// /v1/ws, /v1/rooms/..., /v1/edges, /v1/cluster, /metrics, /healthz and
// /readyz.
func (s *Server) Handler() http.Handler { return s.handler }

// Drain stops accepting new clients (/v1/ws answers 503, /readyz turns
// 503), sends every connected client a reconnect frame listing the other
// edges and closes it with 1001, ends SSE streams, and waits for all of
// them to finish. When ctx ends first, the remaining sockets are cut and
// Drain returns ctx.Err() once their goroutines are gone.
func (s *Server) Drain(ctx context.Context) error {
	return s.shutdown(ctx, "draining")
}

// Close is Drain with a short grace period: connected clients still get a
// reconnect frame and a 1001 close when they answer quickly. It returns
// once every session goroutine has stopped. Close is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
		defer cancel()
		if err := s.shutdown(ctx, "closing"); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			s.closeErr = err
		}
		s.hardCancel()
		s.idle.close()
		s.log.Info().Msg("edge closed")
	})
	return s.closeErr
}

// shutdown implements Drain and Close.
func (s *Server) shutdown(ctx context.Context, reason string) error {
	s.mu.Lock()
	first := !s.draining
	s.draining = true
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	if first {
		close(s.streamsDone)
		s.log.Info().Int("sessions", len(sessions)).Str("reason", reason).Msg("edge draining")
	}
	edges := s.otherEdgeURLs()
	for _, sess := range sessions {
		sess.goAway(reason, edges)
	}
	s.mqttGoAway()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		// Cut whatever is left: closing the sockets unblocks every reader
		// and writer at once.
		s.hardCancel()
		s.cutSessions()
		<-done
		return ctx.Err()
	}
}

// cutSessions closes every WebSocket session's socket without a close
// handshake. Sessions don't watch hardCtx while reading or writing (that
// would cost each idle one a context registration), so the cut is
// explicit. MQTT sessions and SSE streams end through hardCtx.
func (s *Server) cutSessions() {
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.cutSocket()
		sess.wakeReader() // a parked reader learns of the close from no socket
	}
}

// readerLinger is the least time a session's reader waits without data
// before it parks (session.parkReader); it waits longer the more it has
// read (see session.readLoop), so that a connection with steady traffic
// keeps its reader (parking costs an epoll_ctl and a goroutine start per
// wake) while an idle one, or one that only sends a heartbeat now and
// then, soon costs no goroutine. 0 (never park) for a socket that is not
// lean or where parking is not supported.
func (s *Server) readerLinger(sess *session) time.Duration {
	if !parkSupported || sess.lean == nil {
		return 0
	}
	if d := s.lingerOverride.Load(); d > 0 {
		return time.Duration(d)
	}
	return defaultReaderLinger
}

// defaultReaderLinger: see readerLinger. With leanConn.awaitData's
// deadline, a reader that has read one message parks 0.5 to 1 s after it,
// one that has read maxLingerFactor or more 2.5 to 5 s after the last.
const defaultReaderLinger = time.Second

// maxLingerFactor bounds the growth of a reader's linger with the
// messages it has read.
const maxLingerFactor = 5

// freshLingerDivisor shortens the linger of a fresh connection's first
// reader until it has read more than its handshake (see
// session.readLoop): while thousands of clients connect, each one keeps
// a goroutine only briefly.
const freshLingerDivisor = 10

// track registers a new session; false once the server drains.
func (s *Server) track(sess *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	s.m.connections.Inc()
	return true
}

// untrack removes a session registered by track.
func (s *Server) untrack(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
	s.m.connections.Dec()
	s.wg.Done()
}

// trackStream registers an SSE stream; false once the server drains.
func (s *Server) trackStream() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.streams++
	s.wg.Add(1)
	s.m.sseStreams.Inc()
	return true
}

// untrackStream removes a stream registered by trackStream.
func (s *Server) untrackStream() {
	s.mu.Lock()
	s.streams--
	s.mu.Unlock()
	s.m.sseStreams.Dec()
	s.wg.Done()
}

// accepting reports whether new clients are accepted.
func (s *Server) accepting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.draining
}

// load returns the number of WebSocket sessions and SSE streams.
func (s *Server) load() (sessions, streams int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions), s.streams
}

// edges returns the client-facing nodes; self is this node's entry when
// Config.Edges is nil.
func (s *Server) edges(self string) []Edge {
	if s.cfg.Edges != nil {
		if e := s.cfg.Edges(); e != nil {
			return e
		}
		return []Edge{}
	}
	return []Edge{{Node: s.cfg.NodeID, Region: s.cfg.Region, URL: self}}
}

// otherEdgeURLs returns the URLs of the other edges, best first, for
// reconnect frames. Never nil, so the frame carries "edges":[].
func (s *Server) otherEdgeURLs() []string {
	urls := []string{}
	if s.cfg.Edges == nil {
		return urls
	}
	for _, e := range s.cfg.Edges() {
		if e.Node != s.cfg.NodeID && e.URL != "" {
			urls = append(urls, e.URL)
		}
	}
	return urls
}

// now is the configured clock.
func (s *Server) now() time.Time { return s.cfg.Now() }

// Close codes, as websocket.StatusCode values.
const (
	closeNormal       = websocket.StatusNormalClosure
	closeGoingAway    = websocket.StatusCode(protocol.CloseGoingAway)
	closePolicy       = websocket.StatusCode(protocol.ClosePolicy)
	closeUnauthorized = websocket.StatusCode(protocol.CloseUnauthorized)
	closeRateLimited  = websocket.StatusCode(protocol.CloseRateLimited)
	closeTooSlow      = websocket.StatusCode(protocol.CloseTooSlow)
	websocketInternal = websocket.StatusInternalError
	websocketText     = websocket.MessageText
)
