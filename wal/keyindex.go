package wal

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The idempotency key index (IndexKeys, and retention's indexDeleted)
// keeps its entries in buckets of time: an entry goes to the bucket that
// holds its TS ('K' keys, see layout.go). Retention drops a bucket whole,
// with one range deletion, once every TS it can hold is older than the
// dedup window. An index entry thus costs one Pebble key, written once and
// never read again unless a lookup asks for it; the layout before buckets
// (one 'k' entry and one 'x' expiry entry per key, and a read and two
// deletions per key when it expired) cost five writes and a read.
//
// A bucket is DedupWindow/bucketsPerWindow wide when written, so a lookup
// asks about bucketsPerWindow+1 buckets (the window and the part of a
// bucket it cuts), newest first; entries outlive the window by at most one
// width. Buckets written under another DedupWindow keep their width; the
// log lists the buckets it holds (Log.buckets) and asks each one that may
// still hold a key inside the window.
//
// 'k' and 'x' entries from the layout before are still found by LookupKey
// and swept by their expiry entries; nothing writes them any more.

// bucketsPerWindow is how many buckets a dedup window spans.
const bucketsPerWindow = 4

// Bounds of a bucket's width: at least a second, so that a short window
// (tests) does not make a bucket per write; at most an hour, so that a
// long one does not keep a day's keys a day too long.
const (
	minBucketWidth = time.Second
	maxBucketWidth = time.Hour
)

// dedupBucket names one bucket of the key index: the entries whose TS is in
// [start, start+width) ms.
type dedupBucket struct {
	start int64  // ms since the Unix epoch, a multiple of width
	width uint32 // ms
}

// end is the first TS after the bucket.
func (b dedupBucket) end() int64 { return b.start + int64(b.width) }

// compareBuckets orders buckets as their keys sort: by start, then width.
func compareBuckets(a, b dedupBucket) int {
	if c := cmp.Compare(a.start, b.start); c != 0 {
		return c
	}
	return cmp.Compare(a.width, b.width)
}

// bucketWidth is the width (ms) of the buckets written under a dedup
// window.
func bucketWidth(window time.Duration) uint32 {
	w := min(max(window/bucketsPerWindow, minBucketWidth), maxBucketWidth)
	return uint32(w.Milliseconds())
}

// bucketOf returns the bucket of width w (ms) that holds ts.
func bucketOf(ts int64, w uint32) dedupBucket {
	start := ts - ts%int64(w)
	if start > ts { // ts < 0: round down, not towards zero
		start -= int64(w)
	}
	return dedupBucket{start: start, width: w}
}

// putIndexEntry adds k's entry in room's key index to b, in the bucket of
// its TS. Entries already outside the window are left out: their bucket
// may be gone (swept), and a lookup would ignore them anyway. Only the
// committer calls it (it notes the bucket).
func (l *Log) putIndexEntry(b *pebble.Batch, room string, k KeyUse, cutoff int64) {
	if k.TS < cutoff {
		return
	}
	bk := bucketOf(k.TS, l.width)
	l.noteBucket(bk)
	d := b.SetDeferred(bucketKeyLen(room, k.Key), dedupValueLen)
	putBucketKey(d.Key, bk, room, k.Key)
	putDedupValue(d.Value, k.DedupEntry)
	_ = d.Finish() // unindexed batch: Finish cannot fail
}

// noteBucket adds bk to the list of buckets the log holds. Only the
// committer changes the list, so the copy it stores cannot race another
// writer; readers load it whole.
func (l *Log) noteBucket(bk dedupBucket) {
	bs := *l.buckets.Load()
	if n := len(bs); n > 0 && bs[n-1] == bk { // the usual case: the newest
		return
	}
	i, found := slices.BinarySearchFunc(bs, bk, compareBuckets)
	if found {
		return
	}
	nb := slices.Insert(slices.Clip(bs), i, bk)
	l.buckets.Store(&nb)
}

// dropBuckets removes gone from the list of buckets the log holds. Only
// the committer calls it.
func (l *Log) dropBuckets(gone []dedupBucket) {
	nb := slices.DeleteFunc(slices.Clone(*l.buckets.Load()), func(b dedupBucket) bool {
		_, found := slices.BinarySearchFunc(gone, b, compareBuckets)
		return found
	})
	l.buckets.Store(&nb)
}

// loadKeyIndex lists the buckets db holds, one seek per bucket, and
// reports whether it holds 'k' entries of the layout before buckets.
func loadKeyIndex(db *pebble.DB) (buckets []dedupBucket, legacy bool, err error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{kindBucket}, UpperBound: []byte{kindBucket + 1}})
	if err != nil {
		return nil, false, err
	}
	for ok := it.First(); ok; {
		p, err := decodeKey(it.Key())
		if err != nil {
			return nil, false, errors.Join(fmt.Errorf("key index: %w", err), it.Close())
		}
		bk := dedupBucket{start: p.TS, width: p.Width}
		buckets = append(buckets, bk)
		ok = it.SeekGE(appendBucketEnd(nil, bk))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, false, err
	}
	old, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{kindDedup}, UpperBound: []byte{kindDedup + 1}})
	if err != nil {
		return nil, false, err
	}
	legacy = old.First()
	return buckets, legacy, errors.Join(old.Error(), old.Close())
}

// lookupIndexed finds key's entry in room's key index: in each bucket that
// may hold a TS at or after cutoff, newest first, then among the entries
// of the layout before buckets.
func (l *Log) lookupIndexed(db *pebble.DB, room, key string, cutoff int64) (DedupEntry, bool, error) {
	bs := *l.buckets.Load()
	buf := make([]byte, 0, bucketKeyLen(room, key))
	var it *pebble.Iterator
	for i := len(bs) - 1; i >= 0; i-- {
		if bs[i].end() <= cutoff {
			continue
		}
		buf = appendBucketKey(buf[:0], bs[i], room, key)
		if it == nil {
			var err error
			if it, err = db.NewIter(&pebble.IterOptions{LowerBound: []byte{kindBucket}, UpperBound: []byte{kindBucket + 1}}); err != nil {
				return DedupEntry{}, false, err
			}
			defer it.Close()
		}
		if !it.SeekGE(buf) || !bytes.Equal(it.Key(), buf) {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return DedupEntry{}, false, err
		}
		e, err := decodeDedupValue(v)
		if err != nil || e.TS >= cutoff {
			return e, err == nil, err
		}
	}
	if !l.legacyKeys {
		return DedupEntry{}, false, nil
	}
	e, found, err := getDedupEntry(db, appendDedupKey(buf[:0], room, key))
	if err != nil || !found || e.TS < cutoff {
		return DedupEntry{}, false, err
	}
	return e, true, nil
}

// scanIndexed calls fn with each key of room's key index whose TS is at
// or after since, bucket by bucket, then among the entries of the layout
// before buckets; it stops before the (limit+1)th and reports whether it
// visited them all.
func (l *Log) scanIndexed(db *pebble.DB, room string, since int64, limit int, fn func(key []byte, e DedupEntry)) (bool, error) {
	it, err := db.NewIter(nil)
	if err != nil {
		return false, err
	}
	n := 0
	// scan visits the entries whose keys are prefix + key.
	scan := func(prefix []byte) (bool, error) {
		upper := append(slices.Clip(prefix[:len(prefix)-1]), roomEnd+1)
		it.SetBounds(prefix, upper)
		for ok := it.First(); ok; ok = it.Next() {
			v, err := it.ValueAndErr()
			if err != nil {
				return false, err
			}
			e, err := decodeDedupValue(v)
			if err != nil {
				return false, err
			}
			if e.TS < since {
				continue
			}
			if n == limit {
				return false, nil
			}
			n++
			fn(it.Key()[len(prefix):], e)
		}
		return true, it.Error()
	}
	complete := true
	for _, bk := range *l.buckets.Load() {
		if bk.end() <= since {
			continue
		}
		if complete, err = scan(appendBucketKey(nil, bk, room, "")); !complete || err != nil {
			break
		}
	}
	if complete && err == nil && l.legacyKeys {
		complete, err = scan(appendDedupKey(nil, room, ""))
	}
	return complete && err == nil, errors.Join(err, it.Close())
}

// getDedupEntry reads the dedup value at k.
func getDedupEntry(db *pebble.DB, k []byte) (DedupEntry, bool, error) {
	v, closer, err := db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return DedupEntry{}, false, nil
	}
	if err != nil {
		return DedupEntry{}, false, err
	}
	e, err := decodeDedupValue(v)
	return e, err == nil, errors.Join(err, closer.Close())
}

// sweepBuckets deletes the buckets of the key index whose every TS is
// older than cutoff and returns how many.
func (l *Log) sweepBuckets(cutoff int64) (int, error) {
	var old []dedupBucket
	for _, bk := range *l.buckets.Load() {
		if bk.end() <= cutoff {
			old = append(old, bk)
		}
	}
	if len(old) == 0 {
		return 0, nil
	}
	err := l.runTask(func(_ *pebble.DB, b *pebble.Batch) error {
		for _, bk := range old {
			if err := b.DeleteRange(appendBucketPrefix(nil, bk), appendBucketEnd(nil, bk), nil); err != nil {
				return err
			}
		}
		l.dropBuckets(old)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return len(old), nil
}
