package mesh

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/arena-mesh/arena/internal/leaktest"
)

func TestJoinSeesMetadata(t *testing.T) {
	a := startMesh(t, testConfig(t, "n1", "eu"))
	b := startMesh(t, testConfig(t, "n2", "us", a.Addr()))
	c := startMesh(t, testConfig(t, "n3", "ap", b.Addr()))
	all := ids(3)
	for _, m := range []*Mesh{a, b, c} {
		waitFor(t, converge, string(m.LocalID())+" sees all", func() bool { return sees(m, all...) })
	}
	for _, m := range []*Mesh{a, b, c} {
		if !m.HasJoined() {
			t.Errorf("%s: not joined", m.LocalID())
		}
		for _, mb := range m.Members() {
			want := map[NodeID]string{"n1": "eu", "n2": "us", "n3": "ap"}[mb.ID]
			if mb.Region != want {
				t.Errorf("%s sees %s in region %q, want %q", m.LocalID(), mb.ID, mb.Region, want)
			}
			if mb.ClientURL != "ws://"+string(mb.ID)+".example/v1/ws" {
				t.Errorf("%s sees %s client url %q", m.LocalID(), mb.ID, mb.ClientURL)
			}
			if !mb.Addr.IsValid() || mb.Addr.Port() == 0 {
				t.Errorf("%s sees %s at %v", m.LocalID(), mb.ID, mb.Addr)
			}
		}
	}

	// Load is gossiped metadata too.
	a.SetLoad(42)
	for _, m := range []*Mesh{b, c} {
		waitFor(t, converge, string(m.LocalID())+" sees n1's load", func() bool {
			for _, mb := range m.Members() {
				if mb.ID == "n1" {
					return mb.Load == 42
				}
			}
			return false
		})
	}
}

func TestOnChangeReportsMembers(t *testing.T) {
	var mu sync.Mutex
	var last []Member
	cfg := testConfig(t, "n1", "r1")
	cfg.OnChange = func(ms []Member) {
		mu.Lock()
		last = ms
		mu.Unlock()
	}
	a := startMesh(t, cfg)
	b := startMesh(t, testConfig(t, "n2", "r2", a.Addr()))
	waitFor(t, converge, "OnChange reports both", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(last) == 2 && last[0].ID == "n1" && last[1].ID == "n2" && last[1].Region == "r2"
	})
	if err := b.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, converge, "OnChange reports the leave", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(last) == 1 && last[0].ID == "n1"
	})
}

func TestCloseStopsGoroutines(t *testing.T) {
	before, idle := goleak.IgnoreCurrent(), runtime.NumGoroutine()
	wan := NewWAN(1)
	wan.SetBoth("r1", "r1", Link{Delay: time.Millisecond})
	ms, _ := cluster(t, 3, func(c *Config) { c.WAN = wan })
	for i := range 50 {
		for _, dst := range ms[1:] {
			if err := ms[0].Send(t.Context(), dst.LocalID(), fmt.Sprint(i), []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := runtime.NumGoroutine() - idle; n < 10 {
		t.Fatalf("only %d more goroutines while the mesh runs: the check below would prove nothing", n)
	}
	for _, m := range ms {
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Close waits for every goroutine the mesh starts, its own and those of
	// memberlist and quic-go. goleak retries while the last ones return
	// (a goroutine is still on the stack a moment after its wg.Done).
	// memberlist lets a probe in flight run to its timeout after Shutdown.
	goleak.VerifyNone(t, append(leaktest.Ignored, before)...)
}

// TestJoinThroughMemberThatFoundIt: a node whose seeds are all
// unreachable still joins once another node joins it: through that node,
// merging its member list as it would a seed's.
func TestJoinThroughMemberThatFoundIt(t *testing.T) {
	a := startMesh(t, testConfig(t, "n1", "eu", closedMeshAddr(t)))
	if a.HasJoined() {
		t.Fatal("n1 joined with its only seed gone")
	}
	waitJoinedThrough(t, a, "n2")
}

// TestJoinSkipsOwnAddress: a node whose seeds are its own address and a
// node that is down does not count itself as joined (memberlist answers a
// join to its own address, and before the fix it was ready at once, alone,
// and would have started rooms living elsewhere). It joins once another
// node reaches it. A node whose only seed is itself starts a new mesh.
func TestJoinSkipsOwnAddress(t *testing.T) {
	own := freeMeshAddr(t)
	cfg := testConfig(t, "n1", "eu", own, closedMeshAddr(t))
	cfg.Bind = own
	attempts := &lineCounter{match: "join failed"}
	cfg.Logger = zerolog.New(attempts).Level(zerolog.DebugLevel)
	a := startMesh(t, cfg)
	waitFor(t, converge, "n1 tried to join twice", func() bool { return attempts.count() >= 2 || a.HasJoined() })
	if a.HasJoined() {
		t.Fatal("n1 joined with its own address and a dead node as seeds")
	}
	waitJoinedThrough(t, a, "n2")

	own = freeMeshAddr(t)
	cfg = testConfig(t, "n3", "eu", own, strings.Replace(own, "127.0.0.1", "localhost", 1))
	cfg.Bind = own
	c := startMesh(t, cfg)
	waitFor(t, converge, "n3, whose seeds all name itself, started a mesh", c.HasJoined)
	waitJoinedThrough(t, c, "n4")
}

// TestBootstrapExpect: nodes told to expect three members are not joined
// while they see two, and all are once the third is up; a node that
// starts the mesh (no seeds) waits too. A node joining the running mesh
// joins at once, even expecting more members than there are.
func TestBootstrapExpect(t *testing.T) {
	expect := func(cfg Config) Config {
		cfg.BootstrapExpect = 3
		return cfg
	}
	a := startMesh(t, expect(testConfig(t, "n1", "eu")))
	b := startMesh(t, expect(testConfig(t, "n2", "us", a.Addr())))
	for _, m := range []*Mesh{a, b} {
		waitFor(t, converge, string(m.LocalID())+" sees n1 and n2", func() bool { return sees(m, "n1", "n2") })
	}
	for _, m := range []*Mesh{a, b} {
		if m.HasJoined() {
			t.Fatalf("%s joined with 2 of 3 expected members", m.LocalID())
		}
	}
	c := startMesh(t, expect(testConfig(t, "n3", "ap", b.Addr())))
	for _, m := range []*Mesh{a, b, c} {
		waitFor(t, converge, string(m.LocalID())+" joined with 3 members", m.HasJoined)
		if !sees(m, "n1", "n2", "n3") {
			t.Fatalf("%s joined seeing %v", m.LocalID(), memberIDs(m.Members()))
		}
	}
	cfg := testConfig(t, "n4", "eu", a.Addr())
	cfg.BootstrapExpect = 9
	d := startMesh(t, cfg)
	waitFor(t, converge, "n4 joined the running mesh", d.HasJoined)

	// A mesh started without bootstrap_expect serves from the start.
	e := startMesh(t, testConfig(t, "n5", "eu"))
	cfg = testConfig(t, "n6", "us", e.Addr())
	cfg.BootstrapExpect = 9
	f := startMesh(t, cfg)
	waitFor(t, converge, "n6 joined n5's mesh", f.HasJoined)
}
