// Package routertest runs in-process clusters of routers for tests: each
// node has a real wal (Pebble in t.TempDir()) and a real mesh (memberlist
// and QUIC on 127.0.0.1, port 0, with mesh.LocalTiming()), all sharing one
// cluster key.
//
//	c := routertest.Start(t, 3)
//	home := c.HomeOf("chat:1")
//	ack, err := c.Nodes[(home+1)%3].Router.Publish(ctx, req) // forwarded to home
package routertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/mesh"
	"github.com/arena-mesh/arena/router"
	"github.com/arena-mesh/arena/wal"
)

// ClusterKey is the mesh key every test node shares.
var ClusterKey = []byte("routertest-cluster-key-32-bytes!")

// Option adjusts a cluster before it starts.
type Option func(*options)

type options struct {
	regions   []string
	placement router.Placement
	ringSize  int
	timeout   time.Duration
	peerQueue int
	wal       []func(*wal.Config)
	router    []func(*router.Config)
	timing    *mesh.Timing
	keep      func(node mesh.NodeID, frame []byte) bool
	wan       *mesh.WAN
}

// WithRegions puts node i in regions[i%len(regions)]. Default: one
// region, "default".
func WithRegions(regions ...string) Option { return func(o *options) { o.regions = regions } }

// WithPlacement sets every router's placement rules.
func WithPlacement(p router.Placement) Option { return func(o *options) { o.placement = p } }

// WithRingSize sets every router's ring size (small rings force catch-ups).
func WithRingSize(n int) Option { return func(o *options) { o.ringSize = n } }

// WithPeerTimeout sets every router's PeerTimeout.
func WithPeerTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithPeerQueue sets every router's PeerQueue (tiny queues force fan-out
// drops, which replicas must repair).
func WithPeerQueue(n int) Option { return func(o *options) { o.peerQueue = n } }

// WithWALConfig changes every node's wal configuration (Retention,
// SweepInterval, ...) after the cluster filled Dir and Logger.
func WithWALConfig(f func(*wal.Config)) Option {
	return func(o *options) { o.wal = append(o.wal, f) }
}

// WithTiming sets every mesh's failure-detection timing instead of
// mesh.LocalTiming() (slower timings keep a loaded machine from
// suspecting live nodes, in tests that do not kill nodes).
func WithTiming(tm mesh.Timing) Option { return func(o *options) { o.timing = &tm } }

// WithWAN emulates wide-area links between the nodes' regions (see
// WithRegions): every node's mesh runs over wan.
func WithWAN(wan *mesh.WAN) Option { return func(o *options) { o.wan = wan } }

// WithFrameFilter passes a peer frame that node receives to its router
// only if keep says so: a node can drop a frame type as a build from
// before it would (an unknown type is dropped).
func WithFrameFilter(keep func(node mesh.NodeID, frame []byte) bool) Option {
	return func(o *options) { o.keep = keep }
}

// WithRouterConfig changes every router's configuration (PresenceGrace,
// EventInterval, ...) after the cluster filled it.
func WithRouterConfig(f func(*router.Config)) Option {
	return func(o *options) { o.router = append(o.router, f) }
}

// Node is one member of a Cluster.
type Node struct {
	ID     mesh.NodeID
	Region string
	Router *router.Router
	Mesh   *mesh.Mesh
	Log    *wal.Log
	// Metrics is the registry of the router's metrics (see Metric).
	Metrics *prometheus.Registry

	stopOnce sync.Once
	dead     bool // set by Kill (test goroutine only)
}

// Cluster is a running set of nodes.
type Cluster struct {
	t     testing.TB
	opts  options
	Nodes []*Node
	dirs  map[int]string // node index -> its wal directory (kept for Rejoin)
}

// Start runs n nodes, node 0 first and the others joining it, and waits
// until every node sees all n. Everything is closed by t.Cleanup.
func Start(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{t: t, opts: options{regions: []string{"default"}}}
	for _, o := range opts {
		o(&c.opts)
	}
	var seed string
	for i := range n {
		nd := c.startNode(i, seed)
		if i == 0 {
			seed = nd.Mesh.Addr()
		}
		c.Nodes = append(c.Nodes, nd)
	}
	c.WaitConverged()
	return c
}

func (c *Cluster) startNode(i int, seed string) *Node {
	c.t.Helper()
	return c.startNodeOn(i, "127.0.0.1:0", seed)
}

// startNodeOn starts node i with its mesh bound to bind, joining seed
// ("": none).
func (c *Cluster) startNodeOn(i int, bind, seed string) *Node {
	t := c.t
	t.Helper()
	id := mesh.NodeID(fmt.Sprintf("n%d", i+1))
	region := c.opts.regions[i%len(c.opts.regions)]
	logger := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel).With().Str("node", string(id)).Logger()
	wcfg := wal.Config{Dir: c.walDir(i), Logger: logger}
	for _, f := range c.opts.wal {
		f(&wcfg)
	}
	log, err := wal.Open(wcfg)
	if err != nil {
		t.Fatalf("open wal of %s: %v", id, err)
	}
	var join []string
	if seed != "" {
		join = []string{seed}
	}
	hooks := new(router.MeshHooks)
	handler := hooks.Handler
	if keep := c.opts.keep; keep != nil {
		handler = func(from mesh.NodeID, frame []byte) {
			if keep(id, frame) {
				hooks.Handler(from, frame)
			}
		}
	}
	timing := mesh.LocalTiming()
	if c.opts.timing != nil {
		timing = *c.opts.timing
	}
	m, err := mesh.New(context.Background(), mesh.Config{
		NodeID:         id,
		Region:         region,
		Bind:           bind,
		Join:           join,
		ClusterKey:     ClusterKey,
		Handler:        handler,
		OnChange:       hooks.OnChange,
		Logger:         logger.Level(zerolog.WarnLevel),
		Registerer:     prometheus.NewRegistry(),
		RejoinInterval: 200 * time.Millisecond,
		Timing:         timing,
		WAN:            c.opts.wan,
	})
	if err != nil {
		_ = log.Close()
		t.Fatalf("start mesh of %s: %v", id, err)
	}
	reg := prometheus.NewRegistry()
	rcfg := router.Config{
		NodeID:      string(id),
		Log:         log,
		Logger:      logger,
		Registerer:  reg,
		RingSize:    c.opts.ringSize,
		Mesh:        m,
		Placement:   c.opts.placement,
		PeerTimeout: c.opts.timeout,
		PeerQueue:   c.opts.peerQueue,
	}
	for _, f := range c.opts.router {
		f(&rcfg)
	}
	r, err := router.New(rcfg)
	if err != nil {
		_ = m.Close()
		_ = log.Close()
		t.Fatalf("start router of %s: %v", id, err)
	}
	hooks.Bind(r)
	// The member list may have changed between New and Bind.
	r.MembersChanged(m.Members())
	nd := &Node{ID: id, Region: region, Router: r, Mesh: m, Log: log, Metrics: reg}
	t.Cleanup(nd.stop)
	return nd
}

// stop closes the node without leaving the mesh: router, mesh, wal.
func (nd *Node) stop() {
	nd.stopOnce.Do(func() {
		_ = nd.Router.Close()
		_ = nd.Mesh.Close()
		_ = nd.Log.Close()
	})
}

// Kill stops node i as a crash would look to the others: no Leave, so
// they find out by failure detection. It waits until every other live
// node has dropped it.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	c.Nodes[i].dead = true
	c.Nodes[i].stop()
	c.WaitConverged()
}

// Live returns the indexes of the nodes not killed.
func (c *Cluster) Live() []int {
	var out []int
	for i, nd := range c.Nodes {
		if !nd.dead {
			out = append(out, i)
		}
	}
	return out
}

// WaitConverged waits until every live node sees exactly the live nodes.
func (c *Cluster) WaitConverged() {
	c.t.Helper()
	live := c.Live()
	WaitFor(c.t, 30*time.Second, "mesh membership to converge", func() bool {
		for _, i := range live {
			// The router's view, not only the mesh's: the router hears of
			// changes through OnChange, a moment after the mesh.
			ms := c.Nodes[i].Router.Members()
			if len(ms) != len(live) || len(c.Nodes[i].Mesh.Members()) != len(live) {
				return false
			}
			for _, m := range ms {
				if j := c.index(m.ID); j < 0 || c.Nodes[j].dead {
					return false
				}
			}
		}
		return true
	})
}

func (c *Cluster) index(id mesh.NodeID) int {
	for i, nd := range c.Nodes {
		if nd.ID == id {
			return i
		}
	}
	return -1
}

// HomeOf returns the index of room's home among the live nodes, by the
// same placement the routers use.
func (c *Cluster) HomeOf(room string) int {
	var ms []mesh.Member
	for _, i := range c.Live() {
		ms = append(ms, mesh.Member{ID: c.Nodes[i].ID, Region: c.Nodes[i].Region})
	}
	return c.index(router.Home(room, c.opts.placement.Region(room), ms))
}

// RelayOf returns the index of room's relay in region among the live
// nodes: the rendezvous winner for the room among the region's nodes, as
// the routers choose it (-1 if the region has no live node).
func (c *Cluster) RelayOf(room, region string) int {
	var ms []mesh.Member
	for _, i := range c.Live() {
		if c.Nodes[i].Region == region {
			ms = append(ms, mesh.Member{ID: c.Nodes[i].ID, Region: region})
		}
	}
	return c.index(router.Home(room, region, ms))
}

// Metric returns the value of the router's counter or gauge name (0 if
// it has none).
func (nd *Node) Metric(name string) float64 {
	mfs, err := nd.Metrics.Gather()
	if err != nil {
		return 0
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return v
}

// RoomHomedOn returns a room name (prefix plus a number) whose home is
// node i among the live nodes.
func (c *Cluster) RoomHomedOn(prefix string, i int) string {
	c.t.Helper()
	for k := range 10000 {
		room := fmt.Sprintf("%s%d", prefix, k)
		if c.HomeOf(room) == i {
			return room
		}
	}
	c.t.Fatalf("no room with prefix %q homed on node %d", prefix, i)
	return ""
}

// WaitFor polls cond every 10ms until it holds, failing the test after
// timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// Leave drains node i as SIGTERM does: Router.Handoff, then Mesh.Leave,
// then closes router, mesh and wal. It returns Handoff's error, after
// waiting until every other live node has dropped it.
func (c *Cluster) Leave(i int) error {
	c.t.Helper()
	nd := c.Nodes[i]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := nd.Router.Handoff(ctx)
	if lerr := nd.Mesh.Leave(ctx); lerr != nil {
		c.t.Errorf("leave mesh of %s: %v", nd.ID, lerr)
	}
	nd.dead = true
	nd.stop()
	c.WaitConverged()
	return err
}

// Join starts one more node, joining a live one, waits until every live
// node sees it, and returns its index.
func (c *Cluster) Join() int {
	c.t.Helper()
	seed := c.Nodes[c.Live()[0]].Mesh.Addr()
	nd := c.startNode(len(c.Nodes), seed)
	c.Nodes = append(c.Nodes, nd)
	c.WaitConverged()
	return len(c.Nodes) - 1
}
