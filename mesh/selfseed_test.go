package mesh

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
)

// TestIsSelf: which seeds name the node itself, for a node bound to one
// address, one bound to all interfaces, and one advertising another
// address and port (behind a NAT).
func TestIsSelf(t *testing.T) {
	ap := netip.MustParseAddrPort
	cases := []struct {
		bound, advertise string
		seeds            map[string]bool
	}{
		{"127.0.0.1:7000", "127.0.0.1:7000", map[string]bool{
			"127.0.0.1:7000":          true,
			"localhost:7000":          true,
			"[::ffff:127.0.0.1]:7000": true,
			"127.0.0.1:7001":          false,
			"127.0.0.2:7000":          false,
			"localhost:7001":          false,
			"nohost.invalid:7000":     false,
			"127.0.0.1":               false,
			":7000":                   false,
		}},
		{"0.0.0.0:7000", "10.1.2.3:7000", map[string]bool{
			"10.1.2.3:7000":   true,
			"127.0.0.1:7000":  true,
			"127.0.0.9:7000":  true,
			"127.0.0.1:7001":  false,
			"10.1.2.3:7001":   false,
			"192.0.2.1:7000":  false, // TEST-NET-1: no interface has it
			"198.51.100.7:70": false,
		}},
		{"127.0.0.1:7000", "203.0.113.5:9000", map[string]bool{
			"203.0.113.5:9000": true,
			"127.0.0.1:7000":   true,
			"203.0.113.5:7000": false,
			"127.0.0.1:9000":   false,
		}},
	}
	for _, c := range cases {
		m := &Mesh{bound: ap(c.bound), advertise: ap(c.advertise)}
		for seed, want := range c.seeds {
			if got := m.isSelf(context.Background(), seed); got != want {
				t.Errorf("bound %s, advertising %s: isSelf(%q) = %v, want %v", c.bound, c.advertise, seed, got, want)
			}
		}
	}
}

// TestJoinSkipsOwnAddress: a node whose seeds are its own address and a
// node that is down does not count itself as joined (memberlist answers a
// join to its own address, and before the fix it was ready at once, alone,
// and would have started rooms living elsewhere). It joins once another
// node reaches it. A node whose only seed is itself starts a new mesh.
func TestJoinSkipsOwnAddress(t *testing.T) {
	gone := startMesh(t, testConfig(t, "n0", "eu"))
	deadSeed := gone.Addr()
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}

	own := freeMeshAddr(t)
	cfg := testConfig(t, "n1", "eu", own, deadSeed)
	cfg.Bind = own
	attempts := &lineCounter{match: "join failed"}
	cfg.Logger = zerolog.New(attempts).Level(zerolog.DebugLevel)
	a := startMesh(t, cfg)
	waitFor(t, converge, "n1 tried to join twice", func() bool { return attempts.count() >= 2 || a.HasJoined() })
	if a.HasJoined() {
		t.Fatal("n1 joined with its own address and a dead node as seeds")
	}
	b := startMesh(t, testConfig(t, "n2", "us", a.Addr()))
	waitFor(t, converge, "n1 joined through n2", a.HasJoined)
	for _, m := range []*Mesh{a, b} {
		waitFor(t, converge, string(m.LocalID())+" sees n1 and n2", func() bool { return sees(m, "n1", "n2") })
	}

	own = freeMeshAddr(t)
	cfg = testConfig(t, "n3", "eu", own, strings.Replace(own, "127.0.0.1", "localhost", 1))
	cfg.Bind = own
	c := startMesh(t, cfg)
	waitFor(t, converge, "n3, whose seeds all name itself, started a mesh", c.HasJoined)
	d := startMesh(t, testConfig(t, "n4", "us", c.Addr()))
	for _, m := range []*Mesh{c, d} {
		waitFor(t, converge, string(m.LocalID())+" sees n3 and n4", func() bool { return sees(m, "n3", "n4") })
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
