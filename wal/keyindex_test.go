package wal

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
)

func TestBucketOf(t *testing.T) {
	tests := []struct {
		ts    int64
		width uint32
		want  int64
	}{
		{0, 1000, 0},
		{999, 1000, 0},
		{1000, 1000, 1000},
		{1_700_000_012_345, 15000, 1_700_000_010_000},
		{-1, 1000, -1000},
		{-1000, 1000, -1000},
		{-1001, 1000, -2000},
	}
	for _, tt := range tests {
		got := bucketOf(tt.ts, tt.width)
		if got.start != tt.want || got.width != tt.width {
			t.Errorf("bucketOf(%d, %d) = %+v, want start %d", tt.ts, tt.width, got, tt.want)
		}
		if tt.ts < got.start || tt.ts >= got.end() {
			t.Errorf("bucketOf(%d, %d) = %+v does not hold it", tt.ts, tt.width, got)
		}
	}
	widths := []struct {
		window time.Duration
		want   uint32
	}{
		{10 * time.Minute, 150_000},
		{time.Minute, 15_000},
		{time.Second, 1000},         // at least a second
		{24 * time.Hour, 3_600_000}, // at most an hour
	}
	for _, tt := range widths {
		if got := bucketWidth(tt.window); got != tt.want {
			t.Errorf("bucketWidth(%v) = %d, want %d", tt.window, got, tt.want)
		}
	}
}

// TestBucketKeyOrder: a bucket's keys sort within [prefix, end), buckets
// sort by start (negative ones first) and then width, and the end of a
// bucket whose width is the largest carries into its start.
func TestBucketKeyOrder(t *testing.T) {
	buckets := []dedupBucket{
		{-2000, 1000}, {-1000, 1000}, {0, 1000}, {0, 15000}, {0, math.MaxUint32}, {1000, 1000}, {math.MaxInt64 - 7, 1},
	}
	for i, bk := range buckets {
		lo, hi := appendBucketPrefix(nil, bk), appendBucketEnd(nil, bk)
		for _, k := range [][]byte{appendBucketKey(nil, bk, "a", "a"), appendBucketKey(nil, bk, "\xff\xff", "\xff\xff")} {
			if bytes.Compare(lo, k) > 0 || bytes.Compare(k, hi) >= 0 {
				t.Fatalf("bucket %+v: key %x outside [%x, %x)", bk, k, lo, hi)
			}
		}
		if i > 0 {
			prev := buckets[i-1]
			if compareBuckets(prev, bk) >= 0 || bytes.Compare(appendBucketEnd(nil, prev), lo) > 0 {
				t.Fatalf("bucket %+v does not sort after %+v", bk, prev)
			}
		}
	}
}

// TestKeyIndexAcrossWidths: buckets written under one dedup window are
// found again after a restart under another, next to the new width's
// buckets, and each is swept when its own end leaves the window.
func TestKeyIndexAcrossWidths(t *testing.T) {
	cfg, clk := clockedConfig(t, time.Minute) // buckets of 15 s
	l, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := clk.Now().UnixMilli()
	appendAll(t, l, []*Record{rec("r", 1, 1, now, "a"), rec("r", 1, 2, now, "b")})
	indexWait(t, l, "r", KeyUse{Key: "a", DedupEntry: DedupEntry{Epoch: 1, Seq: 1, TS: now}})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	cfg.DedupWindow = 4 * time.Minute // buckets of 60 s
	cfg.Registerer = prometheus.NewRegistry()
	l = openLog(t, cfg)
	if got := *l.buckets.Load(); len(got) != 1 || got[0] != bucketOf(now, 15_000) {
		t.Fatalf("buckets after reopening: %+v, want the one of 15 s", got)
	}
	indexWait(t, l, "r", KeyUse{Key: "b", DedupEntry: DedupEntry{Epoch: 1, Seq: 2, TS: now}})
	if got := len(*l.buckets.Load()); got != 2 {
		t.Fatalf("%d buckets, want one of each width", got)
	}
	for _, k := range []string{"a", "b"} {
		e, found, err := l.LookupKey("r", k)
		if err != nil || !found || e.TS != now {
			t.Fatalf("LookupKey(%s) = %+v, %v, %v", k, e, found, err)
		}
	}

	// Past the window and the narrow bucket, not the wide one.
	clk.Add(4*time.Minute + 15*time.Second)
	if err := l.sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := *l.buckets.Load(); len(got) != 1 || got[0].width != 60_000 {
		t.Fatalf("buckets after the first sweep: %+v, want the one of 60 s", got)
	}
	if n := countKeys(t, l.db, []byte{kindBucket}, []byte{kindBucket + 1}); n != 1 {
		t.Fatalf("%d key index entries left, want 1", n)
	}
	clk.Add(45 * time.Second)
	if err := l.sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := len(*l.buckets.Load()); got != 0 {
		t.Fatalf("%d buckets after the second sweep, want 0", got)
	}
	if n := countKeys(t, l.db, []byte{kindBucket}, []byte{kindBucket + 1}); n != 0 {
		t.Fatalf("%d key index entries left, want 0", n)
	}
}

// TestKeyIndexNewestUse: a key used again after it left the window has an
// entry in a newer bucket, and lookups answer with that one; an entry
// already outside the window is not written.
func TestKeyIndexNewestUse(t *testing.T) {
	cfg, clk := clockedConfig(t, time.Minute)
	l := openLog(t, cfg)
	first := clk.Now().UnixMilli()
	indexWait(t, l, "r", KeyUse{Key: "k", DedupEntry: DedupEntry{Epoch: 1, Seq: 1, TS: first}})
	clk.Add(2 * time.Minute)
	second := clk.Now().UnixMilli()
	indexWait(t, l, "r",
		KeyUse{Key: "k", DedupEntry: DedupEntry{Epoch: 1, Seq: 9, TS: second}},
		KeyUse{Key: "stale", DedupEntry: DedupEntry{Epoch: 1, Seq: 3, TS: first}})
	e, found, err := l.LookupKey("r", "k")
	if err != nil || !found || e.Seq != 9 {
		t.Fatalf("LookupKey = %+v, %v, %v; want the use at seq 9", e, found, err)
	}
	if n := countKeys(t, l.db, []byte{kindBucket}, []byte{kindBucket + 1}); n != 2 {
		t.Fatalf("%d key index entries, want 2 (the stale one left out)", n)
	}
	for _, miss := range [][2]string{{"r", "j"}, {"r", "k0"}, {"q", "k"}, {"r/", "k"}} {
		if e, found, err := l.LookupKey(miss[0], miss[1]); err != nil || found {
			t.Fatalf("LookupKey(%s, %s) = %+v, %v, %v; want a miss", miss[0], miss[1], e, found, err)
		}
	}
}

// TestKeyIndexLegacyEntries: 'k' entries and their 'x' expiry entries,
// written before the key index had buckets, are still found after a
// restart and swept once they leave the window.
func TestKeyIndexLegacyEntries(t *testing.T) {
	cfg, clk := clockedConfig(t, time.Minute)
	now := clk.Now().UnixMilli()
	l, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if l.legacyKeys {
		t.Fatal("an empty log reports 'k' entries")
	}
	b := l.db.NewBatch()
	for i, key := range []string{"old-1", "old-2"} {
		dk := make([]byte, dedupKeyLen("r", key))
		putDedupKey(dk, "r", key)
		v := make([]byte, dedupValueLen)
		putDedupValue(v, DedupEntry{Epoch: 1, Seq: uint64(i + 1), TS: now})
		xk := make([]byte, expiryKeyLen("r", key))
		putExpiryKey(xk, now, "r", key)
		if err := errors.Join(b.Set(dk, v, nil), b.Set(xk, nil, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.Registerer = prometheus.NewRegistry()
	l = openLog(t, cfg)
	if !l.legacyKeys {
		t.Fatal("reopened log does not report its 'k' entries")
	}
	e, found, err := l.LookupKey("r", "old-2")
	if err != nil || !found || e.Seq != 2 {
		t.Fatalf("LookupKey(old-2) = %+v, %v, %v", e, found, err)
	}
	clk.Add(time.Minute + time.Millisecond)
	if err := l.sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, l.metrics.retentionDeleted.WithLabelValues("dedup")); got != 2 {
		t.Fatalf("'k' entries deleted = %v, want 2", got)
	}
	for _, kind := range []byte{kindDedup, kindExpiry} {
		if n := countKeys(t, l.db, []byte{kind}, []byte{kind + 1}); n != 0 {
			t.Fatalf("%d %q keys left after the sweep", n, kind)
		}
	}
}

// TestIndexedKeys: a room's scan visits its entries inside the window in
// every bucket and among the entries of the layout before buckets, no
// other room's, and stops at its limit.
func TestIndexedKeys(t *testing.T) {
	cfg, clk := clockedConfig(t, time.Minute) // buckets of 15 s
	l, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	scan := func(room string, since int64, limit int) (map[string]int64, bool) {
		t.Helper()
		got := make(map[string]int64)
		complete, err := l.IndexedKeys(room, since, limit, func(key []byte, e DedupEntry) {
			if _, dup := got[string(key)]; dup {
				t.Errorf("key %q visited twice", key)
			}
			if e.Epoch != 1 || e.Seq == 0 {
				t.Errorf("key %q: entry %+v, want epoch 1 and its seq", key, e)
			}
			got[string(key)] = e.TS
		})
		if err != nil {
			t.Fatalf("IndexedKeys(%s): %v", room, err)
		}
		return got, complete
	}
	if got, complete := scan("r", 0, 10); len(got) != 0 || !complete {
		t.Fatalf("empty log: %v, complete %v", got, complete)
	}

	t0 := clk.Now().UnixMilli()
	use := func(key string, seq uint64, ts int64) KeyUse {
		return KeyUse{Key: key, DedupEntry: DedupEntry{Epoch: 1, Seq: seq, TS: ts}}
	}
	indexWait(t, l, "r", use("a", 1, t0))
	clk.Add(20 * time.Second) // the next bucket
	t1 := clk.Now().UnixMilli()
	indexWait(t, l, "r", use("b", 2, t1), use("c\x00d", 3, t1))
	indexWait(t, l, "rr", use("x", 1, t1)) // "r" is its prefix
	b := l.db.NewBatch()
	dk := make([]byte, dedupKeyLen("r", "old"))
	putDedupKey(dk, "r", "old")
	v := make([]byte, dedupValueLen)
	putDedupValue(v, DedupEntry{Epoch: 1, Seq: 4, TS: t1})
	if err := errors.Join(b.Set(dk, v, nil), b.Commit(pebble.Sync)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.Registerer = prometheus.NewRegistry()
	l = openLog(t, cfg)

	got, complete := scan("r", t0, 10)
	want := map[string]int64{"a": t0, "b": t1, "c\x00d": t1, "old": t1}
	if !complete || len(got) != len(want) {
		t.Fatalf("scan from t0: %v, complete %v; want %v", got, complete, want)
	}
	for k, ts := range want {
		if got[k] != ts {
			t.Fatalf("scan from t0: %v at %d, want %d", k, got[k], ts)
		}
	}
	if got, complete := scan("r", t0+1, 10); !complete || len(got) != 3 || got["a"] != 0 {
		t.Fatalf("scan after a's use: %v, complete %v; want b, c\\x00d and old", got, complete)
	}
	if got, complete := scan("r", t0, 4); !complete || len(got) != 4 {
		t.Fatalf("scan limited to all 4: %v, complete %v", got, complete)
	}
	if got, complete := scan("r", t0, 2); complete || len(got) != 2 {
		t.Fatalf("scan limited to 2: %v, complete %v; want 2 keys and incomplete", got, complete)
	}
	if got, _ := scan("rr", t0, 10); len(got) != 1 || got["x"] != t1 {
		t.Fatalf("scan of rr: %v, want x", got)
	}
	if _, err := l.IndexedKeys("bad\x00room", t0, 10, func([]byte, DedupEntry) {}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("IndexedKeys of an invalid room: %v, want ErrInvalid", err)
	}
}
