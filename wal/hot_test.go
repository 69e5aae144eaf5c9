package wal

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// markHotWait marks room hot in epoch and waits for durable.
func markHotWait(t *testing.T, l *Log, room string, epoch uint64) {
	t.Helper()
	done := make(chan error, 1)
	if err := l.MarkHot(room, epoch, func(err error) { done <- err }); err != nil {
		t.Fatalf("MarkHot %s: %v", room, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("MarkHot %s durable: %v", room, err)
	}
}

// markColdWait marks room cold and waits for durable.
func markColdWait(t *testing.T, l *Log, room string) {
	t.Helper()
	done := make(chan error, 1)
	if err := l.MarkCold(room, func(err error) { done <- err }); err != nil {
		t.Fatalf("MarkCold %s: %v", room, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("MarkCold %s durable: %v", room, err)
	}
}

// hotRooms returns Rooms() as room -> Hot.
func hotRooms(t *testing.T, l *Log) map[string]bool {
	t.Helper()
	states, err := l.Rooms()
	if err != nil {
		t.Fatalf("Rooms: %v", err)
	}
	out := make(map[string]bool, len(states))
	for _, s := range states {
		out[s.Room] = s.Hot
	}
	return out
}

func checkHot(t *testing.T, l *Log, want map[string]bool) {
	t.Helper()
	got := hotRooms(t, l)
	if len(got) != len(want) {
		t.Fatalf("Rooms() lists %v, want %v", got, want)
	}
	for room, hot := range want {
		if h, ok := got[room]; !ok || h != hot {
			t.Fatalf("Rooms() hot = %v, want %v", got, want)
		}
	}
}

// TestHotMarks checks that MarkHot and MarkCold show in Rooms() for the
// right rooms only, including rooms whose names prefix each other and
// marks of rooms that have no room key.
func TestHotMarks(t *testing.T) {
	l := openLog(t, testConfig(t))
	for _, room := range []string{"a", "a/b", "ab", "b"} {
		setEpochWait(t, l, room, 5)
	}
	appendWait(t, l, rec("a", 5, 1, 1, ""))
	checkHot(t, l, map[string]bool{"a": false, "a/b": false, "ab": false, "b": false})

	markHotWait(t, l, "a/b", 5)
	markHotWait(t, l, "b", 5)
	markHotWait(t, l, "0", 5) // no room key, sorts before every room
	markHotWait(t, l, "z", 5) // no room key, sorts after every room
	checkHot(t, l, map[string]bool{"a": false, "a/b": true, "ab": false, "b": true})

	markColdWait(t, l, "a/b")
	checkHot(t, l, map[string]bool{"a": false, "a/b": false, "ab": false, "b": true})

	// Cold rooms, marked or never marked, may be marked cold again.
	markColdWait(t, l, "a/b")
	markColdWait(t, l, "ab")
	markColdWait(t, l, "b")
	checkHot(t, l, map[string]bool{"a": false, "a/b": false, "ab": false, "b": false})
}

// TestHotMarkStale checks that a mark counts only in the epoch it was
// made in.
func TestHotMarkStale(t *testing.T) {
	l := openLog(t, testConfig(t))
	setEpochWait(t, l, "r", 1)
	markHotWait(t, l, "r", 1)
	checkHot(t, l, map[string]bool{"r": true})
	setEpochWait(t, l, "r", 2)
	checkHot(t, l, map[string]bool{"r": false})
	markHotWait(t, l, "r", 2)
	checkHot(t, l, map[string]bool{"r": true})
	markHotWait(t, l, "r", 3) // an epoch the room is not in yet
	checkHot(t, l, map[string]bool{"r": false})
}

// TestHotMarkSurvivesCrash checks that a mark whose durable callback ran
// survives a power loss together with the appends made while hot, and so
// does its removal.
func TestHotMarkSurvivesCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	cfg := testConfig(t)
	cfg.Dir, cfg.FS = "/arena/wal", fs
	l, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	setEpochWait(t, l, "r", 7)
	setEpochWait(t, l, "s", 7)
	markHotWait(t, l, "r", 7)
	// Only what was synced: each clone is a power loss at that point.
	marked := fs.CrashClone(vfs.CrashCloneCfg{})
	appendAll(t, l, []*Record{rec("r", 7, 1, 1, ""), rec("r", 7, 2, 2, ""), rec("r", 7, 3, 3, "")})
	hot := fs.CrashClone(vfs.CrashCloneCfg{})
	markColdWait(t, l, "r")
	cold := fs.CrashClone(vfs.CrashCloneCfg{})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		fs   *vfs.MemFS
		head uint64
		hot  bool
	}{
		{"crash after MarkHot", marked, 0, true},
		{"crash while hot", hot, 3, true},
		{"crash after MarkCold", cold, 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := cfg
			cfg.FS = tt.fs
			l := openLog(t, cfg)
			states, err := l.Rooms()
			if err != nil {
				t.Fatal(err)
			}
			want := []RoomState{
				{Room: "r", Epoch: 7, First: min(1, tt.head), Head: tt.head, Hot: tt.hot},
				{Room: "s", Epoch: 7},
			}
			if len(states) != len(want) || states[0] != want[0] || states[1] != want[1] {
				t.Fatalf("Rooms() = %+v, want %+v", states, want)
			}
		})
	}
}

// TestHotMarkOrder checks that the durable callbacks of marks run in queue
// order with those of appends, across many groups, and that the last mark
// of each room wins.
func TestHotMarkOrder(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBatch = 8 // many groups
	l := openLog(t, cfg)
	const rooms, n = 3, 600
	for r := range rooms {
		setEpochWait(t, l, roomName(r), 1)
	}
	var (
		durable  orderLog
		failures atomic.Int32
		nextSeq  [rooms]uint64
		hot      = map[string]bool{}
	)
	for id := range n {
		cb := func(err error) {
			if err != nil {
				failures.Add(1)
			}
			durable.add(id)
		}
		r := id % rooms
		room := roomName(r)
		var err error
		switch id % 4 {
		case 0:
			err = l.MarkHot(room, 1, cb)
			hot[room] = true
		case 1, 2:
			nextSeq[r]++
			err = l.Append(rec(room, 1, nextSeq[r], 1, ""), nil, cb)
		case 3:
			err = l.MarkCold(room, cb)
			hot[room] = false
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all durable callbacks", func() bool { return len(durable.snapshot()) == n })
	if f := failures.Load(); f != 0 {
		t.Fatalf("%d durable callbacks got an error", f)
	}
	for i, id := range durable.snapshot() {
		if id != i {
			t.Fatalf("durable callback %d was for op %d: out of order", i, id)
		}
	}
	checkHot(t, l, hot)
}

// TestHotMarkArguments checks that MarkHot and MarkCold reject bad rooms
// and calls after Close, and that no callback runs for them.
func TestHotMarkArguments(t *testing.T) {
	l, err := Open(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	var called atomic.Int32
	cb := func(error) { called.Add(1) }
	for _, room := range []string{"", "a\x00b", strings.Repeat("r", MaxRoomLen+1)} {
		if err := l.MarkHot(room, 1, cb); !errors.Is(err, ErrInvalid) {
			t.Errorf("MarkHot(%.8q) = %v, want ErrInvalid", room, err)
		}
		if err := l.MarkCold(room, cb); !errors.Is(err, ErrInvalid) {
			t.Errorf("MarkCold(%.8q) = %v, want ErrInvalid", room, err)
		}
	}
	// Close runs every queued callback, so a wrongly queued op shows.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.MarkHot("a", 1, cb); !errors.Is(err, ErrClosed) {
		t.Errorf("MarkHot after Close = %v, want ErrClosed", err)
	}
	if err := l.MarkCold("a", cb); !errors.Is(err, ErrClosed) {
		t.Errorf("MarkCold after Close = %v, want ErrClosed", err)
	}
	if n := called.Load(); n != 0 {
		t.Fatalf("%d callbacks ran for rejected calls", n)
	}
}

// TestHotMarkCorrupt checks that Rooms() reports a damaged hot key or
// value as corruption.
func TestHotMarkCorrupt(t *testing.T) {
	tests := []struct {
		name       string
		key, value []byte
	}{
		{"short value", appendHotKey(nil, "r"), []byte{0, 0, 7}},
		{"long value", appendHotKey(nil, "r"), append(hotValue(1), 0)},
		{"key without room", []byte{kindHot}, hotValue(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := openLog(t, testConfig(t))
			setEpochWait(t, l, "r", 1)
			if err := l.db.Set(tt.key, tt.value, pebble.Sync); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Rooms(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Rooms() = %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestHotMarksSurviveRetention checks that a sweep deleting messages,
// whole old epochs and idempotency entries leaves every hot key alone,
// stale ones included.
func TestHotMarksSurviveRetention(t *testing.T) {
	cfg, clk := clockedConfig(t, time.Minute)
	cfg.Retention = Retention{MaxCount: 2, MaxAge: time.Hour}
	l := openLog(t, cfg)
	now := clk.Now().UnixMilli()
	old := now - 2*3_600_000

	setEpochWait(t, l, "r", 1)
	markHotWait(t, l, "r", 1)
	for seq := uint64(1); seq <= 5; seq++ {
		appendWait(t, l, rec("r", 1, seq, now, "k-"+itoa(seq)))
	}
	// s's epoch 1 is old and goes entirely; its mark goes stale but stays.
	setEpochWait(t, l, "s", 1)
	markHotWait(t, l, "s", 1)
	appendWait(t, l, rec("s", 1, 1, old, "k-old"))
	setEpochWait(t, l, "s", 2)

	clk.Add(time.Minute + time.Millisecond) // the idempotency keys expire
	if err := l.sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	if first, err := l.First("r", 1); err != nil || first != 4 {
		t.Fatalf("r first = %d, %v; want 4 (the sweep did not run)", first, err)
	}
	if first, err := l.First("s", 1); err != nil || first != 0 {
		t.Fatalf("s epoch 1 first = %d, %v; want it deleted", first, err)
	}
	if n := countKeys(t, l.db, []byte{kindDedup}, []byte{kindDedup + 1}); n != 0 {
		t.Fatalf("%d idempotency entries left, want 0 (the dedup sweep did not run)", n)
	}
	if n := countKeys(t, l.db, []byte{kindHot}, []byte{kindHot + 1}); n != 2 {
		t.Fatalf("%d hot keys left, want 2", n)
	}
	checkHot(t, l, map[string]bool{"r": true, "s": false})
	markHotWait(t, l, "s", 2)
	checkHot(t, l, map[string]bool{"r": true, "s": true})
}
