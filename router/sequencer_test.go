package router

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// seqStep is one input to the sequencer and what it must answer.
type seqStep struct {
	op   string        // check | next | undo | forget | evicted
	key  string        // the idempotency key
	at   time.Duration // since t0
	want keyState      // check: the answer
	seq  uint64        // next: the seq assigned; check keyDup: the origin seq; undo/forget: the argument
	// evicted: the keys takeEvicted must return, as "key@seq" joined by
	// commas ("" for none).
	evicted string
}

func TestSequencer(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	const window = 10 * time.Minute
	tests := []struct {
		name        string
		epoch, head uint64
		capacity    int
		lookupUntil time.Duration // since t0; 0: zero time (a brand new room)
		steps       []seqStep
	}{
		{
			name: "sequence continues from head", epoch: 7, head: 41, capacity: 10,
			steps: []seqStep{
				{op: "next", seq: 42},
				{op: "next", seq: 43},
			},
		},
		{
			name: "empty key is never deduplicated", epoch: 1, capacity: 10,
			steps: []seqStep{
				{op: "next", seq: 1},
				{op: "next", seq: 2},
				{op: "check", key: "", want: keyNew},
			},
		},
		{
			name: "key used twice is a duplicate", epoch: 1, capacity: 10,
			steps: []seqStep{
				{op: "check", key: "k", want: keyNew},
				{op: "next", key: "k", seq: 1},
				{op: "next", key: "other", seq: 2},
				{op: "check", key: "k", at: time.Minute, want: keyDup, seq: 1},
				{op: "check", key: "other", at: time.Minute, want: keyDup, seq: 2},
			},
		},
		{
			name: "key expires after the window", epoch: 1, capacity: 10,
			steps: []seqStep{
				{op: "next", key: "k", seq: 1},
				{op: "check", key: "k", at: window - time.Millisecond, want: keyDup, seq: 1},
				{op: "check", key: "k", at: window, want: keyNew},
				{op: "next", key: "k", at: window, seq: 2},
				{op: "check", key: "k", at: window + time.Second, want: keyDup, seq: 2},
			},
		},
		{
			name: "keys evicted by capacity, and only they, are looked up in the wal until their window ends", epoch: 1, capacity: 2,
			steps: []seqStep{
				{op: "next", key: "a", seq: 1},
				{op: "next", key: "b", at: time.Second, seq: 2},
				{op: "next", key: "c", at: 2 * time.Second, seq: 3},
				{op: "check", key: "a", at: 3 * time.Second, want: keyUnknown},
				// The filter of evicted keys knows it was never evicted.
				{op: "check", key: "never-used", at: 3 * time.Second, want: keyNew},
				{op: "check", key: "b", at: 3 * time.Second, want: keyDup, seq: 2},
				{op: "check", key: "c", at: 3 * time.Second, want: keyDup, seq: 3},
				{op: "check", key: "a", at: window - time.Millisecond, want: keyUnknown},
				{op: "check", key: "a", at: window, want: keyNew},
			},
		},
		{
			name: "keys evicted by capacity are handed out once, to be indexed", epoch: 1, capacity: 2,
			steps: []seqStep{
				{op: "next", key: "a", seq: 1},
				{op: "next", key: "b", seq: 2},
				{op: "evicted", evicted: ""},
				{op: "next", key: "c", seq: 3},
				{op: "next", seq: 4}, // no key: evicts nothing
				{op: "next", key: "d", seq: 5},
				{op: "evicted", evicted: "a@1,b@2"},
				{op: "evicted", evicted: ""},
			},
		},
		{
			name: "stale and expired keys evicted by capacity are not indexed", epoch: 1, capacity: 2,
			steps: []seqStep{
				{op: "next", key: "k", seq: 1},
				{op: "forget", key: "k", seq: 1},
				{op: "next", key: "j", seq: 2},
				{op: "next", key: "l", seq: 3}, // pushes out the stale k@1
				{op: "evicted", evicted: ""},
				{op: "next", key: "m", at: window, seq: 4}, // pushes out j@2, out of the window at once
				{op: "evicted", evicted: ""},
				{op: "check", key: "j", at: window, want: keyNew},
			},
		},
		{
			name: "after a restart misses consult the wal for a window", epoch: 5, head: 100, capacity: 10, lookupUntil: window,
			steps: []seqStep{
				{op: "check", key: "x", want: keyUnknown},
				{op: "next", key: "y", seq: 101},
				{op: "check", key: "y", at: time.Minute, want: keyDup, seq: 101},
				{op: "check", key: "x", at: window - time.Millisecond, want: keyUnknown},
				{op: "check", key: "x", at: window, want: keyNew},
			},
		},
		{
			name: "undo takes back the last assignment and its key", epoch: 1, capacity: 10,
			steps: []seqStep{
				{op: "next", key: "a", seq: 1},
				{op: "next", key: "k", seq: 2},
				{op: "undo", key: "k", seq: 2},
				{op: "check", key: "k", want: keyNew},
				{op: "check", key: "a", want: keyDup, seq: 1},
				{op: "next", key: "k", seq: 2},
				{op: "undo", key: "a", seq: 1}, // not the last: ignored
				{op: "next", seq: 3},
			},
		},
		{
			name: "forgotten key publishes anew and its stale entry leaves the new one alone", epoch: 1, capacity: 2,
			steps: []seqStep{
				{op: "next", key: "k", seq: 1},
				{op: "forget", key: "k", seq: 1},
				{op: "check", key: "k", want: keyNew},
				{op: "next", key: "k", seq: 2},
				{op: "next", key: "j", seq: 3}, // pushes out the stale k@1
				{op: "check", key: "k", want: keyDup, seq: 2},
				{op: "check", key: "j", want: keyDup, seq: 3},
			},
		},
		{
			name: "forget of an older seq keeps the newer use", epoch: 1, capacity: 10,
			steps: []seqStep{
				{op: "next", key: "k", seq: 1},
				{op: "check", key: "k", at: window, want: keyNew},
				{op: "next", key: "k", at: window, seq: 2},
				{op: "forget", key: "k", seq: 1},
				{op: "check", key: "k", at: window, want: keyDup, seq: 2},
			},
		},
	}
	for _, tt := range tests {
		forEachHashMask(t, tt.name, func(t *testing.T, mask uint64) {
			var until time.Time
			if tt.lookupUntil != 0 {
				until = t0.Add(tt.lookupUntil)
			}
			s := newSequencer(tt.epoch, tt.head, window, tt.capacity, until)
			s.keys.mask = mask
			for i, st := range tt.steps {
				now := t0.Add(st.at)
				switch st.op {
				case "check":
					o, got := s.check(st.key, now)
					if got != st.want {
						t.Fatalf("step %d: check(%q) = state %d, want %d", i, st.key, got, st.want)
					}
					if got == keyDup && (o.Seq != st.seq || o.Epoch != tt.epoch) {
						t.Fatalf("step %d: check(%q) origin = %+v, want epoch %d seq %d", i, st.key, o, tt.epoch, st.seq)
					}
				case "next":
					o := s.next(st.key, now)
					if o.Seq != st.seq || o.Epoch != tt.epoch || o.TS != now.UnixMilli() {
						t.Fatalf("step %d: next(%q) = %+v, want epoch %d seq %d ts %d", i, st.key, o, tt.epoch, st.seq, now.UnixMilli())
					}
				case "undo":
					s.undo(st.seq, st.key)
				case "forget":
					s.forget(st.key, st.seq)
				case "evicted":
					var got []string
					for _, k := range s.takeEvicted() {
						if k.Epoch != tt.epoch {
							t.Fatalf("step %d: evicted %q in epoch %d, want %d", i, k.key, k.Epoch, tt.epoch)
						}
						got = append(got, fmt.Sprintf("%s@%d", k.key, k.Seq))
					}
					if g := strings.Join(got, ","); g != st.evicted {
						t.Fatalf("step %d: evicted %q, want %q", i, g, st.evicted)
					}
				default:
					t.Fatalf("step %d: unknown op %q", i, st.op)
				}
			}
		})
	}
}

// forEachHashMask runs f as subtests with the key queue's hashes whole,
// cut to one bit (every other key clashes) and cut to none (every key
// clashes), so the paths for keys sharing a hash are exercised too.
// name, if not empty, is a subtest holding them.
func forEachHashMask(t *testing.T, name string, f func(t *testing.T, mask uint64)) {
	if name != "" {
		t.Run(name, func(t *testing.T) { forEachHashMask(t, "", f) })
		return
	}
	for _, m := range []struct {
		name string
		mask uint64
	}{{"64-bit hash", ^uint64(0)}, {"1-bit hash", 1}, {"0-bit hash", 0}} {
		t.Run(m.name, func(t *testing.T) { f(t, m.mask) })
	}
}

func TestSequencerMemoryBounded(t *testing.T) {
	forEachHashMask(t, "", testSequencerMemoryBounded)
}

func testSequencerMemoryBounded(t *testing.T, mask uint64) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	const capacity = 100
	s := newSequencer(1, 0, time.Minute, capacity, time.Time{})
	s.keys.mask = mask
	evicted := 0
	for i := range 10_000 {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		s.next(fmt.Sprintf("key-%d", i), now)
		evicted += len(s.takeEvicted())
		if want := max(0, i+1-capacity); evicted != want {
			t.Fatalf("after %d keys: %d evicted, want %d", i+1, evicted, want)
		}
		if n := s.memoryKeys(); n > capacity {
			t.Fatalf("after %d keys: %d in memory, want <= %d", i+1, n, capacity)
		}
		if c := cap(s.keys.entries); c > 4*capacity+256 {
			t.Fatalf("after %d keys: queue capacity %d, want bounded", i+1, c)
		}
		if c := cap(s.keys.slab); c > 16*(4*capacity+256) {
			t.Fatalf("after %d keys: slab capacity %d, want bounded", i+1, c)
		}
	}
	// Everything expires: memory is given back.
	if _, st := s.check("x", t0.Add(time.Hour)); st != keyNew {
		t.Fatalf("check after the window = %d, want keyNew", st)
	}
	if n := s.memoryKeys(); n != 0 {
		t.Fatalf("%d keys in memory after the window, want 0", n)
	}
}

// TestSequencerLiveKeys: a planned move hands over the keys in memory
// that are live, in the window and of the sequencer's epoch, oldest first.
func TestSequencerLiveKeys(t *testing.T) {
	forEachHashMask(t, "", func(t *testing.T, mask uint64) {
		t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
		const window = 10 * time.Minute
		s := newSequencer(9, 20, window, 10, time.Time{})
		s.keys.mask = mask
		s.load([]keyOrigin{
			{key: "expires", origin: origin{Epoch: 9, Seq: 15, TS: t0.Add(-window + time.Second).UnixMilli()}},
			{key: "old-epoch", origin: origin{Epoch: 8, Seq: 17, TS: t0.UnixMilli() - 2000}},
			{key: "relearnt", origin: origin{Epoch: 9, Seq: 20, TS: t0.UnixMilli() - 1000}},
		}, t0)
		s.next("a", t0)         // seq 21
		s.next("forgotten", t0) // 22
		s.forget("forgotten", 22)
		s.next("b", t0.Add(time.Second)) // 23
		got := s.liveKeys(t0.Add(time.Second))
		want := []keyUse{
			{key: "relearnt", seq: 20, ts: t0.UnixMilli() - 1000},
			{key: "a", seq: 21, ts: t0.UnixMilli()},
			{key: "b", seq: 23, ts: t0.Add(time.Second).UnixMilli()},
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("liveKeys = %v, want %v", got, want)
		}
	})
}

// TestSequencerLoad: keys read back from the messages after a restart keep
// their own origins (an older epoch's among them) and count against
// memory like any other.
func TestSequencerLoad(t *testing.T) {
	forEachHashMask(t, "", testSequencerLoad)
}

func testSequencerLoad(t *testing.T, mask uint64) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	const window = 10 * time.Minute
	s := newSequencer(9, 20, window, 3, t0.Add(window))
	s.keys.mask = mask
	s.load([]keyOrigin{
		{key: "expired", origin: origin{Epoch: 8, Seq: 1, TS: t0.Add(-window).UnixMilli()}},
		{key: "old-epoch", origin: origin{Epoch: 8, Seq: 17, TS: t0.UnixMilli() - 5000}},
		{key: "here", origin: origin{Epoch: 9, Seq: 20, TS: t0.UnixMilli() - 1000}},
	}, t0)
	if o, st := s.check("old-epoch", t0); st != keyDup || o != (origin{Epoch: 8, Seq: 17, TS: t0.UnixMilli() - 5000}) {
		t.Fatalf("check(old-epoch) = %+v, %d; want its own origin", o, st)
	}
	if o, st := s.check("here", t0); st != keyDup || o.Epoch != 9 || o.Seq != 20 {
		t.Fatalf("check(here) = %+v, %d; want epoch 9 seq 20", o, st)
	}
	if _, st := s.check("expired", t0); st != keyUnknown {
		t.Fatalf("check(expired) = %d, want keyUnknown (left to the wal)", st)
	}
	if n := s.memoryKeys(); n != 2 {
		t.Fatalf("%d keys in memory, want 2", n)
	}
	s.next("a", t0)
	s.next("b", t0) // memory full: old-epoch goes, to be indexed
	ev := s.takeEvicted()
	if len(ev) != 1 || ev[0].key != "old-epoch" || ev[0].Epoch != 8 || ev[0].Seq != 17 {
		t.Fatalf("evicted %+v, want old-epoch at epoch 8 seq 17", ev)
	}
}
