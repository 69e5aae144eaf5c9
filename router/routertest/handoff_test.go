package routertest

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arena-mesh/arena/mesh"
	"github.com/arena-mesh/arena/router"
)

// follower reads a room as an edge connection does: on ErrRoomMoved it
// resumes from its position (which must not be reset), and it records
// every message pulled.
type follower struct {
	t       *testing.T
	r       *router.Router
	room    string
	s       *sub
	got     []*router.Message
	resumes int
}

func follow(t *testing.T, r *router.Router, room string) *follower {
	t.Helper()
	return &follower{t: t, r: r, room: room, s: subscribe(t, r, room, nil)}
}

// until pulls until it has seen seq head, failing on a reset, a restart
// or a gap.
func (f *follower) until(head uint64) {
	t := f.t
	t.Helper()
	timeout := time.After(30 * time.Second)
	for f.pos().Seq < head {
		msgs, err := f.s.Pull(nil, 256)
		for _, m := range msgs {
			if p := f.pos(); m.Seq != p.Seq+1 || (p.Epoch != 0 && m.Epoch != p.Epoch) {
				t.Fatalf("room %s: got (%d, %d) after (%d, %d)", f.room, m.Epoch, m.Seq, p.Epoch, p.Seq)
			}
			f.got = append(f.got, m)
		}
		switch {
		case errors.Is(err, router.ErrRoomMoved):
			f.resume()
			continue
		case err != nil:
			t.Fatalf("room %s: pull: %v", f.room, err)
		}
		if len(msgs) > 0 {
			continue
		}
		select {
		case <-f.s.sink.ch:
		case <-timeout:
			t.Fatalf("room %s: pulled up to %d, want %d", f.room, f.pos().Seq, head)
		}
	}
}

func (f *follower) pos() router.Position {
	if len(f.got) == 0 {
		return f.s.res.Head
	}
	m := f.got[len(f.got)-1]
	return router.Position{Epoch: m.Epoch, Seq: m.Seq}
}

func (f *follower) resume() {
	t := f.t
	t.Helper()
	f.s.Close()
	f.resumes++
	since := f.pos()
	var res router.SubscribeResult
	var err error
	sk := newSink()
	WaitFor(t, 20*time.Second, "resume of "+f.room, func() bool {
		res, err = f.r.Subscribe(t.Context(), router.SubscribeRequest{Room: f.room, Since: &since, Sink: sk})
		if err != nil && !errors.Is(err, router.ErrUnavailable) {
			t.Fatalf("resume %s: %v", f.room, err)
		}
		return err == nil
	})
	t.Cleanup(res.Sub.Close)
	if res.Reset {
		t.Fatalf("resume of %s from %+v was reset to %+v", f.room, since, res.Oldest)
	}
	f.s = &sub{Subscription: res.Sub, sink: sk, res: res}
}

// checkHistory asserts that the room's history through r is seqs 1..head
// of epoch, with every acked key at its acked seq and no key twice.
func checkHistory(t *testing.T, r *router.Router, room string, epoch, head uint64, acks map[string]router.Ack) {
	t.Helper()
	e, msgs, err := r.History(t.Context(), room, router.HistoryQuery{FromOldest: true, Limit: router.MaxHistoryLimit})
	if err != nil || e != epoch {
		t.Fatalf("history of %s: epoch %d, %v; want epoch %d", room, e, err, epoch)
	}
	if uint64(len(msgs)) != head {
		t.Fatalf("history of %s has %d messages, want %d", room, len(msgs), head)
	}
	seen := map[string]uint64{}
	for i, m := range msgs {
		if m.Seq != uint64(i+1) || m.Epoch != epoch {
			t.Fatalf("history of %s: message %d at (%d, %d)", room, i, m.Epoch, m.Seq)
		}
		if prev, ok := seen[m.Key]; ok {
			t.Fatalf("history of %s: key %q at seq %d and %d", room, m.Key, prev, m.Seq)
		}
		seen[m.Key] = m.Seq
	}
	for key, a := range acks {
		if seen[key] != a.Seq {
			t.Fatalf("history of %s: acked key %q at seq %d, history has it at %d", room, key, a.Seq, seen[key])
		}
	}
}

// TestClusterLeaveHandoff: a room's home leaves gracefully while
// publishers on the other nodes keep publishing with keys. The room keeps
// its epoch and a gap-free order holding every acked message; a key used
// before the move is still deduplicated; subscribers see no reset and no
// gap (the one on a node that is neither the old nor the new home sees
// one uninterrupted stream).
func TestClusterLeaveHandoff(t *testing.T) {
	c := Start(t, 3, WithPeerTimeout(3*time.Second))
	const victim = 2
	room := c.RoomHomedOn("leave:", victim)
	followers := []*follower{follow(t, c.Nodes[0].Router, room), follow(t, c.Nodes[1].Router, room)}

	var (
		mu   sync.Mutex
		acks = map[string]router.Ack{}
	)
	// Each publisher publishes 20 messages, keeps publishing while the
	// home leaves, and 10 more after.
	started := make(chan struct{}, 2)
	left := make(chan struct{})
	var wg sync.WaitGroup
	for _, i := range []int{0, 1} {
		r := c.Nodes[i].Router
		wg.Go(func() {
			after := -1
			for k := 0; after < 10; k++ {
				if k == 20 {
					started <- struct{}{}
				}
				select {
				case <-left:
					after++
				default:
				}
				key := fmt.Sprintf("p%d-%d", i, k)
				a := publish(t, r, room, "ann", key, fmt.Sprint(k))
				mu.Lock()
				acks[key] = a
				mu.Unlock()
			}
		})
	}
	<-started
	<-started
	if err := c.Leave(victim); err != nil {
		t.Fatalf("handoff: %v", err)
	}
	close(left)
	wg.Wait()

	epoch := acks["p0-0"].Epoch
	var head uint64
	for key, a := range acks {
		if a.Epoch != epoch || a.Dup {
			t.Fatalf("key %s acked %+v, want epoch %d, not dup", key, a, epoch)
		}
		head = max(head, a.Seq)
	}
	if head != uint64(len(acks)) {
		t.Fatalf("head %d after %d publishes", head, len(acks))
	}
	for _, i := range c.Live() {
		checkHistory(t, c.Nodes[i].Router, room, epoch, head, acks)
	}
	// A key used before the move is still deduplicated by the new home.
	for _, i := range c.Live() {
		d := publish(t, c.Nodes[i].Router, room, "ann", "p1-3", `3`)
		if !d.Dup || d.Seq != acks["p1-3"].Seq || d.Epoch != epoch {
			t.Fatalf("key reused after the move through node %d: %+v, want dup of %+v", i+1, d, acks["p1-3"])
		}
	}
	newHome := c.HomeOf(room)
	for i, f := range followers {
		f.until(head)
		if i != newHome && f.resumes != 0 {
			t.Fatalf("subscriber on node %d (not the new home %d) resumed %d times", i+1, newHome+1, f.resumes)
		}
	}
}

// TestClusterJoinHandoff: rooms that a joining node wins are handed over
// to it: they keep their epoch, their order and their history, keys stay
// deduplicated, and subscribers elsewhere continue without reset or gap.
func TestClusterJoinHandoff(t *testing.T) {
	c := Start(t, 2)
	var rooms []string
	for k := range 24 {
		rooms = append(rooms, fmt.Sprintf("join:%d", k))
	}
	acks := map[string]map[string]router.Ack{}
	var followers []*follower
	for _, room := range rooms {
		acks[room] = map[string]router.Ack{}
		for k := range 5 {
			key := fmt.Sprintf("b%d", k)
			acks[room][key] = publish(t, c.Nodes[k%2].Router, room, "ann", key, fmt.Sprint(k))
		}
		followers = append(followers, follow(t, c.Nodes[0].Router, room), follow(t, c.Nodes[1].Router, room))
	}
	before := map[string]int{}
	for _, room := range rooms {
		before[room] = c.HomeOf(room)
	}

	j := c.Join()
	var moved []string
	for _, room := range rooms {
		if c.HomeOf(room) == j {
			moved = append(moved, room)
		}
	}
	if len(moved) == 0 {
		t.Fatal("no room moved to the joining node")
	}
	for _, room := range rooms {
		epoch := acks[room]["b0"].Epoch
		for k := 5; k < 8; k++ {
			key := fmt.Sprintf("a%d", k)
			a := publish(t, c.Nodes[k%3].Router, room, "ann", key, fmt.Sprint(k))
			if a.Epoch != epoch || a.Seq != uint64(k+1) || a.Dup {
				t.Fatalf("room %s (home node %d, was %d): ack %+v, want (%d, %d)", room, c.HomeOf(room)+1, before[room]+1, a, epoch, k+1)
			}
			acks[room][key] = a
		}
		d := publish(t, c.Nodes[j].Router, room, "ann", "b2", `2`)
		if !d.Dup || d.Seq != 3 || d.Epoch != epoch {
			t.Fatalf("room %s: key reused after the join: %+v, want dup at seq 3", room, d)
		}
		for i := range c.Nodes {
			checkHistory(t, c.Nodes[i].Router, room, epoch, 8, acks[room])
		}
	}
	for _, f := range followers {
		f.until(8)
		home := c.HomeOf(f.room)
		if f.resumes != 0 && f.r != c.Nodes[before[f.room]].Router {
			t.Fatalf("room %s: subscriber not on the old home resumed (home %d, was %d)", f.room, home+1, before[f.room]+1)
		}
	}
}

// TestClusterHandoffCarriesEveryKey: a planned move hands over every
// idempotency key still in the window, not only those that fit in the
// handoff frame: the keys the old home's memory evicted into its wal's
// index, and those its memory holds beyond the frame's budget. A retry of
// any of them on the new home is a duplicate.
func TestClusterHandoffCarriesEveryKey(t *testing.T) {
	// Keys of 1,000 bytes, 254 of which fit in the frame's budget. Rooms
	// with an even number publish 320 (280 in memory, 40 evicted into
	// the index); odd ones 270 (all in memory: the room never evicted,
	// so only the keys beyond the frame make the new home look misses up).
	const memory, rooms = 280, 9
	perRoom := func(i int) int { return 320 - i%2*50 }
	c := Start(t, 2, WithRouterConfig(func(cfg *router.Config) { cfg.DedupMemory = memory }))
	key := func(k int) string { return fmt.Sprintf("%04d", k) + strings.Repeat("k", 996) }
	acks := make([][]router.Ack, rooms)
	var wg sync.WaitGroup
	for i := range rooms {
		acks[i] = make([]router.Ack, perRoom(i))
		wg.Go(func() {
			room := fmt.Sprintf("keys:%d", i)
			for k := range perRoom(i) {
				req := router.PublishRequest{Room: room, From: "ann", Key: key(k), Data: []byte(strconv.Itoa(k))}
				a, err := c.Nodes[k%2].Router.Publish(t.Context(), req)
				if err != nil {
					t.Errorf("publish %s #%d: %v", room, k, err)
					return
				}
				acks[i][k] = a
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	j := c.Join()
	moved := 0
	for i := range rooms {
		room := fmt.Sprintf("keys:%d", i)
		if c.HomeOf(room) != j {
			continue
		}
		moved |= 1 << (i % 2)
		for k := range perRoom(i) {
			d := publish(t, c.Nodes[j].Router, room, "ann", key(k), `"again"`)
			if want := acks[i][k]; !d.Dup || d.Seq != want.Seq || d.Epoch != want.Epoch {
				t.Fatalf("room %s, key #%d, after the move: %+v, want a dup of %+v", room, k, d, want)
			}
		}
	}
	if moved != 3 {
		t.Fatalf("rooms of each kind moved to the joining node: %02b, want both", moved)
	}
}

// TestClusterHandoffToOlderBuild: a new home that drops handoffKeys
// frames, as a build from before them does, still takes its rooms, with
// the keys the handoff frame carries; and an old home waits on it once
// per batch of moving rooms, not once per room.
func TestClusterHandoffToOlderBuild(t *testing.T) {
	const handoffKeysFrame = 0x0c // router/peerframe.go
	const rooms, perRoom = 16, 10
	var dropped atomic.Int32
	c := Start(t, 2, WithPeerTimeout(300*time.Millisecond),
		WithRouterConfig(func(cfg *router.Config) { cfg.DedupMemory = 4 }),
		WithFrameFilter(func(node mesh.NodeID, frame []byte) bool {
			if node == "n3" && len(frame) > 0 && frame[0] == handoffKeysFrame {
				dropped.Add(1)
				return false
			}
			return true
		}))
	acks := make([][]router.Ack, rooms)
	for i := range rooms {
		for k := range perRoom {
			acks[i] = append(acks[i], publish(t, c.Nodes[k%2].Router, fmt.Sprintf("old:%d", i), "ann", fmt.Sprintf("k%d", k), "1"))
		}
	}
	j := c.Join()
	if c.Nodes[j].ID != "n3" {
		t.Fatalf("the joining node is %s, want n3", c.Nodes[j].ID)
	}
	moved := 0
	for i := range rooms {
		room := fmt.Sprintf("old:%d", i)
		if c.HomeOf(room) != j {
			continue
		}
		moved++
		last := acks[i][perRoom-1]
		if d := publish(t, c.Nodes[j].Router, room, "ann", fmt.Sprintf("k%d", perRoom-1), "2"); !d.Dup || d.Seq != last.Seq || d.Epoch != last.Epoch {
			t.Fatalf("room %s: the newest key after the move: %+v, want a dup of %+v", room, d, last)
		}
		if a := publish(t, c.Nodes[j].Router, room, "ann", "fresh", "3"); a.Dup || a.Epoch != last.Epoch || a.Seq != perRoom+1 {
			t.Fatalf("room %s: a new key after the move: %+v, want seq %d in epoch %d", room, a, perRoom+1, last.Epoch)
		}
	}
	if moved < 4 {
		t.Fatalf("%d rooms moved to the joining node, want at least 4 for the test to tell", moved)
	}
	if d := int(dropped.Load()); d == 0 || d >= moved {
		t.Fatalf("the joining node dropped %d handoffKeys frames for %d moved rooms: want at least one, and fewer than one per room", d, moved)
	}
}

// TestClusterHandedAwayRoomRestartsInNewEpoch: a node that leaves hands
// its room over, and the room goes on in the same epoch on the other
// node. When the node comes back and nobody hands the room back (the
// other node is gone), it must not continue the room from its own copy in
// that epoch, whose seqs after the copy's head already name other
// messages: it starts a new epoch holding the messages it has, at their
// seqs.
func TestClusterHandedAwayRoomRestartsInNewEpoch(t *testing.T) {
	c := Start(t, 2)
	room := c.RoomHomedOn("chat:away", 0)
	var first router.Ack
	for i := range 3 {
		ack := publish(t, c.Nodes[1].Router, room, "pub", "", fmt.Sprintf(`"on a %d"`, i+1))
		if i == 0 {
			first = ack
		}
	}
	if err := c.Leave(0); err != nil {
		t.Fatalf("leave: %v", err)
	}
	onB := publish(t, c.Nodes[1].Router, room, "pub", "", `"on b"`)
	if onB.Epoch != first.Epoch || onB.Seq != 4 {
		t.Fatalf("publish on the interim home: %+v, want seq 4 in epoch %d", onB, first.Epoch)
	}
	c.Kill(1)
	c.Rejoin(0)

	r := c.Nodes[0].Router
	back := publish(t, r, room, "pub", "", `"back on a"`)
	if back.Epoch == first.Epoch {
		t.Fatalf("the returning node continued epoch %d at seq %d: that position is %q on the interim home", back.Epoch, back.Seq, "on b")
	}
	if back.Seq != 4 {
		t.Fatalf("first publish after the return: seq %d, want 4 (after the 3 messages kept)", back.Seq)
	}
	epoch, msgs, err := r.History(t.Context(), room, router.HistoryQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`"on a 1"`, `"on a 2"`, `"on a 3"`, `"back on a"`}
	if epoch != back.Epoch || len(msgs) != len(want) {
		t.Fatalf("history: epoch %d, %d messages; want epoch %d, %d", epoch, len(msgs), back.Epoch, len(want))
	}
	for i, m := range msgs {
		if m.Seq != uint64(i+1) || string(m.Data) != want[i] {
			t.Fatalf("history[%d] = seq %d %s, want seq %d %s", i, m.Seq, m.Data, i+1, want[i])
		}
	}
	if got := c.Nodes[0].Metric("arena_router_rooms_restarted_unclean_total"); got != 1 {
		t.Fatalf("rooms restarted = %v, want 1", got)
	}
}

// TestClusterHandbackClearsHandedAwayMark: a room handed away and then
// handed back is this node's again, so after a restart (with nobody left
// to hand it over) the node continues it in the same epoch.
func TestClusterHandbackClearsHandedAwayMark(t *testing.T) {
	c := Start(t, 2)
	room := c.RoomHomedOn("chat:back", 0)
	first := publish(t, c.Nodes[1].Router, room, "pub", "", `1`)
	if err := c.Leave(0); err != nil {
		t.Fatalf("leave: %v", err)
	}
	publish(t, c.Nodes[1].Router, room, "pub", "", `2`) // seq 2 on the interim home
	c.Rejoin(0)
	// Once the room is handed back, publishes reach node 0 again (they are
	// retried while it moves).
	WaitFor(t, 30*time.Second, "the room back on node 0", func() bool {
		return c.HomeOf(room) == 0
	})
	back := publish(t, c.Nodes[1].Router, room, "pub", "k3", `3`)
	if back.Epoch != first.Epoch || back.Seq != 3 {
		t.Fatalf("after the handback: %+v, want seq 3 in epoch %d", back, first.Epoch)
	}
	c.Kill(1)
	c.Kill(0)
	c.Rejoin(0)
	again := publish(t, c.Nodes[0].Router, room, "pub", "", `4`)
	if again.Epoch != first.Epoch || again.Seq != 4 {
		t.Fatalf("after a restart: %+v, want seq 4 in epoch %d (no new epoch)", again, first.Epoch)
	}
	if got := c.Nodes[0].Metric("arena_router_rooms_restarted_unclean_total"); got != 0 {
		t.Fatalf("rooms restarted = %v, want 0", got)
	}
}

// TestUnjoinedNodeStartsNoRoom: a node told to join a mesh loads and
// starts no room until it has joined. Placed over its own view, which
// lacks the members it has not learnt yet, a room homed on one of them
// would start anew here in a new epoch beside the live one.
func TestUnjoinedNodeStartsNoRoom(t *testing.T) {
	c := Start(t, 2, WithPeerTimeout(300*time.Millisecond))
	room := "unjoined:1"
	first := publish(t, c.Nodes[0].Router, room, "ann", "k1", "1")

	seed := freeMeshAddr(t)
	lone := c.startNodeOn(2, "127.0.0.1:0", seed) // nothing at seed yet
	c.Nodes = append(c.Nodes, lone)
	req := router.PublishRequest{Room: room, From: "bob", Key: "k2", Data: []byte("2")}
	if ack, err := lone.Router.Publish(t.Context(), req); !errors.Is(err, router.ErrUnavailable) {
		t.Fatalf("publish on a node that has not joined: ack %+v, err %v; want ErrUnavailable", ack, err)
	}
	states, err := lone.Log.Rooms()
	if err != nil || len(states) != 0 {
		t.Fatalf("the node that has not joined recorded rooms %+v (err %v)", states, err)
	}

	// The seed comes up, joined to the others: the node joins through it.
	c.Nodes = append(c.Nodes, c.startNodeOn(3, seed, c.Nodes[0].Mesh.Addr()))
	c.WaitConverged()
	a := publish(t, lone.Router, room, "bob", "k2", "2")
	if a.Epoch != first.Epoch || a.Seq != 2 || a.Dup {
		t.Fatalf("publish after the join: %+v, want (%d, 2)", a, first.Epoch)
	}
	acks := map[string]router.Ack{"k1": first, "k2": a}
	for _, nd := range c.Nodes {
		checkHistory(t, nd.Router, room, first.Epoch, 2, acks)
	}
}

// TestNodeJoinsThroughMemberThatFoundIt: a node whose only seed is gone
// has not joined and serves no room; once another node joins it, it
// joins through that node and serves the rooms it homes.
func TestNodeJoinsThroughMemberThatFoundIt(t *testing.T) {
	c := Start(t, 0, WithPeerTimeout(300*time.Millisecond))
	lone := c.startNodeOn(0, "127.0.0.1:0", freeMeshAddr(t)) // nothing there, ever
	c.Nodes = append(c.Nodes, lone)
	req := router.PublishRequest{Room: "found:0", From: "ann", Data: []byte("0")}
	if ack, err := lone.Router.Publish(t.Context(), req); !errors.Is(err, router.ErrUnavailable) {
		t.Fatalf("publish on a node that has not joined: ack %+v, err %v; want ErrUnavailable", ack, err)
	}

	c.Nodes = append(c.Nodes, c.startNodeOn(1, "127.0.0.1:0", lone.Mesh.Addr()))
	WaitFor(t, 20*time.Second, "n1 joined through n2", lone.Mesh.HasJoined)
	c.WaitConverged()
	homed := 0
	for i := range 16 {
		room := fmt.Sprintf("found:%d", i)
		if c.HomeOf(room) == 0 {
			homed++
		}
		if a := publish(t, lone.Router, room, "ann", "", "1"); a.Seq != 1 {
			t.Fatalf("publish to %s: %+v, want seq 1", room, a)
		}
	}
	if homed == 0 {
		t.Fatal("n1 homes none of the 16 rooms: the test checked nothing of its own")
	}
}

// freeMeshAddr returns a loopback address whose port is free for both
// TCP and UDP (gossip uses both) at the time of the call.
func freeMeshAddr(t *testing.T) string {
	t.Helper()
	for range 50 {
		tl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		addr := tl.Addr().String()
		ul, err := net.ListenPacket("udp", addr)
		_ = tl.Close()
		if err == nil {
			_ = ul.Close()
			return addr
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return ""
}

// TestClusterSlowHandoffsKeepEpochs: a joining node waits for its
// handoffs as long as they keep coming, not for a fixed time from the
// join. Here the joining node is in another region, 75 ms away each way
// (emulated under QUIC), so each handoff, one call, takes at least
// 150 ms, and the old homes, each handing over about 150 rooms 8 at a
// time, take longer than the 6 PeerTimeouts (1.8 s) the new home waited
// for all of them before: the rooms last in line started anew in new
// epochs beside the handoffs still coming.
func TestClusterSlowHandoffsKeepEpochs(t *testing.T) {
	const handoffFrame = 0x08 // router/peerframe.go
	const peerTimeout = 300 * time.Millisecond
	wan := mesh.NewWAN(1)
	wan.SetBoth("near", "far", mesh.Link{Delay: 75 * time.Millisecond})
	var last atomic.Int64 // when the last handoff reached the new home (UnixNano)
	c := Start(t, 2, WithPeerTimeout(peerTimeout), WithRegions("near", "near", "far"), WithWAN(wan),
		WithFrameFilter(func(node mesh.NodeID, frame []byte) bool {
			if node == "n3" && len(frame) > 0 && frame[0] == handoffFrame {
				last.Store(time.Now().UnixNano())
			}
			return true
		}))
	const rooms = 900
	epochs := make(map[string]uint64, rooms)
	for i := range rooms {
		room := fmt.Sprintf("slow:%d", i)
		epochs[room] = publish(t, c.Nodes[c.HomeOf(room)].Router, room, "ann", "k1", "1").Epoch
	}
	joined := time.Now()
	j := c.Join()
	for i := range rooms {
		room := fmt.Sprintf("slow:%d", i)
		if c.HomeOf(room) != j {
			continue
		}
		a := publish(t, c.Nodes[j].Router, room, "ann", "k2", "2")
		if a.Epoch != epochs[room] || a.Seq != 2 || a.Dup {
			t.Errorf("room %s after the join: %+v, want (%d, 2)", room, a, epochs[room])
		}
	}
	took := time.Unix(0, last.Load()).Sub(joined)
	t.Logf("the handoffs took %v", took)
	if took <= 6*peerTimeout {
		t.Fatalf("the handoffs took %v, within the fixed wait of %v: the test shows nothing", took, 6*peerTimeout)
	}
}
