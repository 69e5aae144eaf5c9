package router

import (
	"fmt"
	"time"

	"github.com/arena-mesh/arena/wal"
)

// Where a room finds an idempotency key used within the window:
//
//   - in memory (the sequencer): the newest DedupMemory keys;
//   - in its message in the wal: the wal stores each message's key with it
//     and does not index it, so a publish costs one Pebble key, not three;
//   - in the wal's key index: the keys memory evicted for capacity. The
//     room has them indexed (wal.IndexKeys) before the append that evicted
//     them, so whenever that append survives a crash, so does the index
//     entry. Until the entry is written, the room answers from indexing.
//
// A miss in memory is looked up in the index only when the sequencer's
// filter of evicted keys says the key may be one of them (keyfilter.go),
// so a busy room does not pay a Pebble lookup for every new key.
//
// A room recovered from the wal at start relearns, before its first keyed
// publish, the keys of its newest messages (wal.RecentKeys) into memory
// and those of its index entries in the window (wal.IndexedKeys) into its
// filter: the keys older than its newest messages' were evicted from
// memory before the restart, hence indexed, or their messages were
// deleted by retention, which indexes them too (in the batch that deletes
// them, so a key is in one read or the other). A room whose index holds
// more than maxRelearntKeys keys in the window instead looks up every miss
// for a window after the start (sequencer.lookupUntil), as all recovered
// rooms did before: that keeps its first publish from waiting on a long
// scan.

// maxRelearntKeys is the most index entries a recovered room reads into
// its filter: about 0.1 s of reading (wal's BenchmarkIndexedKeys: 80 ns a
// key) and as much again for the filter, which takes 2 MB, what a room
// publishing 1,700 keyed messages a second keeps anyway under the default
// 10-minute window. A variable for tests.
var maxRelearntKeys = 1 << 20

// windowStart is the oldest TS (ms) of a key still in the sequencer's
// window at now.
func (r *Router) windowStart(now time.Time) int64 {
	return now.Add(-r.cfg.DedupWindow).UnixMilli() + 1
}

// loadKeysLocked relearns, once, the keys of a room recovered from the
// wal: those of its newest messages within the window, as many as the
// run before kept in memory (keptkeys.go), into memory, where the surplus
// over DedupMemory is evicted (indexed) as usual, and those of its index
// into the filter of evicted keys.
// The caller holds rm.mu.
func (rm *room) loadKeysLocked(now time.Time) error {
	if !rm.needKeys {
		return nil
	}
	r := rm.r
	since := r.windowStart(now)
	uses, err := r.log.RecentKeys(rm.name, since, r.recoverKeys)
	if err != nil {
		return fmt.Errorf("read recent keys of room %q: %w", rm.name, err)
	}
	// After RecentKeys, not before: a message that retention deletes
	// meanwhile has its key either read above or indexed by then.
	all, err := r.log.IndexedKeys(rm.name, since, maxRelearntKeys, func(key []byte, e wal.DedupEntry) {
		rm.seq.learnIndexed(key, time.UnixMilli(e.TS), now) // harmless if this fails and is retried
	})
	if err != nil {
		return fmt.Errorf("read key index of room %q: %w", rm.name, err)
	}
	if all {
		rm.seq.indexLearnt()
	} else {
		r.logger.Info().Str("room", rm.name).Int("limit", maxRelearntKeys).
			Dur("for", r.cfg.DedupWindow).Msg("room's key index too large to relearn: keys missing from memory are looked up")
	}
	keys := make([]keyOrigin, len(uses))
	for i, u := range uses {
		keys[i] = keyOrigin{key: u.Key, origin: origin{Epoch: rm.copyOf(u.Epoch), Seq: u.Seq, TS: u.TS}}
	}
	rm.seq.load(keys, now)
	rm.needKeys = false
	return rm.indexEvictedLocked()
}

// indexEvictedLocked queues the wal index entries of the keys the
// sequencer evicted for capacity, before the append that evicted them
// (the caller queues that next). Until the entries are written, the room
// answers for those keys from indexing. The caller holds rm.mu.
func (rm *room) indexEvictedLocked() error {
	ev := rm.seq.takeEvicted()
	if len(ev) == 0 {
		return nil
	}
	uses := make([]wal.KeyUse, len(ev))
	rm.pendMu.Lock()
	if rm.indexing == nil {
		rm.indexing = make(map[string]origin, len(ev))
	}
	for i, k := range ev {
		uses[i] = wal.KeyUse{Key: k.key, DedupEntry: wal.DedupEntry{Epoch: k.Epoch, Seq: k.Seq, TS: k.TS}}
		rm.indexing[k.key] = k.origin
	}
	rm.pendMu.Unlock()
	return rm.r.log.IndexKeys(rm.name, uses, func(err error) {
		if err != nil {
			// The wal failed: keep answering from indexing while the
			// process lives; after a restart the keys' messages, newer
			// than anything the failure lost, give them back.
			return
		}
		rm.pendMu.Lock()
		for _, u := range uses {
			if o, ok := rm.indexing[u.Key]; ok && o.Seq == u.Seq && o.Epoch == u.Epoch {
				delete(rm.indexing, u.Key)
			}
		}
		if len(rm.indexing) == 0 {
			rm.indexing = nil
		}
		rm.pendMu.Unlock()
	})
}

// lookupKeyLocked finds key, which memory does not hold, among the keys
// being indexed and then in the wal's index. The caller holds rm.mu.
func (rm *room) lookupKeyLocked(key string) (origin, bool, error) {
	rm.pendMu.Lock()
	o, ok := rm.indexing[key]
	rm.pendMu.Unlock()
	if ok {
		return o, true, nil
	}
	rm.r.metrics.keyLookups.Inc()
	e, found, err := rm.r.log.LookupKey(rm.name, key)
	if err != nil || !found {
		return origin{}, false, err
	}
	return origin{Epoch: rm.copyOf(e.Epoch), Seq: e.Seq, TS: e.TS}, true, nil
}

// copyOf names the epoch a key found in the wal (in its message or in the
// index) answers with: a hot restart copied copiedEpoch into this one,
// seqs unchanged, and history holds the copy. The caller holds rm.mu.
func (rm *room) copyOf(epoch uint64) uint64 {
	if epoch == rm.copiedEpoch {
		return rm.epoch
	}
	return epoch
}
