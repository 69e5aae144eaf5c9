package router

import (
	"testing"
	"time"

	"github.com/arena-mesh/arena/wal"
)

func TestHistory(t *testing.T) {
	const n = 30
	e := newEnv(t, func(_ *wal.Config, c *Config) { c.RingSize = 8 }) // the ring holds 23..30
	e.publishN("h", n)
	head, _ := e.r.Head("h")

	tests := []struct {
		name     string
		q        HistoryQuery
		from, to uint64 // want from..to; from > to: empty
	}{
		{name: "newest", q: HistoryQuery{Limit: 5}, from: 26, to: 30},
		{name: "newest more than the ring", q: HistoryQuery{Limit: 12}, from: 19, to: 30},
		{name: "default limit", q: HistoryQuery{}, from: 1, to: 30},
		{name: "after, from the wal", q: HistoryQuery{After: 10, Limit: 5}, from: 11, to: 15},
		{name: "after, from the ring", q: HistoryQuery{After: 24, Limit: 3}, from: 25, to: 27},
		{name: "after, up to the head", q: HistoryQuery{After: 28, Limit: 10}, from: 29, to: 30},
		{name: "after the head", q: HistoryQuery{After: 30, Limit: 10}, from: 1, to: 0},
		{name: "before, from the wal", q: HistoryQuery{Before: 10, Limit: 5}, from: 5, to: 9},
		{name: "before, from the ring", q: HistoryQuery{Before: 28, Limit: 3}, from: 25, to: 27},
		{name: "before, fewer than the limit", q: HistoryQuery{Before: 4, Limit: 10}, from: 1, to: 3},
		{name: "before the first", q: HistoryQuery{Before: 1, Limit: 10}, from: 1, to: 0},
		{name: "before beyond the head", q: HistoryQuery{Before: 100, Limit: 4}, from: 27, to: 30},
		{name: "limit capped", q: HistoryQuery{Limit: 5000}, from: 1, to: 30},
		{name: "from oldest", q: HistoryQuery{FromOldest: true, Limit: 5}, from: 1, to: 5},
		{name: "from oldest, all", q: HistoryQuery{FromOldest: true, Limit: 100}, from: 1, to: 30},
		{name: "from oldest wins over after and before", q: HistoryQuery{FromOldest: true, After: 20, Before: 25, Limit: 2}, from: 1, to: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			epoch, msgs, err := e.r.History(t.Context(), "h", tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if epoch != head.Epoch {
				t.Fatalf("epoch %d, want %d", epoch, head.Epoch)
			}
			checkSeqs(t, msgs, head.Epoch, tt.from, tt.to)
		})
	}

	t.Run("new room", func(t *testing.T) {
		epoch, msgs, err := e.r.History(t.Context(), "nothing-here", HistoryQuery{})
		if err != nil || epoch == 0 || len(msgs) != 0 {
			t.Fatalf("history of a new room: epoch %d, %d messages, %v", epoch, len(msgs), err)
		}
	})
}

func TestHistoryRange(t *testing.T) {
	tests := []struct {
		name        string
		q           HistoryQuery
		limit, head uint64
		from, to    uint64
		ok          bool
	}{
		{name: "empty room", limit: 50, head: 0},
		{name: "newest", limit: 3, head: 10, from: 8, to: 10, ok: true},
		{name: "after near max", q: HistoryQuery{After: 1<<64 - 2}, limit: 3, head: 1<<64 - 1, from: 1<<64 - 1, to: 1<<64 - 1, ok: true},
		{name: "before 1", q: HistoryQuery{Before: 1}, limit: 3, head: 10},
		{name: "after wins over before", q: HistoryQuery{After: 2, Before: 9}, limit: 2, head: 10, from: 3, to: 4, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, to, ok := historyRange(tt.q, tt.limit, tt.head)
			if ok != tt.ok || (ok && (from != tt.from || to != tt.to)) {
				t.Fatalf("historyRange = %d, %d, %v; want %d, %d, %v", from, to, ok, tt.from, tt.to, tt.ok)
			}
		})
	}
}

// TestHistoryFromOldestAfterRetention: once retention dropped a room's
// first messages, FromOldest starts at the oldest retained one, not at
// seq 1 (a query for seqs 1..limit would find nothing).
func TestHistoryFromOldestAfterRetention(t *testing.T) {
	const n, keep = 60, 20
	e := newEnv(t, func(w *wal.Config, c *Config) {
		c.RingSize = 8
		w.Retention.MaxCount = keep
		w.SweepInterval = 5 * time.Millisecond
	})
	e.publishN("old", n)
	head, _ := e.r.Head("old")
	waitFor(t, "retention sweep", func() bool {
		first, err := e.log.First("old", head.Epoch)
		return err == nil && first == n-keep+1
	})
	tests := []struct {
		name     string
		q        HistoryQuery
		from, to uint64
	}{
		{name: "first page", q: HistoryQuery{FromOldest: true, Limit: 5}, from: n - keep + 1, to: n - keep + 5},
		{name: "everything retained", q: HistoryQuery{FromOldest: true, Limit: 1000}, from: n - keep + 1, to: n},
		{name: "default limit", q: HistoryQuery{FromOldest: true}, from: n - keep + 1, to: n},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			epoch, msgs, err := e.r.History(t.Context(), "old", tt.q)
			if err != nil || epoch != head.Epoch {
				t.Fatalf("history: epoch %d, %v", epoch, err)
			}
			checkSeqs(t, msgs, head.Epoch, tt.from, tt.to)
		})
	}
}
