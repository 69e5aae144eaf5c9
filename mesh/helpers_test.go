package mesh

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/internal/testwait"
)

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, timeout, what, cond)
}

// testKey is a cluster key for tests (a non-loopback-only key path is
// exercised the same way).
var testKey = []byte("0123456789abcdef0123456789abcdef")

func testConfig(t testing.TB, id string, region string, join ...string) Config {
	return Config{
		NodeID:         NodeID(id),
		Region:         region,
		ClientURL:      "ws://" + id + ".example/v1/ws",
		Bind:           "127.0.0.1:0",
		Join:           join,
		ClusterKey:     testKey,
		Logger:         zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel),
		Registerer:     prometheus.NewRegistry(),
		RejoinInterval: 200 * time.Millisecond,
		Timing:         LocalTiming(),
	}
}

func startMesh(t testing.TB, cfg Config) *Mesh {
	t.Helper()
	m, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("new mesh %s: %v", cfg.NodeID, err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// sees reports whether m lists exactly the given IDs as members.
func sees(m *Mesh, ids ...NodeID) bool {
	ms := m.Members()
	if len(ms) != len(ids) {
		return false
	}
	want := map[NodeID]bool{}
	for _, id := range ids {
		want[id] = true
	}
	for _, mb := range ms {
		if !want[mb.ID] {
			return false
		}
	}
	return true
}

// recorder is a Handler that keeps copies of frames by sender.
type recorder struct {
	mu     sync.Mutex
	frames map[NodeID][][]byte // guarded by mu
	n      int                 // guarded by mu
}

func newRecorder() *recorder { return &recorder{frames: map[NodeID][][]byte{}} }

func (r *recorder) handle(from NodeID, f []byte) {
	r.mu.Lock()
	r.frames[from] = append(r.frames[from], append([]byte(nil), f...))
	r.n++
	r.mu.Unlock()
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func (r *recorder) from(id NodeID) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.frames[id]...)
}

func ids(n int) []NodeID {
	out := make([]NodeID, n)
	for i := range out {
		out[i] = NodeID(fmt.Sprintf("n%d", i+1))
	}
	return out
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// closedMeshAddr returns the address of a node that has closed: a seed
// that never answers.
func closedMeshAddr(t *testing.T) string {
	t.Helper()
	gone := startMesh(t, testConfig(t, "gone", "eu"))
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}
	return gone.Addr()
}

// waitJoinedThrough starts a node named id that joins a, and waits until
// a has joined (through it) and both list exactly the two of them.
func waitJoinedThrough(t *testing.T, a *Mesh, id NodeID) {
	t.Helper()
	b := startMesh(t, testConfig(t, string(id), "us", a.Addr()))
	waitFor(t, converge, string(a.LocalID())+" joined through "+string(id), a.HasJoined)
	for _, m := range []*Mesh{a, b} {
		waitFor(t, converge, string(m.LocalID())+" sees both", func() bool { return sees(m, a.LocalID(), id) })
	}
}

// freeMeshAddr returns a loopback address whose UDP and TCP port were both
// free a moment ago, for a node that must know its own address before it
// starts.
func freeMeshAddr(t *testing.T) string {
	t.Helper()
	u, l, err := bind("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := u.LocalAddr().(*net.UDPAddr).AddrPort().String()
	_ = u.Close()
	_ = l.Close()
	return addr
}

// lineCounter counts the log lines that contain match.
type lineCounter struct {
	match string
	mu    sync.Mutex
	n     int // guarded by mu
}

func (w *lineCounter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), w.match) {
		w.mu.Lock()
		w.n++
		w.mu.Unlock()
	}
	return len(p), nil
}

func (w *lineCounter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}
