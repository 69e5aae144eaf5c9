package router

import (
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/arena-mesh/arena/wal"
	"github.com/arena-mesh/arena/wal/waltest"
)

// testHotIdle turns early delivery on in the tests of hot rooms.
const testHotIdle = 10 * time.Second

// publishHeld publishes data to room asynchronously with the wal's next
// fsync held, and returns once that fsync has started: the message is
// applied (or queued behind the held group) but not durable.
func publishHeld(t *testing.T, e *env, gate *waltest.SyncGate, room, data string) *asyncResult {
	t.Helper()
	gate.Hold()
	res := newAsyncResult()
	if err := e.r.PublishAsync(t.Context(), PublishRequest{Room: room, From: "ann", Data: []byte(data)}, res.done); err != nil {
		t.Fatalf("PublishAsync: %v", err)
	}
	<-gate.Held()
	return res
}

// roomState returns room's state in the wal.
func roomState(t *testing.T, log *wal.Log, room string) wal.RoomState {
	t.Helper()
	states, err := log.Rooms()
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range states {
		if st.Room == room {
			return st
		}
	}
	t.Fatalf("room %q not in the wal", room)
	return wal.RoomState{}
}

// TestColdRoomWaitsForFsyncHotRoomDoesNot: a room's first message waits
// for its fsync (with the room's hot mark); once the mark is durable, the
// next messages reach subscribers while their fsync is still held, and
// their publishers are acked only after it. After HotIdle without a
// publish the room is cold again, in the wal too, and waits again.
func TestColdRoomWaitsForFsyncHotRoomDoesNot(t *testing.T) {
	gate := waltest.NewSyncGate()
	e := newEnv(t, func(w *wal.Config, c *Config) { w.FS = gate.FS(); c.HotIdle = testHotIdle })
	t.Cleanup(gate.Release)
	const room = "hot"
	res, sink := e.subscribe(room, nil) // creates the room: cold
	epoch := res.Head.Epoch

	// Cold: nothing before the fsync.
	first := publishHeld(t, e, gate, room, `"one"`)
	if early, err := res.Sub.Pull(nil, 10); err != nil || len(early) != 0 {
		t.Fatalf("cold room: pulled %d messages (err %v) with the fsync held, want 0", len(early), err)
	}
	gate.Release()
	msgs, err := pullUntil(res.Sub, sink, 1)
	if err != nil {
		t.Fatal(err)
	}
	checkSeqs(t, msgs, epoch, 1, 1)
	if ack, err := first.wait(t); err != nil || ack.Seq != 1 {
		t.Fatalf("first ack %+v, %v", ack, err)
	}
	if !roomState(t, e.log, room).Hot {
		t.Fatal("the wal has no hot mark after the room's first message")
	}
	if got := gaugeValue(t, e.r.metrics.hotRooms); got != 1 {
		t.Fatalf("hot rooms = %v after the first message, want 1", got)
	}

	// Hot: delivered with the fsync held, acked after it.
	second := publishHeld(t, e, gate, room, `"two"`)
	msgs, err = pullUntil(res.Sub, sink, 2)
	if err != nil {
		t.Fatalf("hot room: message not delivered while its fsync is held: %v", err)
	}
	checkSeqs(t, msgs, epoch, 2, 2)
	if c := second.calls.Load(); c != 0 {
		t.Fatalf("publisher acked %d times before the fsync", c)
	}
	gate.Release()
	if ack, err := second.wait(t); err != nil || ack.Seq != 2 {
		t.Fatalf("second ack %+v, %v", ack, err)
	}

	// Idle for HotIdle: cold again.
	if n := e.r.coolIdle(e.clock.Now()); n != 0 {
		t.Fatalf("coolIdle marked %d rooms cold right after a publish", n)
	}
	e.clock.Advance(e.r.cfg.HotIdle)
	if n := e.r.coolIdle(e.clock.Now()); n != 1 {
		t.Fatalf("coolIdle marked %d rooms cold after HotIdle, want 1", n)
	}
	waitFor(t, "the cold mark to reach the wal", func() bool { return !roomState(t, e.log, room).Hot })
	if got := gaugeValue(t, e.r.metrics.hotRooms); got != 0 {
		t.Fatalf("hot rooms = %v after HotIdle, want 0", got)
	}
	third := publishHeld(t, e, gate, room, `"three"`)
	if early, err := res.Sub.Pull(nil, 10); err != nil || len(early) != 0 {
		t.Fatalf("cooled room: pulled %d messages (err %v) with the fsync held, want 0", len(early), err)
	}
	gate.Release()
	if _, err := pullUntil(res.Sub, sink, 3); err != nil {
		t.Fatal(err)
	}
	if ack, err := third.wait(t); err != nil || ack.Seq != 3 {
		t.Fatalf("third ack %+v, %v", ack, err)
	}
}

// TestEarlyDeliveryOffByDefault: without HotIdle, a room that keeps
// publishing never delivers before the fsync and never writes a hot mark.
func TestEarlyDeliveryOffByDefault(t *testing.T) {
	gate := waltest.NewSyncGate()
	e := newEnv(t, func(w *wal.Config, _ *Config) { w.FS = gate.FS() })
	t.Cleanup(gate.Release)
	const room = "always-durable"
	res, sink := e.subscribe(room, nil)
	for i := 1; i <= 3; i++ {
		pub := publishHeld(t, e, gate, room, fmt.Sprintf(`"m%d"`, i))
		if early, err := res.Sub.Pull(nil, 10); err != nil || len(early) != 0 {
			t.Fatalf("message %d: pulled %d messages (err %v) with the fsync held, want 0", i, len(early), err)
		}
		gate.Release()
		if _, err := pullUntil(res.Sub, sink, uint64(i)); err != nil {
			t.Fatal(err)
		}
		if ack, err := pub.wait(t); err != nil || ack.Seq != uint64(i) {
			t.Fatalf("ack %d: %+v, %v", i, ack, err)
		}
	}
	if roomState(t, e.log, room).Hot {
		t.Fatal("a hot mark was written with early delivery off")
	}
}

// TestCleanCloseClearsHotMarks: closing the router marks its rooms cold,
// so a clean restart continues every room in its epoch.
func TestCleanCloseClearsHotMarks(t *testing.T) {
	e := newEnv(t, func(_ *wal.Config, c *Config) { c.HotIdle = testHotIdle })
	ack := e.publish("room", "")
	if !roomState(t, e.log, "room").Hot {
		t.Fatal("no hot mark after a publish")
	}
	e.restart()
	if st := roomState(t, e.log, "room"); st.Hot || st.Epoch != ack.Epoch || st.Head != ack.Seq {
		t.Fatalf("after a clean restart: %+v, want epoch %d head %d, not hot", st, ack.Epoch, ack.Seq)
	}
	res, _ := e.subscribe("room", &Position{Epoch: ack.Epoch, Seq: ack.Seq})
	if res.Reset || res.Head != (Position{Epoch: ack.Epoch, Seq: ack.Seq}) {
		t.Fatalf("resume after a clean restart: %+v", res)
	}
}

// TestUncleanStopRestartsHotRoom crashes the node (a crash clone of its
// filesystem, keeping only what was fsynced) while a hot room's message
// was delivered but not yet durable. After the restart that room
// continues in a new epoch, with its durable messages copied into it at
// their seqs, so the lost message's position is never given to another
// one; a room that had cooled keeps its epoch. The ring holds two
// messages, so the history beyond it comes from the copies in the wal;
// memory holds two keys, so the first key's retry is answered from the
// wal's key index, written in the old epoch.
func TestUncleanStopRestartsHotRoom(t *testing.T) {
	mem := vfs.NewCrashableMem()
	gate := waltest.NewSyncGateOver(mem)
	e := newEnv(t, func(w *wal.Config, c *Config) {
		w.FS = gate.FS()
		c.RingSize, c.DedupMemory = 2, 2
		c.HotIdle = testHotIdle
	})
	t.Cleanup(gate.Release)

	// A room that cools down before the crash.
	quiet := e.publish("quiet", "")
	e.publish("quiet", "")
	e.clock.Advance(e.r.cfg.HotIdle)
	e.r.coolIdle(e.clock.Now())
	waitFor(t, "the quiet room's cold mark", func() bool { return !roomState(t, e.log, "quiet").Hot })

	// A hot room with three durable messages and a fourth delivered only.
	res, sink := e.subscribe("hot", nil)
	for i := range 3 {
		ack, err := e.r.Publish(t.Context(), PublishRequest{Room: "hot", From: "ann", Key: fmt.Sprintf("k%d", i+1), Data: fmt.Appendf(nil, `"durable %d"`, i+1)})
		if err != nil || ack.Seq != uint64(i+1) {
			t.Fatalf("publish %d: %+v, %v", i+1, ack, err)
		}
	}
	oldEpoch := res.Head.Epoch
	publishHeld(t, e, gate, "hot", `"lost"`)
	msgs, err := pullUntil(res.Sub, sink, 4)
	if err != nil {
		t.Fatal(err)
	}
	if m := msgs[len(msgs)-1]; m.Seq != 4 || string(m.Data) != `"lost"` {
		t.Fatalf("last delivered %d %s, want the held message at seq 4", m.Seq, m.Data)
	}

	// Crash: only what was fsynced survives.
	crashed := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	gate.Release()

	wcfg := e.wcfg
	wcfg.FS = crashed
	log, err := wal.Open(wcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = log.Close() })
	if st := roomState(t, log, "hot"); !st.Hot || st.Head != 3 {
		t.Fatalf("hot room after the crash: %+v, want hot with head 3", st)
	}
	rcfg := e.rcfg
	rcfg.Log = log
	r, err := New(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })

	// The hot room: a new epoch; resuming from the old one is a reset.
	sub, err := r.Subscribe(t.Context(), SubscribeRequest{Room: "hot", Since: &Position{Epoch: oldEpoch, Seq: 4}, Sink: newChanSink()})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Sub.Close()
	newEpoch := sub.Head.Epoch
	if newEpoch == oldEpoch || sub.Head.Seq != 3 || !sub.Reset || sub.Oldest != (Position{Epoch: newEpoch, Seq: 1}) {
		t.Fatalf("resume of the hot room: head %+v reset %v oldest %+v; want a new epoch at seq 3, reset to its seq 1", sub.Head, sub.Reset, sub.Oldest)
	}
	// Its durable messages are in the new epoch at their seqs.
	epoch, hist, err := r.History(t.Context(), "hot", HistoryQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	checkSeqs(t, hist, newEpoch, 1, 3)
	for i, m := range hist {
		if want := fmt.Sprintf(`"durable %d"`, i+1); epoch != newEpoch || string(m.Data) != want {
			t.Fatalf("history seq %d: epoch %d data %s, want epoch %d data %s", m.Seq, epoch, m.Data, newEpoch, want)
		}
	}
	// The next message takes seq 4 of the new epoch: another position
	// than the lost one's.
	ack, err := r.Publish(t.Context(), PublishRequest{Room: "hot", From: "ann", Data: []byte(`"after"`)})
	if err != nil || ack.Epoch != newEpoch || ack.Seq != 4 {
		t.Fatalf("publish after the restart: %+v, %v; want epoch %d seq 4", ack, err, newEpoch)
	}
	// A retried key of a durable message is still a duplicate.
	dup, err := r.Publish(t.Context(), PublishRequest{Room: "hot", From: "ann", Key: "k2", Data: []byte(`"again"`)})
	if err != nil || !dup.Dup || dup.Seq != 2 || dup.Epoch != newEpoch {
		t.Fatalf("retry of key k2 after the restart: %+v, %v; want the duplicate of seq 2, copied into epoch %d", dup, err, newEpoch)
	}
	if _, found, err := log.LookupKey("hot", "k1"); err != nil || !found {
		t.Fatalf("k1 in the wal's index: %v, %v; want indexed (evicted from memory before the crash)", found, err)
	}
	dup, err = r.Publish(t.Context(), PublishRequest{Room: "hot", From: "ann", Key: "k1", Data: []byte(`"again"`)})
	if err != nil || !dup.Dup || dup.Seq != 1 || dup.Epoch != newEpoch {
		t.Fatalf("retry of key k1 after the restart: %+v, %v; want the duplicate of seq 1, copied into epoch %d", dup, err, newEpoch)
	}
	if got := counterValue(t, r.metrics.uncleanRestarts); got != 1 {
		t.Fatalf("rooms restarted unclean = %v, want 1", got)
	}

	// The quiet room kept its epoch.
	q, err := r.Subscribe(t.Context(), SubscribeRequest{Room: "quiet", Since: &Position{Epoch: quiet.Epoch, Seq: 2}, Sink: newChanSink()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Sub.Close()
	if q.Reset || q.Head != (Position{Epoch: quiet.Epoch, Seq: 2}) {
		t.Fatalf("resume of the quiet room: %+v, want its epoch %d at seq 2 without reset", q, quiet.Epoch)
	}
}

// TestDormantRoomHandedAwayIsMarked: a dormant room that moves is marked
// handed away in the wal before its handoff, so that after a restart the
// node does not continue it from its own copy in the same epoch.
func TestDormantRoomHandedAwayIsMarked(t *testing.T) {
	e := newEnv(t, nil)
	ack := e.publish("away", "")
	stays := e.publish("stays", "")
	e.clock.Advance(DefaultDedupWindow)
	if n := e.r.evictIdle(e.clock.Now()); n != 2 {
		t.Fatalf("evicted %d rooms, want 2", n)
	}
	e.r.mu.RLock()
	d := e.r.dormant["away"]
	e.r.mu.RUnlock()
	if err := e.r.markDormantHandedAway(t.Context(), []movedRoom{{name: "away", to: "elsewhere", d: d}}); err != nil {
		t.Fatal(err)
	}
	if st := roomState(t, e.log, "away"); !st.Hot || st.Epoch != ack.Epoch {
		t.Fatalf("moved dormant room in the wal: %+v, want marked in epoch %d", st, ack.Epoch)
	}
	if roomState(t, e.log, "stays").Hot {
		t.Fatal("a room that did not move is marked")
	}
	e.restart()
	if next := e.publish("away", ""); next.Epoch == ack.Epoch || next.Seq != 2 {
		t.Fatalf("after a restart: %+v, want seq 2 in a new epoch", next)
	}
	if next := e.publish("stays", ""); next.Epoch != stays.Epoch || next.Seq != 2 {
		t.Fatalf("the room that stayed: %+v, want seq 2 in epoch %d", next, stays.Epoch)
	}
}
