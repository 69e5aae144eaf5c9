package router

import (
	"fmt"
	"testing"
	"time"
)

// TestEvictedFilter: a key is reported while its use is inside the window
// (no false negative, across generations), and nothing once the window of
// the newest evicted key has passed; old generations are dropped.
func TestEvictedFilter(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	const window = 10 * time.Minute
	f := evictedFilter{window: window}
	type added struct {
		key string
		use time.Time
	}
	var keys []added
	// Evictions every 7 s for three windows, each of a key used 5 s before.
	for now := t0; now.Before(t0.Add(3 * window)); now = now.Add(7 * time.Second) {
		k := added{key: fmt.Sprintf("k%d", len(keys)), use: now.Add(-5 * time.Second)}
		f.add(k.key, k.use, now, 10)
		keys = append(keys, k)
		for _, old := range keys {
			if now.Before(old.use.Add(window)) && !f.mayContain(old.key, now) {
				t.Fatalf("at %v: %s (used %v) is in the window but not reported", now.Sub(t0), old.key, old.use.Sub(t0))
			}
		}
		if len(f.gens) > 0 && !now.Before(f.gens[0].until) {
			t.Fatalf("at %v: a generation whose keys all left the window is kept", now.Sub(t0))
		}
	}
	last := keys[len(keys)-1]
	end := last.use.Add(window)
	if !f.mayContain(last.key, end.Add(-time.Millisecond)) {
		t.Fatal("the newest key is not reported just before its window ends")
	}
	if f.mayContain(last.key, end) || len(f.gens) != 0 {
		t.Fatal("keys reported, or generations kept, after the newest key's window ended")
	}
	never := 0
	for i := range 1000 {
		if f.mayContain(fmt.Sprintf("never-%d", i), end.Add(-time.Hour)) {
			never++
		}
	}
	if never > 50 {
		t.Fatalf("%d of 1000 keys never added reported present, want about 1%%", never)
	}
}

// TestEvictedFilterGrows: a room that evicts far more keys per window
// than the first generation was sized for keeps a low false-positive
// rate: generations grow instead of filling up.
func TestEvictedFilterGrows(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	f := evictedFilter{window: 10 * time.Minute}
	const n = 200_000
	for i := range n {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		f.add(fmt.Sprintf("key-%d", i), now, now, 10)
	}
	now := t0.Add(n * time.Millisecond)
	for _, i := range []int{0, 1, n / 2, n - 1} {
		if !f.mayContain(fmt.Sprintf("key-%d", i), now) {
			t.Fatalf("key-%d not reported", i)
		}
	}
	fp := 0
	for i := range 10_000 {
		if f.mayContain(fmt.Sprintf("other-%d", i), now) {
			fp++
		}
	}
	if fp > 200 {
		t.Fatalf("%d of 10,000 keys never added reported present, want well under 2%%", fp)
	}
	t.Logf("%d generations, %d false positives in 10,000", len(f.gens), fp)
}
