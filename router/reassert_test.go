package router

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/arena-mesh/arena/mesh"
	"github.com/arena-mesh/arena/wal"
	"github.com/rs/zerolog"
)

// meshNode is one node of a two-node mesh built here from real parts
// (routertest cannot be used inside package router).
type meshNode struct {
	r   *Router
	m   *mesh.Mesh
	log *wal.Log
}

func startMeshNode(t *testing.T, id, seed string) *meshNode {
	t.Helper()
	logger := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel).With().Str("node", id).Logger()
	log, err := wal.Open(wal.Config{Dir: t.TempDir(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	var join []string
	if seed != "" {
		join = []string{seed}
	}
	hooks := new(MeshHooks)
	m, err := mesh.New(context.Background(), mesh.Config{
		NodeID: mesh.NodeID(id), Bind: "127.0.0.1:0", Join: join,
		ClusterKey: []byte("reassert-test-cluster-key-32-by!"),
		Handler:    hooks.Handler, OnChange: hooks.OnChange, Logger: logger,
		RejoinInterval: 200 * time.Millisecond, Timing: mesh.LocalTiming(),
	})
	if err != nil {
		_ = log.Close()
		t.Fatal(err)
	}
	r, err := New(Config{NodeID: id, Log: log, Logger: logger, Mesh: m, PeerTimeout: 2 * time.Second})
	if err != nil {
		_ = m.Close()
		_ = log.Close()
		t.Fatal(err)
	}
	hooks.Bind(r)
	r.MembersChanged(m.Members())
	n := &meshNode{r: r, m: m, log: log}
	t.Cleanup(func() {
		_ = n.r.Close()
		_ = n.m.Close()
		_ = n.log.Close()
	})
	return n
}

// startPair starts a home-to-be n1 and n2, joined, and returns a room
// homed on n1 in both views.
func startPair(t *testing.T) (home, edge *meshNode) {
	t.Helper()
	home = startMeshNode(t, "n1", "")
	edge = startMeshNode(t, "n2", home.m.Addr())
	waitFor(t, "both nodes see each other", func() bool {
		return len(home.r.Members()) == 2 && len(edge.r.Members()) == 2
	})
	return home, edge
}

// activeRoom returns the room named name as held in memory by its home n.
func activeRoom(t *testing.T, n *meshNode, name string) *room {
	t.Helper()
	n.r.mu.RLock()
	rm := n.r.active[name]
	n.r.mu.RUnlock()
	if rm == nil {
		t.Fatal("room not active on its home")
	}
	return rm
}

// roomHomedOn returns a room whose home is home in both nodes' views.
func roomHomedOn(t *testing.T, home, edge *meshNode) string {
	t.Helper()
	for i := range 1000 {
		if name := fmt.Sprintf("flap:%d", i); home.r.homeOf(name) == "" && edge.r.homeOf(name) == home.r.self {
			return name
		}
	}
	t.Fatal("no room homed on n1")
	return ""
}

// TestInterestReassertedAfterFalseDeath: the home dropped a node's
// interest because it thought the node died, while the node itself never
// noticed (memberlist declared it dead for a moment and it refuted). The
// home's handedOver, which it sends to every node that reappears in its
// view, makes the node register its interest again: its subscriber gets
// what was published meanwhile and the live stream after, in order.
func TestInterestReassertedAfterFalseDeath(t *testing.T) {
	home, edge := startPair(t)
	room := roomHomedOn(t, home, edge)
	ctx := context.Background()
	publish := func() Ack {
		t.Helper()
		ack, err := home.r.Publish(ctx, PublishRequest{Room: room, From: "ann", Data: []byte(`1`)})
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		return ack
	}
	first := publish()
	sink := newChanSink()
	res, err := edge.r.Subscribe(ctx, SubscribeRequest{Room: room, Since: &Position{Epoch: first.Epoch, Seq: 0}, Sink: sink})
	if err != nil {
		t.Fatalf("subscribe on n2: %v", err)
	}
	t.Cleanup(res.Sub.Close)
	if _, err := pullUntil(res.Sub, sink, first.Seq); err != nil {
		t.Fatalf("pull the first message: %v", err)
	}

	// What the home does when it sees n2 die: drop its interest.
	rm := activeRoom(t, home, room)
	rm.dropInterestOf(func(p mesh.NodeID) bool { return p == "n2" })
	missed := publish() // pushed to nobody

	// n2 reappears in the home's view: the home says handedOver.
	home.r.sendHandedOver(ctx, []mesh.NodeID{"n2"})
	last := publish()
	got, err := pullUntil(res.Sub, sink, last.Seq)
	if err != nil {
		t.Fatalf("n2 after the home forgot its interest: %v (pulled %v, want through seq %d)", err, seqs(got), last.Seq)
	}
	checkSeqs(t, got, first.Epoch, missed.Seq, last.Seq)
}

// TestPresenceReassertedAfterFalseDeath: as above, for presence. The home
// dropped the counts of a node it thought dead; its greeting makes the
// node report its rooms in full again, so its users are present again.
func TestPresenceReassertedAfterFalseDeath(t *testing.T) {
	home, edge := startPair(t)
	room := roomHomedOn(t, home, edge)
	ctx := context.Background()
	pc, err := edge.r.Enter(EnterRequest{Room: room, User: "bob", Sink: new(eventSink)})
	if err != nil {
		t.Fatalf("enter on n2: %v", err)
	}
	t.Cleanup(func() { pc.Leave(true) })
	present := func() bool {
		ms, err := home.r.Presence(ctx, room)
		if err != nil {
			t.Fatalf("presence at the home: %v", err)
		}
		return len(ms) == 1 && ms[0].User == "bob"
	}
	waitFor(t, "bob present at the home", present)
	// After a membership change a node reports in full twice, the second
	// time fullReportRepeat later; only after that would nothing but the
	// greeting bring bob back.
	waitFor(t, "n2's second full report", func() bool {
		e := edge.r.events()
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.fullAgain.IsZero()
	})

	// What the home does when it sees n2 die: drop its counts.
	e := home.r.events()
	e.mu.Lock()
	e.home.dropNode("n2")
	e.mu.Unlock()
	if present() {
		t.Fatal("bob still present after the home dropped n2")
	}

	home.r.sendHandedOver(ctx, []mesh.NodeID{"n2"})
	waitFor(t, "bob present at the home again", present)
}

// TestStaleInterestDroppedByItsNode: the home holds an interest of n2
// that n2 no longer has (a drop that lost the race with its registration,
// which the home serves asynchronously). The first message the home
// pushes there is answered with a drop, so the stale interest does not
// double the fan-out for as long as the room lives.
func TestStaleInterestDroppedByItsNode(t *testing.T) {
	home, edge := startPair(t)
	room := roomHomedOn(t, home, edge)
	ctx := context.Background()
	if _, err := home.r.Publish(ctx, PublishRequest{Room: room, From: "ann", Data: []byte(`1`)}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	rm := activeRoom(t, home, room)
	interested := func() bool {
		rm.subsMu.RLock()
		defer rm.subsMu.RUnlock()
		_, ok := rm.interest["n2"]
		return ok
	}
	rm.subsMu.Lock()
	if rm.interest == nil {
		rm.interest = make(map[mesh.NodeID]uint64)
	}
	rm.interest["n2"] = 12345 // n2 has no replica of the room
	rm.subsMu.Unlock()

	if _, err := home.r.Publish(ctx, PublishRequest{Room: room, From: "ann", Data: []byte(`2`)}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	waitFor(t, "n2 to drop the interest it does not have", func() bool { return !interested() })
}
