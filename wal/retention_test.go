package wal

import (
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// TestSweeperRunsOnItsOwn checks the sweeper goroutine applies retention
// every SweepInterval and counts what it deleted.
func TestSweeperRunsOnItsOwn(t *testing.T) {
	cfg, clk := clockedConfig(t, 0)
	cfg.Retention = Retention{MaxCount: 3, MaxAge: time.Hour}
	cfg.SweepInterval = time.Millisecond
	l := openLog(t, cfg)
	setEpochWait(t, l, "r", 1)
	now := clk.Now().UnixMilli()
	for seq := uint64(1); seq <= 10; seq++ {
		appendWait(t, l, rec("r", 1, seq, now, ""))
	}
	waitFor(t, "count retention", func() bool {
		first, err := l.First("r", 1)
		return err == nil && first == 8
	})
	waitFor(t, "retention metric", func() bool {
		return metricValue(t, l.metrics.retentionDeleted.WithLabelValues("message")) == 7
	})
}

// TestDedupSweepDeletes checks that the key index's expired buckets are
// gone from Pebble after a sweep, not just hidden, and that a bucket
// still holding a key inside the window stays.
func TestDedupSweepDeletes(t *testing.T) {
	cfg, clk := clockedConfig(t, time.Minute) // buckets of 15 s
	l := openLog(t, cfg)
	now := clk.Now().UnixMilli()
	const n = 3*sweepChunk + 10
	var recs []*Record
	for seq := uint64(1); seq <= n; seq++ {
		ts := now
		if seq == n {
			ts = now + 60_000 // still inside the window after the clock moves
		}
		recs = append(recs, rec("r", 1, seq, ts, "key-"+itoa(seq)))
	}
	appendAll(t, l, recs)
	keys := make([]KeyUse, 0, n)
	for _, r := range recs {
		keys = append(keys, KeyUse{Key: r.Key, DedupEntry: DedupEntry{Epoch: r.Epoch, Seq: r.Seq, TS: r.TS}})
	}
	indexWait(t, l, "r", keys...)
	// The old keys' bucket ends 15 s after now: one window and one bucket.
	clk.Add(time.Minute + 15*time.Second)
	if err := l.sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, l.metrics.retentionDeleted.WithLabelValues("dedup_bucket")); got != 1 {
		t.Fatalf("key index buckets deleted = %v, want 1", got)
	}
	tests := []struct {
		name  string
		lower []byte
		upper []byte
		want  int
	}{
		{"key index entries", []byte{kindBucket}, []byte{kindBucket + 1}, 1},
		{"messages", []byte{kindMessage}, []byte{kindMessage + 1}, n},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := countKeys(t, l.db, tt.lower, tt.upper); got != tt.want {
				t.Fatalf("%d keys left, want %d", got, tt.want)
			}
		})
	}
	if got := len(*l.buckets.Load()); got != 1 {
		t.Fatalf("the log lists %d buckets, want 1", got)
	}
	if _, found, err := l.LookupKey("r", "key-"+itoa(n)); err != nil || !found {
		t.Fatalf("fresh key: found %v, %v", found, err)
	}
	if _, found, err := l.LookupKey("r", "key-1"); err != nil || found {
		t.Fatalf("expired key: found %v, %v", found, err)
	}
}

func countKeys(t *testing.T, db *pebble.DB, lower, upper []byte) int {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		t.Fatal(err)
	}
	return n
}

func itoa(u uint64) string {
	if u == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for u > 0 {
		i--
		b[i] = byte('0' + u%10)
		u /= 10
	}
	return string(b[i:])
}

// TestRetentionManyRooms checks retention over many rooms with several
// epochs, in one sweep, against a model.
func TestRetentionManyRooms(t *testing.T) {
	cfg, clk := clockedConfig(t, 0)
	cfg.Retention = Retention{MaxCount: 4, MaxAge: time.Hour}
	l := openLog(t, cfg)
	now := clk.Now().UnixMilli()
	const rooms = 300
	var recs []*Record
	for r := range rooms {
		room := "room/" + itoa(uint64(r))
		// Epoch 1 is old; epoch 2 is current with r%7 messages.
		recs = append(recs, rec(room, 1, 1, now-2*3_600_000, ""), rec(room, 1, 2, now-2*3_600_000, ""))
		for seq := uint64(1); seq <= uint64(r%7); seq++ {
			recs = append(recs, rec(room, 2, seq, now, ""))
		}
		if err := l.SetEpoch(room, 2, nil); err != nil {
			t.Fatal(err)
		}
	}
	appendAll(t, l, recs)
	if err := l.sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	states, err := l.Rooms()
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != rooms {
		t.Fatalf("%d rooms, want %d", len(states), rooms)
	}
	for _, s := range states {
		var r int
		for _, c := range s.Room[len("room/"):] {
			r = r*10 + int(c-'0')
		}
		held := uint64(r % 7)
		wantFirst, wantHead := uint64(0), held
		if held > 0 {
			wantFirst = 1
			if held > 4 {
				wantFirst = held - 3
			}
		}
		if s.Epoch != 2 || s.First != wantFirst || s.Head != wantHead {
			t.Fatalf("%+v, want epoch 2 first %d head %d", s, wantFirst, wantHead)
		}
		if first, err := l.First(s.Room, 1); err != nil || first != 0 {
			t.Fatalf("%s epoch 1 first = %d, %v; want it deleted", s.Room, first, err)
		}
	}
}
