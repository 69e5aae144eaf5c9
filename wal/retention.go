package wal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Retention runs on the sweeper goroutine every SweepInterval. It deletes,
// per room, a prefix of each epoch's messages: never a message in the
// middle, so what is left of an epoch stays gap-free.
//
//   - By count: the newest Retention.MaxCount messages of the room are
//     kept, counting the current epoch first, then older epochs newest
//     first; older epochs get what the newer ones left of the budget.
//   - By age: messages whose TS is older than Retention.MaxAge go. Seqs and
//     TSs rise together within an epoch (the router stamps messages in
//     seq order), so the scan stops at the first young message.
//   - The newest message of the room's current epoch is always kept, so
//     that Rooms() still finds the head after a restart and seqs are never
//     handed out twice. Older epochs go entirely once past retention.
//
// A message deleted while still inside the dedup window takes its key
// out of the log, so its key is indexed in the same batch (indexDeleted).
//
// The key index drops its buckets whose every entry is older than
// DedupWindow, one range deletion each (keyindex.go). 'k' entries of the
// layout before buckets are deleted by scanning their expiry entries up
// to the cutoff; one refreshed since (its key was used again after it
// expired) is kept: that check and the delete run on the committer,
// ordered with appends.
//
// Reads for message retention happen on the sweeper goroutine: they only
// decide to delete messages below a room's head, which appends never
// touch. The deletes themselves are applied by the committer (sweepTask),
// which owns every Pebble write.

// sweepChunk is how many deletes go into one retention batch, so that the
// committer, which also serves appends, is never busy for long.
const sweepChunk = 1024

func (l *Log) runSweeper(ctx context.Context) {
	defer close(l.sweepDone)
	t := time.NewTicker(l.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := l.sweep(ctx); err != nil && ctx.Err() == nil {
				l.log.Warn().Err(err).Msg("retention sweep failed")
			}
		}
	}
}

// sweep runs retention once.
func (l *Log) sweep(ctx context.Context) error {
	msgs, err := l.sweepMessages(ctx)
	if err != nil {
		return fmt.Errorf("message retention: %w", err)
	}
	buckets, keys, err := l.sweepDedup(ctx)
	if err != nil {
		return fmt.Errorf("dedup retention: %w", err)
	}
	l.log.Debug().Uint64("messages", msgs).Int("key_buckets", buckets).Int("keys", keys).Msg("retention sweep done")
	return nil
}

// runTask queues a task (retention, a setting) and waits for the
// committer to run it. Its batch is applied without an fsync of its own.
func (l *Log) runTask(build func(db *pebble.DB, b *pebble.Batch) error) error {
	done := make(chan error, 1) // the committer must not block on it
	t := &sweepTask{build: build, done: func(err error) { done <- err }}
	if err := l.enqueue(op{kind: opSweep, sweep: t}); err != nil {
		return err
	}
	return <-done
}

// epochRange is one epoch of a room and the seqs it holds.
type epochRange struct {
	epoch       uint64
	first, head uint64
}

// sweepMessages applies message retention to every room and returns how
// many messages it deleted.
func (l *Log) sweepMessages(ctx context.Context) (uint64, error) {
	var deleted uint64
	var ranges [][2][]byte // delete ranges [start, end) not yet applied
	flush := func() error {
		if len(ranges) == 0 {
			return nil
		}
		pending := ranges
		ranges = nil
		return l.runTask(func(db *pebble.DB, b *pebble.Batch) error {
			cutoff := l.dedupCutoff()
			for _, r := range pending {
				if err := l.indexDeleted(db, b, r[0], r[1], cutoff); err != nil {
					return err
				}
				if err := b.DeleteRange(r[0], r[1], nil); err != nil {
					return err
				}
			}
			return nil
		})
	}
	// The sweeper uses l.db directly: Close stops it before closing db.
	err := func(db *pebble.DB) error {
		it, err := newMessageIter(db)
		if err != nil {
			return err
		}
		ageIt, err := newMessageIter(db)
		if err != nil {
			return errors.Join(err, it.Close())
		}
		defer func() { _ = ageIt.Close() }()
		defer func() { _ = it.Close() }()

		cutoff := l.cfg.Now().Add(-l.cfg.Retention.MaxAge).UnixMilli()
		var epochs []epochRange
		buf := make([]byte, 0, 64)
		ok := it.First()
		for ok {
			if err := ctx.Err(); err != nil {
				return err
			}
			p, err := decodeKey(it.Key())
			if err != nil {
				return err
			}
			room := string(p.Room)
			epochs = epochs[:0]
			// Visit the room's epochs: two seeks each.
			for {
				s, err := spanOf(it, buf, room, p.Epoch)
				if err != nil {
					return err
				}
				epochs = append(epochs, epochRange{epoch: p.Epoch, first: s.first, head: s.head})
				if p.Epoch == math.MaxUint64 {
					ok = it.SeekGE(appendRoomMessagesEnd(buf[:0], room))
				} else {
					ok = it.SeekGE(appendMessageKey(buf[:0], room, p.Epoch+1, 0))
				}
				if !ok {
					break
				}
				if p, err = decodeKey(it.Key()); err != nil {
					return err
				}
				if string(p.Room) != room {
					break // it is at the next room's first message
				}
			}
			current, err := currentEpoch(db, room, epochs)
			if err != nil {
				return err
			}
			n, err := l.planRoom(ageIt, room, current, epochs, cutoff, &ranges)
			if err != nil {
				return err
			}
			deleted += n
			if len(ranges) >= sweepChunk {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return it.Error()
	}(l.db)
	if err == nil {
		err = flush()
	}
	l.metrics.retentionDeleted.WithLabelValues("message").Add(float64(deleted))
	return deleted, err
}

// indexDeleted adds to b the idempotency entries of the keyed messages in
// [start, end), one epoch's prefix about to be deleted, that are still
// inside the dedup window (TS >= cutoff): once deleted, their message no
// longer carries the key, so the index must (see IndexKeys). It reads from
// the end of the range and stops at the first message older than cutoff,
// usually the first one read. A key whose index entry already records
// this use (the same TS) is left alone, so an entry pointing at a copy in
// a newer epoch stays.
func (l *Log) indexDeleted(db *pebble.DB, b *pebble.Batch, start, end []byte, cutoff int64) error {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return err
	}
	for ok := it.Last(); ok; ok = it.Prev() {
		p, m, err := messageAt(it)
		if err != nil {
			return errors.Join(err, it.Close())
		}
		if m.TS < cutoff {
			break
		}
		if len(m.Key) == 0 {
			continue
		}
		e, found, err := l.lookupIndexed(db, string(p.Room), string(m.Key), cutoff)
		if err != nil {
			return errors.Join(err, it.Close())
		}
		if found && e.TS == m.TS {
			continue
		}
		l.putIndexEntry(b, string(p.Room), KeyUse{Key: string(m.Key), DedupEntry: DedupEntry{Epoch: p.Epoch, Seq: p.Seq, TS: m.TS}}, cutoff)
	}
	return errors.Join(it.Error(), it.Close())
}

// currentEpoch is room's epoch from its room key, or its highest epoch
// holding messages if it has none (a room only ever appended to).
func currentEpoch(db *pebble.DB, room string, epochs []epochRange) (uint64, error) {
	v, closer, err := db.Get(appendRoomKey(nil, room))
	if errors.Is(err, pebble.ErrNotFound) {
		return epochs[len(epochs)-1].epoch, nil
	}
	if err != nil {
		return 0, err
	}
	defer func() { _ = closer.Close() }()
	return decodeRoomValue(v)
}

// planRoom decides which prefix of each of room's epochs to delete and
// adds the ranges to ranges. It returns how many messages they hold.
func (l *Log) planRoom(ageIt *pebble.Iterator, room string, current uint64,
	epochs []epochRange, cutoff int64, ranges *[][2][]byte) (uint64, error) {
	// The current epoch first, then the others newest first.
	slices.SortFunc(epochs, func(a, b epochRange) int {
		switch {
		case a.epoch == b.epoch:
			return 0
		case a.epoch == current || (b.epoch != current && a.epoch > b.epoch):
			return -1
		}
		return 1
	})
	budget := uint64(l.cfg.Retention.MaxCount)
	var deleted uint64
	for _, e := range epochs {
		held := e.head - e.first + 1
		keep := min(held, budget)
		budget -= keep
		// keepFrom is the first seq kept. Keeping none is deleteAll rather
		// than keepFrom = e.head+1, which could overflow.
		keepFrom, deleteAll := e.head-keep+1, keep == 0
		if !deleteAll {
			young, all, err := firstYoung(ageIt, room, e.epoch, keepFrom, cutoff)
			if err != nil {
				return 0, err
			}
			keepFrom, deleteAll = max(keepFrom, young), all
		}
		if e.epoch == current && (deleteAll || keepFrom > e.head) {
			keepFrom, deleteAll = e.head, false // keep the head
		}
		start := appendMessageKey(nil, room, e.epoch, e.first)
		var end []byte
		switch {
		case deleteAll:
			end = appendEpochEnd(nil, room, e.epoch)
			deleted += held
		case keepFrom > e.first:
			end = appendMessageKey(nil, room, e.epoch, keepFrom)
			deleted += keepFrom - e.first
		default:
			continue
		}
		*ranges = append(*ranges, [2][]byte{start, end})
	}
	return deleted, nil
}

// firstYoung returns the first seq >= from of (room, epoch) whose TS is not
// older than cutoff, or all=true if there is none.
func firstYoung(it *pebble.Iterator, room string, epoch, from uint64, cutoff int64) (seq uint64, all bool, err error) {
	start := appendMessageKey(nil, room, epoch, from)
	prefix := start[:len(start)-8]
	for ok := it.SeekGE(start); ok && bytes.HasPrefix(it.Key(), prefix); ok = it.Next() {
		k := it.Key()
		if len(k) != len(start) {
			return 0, false, corruptf("message key of %d bytes in room %q", len(k), room)
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return 0, false, err
		}
		m, err := decodeMessageValue(v)
		if err != nil {
			return 0, false, err
		}
		if m.TS >= cutoff {
			return binary.BigEndian.Uint64(k[len(k)-8:]), false, nil
		}
	}
	return 0, true, it.Error()
}

// sweepDedup deletes the key index's buckets older than DedupWindow and
// the 'k' entries of the layout before buckets that are; it returns how
// many buckets and how many 'k' entries.
func (l *Log) sweepDedup(ctx context.Context) (buckets, entries int, err error) {
	cutoff := l.dedupCutoff()
	if buckets, err = l.sweepBuckets(cutoff); err != nil {
		return 0, 0, err
	}
	l.metrics.retentionDeleted.WithLabelValues("dedup_bucket").Add(float64(buckets))
	entries, err = l.sweepLegacyKeys(ctx, cutoff)
	return buckets, entries, err
}

// sweepLegacyKeys deletes the 'k' entries older than cutoff, found by
// their expiry entries, and returns how many.
func (l *Log) sweepLegacyKeys(ctx context.Context, cutoff int64) (int, error) {
	deleted := 0
	var pending [][]byte // expiry keys not yet handed to the committer
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		keys := pending
		pending = nil
		n := 0
		err := l.runTask(func(db *pebble.DB, b *pebble.Batch) error {
			var err error
			n, err = expireKeys(db, b, keys, cutoff)
			return err
		})
		if err == nil {
			deleted += n
		}
		return err
	}
	err := func(db *pebble.DB) error {
		it, err := db.NewIter(&pebble.IterOptions{
			LowerBound: []byte{kindExpiry},
			UpperBound: appendExpiryBound(nil, cutoff),
		})
		if err != nil {
			return err
		}
		defer func() { _ = it.Close() }()
		for ok := it.First(); ok; ok = it.Next() {
			pending = append(pending, slices.Clone(it.Key()))
			if len(pending) >= sweepChunk {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return it.Error()
	}(l.db)
	if err == nil {
		err = flush()
	}
	l.metrics.retentionDeleted.WithLabelValues("dedup").Add(float64(deleted))
	return deleted, err
}

// expireKeys runs on the committer: for each expiry key it deletes the
// dedup entry unless that was refreshed since, and the expiry key itself.
func expireKeys(db *pebble.DB, b *pebble.Batch, expiry [][]byte, cutoff int64) (int, error) {
	deleted := 0
	var dk []byte
	for _, xk := range expiry {
		p, err := decodeKey(xk)
		if err != nil {
			return 0, err
		}
		if p.Kind != kindExpiry {
			return 0, corruptf("key kind 0x%02x among expiry keys", p.Kind)
		}
		dk = appendDedupKey(dk[:0], string(p.Room), string(p.Key))
		e, found, err := getDedupEntry(db, dk)
		if err != nil {
			return 0, err
		}
		if found && e.TS < cutoff {
			if err := b.Delete(dk, nil); err != nil {
				return 0, err
			}
			deleted++
		}
		if err := b.Delete(xk, nil); err != nil {
			return 0, err
		}
	}
	return deleted, nil
}
