// Package edgetest runs a real single Arena node for tests: a wal in
// t.TempDir(), a router, an authenticator with a fresh HS256 secret, and an
// edge server on an httptest.Server at 127.0.0.1:0. Everything stops in
// t.Cleanup.
//
// Example:
//
//	n := edgetest.Start(t, edgetest.WithConfig(func(c *edge.Config) { c.PublishRate = 10 }))
//	tok := n.Token("alice", []string{"chat:*"}, []string{"chat:*"})
//	conn, _, err := websocket.Dial(ctx, n.WSURL, &websocket.DialOptions{
//		HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}},
//	})
package edgetest

import (
	"context"
	"crypto/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/edge"
	"github.com/arena-mesh/arena/edge/auth"
	"github.com/arena-mesh/arena/router"
	"github.com/arena-mesh/arena/wal"
)

// Option changes how Start builds a node.
type Option func(*options)

type options struct {
	dev       bool
	apiKeys   []auth.APIKey
	edge      []func(*edge.Config)
	router    []func(*router.Config)
	wal       []func(*wal.Config)
	authNow   func() time.Time
	quietLogs bool
	mqtt      bool
}

// WithDev accepts connections without a token (anonymous, full
// permissions), like arena serve --dev.
func WithDev() Option { return func(o *options) { o.dev = true } }

// WithAPIKeys configures server API keys.
func WithAPIKeys(keys ...auth.APIKey) Option {
	return func(o *options) { o.apiKeys = append(o.apiKeys, keys...) }
}

// WithConfig changes the edge configuration (MaxDataBytes, PublishRate,
// ConnectTimeout, SendQueue, ...) after Start filled the required fields.
func WithConfig(f func(*edge.Config)) Option {
	return func(o *options) { o.edge = append(o.edge, f) }
}

// WithRouterConfig changes the router configuration (RingSize, ...).
func WithRouterConfig(f func(*router.Config)) Option {
	return func(o *options) { o.router = append(o.router, f) }
}

// WithWALConfig changes the wal configuration (Retention, ...).
func WithWALConfig(f func(*wal.Config)) Option {
	return func(o *options) { o.wal = append(o.wal, f) }
}

// WithRingSize sets the router's per-room ring size.
func WithRingSize(n int) Option {
	return WithRouterConfig(func(c *router.Config) { c.RingSize = n })
}

// WithRetention sets the wal's retention.
func WithRetention(r wal.Retention) Option {
	return WithWALConfig(func(c *wal.Config) { c.Retention = r })
}

// WithAuthClock sets the clock the authenticator checks exp and nbf with.
func WithAuthClock(now func() time.Time) Option {
	return func(o *options) { o.authNow = now }
}

// WithMQTT also serves MQTT (edge.Server.ServeMQTT) on a listener at
// 127.0.0.1:0, whose address is Node.MQTTAddr (kept across Restart).
func WithMQTT() Option { return func(o *options) { o.mqtt = true } }

// WithQuietLogs discards the node's logs instead of sending them to
// t.Log (for benchmarks and fuzzing, where they would swamp the output).
func WithQuietLogs() Option { return func(o *options) { o.quietLogs = true } }

// Node is a running single node.
type Node struct {
	// URL is the node's HTTP base URL (http://127.0.0.1:PORT).
	URL string
	// WSURL is the WebSocket endpoint (ws://127.0.0.1:PORT/v1/ws).
	WSURL string
	// Secret is the HS256 secret tokens are signed with.
	Secret []byte
	// Dir is the data directory, kept across Restart.
	Dir string
	// MQTTAddr is the MQTT listener's host:port with WithMQTT, else "".
	MQTTAddr string

	t    testing.TB
	opts options
	http *httptest.Server
	h    atomic.Pointer[http.Handler]

	mu       sync.Mutex // guards the fields below (swapped by Restart)
	log      *wal.Log
	router   *router.Router
	server   *edge.Server
	registry *prometheus.Registry
	mqttDone chan error // ServeMQTT's result; nil without WithMQTT
	closed   bool
}

// Start runs a node until the test ends.
func Start(t testing.TB, opts ...Option) *Node {
	t.Helper()
	n := &Node{t: t, Secret: []byte(rand.Text() + rand.Text()), Dir: t.TempDir()}
	for _, o := range opts {
		o(&n.opts)
	}
	n.http = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := n.h.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		http.Error(w, "node is restarting", http.StatusServiceUnavailable)
	}))
	n.http.Start()
	n.URL = n.http.URL
	n.WSURL = "ws" + strings.TrimPrefix(n.URL, "http") + "/v1/ws"
	if err := n.open(); err != nil {
		n.http.Close()
		t.Fatalf("edgetest: start node: %v", err)
	}
	t.Cleanup(n.Close)
	return n
}

// open builds wal, router, authenticator and edge server on n.Dir.
func (n *Node) open() error {
	logger := zerolog.Nop()
	if !n.opts.quietLogs {
		logger = zerolog.New(zerolog.NewTestWriter(n.t)).Level(zerolog.InfoLevel)
	}
	reg := prometheus.NewRegistry()
	wcfg := wal.Config{Dir: n.Dir, Logger: logger, Registerer: reg}
	for _, f := range n.opts.wal {
		f(&wcfg)
	}
	log, err := wal.Open(wcfg)
	if err != nil {
		return err
	}
	rcfg := router.Config{NodeID: "test", Log: log, Logger: logger, Registerer: reg}
	for _, f := range n.opts.router {
		f(&rcfg)
	}
	rt, err := router.New(rcfg)
	if err != nil {
		log.Close()
		return err
	}
	a, err := auth.New(auth.Config{Secret: n.Secret, APIKeys: n.opts.apiKeys, Dev: n.opts.dev, Now: n.opts.authNow})
	if err != nil {
		rt.Close()
		log.Close()
		return err
	}
	ecfg := edge.Config{
		NodeID:     "test",
		Region:     "local",
		Router:     rt,
		Auth:       a,
		Logger:     logger,
		Registerer: reg,
		Gatherer:   reg,
	}
	for _, f := range n.opts.edge {
		f(&ecfg)
	}
	srv, err := edge.New(ecfg)
	if err != nil {
		rt.Close()
		log.Close()
		return err
	}
	var mqttDone chan error
	if n.opts.mqtt {
		addr := n.MQTTAddr
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			_ = srv.Close()
			rt.Close()
			log.Close()
			return err
		}
		n.MQTTAddr = ln.Addr().String()
		mqttDone = make(chan error, 1)
		go func() { mqttDone <- srv.ServeMQTT(ln) }()
	}
	n.mu.Lock()
	n.log, n.router, n.server, n.registry, n.mqttDone, n.closed = log, rt, srv, reg, mqttDone, false
	n.mu.Unlock()
	h := srv.Handler()
	n.h.Store(&h)
	return nil
}

// stop closes edge server, router and wal, in that order.
func (n *Node) stop() {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	srv, rt, log, mqttDone := n.server, n.router, n.log, n.mqttDone
	n.mu.Unlock()
	n.h.Store(nil)
	if err := srv.Close(); err != nil {
		n.t.Errorf("edgetest: close edge: %v", err)
	}
	if mqttDone != nil {
		// Close closed the listener, so ServeMQTT has returned or will.
		if err := <-mqttDone; err != nil {
			n.t.Errorf("edgetest: serve mqtt: %v", err)
		}
	}
	if err := rt.Close(); err != nil {
		n.t.Errorf("edgetest: close router: %v", err)
	}
	if err := log.Close(); err != nil {
		n.t.Errorf("edgetest: close wal: %v", err)
	}
}

// Restart closes the node (every connection is dropped after a reconnect
// frame) and opens it again on the same data directory and URL.
func (n *Node) Restart() {
	n.t.Helper()
	n.stop()
	if err := n.open(); err != nil {
		n.t.Fatalf("edgetest: restart node: %v", err)
	}
}

// Close stops the node and its HTTP listener. It is idempotent and also
// runs at cleanup.
func (n *Node) Close() {
	n.stop()
	n.http.CloseClientConnections()
	n.http.Close()
}

// Drain drains the edge server (see edge.Server.Drain) with a timeout.
func (n *Node) Drain(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return n.Server().Drain(ctx)
}

// Router returns the node's current router (a new one after Restart).
func (n *Node) Router() *router.Router {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.router
}

// Server returns the node's current edge server.
func (n *Node) Server() *edge.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.server
}

// WAL returns the node's current wal.
func (n *Node) WAL() *wal.Log {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.log
}

// Registry returns the Prometheus registry of the node's current
// incarnation (edge, router and wal metrics).
func (n *Node) Registry() *prometheus.Registry {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.registry
}

// Token signs a one-hour token for user with the given publish and
// subscribe patterns.
func (n *Node) Token(user string, pub, sub []string) string {
	return n.TokenTTL(user, pub, sub, time.Hour)
}

// TokenTTL signs a token valid for ttl from now (negative: already
// expired).
func (n *Node) TokenTTL(user string, pub, sub []string, ttl time.Duration) string {
	n.t.Helper()
	now := time.Now()
	if n.opts.authNow != nil {
		now = n.opts.authNow()
	}
	if ttl <= 0 {
		// Sign wants a positive ttl: issue it in the past instead.
		now = now.Add(ttl - time.Second)
		ttl = time.Second
	}
	tok, err := auth.Sign(n.Secret, user, pub, sub, ttl, now)
	if err != nil {
		n.t.Fatalf("edgetest: sign token: %v", err)
	}
	return tok
}

// AllToken signs a one-hour token for user that may publish and subscribe
// everywhere.
func (n *Node) AllToken(user string) string {
	return n.Token(user, []string{"*"}, []string{"*"})
}
