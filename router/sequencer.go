package router

import (
	"strings"
	"time"
)

// keyState is what the sequencer knows about an idempotency key.
type keyState uint8

const (
	// keyNew: the key was not used within the window; publish.
	keyNew keyState = iota
	// keyDup: the key was used within the window; answer with its origin.
	keyDup
	// keyUnknown: memory cannot tell (the key may have been evicted from
	// memory, or used before a restart); the caller must consult the wal.
	keyUnknown
)

// origin is where a key's message was published.
type origin struct {
	Epoch, Seq uint64
	TS         int64 // ms since the Unix epoch
}

// keyUse is a key's use as a planned move hands it to the room's new home.
type keyUse struct {
	key string
	seq uint64
	ts  int64
}

// sequencer is a room's ordering logic as a pure state machine: it assigns
// sequence numbers and remembers recent idempotency keys. It does no I/O and
// reads no clock (time is passed in), so it is tested with tables; the room
// guards it with its lock and does the wal lookups it asks for.
type sequencer struct {
	epoch uint64
	head  uint64 // last assigned seq; 0 before the first message of the epoch

	window   time.Duration
	capacity int // keys kept in memory at most

	keys keyQueue // keys in the order they were used; may hold stale entries (see forget)

	// lookupUntil: until then, a key missing from memory may still be in
	// the wal's index from before this sequencer existed (a restart, a
	// handoff, a room back from dormancy), so every miss is checked there.
	lookupUntil time.Time
	// evictedKeys holds the keys this sequencer evicted for capacity while
	// in the window, which the wal's index holds: a miss is checked there
	// when the filter says the key may be one of them.
	evictedKeys evictedFilter

	// evicted are the keys remember dropped for capacity while still in
	// the window, oldest first, until the room takes them (takeEvicted)
	// to have the wal index them: a key's message alone does not stand
	// for it once memory has forgotten it (see wal.IndexKeys).
	evicted []keyOrigin
}

// keyOrigin is an idempotency key and where its message was published.
type keyOrigin struct {
	key string
	origin
}

// newSequencer returns a sequencer for epoch whose last assigned seq is head.
// lookupUntil is when keys used before this sequencer existed leave the
// window: a restarted room passes start+window, a brand new room the zero time.
func newSequencer(epoch, head uint64, window time.Duration, capacity int, lookupUntil time.Time) *sequencer {
	return &sequencer{
		epoch:       epoch,
		head:        head,
		window:      window,
		capacity:    max(capacity, 1),
		keys:        newKeyQueue(),
		lookupUntil: lookupUntil,
		evictedKeys: evictedFilter{window: window},
	}
}

// check reports what is known about key at now. With keyDup the origin is valid.
func (s *sequencer) check(key string, now time.Time) (origin, keyState) {
	s.expire(now)
	if o, ok := s.keys.get(key); ok {
		return o, keyDup
	}
	if now.Before(s.lookupUntil) || s.evictedKeys.mayContain(key, now) {
		return origin{}, keyUnknown
	}
	return origin{}, keyNew
}

// lookupDeadline is when no key missing from memory can be in the wal's
// index any more: what a room that leaves memory (dormant, or handed to
// another node) passes on as its successor's lookupUntil, as the filter
// of evicted keys does not go with it.
func (s *sequencer) lookupDeadline() time.Time {
	if d := s.evictedKeys.deadline(); d.After(s.lookupUntil) {
		return d
	}
	return s.lookupUntil
}

// next assigns the next seq to a message published at now with key (""
// for none) and remembers the key. The caller has checked the key first.
func (s *sequencer) next(key string, now time.Time) origin {
	s.head++
	o := origin{Epoch: s.epoch, Seq: s.head, TS: now.UnixMilli()}
	if key != "" {
		s.remember(key, o, now)
	}
	return o
}

// undo takes back the last assignment (seq with key), whose message could
// not be handed to the wal, so the sequence keeps no gap.
func (s *sequencer) undo(seq uint64, key string) {
	if seq != s.head {
		return // not the last assignment; nothing safe to undo
	}
	s.head--
	if key == "" {
		return
	}
	s.keys.popNewest(seq)
}

// forget drops key from memory: its message failed to become durable, so a
// retry must publish again. Its queue entry goes stale and is skipped later.
func (s *sequencer) forget(key string, seq uint64) {
	s.keys.drop(key, seq)
}

// remember records that key was used for o at now, evicting the oldest key
// when memory is full.
func (s *sequencer) remember(key string, o origin, now time.Time) {
	s.keys.push(key, o)
	for s.keys.len() > s.capacity {
		e, k, live := s.keys.oldest()
		use := time.UnixMilli(e.TS)
		if live && use.Add(s.window).After(now) {
			// Evicted in the window: the wal is to index the key, and a
			// later miss of it to look there.
			k = strings.Clone(k) // k is a view of the queue
			s.evicted = append(s.evicted, keyOrigin{key: k, origin: e.origin})
			s.evictedKeys.add(k, use, now, s.capacity)
		}
		s.keys.pop()
	}
}

// takeEvicted returns the keys evicted for capacity since the last call,
// oldest first, and forgets them.
func (s *sequencer) takeEvicted() []keyOrigin {
	ev := s.evicted
	s.evicted = nil
	return ev
}

// expire drops the keys that left the window at now.
func (s *sequencer) expire(now time.Time) {
	cutoff := now.Add(-s.window).UnixMilli() // used at or before cutoff: expired
	for s.keys.len() > 0 {
		if s.keys.front().TS > cutoff {
			return
		}
		s.keys.pop()
	}
}

// memoryKeys is how many keys are held in memory (for tests).
func (s *sequencer) memoryKeys() int { return s.keys.live() }

// liveKeys returns the keys held in memory that are still in the window
// at now and were used in the sequencer's epoch, oldest first: what a
// planned move hands to the room's new home, which takes their seqs as
// positions in that epoch. Keys of an older epoch, relearnt after a
// restart, are not handed over.
func (s *sequencer) liveKeys(now time.Time) []keyUse {
	s.expire(now)
	out := make([]keyUse, 0, s.keys.live())
	s.keys.each(func(e keyEntry, key string) {
		if e.Epoch == s.epoch {
			out = append(out, keyUse{key: strings.Clone(key), seq: e.Seq, ts: e.TS})
		}
	})
	return out
}

// load remembers keys read back from the room's messages after a restart
// (oldest first, each with its own origin, possibly of an older epoch).
// It runs before the room's first keyed publish, so they are older than
// every key in memory.
func (s *sequencer) load(keys []keyOrigin, now time.Time) {
	for _, k := range keys {
		s.remember(k.key, k.origin, now)
	}
	s.expire(now)
}

// learnIndexed adds to the filter of evicted keys one that the wal's
// index holds from before this sequencer existed, used at use: what a
// room restarted from the wal relearns (see loadKeysLocked).
func (s *sequencer) learnIndexed(key []byte, use, now time.Time) {
	s.evictedKeys.addBytes(key, use, now, s.capacity)
}

// indexLearnt records that the filter of evicted keys holds every key the
// wal's index held when the sequencer started: a miss then needs a lookup
// only when the filter says so, as in a sequencer that evicted them itself.
func (s *sequencer) indexLearnt() {
	s.lookupUntil = time.Time{}
}

// adopt remembers keys handed over by the room's previous home (oldest
// first, of this sequencer's epoch), as if they had been used here.
func (s *sequencer) adopt(keys []keyUse, now time.Time) {
	for _, u := range keys {
		s.remember(u.key, origin{Epoch: s.epoch, Seq: u.seq, TS: u.ts}, now)
	}
	s.expire(now)
}
