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

// TestInterestReassertedAfterFalseDeath: the home dropped a node's
// interest because it thought the node died, while the node itself never
// noticed (memberlist declared it dead for a moment and it refuted). The
// home's handedOver, which it sends to every node that reappears in its
// view, makes the node register its interest again: its subscriber gets
// what was published meanwhile and the live stream after, in order.
func TestInterestReassertedAfterFalseDeath(t *testing.T) {
	home := startMeshNode(t, "n1", "")
	edge := startMeshNode(t, "n2", home.m.Addr())
	waitFor(t, "both nodes see each other", func() bool {
		return len(home.r.Members()) == 2 && len(edge.r.Members()) == 2
	})
	room := ""
	for i := range 1000 {
		if name := fmt.Sprintf("flap:%d", i); home.r.homeOf(name) == "" && edge.r.homeOf(name) == "n1" {
			room = name
			break
		}
	}
	if room == "" {
		t.Fatal("no room homed on n1")
	}
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
	home.r.mu.RLock()
	rm := home.r.active[room]
	home.r.mu.RUnlock()
	if rm == nil {
		t.Fatal("room not active on its home")
	}
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
