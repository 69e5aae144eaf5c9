package edge_test

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/edge"
	"github.com/arena-mesh/arena/edge/auth"
	"github.com/arena-mesh/arena/router/routertest"
	"github.com/arena-mesh/arena/wal"
)

// webCluster is a real multi-node Arena for browser tests: routertest's
// routers (real wal, memberlist and QUIC on 127.0.0.1) with an edge server
// on each, wired as cmd/arena wires them (Edges from the live members),
// serving the demo and dashboard, with every 127.0.0.1 origin allowed so
// a page can move between nodes.
type webCluster struct {
	c      *routertest.Cluster
	nodes  []*webNode
	secret []byte
}

// webNode is one node of a webCluster.
type webNode struct {
	idx    int
	id     string
	region string
	URL    string
	srv    *edge.Server
	hs     *http.Server
	ln     *connTracker
	served chan struct{} // closed when hs.Serve returns
	killed bool          // set by kill (test goroutine only)
}

// startWebCluster starts n nodes in the given regions (node i in
// regions[i%len(regions)]) and waits until every node sees all of them.
func startWebCluster(t *testing.T, n int, regions ...string) *webCluster {
	t.Helper()
	// wal.Open runs once per node, in node order: give each its own
	// registry, which its edge serves (fsync latency in /v1/stats).
	regs := make([]*prometheus.Registry, n)
	for i := range regs {
		regs[i] = prometheus.NewRegistry()
	}
	next := 0
	c := routertest.Start(t, n, routertest.WithRegions(regions...), routertest.WithWALConfig(func(cfg *wal.Config) {
		cfg.Registerer = regs[next]
		next++
	}))
	wc := &webCluster{c: c, secret: []byte("web-cluster-secret-0123456789abcdef")}
	a, err := auth.New(auth.Config{Secret: wc.secret})
	if err != nil {
		t.Fatal(err)
	}
	urls := make(map[string]string) // node id -> URL; written here, before any request
	var lns []net.Listener
	for i := range c.Nodes {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		urls[string(c.Nodes[i].ID)] = "http://" + ln.Addr().String()
	}
	for i, rn := range c.Nodes {
		logger := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel).With().Str("node", string(rn.ID)).Logger()
		self := string(rn.ID)
		rt := rn.Router
		srv, err := edge.New(edge.Config{
			NodeID:         self,
			Region:         rn.Region,
			Router:         rt,
			Auth:           a,
			Logger:         logger,
			Registerer:     regs[i],
			Gatherer:       regs[i],
			AllowedOrigins: []string{"127.0.0.1:*"},
			Web:            true,
			Edges: func() []edge.Edge {
				var out []edge.Edge
				for _, m := range rt.Members() {
					e := edge.Edge{Node: string(m.ID), Region: m.Region, URL: urls[string(m.ID)]}
					if e.Node == self {
						out = append([]edge.Edge{e}, out...)
					} else {
						out = append(out, e)
					}
				}
				return out
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		wn := &webNode{
			idx: i, id: self, region: rn.Region, URL: urls[self], srv: srv,
			hs:     &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second},
			ln:     &connTracker{Listener: lns[i], conns: make(map[net.Conn]struct{})},
			served: make(chan struct{}),
		}
		go func() {
			defer close(wn.served)
			_ = wn.hs.Serve(wn.ln)
		}()
		wc.nodes = append(wc.nodes, wn)
	}
	t.Cleanup(func() {
		for _, wn := range wc.nodes {
			if !wn.killed {
				wn.stop()
			}
		}
	})
	return wc
}

// token signs a one-hour token for user allowed everywhere.
func (wc *webCluster) token(t *testing.T, user string) string {
	t.Helper()
	tok, err := auth.Sign(wc.secret, user, all, all, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// byID returns the node named id.
func (wc *webCluster) byID(t *testing.T, id string) *webNode {
	t.Helper()
	for _, wn := range wc.nodes {
		if wn.id == id {
			return wn
		}
	}
	t.Fatalf("no node %q", id)
	return nil
}

// stop closes the node's client side: the listener and every connection
// at once (no reconnect frame, as a crash looks to clients), then the
// edge server.
func (wn *webNode) stop() {
	_ = wn.hs.Close()
	wn.ln.closeAll()
	<-wn.served
	_ = wn.srv.Close()
}

// kill crashes node wn: its clients' connections drop without a word, and
// its router, mesh and wal stop without leaving, so the others find out
// by failure detection. It returns once the others have dropped it.
func (wc *webCluster) kill(wn *webNode) {
	wn.killed = true
	wn.stop()
	wc.c.Kill(wn.idx)
}

// connTracker is a listener that remembers its connections, so that they
// can be cut even after the HTTP server handed them to a WebSocket.
type connTracker struct {
	net.Listener
	mu     sync.Mutex // guards conns and closed
	conns  map[net.Conn]struct{}
	closed bool
}

func (l *connTracker) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, l: l}
	l.conns[tc] = struct{}{}
	return tc, nil
}

// closeAll closes the listener and every connection it accepted.
func (l *connTracker) closeAll() {
	l.mu.Lock()
	l.closed = true
	conns := l.conns
	l.conns = map[net.Conn]struct{}{}
	l.mu.Unlock()
	_ = l.Listener.Close()
	for c := range conns {
		_ = c.Close()
	}
}

// trackedConn forgets itself when closed.
type trackedConn struct {
	net.Conn
	l    *connTracker
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	err := c.Conn.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
