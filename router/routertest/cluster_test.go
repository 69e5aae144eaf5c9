package routertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/arena-mesh/arena/router"
)

// sink wakes the test's puller.
type sink struct{ ch chan struct{} }

func newSink() *sink { return &sink{ch: make(chan struct{}, 1)} }

func (s *sink) Notify(*router.Subscription) {
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

type sub struct {
	*router.Subscription
	sink *sink
	res  router.SubscribeResult
}

func subscribe(t *testing.T, r *router.Router, room string, since *router.Position) *sub {
	t.Helper()
	s := newSink()
	res, err := r.Subscribe(t.Context(), router.SubscribeRequest{Room: room, Since: since, Sink: s})
	if err != nil {
		t.Fatalf("subscribe %q: %v", room, err)
	}
	t.Cleanup(res.Sub.Close)
	return &sub{Subscription: res.Sub, sink: s, res: res}
}

// pull pulls until it has n messages, failing on error or after 20s.
func (s *sub) pull(t *testing.T, n int) []*router.Message {
	t.Helper()
	var out []*router.Message
	timeout := time.After(20 * time.Second)
	for len(out) < n {
		var err error
		if out, err = s.Pull(out, n-len(out)); err != nil {
			t.Fatalf("pull %s: %v", s.Room(), err)
		}
		if len(out) >= n {
			break
		}
		select {
		case <-s.sink.ch:
		case <-timeout:
			t.Fatalf("room %s: pulled %d of %d messages", s.Room(), len(out), n)
		}
	}
	return out
}

// pullErr pulls until Pull fails and returns the error.
func (s *sub) pullErr(t *testing.T) error {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		if _, err := s.Pull(nil, 64); err != nil {
			return err
		}
		select {
		case <-s.sink.ch:
		case <-timeout:
			t.Fatalf("room %s: Pull never failed", s.Room())
		}
	}
}

// publish publishes, retrying while the home is unavailable (membership
// settling).
func publish(t *testing.T, r *router.Router, room, from, key, data string) router.Ack {
	t.Helper()
	var ack router.Ack
	var err error
	WaitFor(t, 20*time.Second, "publish to "+room, func() bool {
		ack, err = r.Publish(t.Context(), router.PublishRequest{Room: room, From: from, Key: key, Data: []byte(data)})
		if err != nil && !errors.Is(err, router.ErrUnavailable) {
			t.Fatalf("publish %q: %v", room, err)
		}
		return err == nil
	})
	return ack
}

// TestClusterOrder: publishers on every node, subscribers on every node,
// each room has one gap-free order that every subscriber sees.
func TestClusterOrder(t *testing.T) {
	c := Start(t, 3)
	const perNode = 30
	rooms := []string{c.RoomHomedOn("order:", 0), c.RoomHomedOn("order:", 1), c.RoomHomedOn("order:", 2)}
	subs := map[string][]*sub{}
	for _, room := range rooms {
		for _, nd := range c.Nodes {
			subs[room] = append(subs[room], subscribe(t, nd.Router, room, nil))
		}
	}
	var wg sync.WaitGroup
	for _, room := range rooms {
		for i, nd := range c.Nodes {
			wg.Go(func() {
				for k := range perNode {
					key := fmt.Sprintf("%s-%d", nd.ID, k)
					_, err := nd.Router.Publish(context.Background(), router.PublishRequest{Room: room, From: string(nd.ID), Key: key, Data: fmt.Appendf(nil, "%d", i*1000+k)})
					if err != nil {
						t.Errorf("publish %s from %s: %v", room, nd.ID, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	total := perNode * len(c.Nodes)
	for _, room := range rooms {
		var want []*router.Message
		for i, s := range subs[room] {
			got := s.pull(t, total)
			for k, m := range got {
				if m.Seq != uint64(k+1) || m.Epoch != got[0].Epoch {
					t.Fatalf("room %s node %d: message %d at (%d, %d), want seq %d", room, i, k, m.Epoch, m.Seq, k+1)
				}
			}
			if want == nil {
				want = got
				continue
			}
			for k := range got {
				if got[k].Key != want[k].Key || string(got[k].Data) != string(want[k].Data) {
					t.Fatalf("room %s: node %d saw %q at seq %d, node 1 saw %q", room, i+1, got[k].Key, k+1, want[k].Key)
				}
			}
		}
		// Per publisher, its messages keep their order.
		last := map[string]int{}
		for _, m := range want {
			var n int
			fmt.Sscanf(string(m.Data), "%d", &n)
			if prev, ok := last[m.From]; ok && n <= prev {
				t.Fatalf("room %s: %s's messages out of order (%d after %d)", room, m.From, n, prev)
			}
			last[m.From] = n
		}
	}
}

// TestClusterDedupForwarded: a retried publish through a non-home node is
// answered by the home's idempotency window.
func TestClusterDedupForwarded(t *testing.T) {
	c := Start(t, 2)
	room := c.RoomHomedOn("dedup:", 0)
	a1 := publish(t, c.Nodes[1].Router, room, "ann", "k1", `1`)
	a2 := publish(t, c.Nodes[1].Router, room, "ann", "k1", `1`)
	if a1.Dup || !a2.Dup || a1.Seq != a2.Seq || a1.Epoch != a2.Epoch {
		t.Fatalf("acks %+v then %+v, want the second a dup of the first", a1, a2)
	}
	a3 := publish(t, c.Nodes[0].Router, room, "ann", "k1", `1`)
	if !a3.Dup || a3.Seq != a1.Seq {
		t.Fatalf("publish on the home: %+v, want dup of %+v", a3, a1)
	}
}

// TestClusterHistoryAndResume: history and resume of a room served
// through a node that is not its home.
func TestClusterHistoryAndResume(t *testing.T) {
	c := Start(t, 3, WithRingSize(8))
	home := 0
	room := c.RoomHomedOn("hist:", home)
	edge := c.Nodes[1].Router
	var epoch uint64
	for k := 1; k <= 40; k++ {
		epoch = publish(t, edge, room, "ann", "", fmt.Sprintf("%d", k)).Epoch
	}
	seqs := func(msgs []*router.Message) []uint64 {
		var out []uint64
		for _, m := range msgs {
			out = append(out, m.Seq)
		}
		return out
	}
	tests := []struct {
		name       string
		q          router.HistoryQuery
		first, num uint64
	}{
		{"newest", router.HistoryQuery{Limit: 5}, 36, 5},
		{"after", router.HistoryQuery{After: 10, Limit: 3}, 11, 3},
		{"before", router.HistoryQuery{Before: 5, Limit: 10}, 1, 4},
		{"after near head", router.HistoryQuery{After: 38, Limit: 10}, 39, 2},
		{"default limit", router.HistoryQuery{}, 1, 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, msgs, err := edge.History(t.Context(), room, tt.q)
			if err != nil {
				t.Fatalf("history: %v", err)
			}
			if e != epoch || uint64(len(msgs)) != tt.num || msgs[0].Seq != tt.first {
				t.Fatalf("history %+v = epoch %d seqs %v, want epoch %d, %d from %d", tt.q, e, seqs(msgs), epoch, tt.num, tt.first)
			}
			for k, m := range msgs {
				if m.Seq != tt.first+uint64(k) || string(m.Data) != fmt.Sprintf("%d", m.Seq) || m.Room != room {
					t.Fatalf("history %+v: message %d is %+v", tt.q, k, m)
				}
			}
		})
	}

	head, err := c.Nodes[2].Router.Head(room)
	if err != nil || head != (router.Position{Epoch: epoch, Seq: 40}) {
		t.Fatalf("Head via non-home = %+v, %v; want (%d, 40)", head, err, epoch)
	}

	// Resume from seq 15 on a non-home node: 16..40 come from the home
	// (the ring holds 8), then the live stream follows.
	s := subscribe(t, c.Nodes[2].Router, room, &router.Position{Epoch: epoch, Seq: 15})
	if s.res.Reset || s.res.Head.Seq != 40 {
		t.Fatalf("resume result %+v, want head 40 without reset", s.res)
	}
	publish(t, c.Nodes[0].Router, room, "bob", "", `41`)
	got := s.pull(t, 26)
	for k, m := range got {
		if m.Seq != uint64(16+k) {
			t.Fatalf("resumed message %d has seq %d, want %d", k, m.Seq, 16+k)
		}
	}

	// A position from another epoch resets to the oldest retained.
	r := subscribe(t, c.Nodes[1].Router, room, &router.Position{Epoch: epoch - 1, Seq: 3})
	if !r.res.Reset || r.res.Oldest != (router.Position{Epoch: epoch, Seq: 1}) {
		t.Fatalf("resume from another epoch: %+v, want reset to (%d, 1)", r.res, epoch)
	}
	if m := r.pull(t, 41); m[0].Seq != 1 || m[40].Seq != 41 {
		t.Fatalf("reset delivery from %d to %d", m[0].Seq, m[40].Seq)
	}
}

// TestClusterKillHome: when a room's home dies, the room lives again on
// another node with a new epoch, and resuming subscribers are reset; a
// room homed on a survivor keeps its epoch and its subscribers.
func TestClusterKillHome(t *testing.T) {
	c := Start(t, 3, WithPeerTimeout(2*time.Second))
	const victim = 2
	lost := c.RoomHomedOn("lost:", victim)
	kept := c.RoomHomedOn("kept:", 0)

	var lostSubs, keptSubs []*sub
	for _, i := range []int{0, 1} {
		lostSubs = append(lostSubs, subscribe(t, c.Nodes[i].Router, lost, nil))
		keptSubs = append(keptSubs, subscribe(t, c.Nodes[i].Router, kept, nil))
	}
	var old, keptAck router.Ack
	for k := range 5 {
		old = publish(t, c.Nodes[0].Router, lost, "ann", fmt.Sprintf("l%d", k), `1`)
		keptAck = publish(t, c.Nodes[1].Router, kept, "ann", fmt.Sprintf("k%d", k), `1`)
	}
	for _, s := range lostSubs {
		s.pull(t, 5)
	}
	for _, s := range keptSubs {
		s.pull(t, 5)
	}

	c.Kill(victim)
	if h := c.HomeOf(kept); h != 0 {
		t.Fatalf("room %s moved to node %d when node %d died", kept, h, victim+1)
	}

	// Subscribers of the lost room are told to resume.
	for _, s := range lostSubs {
		if err := s.pullErr(t); !errors.Is(err, router.ErrRoomRestarted) || !errors.Is(err, router.ErrTooSlow) {
			t.Fatalf("pull after the home died: %v, want ErrRoomRestarted", err)
		}
	}
	// The room is live again on its new home, in a new epoch.
	ack := publish(t, c.Nodes[0].Router, lost, "ann", "after", `2`)
	if ack.Epoch <= old.Epoch || ack.Seq != 1 || ack.Dup {
		t.Fatalf("first publish after the home died: %+v, want seq 1 in an epoch after %d", ack, old.Epoch)
	}
	for _, i := range c.Live() {
		s := subscribe(t, c.Nodes[i].Router, lost, &router.Position{Epoch: old.Epoch, Seq: old.Seq})
		if !s.res.Reset || s.res.Oldest.Epoch != ack.Epoch || s.res.Head != (router.Position{Epoch: ack.Epoch, Seq: 1}) {
			t.Fatalf("node %d resume after the home died: %+v, want reset into epoch %d", i+1, s.res, ack.Epoch)
		}
		if m := s.pull(t, 1); m[0].Key != "after" {
			t.Fatalf("node %d: reset delivery starts with %q", i+1, m[0].Key)
		}
	}

	// The healthy room kept its epoch and its subscribers.
	a := publish(t, c.Nodes[1].Router, kept, "ann", "k-after", `3`)
	if a.Epoch != keptAck.Epoch || a.Seq != 6 {
		t.Fatalf("kept room ack %+v, want (%d, 6)", a, keptAck.Epoch)
	}
	for _, s := range keptSubs {
		if m := s.pull(t, 1); m[0].Seq != 6 || m[0].Epoch != keptAck.Epoch {
			t.Fatalf("kept room subscriber got (%d, %d)", m[0].Epoch, m[0].Seq)
		}
	}
}

// TestClusterPlacementRegions: rooms go to their home region's nodes and
// work from any node.
func TestClusterPlacementRegions(t *testing.T) {
	c := Start(t, 4, WithRegions("eu", "us"), WithPlacement(router.Placement{
		Rules:         []router.PlacementRule{{Prefix: "eu:", Region: "eu"}},
		DefaultRegion: "us",
	}))
	for k := range 20 {
		room := fmt.Sprintf("eu:%d", k)
		if h := c.HomeOf(room); c.Nodes[h].Region != "eu" {
			t.Fatalf("room %s homed in %s", room, c.Nodes[h].Region)
		}
		ack := publish(t, c.Nodes[1].Router, room, "ann", "", `1`) // node 1 is in us
		e, msgs, err := c.Nodes[3].Router.History(t.Context(), room, router.HistoryQuery{})
		if err != nil || e != ack.Epoch || len(msgs) != 1 {
			t.Fatalf("history of %s: %d msgs epoch %d err %v", room, len(msgs), e, err)
		}
	}
}

// TestClusterGapRepair: with a fan-out queue of one frame, the home drops
// pushes under a burst; the edge's replica detects the gaps by seq and
// fetches them, so its subscriber still sees every message in order.
func TestClusterGapRepair(t *testing.T) {
	c := Start(t, 2, WithPeerQueue(1))
	room := c.RoomHomedOn("gap:", 0)
	s := subscribe(t, c.Nodes[1].Router, room, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for k := range 25 {
				if _, err := c.Nodes[0].Router.Publish(context.Background(), router.PublishRequest{Room: room, From: "ann", Data: fmt.Appendf(nil, "%d", g*100+k)}); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	// A dropped last push is only noticed with the next message: publish
	// one more until the subscriber has caught up with the head.
	var got []*router.Message
	WaitFor(t, 20*time.Second, "subscriber to reach the head", func() bool {
		ack := publish(t, c.Nodes[0].Router, room, "bob", "", `0`)
		deadline := time.After(2 * time.Second)
		for uint64(len(got)) < ack.Seq {
			var err error
			if got, err = s.Pull(got, 256); err != nil {
				t.Fatalf("pull: %v", err)
			}
			if uint64(len(got)) >= ack.Seq {
				break
			}
			select {
			case <-s.sink.ch:
			case <-deadline:
				return false
			}
		}
		return true
	})
	for k, m := range got {
		if m.Seq != uint64(k+1) {
			t.Fatalf("message %d has seq %d", k, m.Seq)
		}
	}
	if len(got) < 201 {
		t.Fatalf("got %d messages, want at least 201", len(got))
	}
}

// TestClusterLoadUpdateIsNoMembershipChange: every node gossips its load
// every few seconds. That refreshes the member list each node shows
// (/v1/edges ranks edges by it) but is not a membership change: nothing
// is re-placed and presence is not re-reported in full, which cost a
// node rooms × connections of work every time before.
func TestClusterLoadUpdateIsNoMembershipChange(t *testing.T) {
	c := Start(t, 2)
	c.WaitConverged()
	a, b := c.Nodes[0], c.Nodes[1]
	const metric = "arena_router_membership_changes_total"
	beforeA, beforeB := a.Metric(metric), b.Metric(metric)
	// Node 0 started alone and saw node 1 join. Node 1 may have started
	// with the whole view already (its router reads the mesh's members at
	// New, after its mesh joined), so it may count no change at all.
	if beforeA == 0 {
		t.Fatalf("membership changes on node 0 before the load update: %v, want at least node 1's join", beforeA)
	}
	for _, load := range []uint32{1234, 99} {
		b.Mesh.SetLoad(load)
		WaitFor(t, 10*time.Second, fmt.Sprintf("both nodes list node 1 with load %d", load), func() bool {
			return loadOf(a.Router, b) == load && loadOf(b.Router, b) == load
		})
	}
	if afterA, afterB := a.Metric(metric), b.Metric(metric); afterA != beforeA || afterB != beforeB {
		t.Fatalf("membership changes after two load updates: %v and %v, want %v and %v", afterA, afterB, beforeA, beforeB)
	}
}

// loadOf is nd's load as r lists it (0 when r does not list nd).
func loadOf(r *router.Router, nd *Node) uint32 {
	for _, m := range r.Members() {
		if m.ID == nd.ID {
			return m.Load
		}
	}
	return 0
}
