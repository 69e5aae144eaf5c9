package routertest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arena-mesh/arena/mesh"
	"github.com/arena-mesh/arena/router"
)

// msgsSent is the metric that counts message frames pushed to peers.
const msgsSent = "arena_router_peer_msgs_sent_total"

// sentCounts returns every node's msgsSent (0 for dead nodes).
func sentCounts(c *Cluster) []float64 {
	out := make([]float64, len(c.Nodes))
	for _, i := range c.Live() {
		out[i] = c.Nodes[i].Metric(msgsSent)
	}
	return out
}

// fanOut publishes batches of n messages to room, from every live node
// in turn, until every follower has each batch and the nodes pushed
// exactly want[i] message frames per message during one batch (0 for
// nodes not in want). A batch during which the membership flapped (a
// loaded machine) may move interest around and is tried again; a wrong
// fan-out fails every batch. It returns the room's head.
func fanOut(t *testing.T, c *Cluster, room string, followers map[int]*follower, n int, want map[int]float64) uint64 {
	t.Helper()
	var head uint64
	WaitFor(t, 90*time.Second, "a batch pushed once per region", func() bool {
		live := c.Live()
		before := sentCounts(c)
		for k := range n {
			head = publish(t, c.Nodes[live[k%len(live)]].Router, room, "ann", "", fmt.Sprint(k)).Seq
		}
		for _, f := range followers {
			f.until(head)
		}
		after := sentCounts(c)
		ok := true
		for _, i := range live {
			if d := after[i] - before[i]; d != want[i]*float64(n) {
				t.Logf("node %d (region %s) pushed %v message frames for %d messages, want %v", i+1, c.Nodes[i].Region, d, n, want[i]*float64(n))
				ok = false
			}
		}
		return ok
	})
	return head
}

// subscribeRetry is subscribe, trying again while the room's home or
// relay is unavailable (membership settling on a loaded machine).
func subscribeRetry(t *testing.T, r *router.Router, room string, since *router.Position) *sub {
	t.Helper()
	var res router.SubscribeResult
	var err error
	sk := newSink()
	WaitFor(t, 30*time.Second, "subscribe to "+room, func() bool {
		res, err = r.Subscribe(t.Context(), router.SubscribeRequest{Room: room, Since: since, Sink: sk})
		if err != nil && !errors.Is(err, router.ErrUnavailable) {
			t.Fatalf("subscribe %s: %v", room, err)
		}
		return err == nil
	})
	t.Cleanup(res.Sub.Close)
	return &sub{Subscription: res.Sub, sink: sk, res: res}
}

// followRetry is follow with subscribeRetry.
func followRetry(t *testing.T, r *router.Router, room string) *follower {
	t.Helper()
	return &follower{t: t, r: r, room: room, s: subscribeRetry(t, r, room, nil)}
}

// TestClusterRelay: a room homed in region a, with subscribers on every
// node of region b and on one more node of a. Every subscriber sees the
// whole stream, in order and without gap; the home pushes each message
// once to the other subscribing node of its region and once to region b
// (to its relay, which pushes it on to the other two nodes of b). When
// the relay leaves, the subscribers left in b continue without gap or
// reset, and region b's new relay takes over the fan-out.
func TestClusterRelay(t *testing.T) {
	// No node dies here: a patient failure detector keeps a loaded
	// machine from declaring the home dead (which would restart the room).
	tm := mesh.LocalTiming()
	tm.ProbeInterval, tm.ProbeTimeout, tm.SuspicionMult = time.Second, 800*time.Millisecond, 8
	c := Start(t, 6, WithRegions("a", "b"), WithPlacement(router.Placement{DefaultRegion: "a"}), WithPeerTimeout(3*time.Second), WithTiming(tm))
	const home = 0
	room := c.RoomHomedOn("relay:", home)
	relay := c.RelayOf(room, "b")
	var inA, inB []int
	for i, nd := range c.Nodes {
		switch {
		case i == home:
		case nd.Region == "a":
			inA = append(inA, i)
		default:
			inB = append(inB, i)
		}
	}
	if len(inB) != 3 || c.Nodes[home].Region != "a" {
		t.Fatalf("regions: home in %s, %d nodes in b", c.Nodes[home].Region, len(inB))
	}
	followers := map[int]*follower{inA[0]: followRetry(t, c.Nodes[inA[0]].Router, room)}
	for _, i := range inB {
		followers[i] = followRetry(t, c.Nodes[i].Router, room)
	}

	// The home pushes once to the node of a, once to region b's relay;
	// the relay pushes on to the other nodes of b.
	const n = 40
	head := fanOut(t, c, room, followers, n, map[int]float64{home: 2, relay: float64(len(inB) - 1)})

	// The relay leaves while the home keeps publishing.
	var (
		wg   sync.WaitGroup
		last atomic.Uint64
		stop = make(chan struct{})
	)
	last.Store(head)
	wg.Go(func() {
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			last.Store(publish(t, c.Nodes[home].Router, room, "bob", fmt.Sprintf("l%d", k), fmt.Sprint(k)).Seq)
		}
	})
	WaitFor(t, 20*time.Second, "publishes before the leave", func() bool { return last.Load() >= head+20 })
	if err := c.Leave(relay); err != nil {
		t.Fatalf("relay leave: %v", err)
	}
	mark := last.Load()
	WaitFor(t, 20*time.Second, "publishes after the leave", func() bool { return last.Load() >= mark+20 })
	close(stop)
	wg.Wait()
	head = last.Load()
	delete(followers, relay)
	for i, f := range followers {
		f.until(head)
		if f.resumes != 0 {
			t.Fatalf("subscriber on node %d resumed %d times after the relay left", i+1, f.resumes)
		}
	}

	// Region b has a new relay, which takes the fan-out over once every
	// node there moved its interest to it.
	newRelay := c.RelayOf(room, "b")
	if newRelay == relay || c.Nodes[newRelay].Region != "b" {
		t.Fatalf("new relay is node %d", newRelay+1)
	}
	fanOut(t, c, room, followers, n, map[int]float64{home: 2, newRelay: 1})
}

// TestClusterRelayHomeDies: when a relayed room's home dies, every
// subscriber (in the home's region and behind the relay) is told the
// room restarted; resuming puts it in the new epoch, whose messages again
// reach the other region once, through its relay.
func TestClusterRelayHomeDies(t *testing.T) {
	// A failure detector patient enough that a loaded machine does not
	// declare the live home dead before the kill (a relay that thinks so
	// restarts its replica: CI saw ErrRoomRestarted before the kill),
	// and quick enough to find the killed one in a few seconds.
	tm := mesh.LocalTiming()
	tm.ProbeInterval, tm.ProbeTimeout, tm.SuspicionMult = 600*time.Millisecond, 500*time.Millisecond, 3
	c := Start(t, 6, WithRegions("a", "b"), WithPlacement(router.Placement{DefaultRegion: "a"}), WithPeerTimeout(2*time.Second), WithTiming(tm))
	const victim = 0
	room := c.RoomHomedOn("relay-dies:", victim)
	subs := map[int]*sub{}
	for i, nd := range c.Nodes {
		if i != victim && (nd.Region == "b" || i == 2) {
			subs[i] = subscribeRetry(t, nd.Router, room, nil)
		}
	}
	var old router.Ack
	for k := range 5 {
		old = publish(t, c.Nodes[k%len(c.Nodes)].Router, room, "ann", fmt.Sprintf("o%d", k), `1`)
	}
	for _, s := range subs {
		s.pull(t, 5)
	}

	c.Kill(victim)
	for i, s := range subs {
		if err := s.pullErr(t); !errors.Is(err, router.ErrRoomRestarted) {
			t.Fatalf("node %d: pull after the home died: %v, want ErrRoomRestarted", i+1, err)
		}
	}
	followers := map[int]*follower{}
	for i := range subs {
		s := subscribeRetry(t, c.Nodes[i].Router, room, &router.Position{Epoch: old.Epoch, Seq: old.Seq})
		if !s.res.Reset || s.res.Oldest.Epoch == old.Epoch {
			t.Fatalf("node %d: resume after the home died: %+v, want a reset into a new epoch", i+1, s.res)
		}
		followers[i] = &follower{t: t, r: c.Nodes[i].Router, room: room, s: s}
	}
	home, relay := c.HomeOf(room), c.RelayOf(room, "b")
	if c.Nodes[home].Region != "a" {
		t.Fatalf("new home is node %d in region %s", home+1, c.Nodes[home].Region)
	}
	want := map[int]float64{relay: 2} // the other two nodes of b
	if home != 2 {
		want[home] = 2 // node 3 (region a) and region b
	} else {
		want[home] = 1 // region b
	}
	fanOut(t, c, room, followers, 20, want)
}

// TestClusterRelayJoin: a node joining region b that becomes the room's
// relay there takes the fan-out over; the subscribers of b continue
// without gap or reset, and the home still pushes once per region.
func TestClusterRelayJoin(t *testing.T) {
	tm := mesh.LocalTiming()
	tm.ProbeInterval, tm.ProbeTimeout, tm.SuspicionMult = time.Second, 800*time.Millisecond, 8
	c := Start(t, 5, WithRegions("a", "b"), WithPlacement(router.Placement{DefaultRegion: "a"}), WithPeerTimeout(3*time.Second), WithTiming(tm))
	const home = 0
	// A room homed on node 1 whose relay in b will be the joining node 6.
	var room string
	withJoiner := []mesh.Member{{ID: "n2", Region: "b"}, {ID: "n4", Region: "b"}, {ID: "n6", Region: "b"}}
	for k := 0; room == ""; k++ {
		if name := fmt.Sprintf("relay-join:%d", k); c.HomeOf(name) == home && router.Home(name, "b", withJoiner) == "n6" {
			room = name
		}
	}
	followers := map[int]*follower{}
	for _, i := range []int{1, 2, 3} {
		followers[i] = followRetry(t, c.Nodes[i].Router, room)
	}
	const n = 20
	old := c.RelayOf(room, "b")
	fanOut(t, c, room, followers, n, map[int]float64{home: 2, old: 1})

	j := c.Join()
	if c.Nodes[j].ID != "n6" || c.RelayOf(room, "b") != j || c.HomeOf(room) != home {
		t.Fatalf("joined %s: relay node %d, home node %d", c.Nodes[j].ID, c.RelayOf(room, "b")+1, c.HomeOf(room)+1)
	}
	// The new relay mirrors the room for the two nodes of b.
	fanOut(t, c, room, followers, n, map[int]float64{home: 2, j: 2})
	for i, f := range followers {
		if f.resumes != 0 {
			t.Fatalf("subscriber on node %d resumed %d times", i+1, f.resumes)
		}
	}
}
