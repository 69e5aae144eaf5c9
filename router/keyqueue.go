package router

import (
	"hash/maphash"
	"unsafe"
)

// keyQueue is a room's recent idempotency keys in the order they were
// used, each with its origin, laid out so the garbage collector has
// nothing to trace: a busy node holds millions of keys (up to the
// sequencer's capacity per room), and as strings in a map they cost a
// pointer each to mark on every cycle and a fifth of a core under load.
//
// The bytes of every key sit end to end in one slab, the queue's entries
// say where, and the index maps a hash of a key to the position of its
// entry. A hash match is confirmed against the key's bytes, so two keys
// sharing a hash are never confused: the second of two live keys with the
// same hash is held in clashes (by its text) instead. Positions and slab
// offsets only grow, so an entry's position names it for good; entries
// and slab slide down together once their popped prefix is half of them.
//
// An entry is live while the index (or clashes) points at it. Dropping a
// key (drop, or a newer use of the same key) leaves its entry stale in the
// queue, to be skipped when it comes to the front.
type keyQueue struct {
	seed maphash.Seed
	// mask is applied to every hash; tests narrow it to make keys clash.
	mask uint64

	index   map[uint64]uint64 // key hash -> position of its live entry
	clashes map[string]uint64 // key -> position, for a live key whose hash the index holds for another; nil when empty

	entries []keyEntry // entries[i] is at position first+i
	head    int        // index in entries of the oldest entry not yet popped
	first   uint64     // position of entries[0]

	slab     []byte // key bytes; slab[0] is at offset slabBase
	slabBase uint64
}

// keyEntry is one use of a key: its origin and where its bytes are.
type keyEntry struct {
	origin
	off uint64 // offset of the key's first byte
	n   uint32 // the key's length
}

// newKeyQueue returns an empty queue hashing with a seed of its own.
func newKeyQueue() keyQueue {
	return keyQueue{seed: maphash.MakeSeed(), mask: ^uint64(0)}
}

// live is how many keys the queue holds (stale entries aside).
func (q *keyQueue) live() int { return len(q.index) + len(q.clashes) }

// len is how many entries the queue holds, stale ones included.
func (q *keyQueue) len() int { return len(q.entries) - q.head }

// keyOf returns e's key. The string is a view of the slab, so that
// reading a key costs no allocation: it is valid only until the queue next
// changes, and whoever keeps it clones it.
func (q *keyQueue) keyOf(e *keyEntry) string {
	i := e.off - q.slabBase
	return unsafe.String(unsafe.SliceData(q.slab[i:]), e.n)
}

// at returns the entry at position pos, which must be in the queue.
func (q *keyQueue) at(pos uint64) *keyEntry { return &q.entries[pos-q.first] }

// find returns the position of key's live entry.
func (q *keyQueue) find(key string) (uint64, bool) { return q.findHashed(q.hash(key), key) }

// findHashed is find for a key whose hash is h.
func (q *keyQueue) findHashed(h uint64, key string) (uint64, bool) {
	if pos, ok := q.index[h]; ok && q.keyOf(q.at(pos)) == key {
		return pos, true
	}
	pos, ok := q.clashes[key]
	return pos, ok
}

// get returns the origin of key's live use.
func (q *keyQueue) get(key string) (origin, bool) {
	if pos, ok := q.find(key); ok {
		return q.at(pos).origin, true
	}
	return origin{}, false
}

// hash is key's slot in the index.
func (q *keyQueue) hash(key string) uint64 { return maphash.String(q.seed, key) & q.mask }

// push appends a use of key (not empty) at o; an older live use of the
// same key goes stale.
func (q *keyQueue) push(key string, o origin) {
	h := q.hash(key) // once: push runs for every keyed publish
	if pos, ok := q.findHashed(h, key); ok {
		q.unlinkHashed(h, key, pos)
	}
	pos := q.first + uint64(len(q.entries))
	q.entries = append(q.entries, keyEntry{origin: o, off: q.slabBase + uint64(len(q.slab)), n: uint32(len(key))})
	q.slab = append(q.slab, key...)

	if _, taken := q.index[h]; taken { // by another key: this one's use was unlinked
		if q.clashes == nil {
			q.clashes = make(map[string]uint64)
		}
		q.clashes[key] = pos
		return
	}
	if q.index == nil {
		q.index = make(map[uint64]uint64)
	}
	q.index[h] = pos
}

// unlink makes the entry at pos, whose key is key, stale if it is live.
func (q *keyQueue) unlink(key string, pos uint64) { q.unlinkHashed(q.hash(key), key, pos) }

// unlinkHashed is unlink for a key whose hash is h.
func (q *keyQueue) unlinkHashed(h uint64, key string, pos uint64) {
	if p, ok := q.index[h]; ok && p == pos {
		delete(q.index, h)
		// A clashing key, if any, stays in clashes: find still
		// reaches it there, and the next push of its hash takes the
		// index slot.
		return
	}
	if p, ok := q.clashes[key]; ok && p == pos {
		delete(q.clashes, key)
		if len(q.clashes) == 0 {
			q.clashes = nil
		}
	}
}

// drop makes key's live use stale if it is the one with seq.
func (q *keyQueue) drop(key string, seq uint64) {
	if pos, ok := q.find(key); ok && q.at(pos).Seq == seq {
		q.unlink(key, pos)
	}
}

// front returns the oldest entry, live or stale. The queue must not be
// empty.
func (q *keyQueue) front() keyEntry { return q.entries[q.head] }

// oldest returns the oldest entry, its key (a view: see keyOf) and
// whether it is live. The queue must not be empty.
func (q *keyQueue) oldest() (keyEntry, string, bool) {
	e := &q.entries[q.head]
	key := q.keyOf(e)
	pos, ok := q.find(key)
	return *e, key, ok && pos == q.first+uint64(q.head)
}

// pop removes the oldest entry, unlinking its key if it is live.
func (q *keyQueue) pop() {
	e := &q.entries[q.head]
	q.unlink(q.keyOf(e), q.first+uint64(q.head))
	q.head++
	q.settle()
}

// popNewest removes the newest entry if its seq is seq (taking back the
// last use), unlinking its key.
func (q *keyQueue) popNewest(seq uint64) {
	n := len(q.entries)
	if n == q.head || q.entries[n-1].Seq != seq {
		return
	}
	e := q.entries[n-1]
	q.unlink(q.keyOf(&e), q.first+uint64(n-1))
	q.entries = q.entries[:n-1]
	q.slab = q.slab[:e.off-q.slabBase]
	q.settle()
}

// settle keeps the queue's memory bounded once entries have left it.
func (q *keyQueue) settle() {
	switch {
	case q.head == len(q.entries):
		q.first += uint64(len(q.entries))
		q.entries, q.head = q.entries[:0], 0
		q.slabBase += uint64(len(q.slab))
		q.slab = q.slab[:0]
	case q.head >= 64 && q.head*2 >= len(q.entries):
		// Slide the part left down.
		q.first += uint64(q.head)
		n := copy(q.entries, q.entries[q.head:])
		q.entries, q.head = q.entries[:n], 0
		cut := q.entries[0].off - q.slabBase
		q.slab = q.slab[:copy(q.slab, q.slab[cut:])]
		q.slabBase += cut
	}
	if q.live() == 0 && cap(q.entries) > 1024 {
		// Every entry left is stale: an idle room gives its memory back.
		q.first += uint64(len(q.entries))
		q.slabBase += uint64(len(q.slab))
		q.index, q.entries, q.head, q.slab = nil, nil, 0, nil
	}
}

// each calls f with every live entry and its key (a view: see keyOf),
// oldest first. f must not change the queue.
func (q *keyQueue) each(f func(e keyEntry, key string)) {
	for i := q.head; i < len(q.entries); i++ {
		key := q.keyOf(&q.entries[i])
		if pos, ok := q.find(key); ok && pos == q.first+uint64(i) {
			f(q.entries[i], key)
		}
	}
}
