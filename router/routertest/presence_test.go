package routertest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/arena-mesh/arena/router"
)

// events records a connection's presence and receipt events.
type events struct {
	mu  sync.Mutex // guards evs
	evs []router.Event
}

func (s *events) Events(room string, evs []router.Event) {
	s.mu.Lock()
	s.evs = append(s.evs, evs...)
	s.mu.Unlock()
}

func (s *events) all() []router.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.evs)
}

func (s *events) has(kind router.EventKind, user string, seq uint64) bool {
	return slices.ContainsFunc(s.all(), func(e router.Event) bool {
		return e.Kind == kind && e.User == user && (seq == 0 || e.Seq == seq)
	})
}

// waitEvent waits for an event and returns every event before it.
func (s *events) waitEvent(t *testing.T, what string, kind router.EventKind, user string, seq uint64) []router.Event {
	t.Helper()
	WaitFor(t, 30*time.Second, what, func() bool { return s.has(kind, user, seq) })
	all := s.all()
	i := slices.IndexFunc(all, func(e router.Event) bool {
		return e.Kind == kind && e.User == user && (seq == 0 || e.Seq == seq)
	})
	return all[:i]
}

func enter(t *testing.T, r *router.Router, room, user string, presence bool) (*router.PresenceConn, *events) {
	t.Helper()
	sink := &events{}
	c, err := r.Enter(router.EnterRequest{Room: room, User: user, Presence: presence, Sink: sink})
	if err != nil {
		t.Fatalf("Enter(%s, %s): %v", room, user, err)
	}
	return c, sink
}

func presence(t *testing.T, r *router.Router, room string) []router.Member {
	t.Helper()
	ms, err := r.Presence(context.Background(), room)
	if err != nil {
		t.Fatalf("Presence(%s): %v", room, err)
	}
	return ms
}

// TestClusterPresence: members on different edges see each other join and
// leave, a reconnect within the grace period (on another edge) shows
// nothing, and killing an edge removes its users once the failure is
// detected.
func TestClusterPresence(t *testing.T) {
	c := Start(t, 3, WithRouterConfig(func(rc *router.Config) { rc.PresenceGrace = 5 * time.Second }))
	room := c.RoomHomedOn("chat:p", 0)
	n1, n2 := c.Nodes[1].Router, c.Nodes[2].Router

	_, ann := enter(t, n1, room, "ann", true)
	bob, bobEvents := enter(t, n2, room, "bob", true)
	ann.waitEvent(t, "ann sees bob join", router.EventJoin, "bob", 0)
	bobEvents.waitEvent(t, "bob sees ann join", router.EventJoin, "ann", 0)
	want := []router.Member{{User: "ann", Conns: 1}, {User: "bob", Conns: 1}}
	for i, nd := range c.Nodes {
		if got := presence(t, nd.Router, room); !slices.Equal(got, want) {
			t.Fatalf("presence on node %d = %v, want %v", i, got, want)
		}
	}

	// bob drops on node 2 and comes back on node 1 within the grace
	// period: no leave, no second join.
	bob.Leave(false)
	bob, _ = enter(t, n1, room, "bob", false)
	_, _ = enter(t, n2, room, "marker", false)
	before := ann.waitEvent(t, "the marker's join", router.EventJoin, "marker", 0)
	for _, ev := range before {
		if ev.User == "bob" && ev.Kind != router.EventJoin {
			t.Fatalf("ann got %+v: a reconnect within the grace period must show nothing", ev)
		}
	}
	if n := len(slices.DeleteFunc(ann.all(), func(e router.Event) bool { return e.User != "bob" })); n != 1 {
		t.Fatalf("ann got %d events about bob, want his one join", n)
	}

	// bob leaves for good.
	bob.Leave(true)
	ann.waitEvent(t, "bob's leave", router.EventLeave, "bob", 0)

	// cy is on node 2 only; node 2 dies: cy leaves after failure detection.
	_, _ = enter(t, n2, room, "cy", false)
	ann.waitEvent(t, "cy's join", router.EventJoin, "cy", 0)
	c.Kill(2)
	ann.waitEvent(t, "cy's leave after node 2 died", router.EventLeave, "cy", 0)
	if got := presence(t, n1, room); !slices.Equal(got, []router.Member{{User: "ann", Conns: 1}}) {
		t.Fatalf("presence after the kill = %v", got)
	}
}

// TestClusterReceiptsAndUnread: receipts from a reader on one edge reach
// the publisher on another, and unread counts are right from any node.
func TestClusterReceiptsAndUnread(t *testing.T) {
	c := Start(t, 3)
	ctx := context.Background()
	room := c.RoomHomedOn("chat:r", 0)
	n1, n2 := c.Nodes[1].Router, c.Nodes[2].Router
	_, pub := enter(t, n1, room, "pub", false)
	_, _ = enter(t, n2, room, "ann", false)
	var last router.Ack
	for range 3 {
		last = publish(t, n1, room, "pub", "", `"hi"`)
	}
	if err := n2.Receipt(ctx, router.ReceiptRequest{Room: room, User: "ann", Seq: last.Seq}); err != nil {
		t.Fatal(err)
	}
	if err := n2.Receipt(ctx, router.ReceiptRequest{Room: room, User: "ann", Seq: 2, Read: true}); err != nil {
		t.Fatal(err)
	}
	pub.waitEvent(t, "the delivered receipt on the publisher's node", router.EventDelivered, "ann", 3)
	pub.waitEvent(t, "the read receipt on the publisher's node", router.EventRead, "ann", 2)

	// ann goes offline; two more messages arrive.
	publish(t, n1, room, "pub", "", `"more"`)
	publish(t, n1, room, "pub", "", `"more"`)
	for i, nd := range c.Nodes {
		rooms, err := nd.Router.UserRooms(ctx, "ann")
		if err != nil {
			t.Fatalf("UserRooms on node %d: %v", i, err)
		}
		if len(rooms) != 1 || rooms[0].Room != room || rooms[0].Read.Seq != 2 || rooms[0].Head.Seq != 5 || rooms[0].Unread != 3 {
			t.Fatalf("UserRooms on node %d = %+v", i, rooms)
		}
	}
}

// TestClusterReadPositionsSurviveHomeRestart: read positions stored on a
// room's home are there again when the home restarts (leaving with a
// handoff and coming back with its data), and unread counts follow the
// messages published meanwhile.
func TestClusterReadPositionsSurviveHomeRestart(t *testing.T) {
	c := Start(t, 3)
	ctx := context.Background()
	room := c.RoomHomedOn("chat:s", 0)
	n1, n2 := c.Nodes[1].Router, c.Nodes[2].Router
	var first router.Ack
	for range 3 {
		first = publish(t, n1, room, "pub", "", `1`)
	}
	if err := n2.Receipt(ctx, router.ReceiptRequest{Room: room, User: "ann", Seq: 2, Read: true}); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, 30*time.Second, "ann's read position at the home", func() bool {
		rooms, err := n1.UserRooms(ctx, "ann")
		return err == nil && len(rooms) == 1 && rooms[0].Read.Seq == 2
	})
	if err := c.Leave(0); err != nil {
		t.Fatalf("leave: %v", err)
	}
	publish(t, n1, room, "pub", "k4", `2`) // on the interim home
	c.Rejoin(0)
	// Published once the room is back on node 0 (retried while it moves).
	WaitFor(t, 30*time.Second, "a publish after the restart", func() bool {
		_, err := n1.Publish(ctx, router.PublishRequest{Room: room, From: "pub", Key: "k5", Data: []byte(`3`)})
		return err == nil
	})
	for i, nd := range c.Nodes {
		rooms, err := nd.Router.UserRooms(ctx, "ann")
		if err != nil {
			t.Fatalf("UserRooms on node %d: %v", i, err)
		}
		if len(rooms) != 1 || rooms[0].Read != (router.Position{Epoch: first.Epoch, Seq: 2}) {
			t.Fatalf("UserRooms on node %d = %+v, want the read position (%d, 2)", i, rooms, first.Epoch)
		}
		u := rooms[0]
		// The handoffs keep the epoch (then 3 of 5 are unread); if the
		// room had to restart, every message of its new epoch is.
		want := u.Head.Seq
		if u.Head.Epoch == first.Epoch {
			want = u.Head.Seq - 2
			if u.Head.Seq != 5 {
				t.Fatalf("UserRooms on node %d: head %+v, want seq 5", i, u.Head)
			}
		}
		if u.Unread != want {
			t.Fatalf("UserRooms on node %d = %+v, want %d unread", i, u, want)
		}
	}
}
