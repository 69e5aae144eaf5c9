package router

import (
	"time"

	"github.com/bits-and-blooms/bloom/v3"
)

// evictedFilter remembers, approximately, the idempotency keys a room's
// sequencer evicted from memory for capacity while they were still inside
// the window: the keys the wal's key index holds for it. A miss in memory
// asks the wal only when the filter says the key may be there, so a busy
// room (more keys per window than it keeps in memory) does not pay a
// Pebble lookup for every new key. A false positive costs one lookup; a
// key the filter holds is never reported absent.
//
// Keys go into the newest of a list of Bloom filters (generations). A
// generation takes keys until it holds what it was sized for, when the
// next is sized twice as large, or until it is a window old; it is
// dropped once every key in it has left the window. A busy room thus
// holds about a window's worth of evicted keys, at 15 bits each.
type evictedFilter struct {
	window time.Duration
	gens   []filterGen // oldest first; the last one takes new keys
}

// filterGen is one generation of an evictedFilter.
type filterGen struct {
	bits       *bloom.BloomFilter
	start      time.Time // when it took its first key
	keys, size uint      // keys added; keys it was sized for
	until      time.Time // when its newest key leaves the window
}

const (
	// minFilterKeys is the fewest keys a generation is sized for.
	minFilterKeys = 1024
	// filterFalsePositives is each generation's false-positive rate when
	// it holds the keys it was sized for.
	filterFalsePositives = 0.001
)

// add records key, used at use and evicted at now. expect is what the
// first generation is sized for.
func (f *evictedFilter) add(key string, use, now time.Time, expect int) {
	f.genFor(use, now, expect).AddString(key)
}

// addBytes is add for a key held in a byte slice.
func (f *evictedFilter) addBytes(key []byte, use, now time.Time, expect int) {
	f.genFor(use, now, expect).Add(key)
}

// genFor returns the generation that takes a key used at use and evicted
// at now, starting a new one when the newest is full or a window old, and
// counts the key in.
func (f *evictedFilter) genFor(use, now time.Time, expect int) *bloom.BloomFilter {
	f.drop(now)
	n := len(f.gens)
	if n == 0 || f.gens[n-1].keys >= f.gens[n-1].size || now.Sub(f.gens[n-1].start) >= f.window {
		size := max(uint(expect), minFilterKeys)
		if n > 0 {
			last := f.gens[n-1]
			if last.keys >= last.size {
				size = max(size, 2*last.size) // it filled up: grow
			} else {
				size = max(size, last.keys) // a window's worth
			}
		}
		f.gens = append(f.gens, filterGen{
			bits:  bloom.NewWithEstimates(size, filterFalsePositives),
			start: now,
			size:  size,
		})
		n++
	}
	g := &f.gens[n-1]
	g.keys++
	if until := use.Add(f.window); until.After(g.until) {
		g.until = until
	}
	return g.bits
}

// mayContain reports whether key may have been evicted while inside the
// window that is current at now.
func (f *evictedFilter) mayContain(key string, now time.Time) bool {
	f.drop(now)
	for i := range f.gens {
		if f.gens[i].bits.TestString(key) {
			return true
		}
	}
	return false
}

// deadline is when the newest evicted key leaves the window: from then on
// the filter holds nothing that matters.
func (f *evictedFilter) deadline() time.Time {
	if n := len(f.gens); n > 0 {
		return f.gens[n-1].until
	}
	return time.Time{}
}

// drop forgets the generations whose keys have all left the window at
// now. Keys are evicted in the order of their use, so generations expire
// oldest first; those a restarted room relearns from the wal's index come
// bucket by bucket, nearly so. A generation is kept while one before it
// is, which at worst keeps keys a while longer.
func (f *evictedFilter) drop(now time.Time) {
	i := 0
	for i < len(f.gens) && !now.Before(f.gens[i].until) {
		i++
	}
	if i > 0 {
		n := copy(f.gens, f.gens[i:])
		clear(f.gens[n:])
		f.gens = f.gens[:n]
	}
}
