package router

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/wal"
)

// eventSink records the events it gets.
type eventSink struct {
	mu  sync.Mutex // guards evs
	evs []Event
}

func (s *eventSink) Events(room string, evs []Event) {
	s.mu.Lock()
	s.evs = append(s.evs, evs...)
	s.mu.Unlock()
}

func (s *eventSink) all() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.evs)
}

// has reports whether an event of kind about user (with seq, if not 0) came.
func (s *eventSink) has(kind EventKind, user string, seq uint64) bool {
	return slices.ContainsFunc(s.all(), func(e Event) bool {
		return e.Kind == kind && e.User == user && (seq == 0 || e.Seq == seq)
	})
}

func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func fastEvents(_ *wal.Config, c *Config) { c.EventInterval = 2 * time.Millisecond }

func enter(t *testing.T, r *Router, room, user string, presence bool) (*PresenceConn, *eventSink) {
	t.Helper()
	sink := &eventSink{}
	c, err := r.Enter(EnterRequest{Room: room, User: user, Presence: presence, Sink: sink})
	if err != nil {
		t.Fatalf("Enter(%s, %s): %v", room, user, err)
	}
	return c, sink
}

func presenceOf(t *testing.T, r *Router, room string) []Member {
	t.Helper()
	ms, err := r.Presence(context.Background(), room)
	if err != nil {
		t.Fatalf("Presence(%s): %v", room, err)
	}
	return ms
}

func TestPresenceJoinLeaveGrace(t *testing.T) {
	e := newEnv(t, fastEvents)
	r := e.r
	_, annSink := enter(t, r, "r", "ann", true)
	bob, _ := enter(t, r, "r", "bob", false)
	waitCond(t, "ann sees bob join", func() bool { return annSink.has(EventJoin, "bob", 0) })
	if got, want := presenceOf(t, r, "r"), []Member{{"ann", 1}, {"bob", 1}}; !slices.Equal(got, want) {
		t.Fatalf("members = %v, want %v", got, want)
	}

	// bob's connection drops and comes back within the grace period: no
	// leave, no second join.
	bob.Leave(false)
	e.clock.Advance(5 * time.Second)
	bob2, _ := enter(t, r, "r", "bob", false)
	e.clock.Advance(20 * time.Second) // the dropped one's grace ends
	cy, _ := enter(t, r, "r", "cy", false)
	cy.Leave(true)
	_, marker := enter(t, r, "r", "dan", true)
	waitCond(t, "a flush after the grace period", func() bool { return annSink.has(EventJoin, "dan", 0) })
	_ = marker
	for _, ev := range annSink.all() {
		if ev.User == "bob" && ev.Kind != EventJoin || ev.User == "cy" {
			t.Fatalf("ann got %+v; a reconnect within grace (and a join and leave within one interval) must show nothing", ev)
		}
	}
	if got, want := presenceOf(t, r, "r"), []Member{{"ann", 1}, {"bob", 1}, {"dan", 1}}; !slices.Equal(got, want) {
		t.Fatalf("members = %v, want %v", got, want)
	}

	// A drop without reconnect leaves after the grace period.
	bob2.Leave(false)
	if got := presenceOf(t, r, "r"); len(got) != 3 {
		t.Fatalf("members during grace = %v, want bob still there", got)
	}
	e.clock.Advance(16 * time.Second)
	waitCond(t, "ann sees bob leave", func() bool { return annSink.has(EventLeave, "bob", 0) })
	if got, want := presenceOf(t, r, "r"), []Member{{"ann", 1}, {"dan", 1}}; !slices.Equal(got, want) {
		t.Fatalf("members = %v, want %v", got, want)
	}
}

func TestReceiptsToPublisherAndWatchers(t *testing.T) {
	e := newEnv(t, fastEvents)
	r := e.r
	ctx := context.Background()
	_, pubSink := enter(t, r, "r", "pub", false)
	_, watchSink := enter(t, r, "r", "watcher", true)
	_, otherSink := enter(t, r, "r", "other", false)
	for range 3 {
		if _, err := r.Publish(ctx, PublishRequest{Room: "r", From: "pub", Data: []byte(`1`)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Receipt(ctx, ReceiptRequest{Room: "r", User: "ann", Seq: 3}); err != nil {
		t.Fatalf("Receipt: %v", err)
	}
	if err := r.Receipt(ctx, ReceiptRequest{Room: "r", User: "ann", Seq: 2, Read: true}); err != nil {
		t.Fatalf("Receipt: %v", err)
	}
	waitCond(t, "publisher gets the read receipt", func() bool { return pubSink.has(EventRead, "ann", 2) })
	waitCond(t, "publisher gets the delivered receipt", func() bool { return pubSink.has(EventDelivered, "ann", 3) })
	waitCond(t, "watcher gets the read receipt", func() bool { return watchSink.has(EventRead, "ann", 2) })
	// A seq beyond the head, and one not beyond the position, change nothing.
	for _, req := range []ReceiptRequest{{Room: "r", User: "ann", Seq: 9, Read: true}, {Room: "r", User: "ann", Seq: 1, Read: true}} {
		if err := r.Receipt(ctx, req); err != nil {
			t.Fatalf("Receipt(%+v): %v", req, err)
		}
	}
	// The watcher's join of a marker user comes after anything pending.
	enter(t, r, "r", "marker", false)
	waitCond(t, "marker join", func() bool { return watchSink.has(EventJoin, "marker", 0) })
	if n := len(pubSink.all()); n != 2 {
		t.Fatalf("publisher got %d events (%+v), want 2", n, pubSink.all())
	}
	if evs := otherSink.all(); len(evs) != 0 {
		t.Fatalf("a connection without presence that published nothing got %+v", evs)
	}

	if got := counterValue(t, r.ev.m.receipts); got != 2 {
		t.Errorf("arena_router_receipts_total = %v, want 2 (the two advances)", got)
	}
	waitCond(t, "positions stored", func() bool { return counterValue(t, r.ev.m.stored) >= 1 })
	rooms, err := r.UserRooms(ctx, "ann")
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms) != 1 || rooms[0].Read.Seq != 2 || rooms[0].Head.Seq != 3 || rooms[0].Unread != 1 || rooms[0].Delivered.Seq != 3 {
		t.Fatalf("UserRooms = %+v", rooms)
	}
}

func TestReadPositionsSurviveRestart(t *testing.T) {
	e := newEnv(t, fastEvents)
	ctx := context.Background()
	e.publishN("a", 5)
	e.publishN("b", 2)
	for _, req := range []ReceiptRequest{{Room: "a", User: "ann", Seq: 4, Read: true}, {Room: "b", User: "ann", Seq: 2, Read: true}} {
		if err := e.r.Receipt(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	e.restart()        // Close stores what the last flush had not
	e.publishN("a", 3) // arrive while ann is offline
	rooms, err := e.r.UserRooms(ctx, "ann")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		room       string
		read, head uint64
		unread     uint64
	}
	var got []row
	for _, u := range rooms {
		got = append(got, row{u.Room, u.Read.Seq, u.Head.Seq, u.Unread})
	}
	want := []row{{"a", 4, 8, 4}, {"b", 2, 2, 0}}
	if !slices.Equal(got, want) {
		t.Fatalf("UserRooms after restart = %+v, want %+v", got, want)
	}
	if rooms, err := e.r.UserRooms(ctx, "nobody"); err != nil || len(rooms) != 0 {
		t.Fatalf("UserRooms(nobody) = %+v, %v", rooms, err)
	}
}

// TestGraceTimerSynctest runs the event loop on a fake clock: the leave
// comes exactly once the grace period (and one interval) has passed.
func TestGraceTimerSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, err := wal.Open(wal.Config{Dir: t.TempDir(), Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
		if err != nil {
			t.Fatal(err)
		}
		r, err := New(Config{Log: log, PresenceGrace: 10 * time.Second, EventInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = r.Close()
			_ = log.Close()
		}()
		_, watch := enter(t, r, "r", "ann", true)
		bob, _ := enter(t, r, "r", "bob", false)
		time.Sleep(150 * time.Millisecond)
		synctest.Wait()
		if !watch.has(EventJoin, "bob", 0) {
			t.Fatalf("no join after one interval: %+v", watch.all())
		}
		bob.Leave(false)
		time.Sleep(9900 * time.Millisecond)
		synctest.Wait()
		if watch.has(EventLeave, "bob", 0) {
			t.Fatal("bob left before the grace period ended")
		}
		time.Sleep(300 * time.Millisecond)
		synctest.Wait()
		if !watch.has(EventLeave, "bob", 0) {
			t.Fatal("bob did not leave once the grace period ended")
		}
	})
}
