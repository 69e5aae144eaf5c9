package wal

import (
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// BenchmarkAppendGroupCommit measures appends from many concurrent
// publishers, each waiting for durable before its next append (as a
// publisher waits for its ack), on the real disk of b.TempDir(). Group
// commit lets the fsync cost be shared; records/s is the figure of merit.
func BenchmarkAppendGroupCommit(b *testing.B) {
	for _, par := range []int{1, 16, 64} {
		b.Run("publishers="+strconv.Itoa(par*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			cfg := Config{Dir: b.TempDir(), SweepInterval: 1 << 62}
			l, err := Open(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			var room atomic.Int64
			data := []byte(`{"text":"hello, this is a typical chat message of some length"}`)
			b.SetParallelism(par)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				// One room per publisher: no shared seq lock in the way.
				r := &Record{Room: "bench/" + strconv.FormatInt(room.Add(1), 10), Epoch: 1, From: "bench", Data: data}
				done := make(chan error, 1)
				durable := func(err error) { done <- err } // reused: one append in flight per publisher
				for pb.Next() {
					r.Seq++
					r.TS = int64(r.Seq)
					if err := l.Append(r, nil, durable); err != nil {
						b.Error(err)
						return
					}
					if err := <-done; err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(b.N)/float64(max(l.groups.Load(), 1)), "records/group")
			var fsyncs dto.Metric
			if err := l.db.Metrics().LogWriter.FsyncLatency.Write(&fsyncs); err == nil {
				b.ReportMetric(float64(b.N)/float64(max(fsyncs.GetHistogram().GetSampleCount(), 1)), "records/fsync")
			}
		})
	}
}

// BenchmarkRead measures reading 100 records from a room's log (the
// catch-up path), served from the memtable.
func BenchmarkRead(b *testing.B) {
	l, err := Open(Config{Dir: b.TempDir(), SweepInterval: 1 << 62})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const n = 10_000
	errs := make(chan error, n)
	for seq := uint64(1); seq <= n; seq++ {
		r := rec("bench", 1, seq, int64(seq), "key-"+strconv.FormatUint(seq, 10))
		if err := l.Append(r, nil, func(err error) { errs <- err }); err != nil {
			b.Fatal(err)
		}
	}
	for range n {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		from := uint64(i*97%(n-100)) + 1
		recs, err := l.Read("bench", 1, from, 100)
		if err != nil || len(recs) != 100 {
			b.Fatalf("read %d records: %v", len(recs), err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkRooms measures recovery's room scan over 100k rooms, each with
// an epoch and a few messages.
func BenchmarkRooms(b *testing.B) {
	l, err := Open(Config{Dir: b.TempDir(), SweepInterval: 1 << 62})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const rooms = 100_000
	var pending atomic.Int64
	errs := make(chan error, 1)
	durable := func(err error) {
		if err != nil {
			select {
			case errs <- err:
			default:
			}
		}
		pending.Add(-1)
	}
	for r := range rooms {
		room := "room/" + strconv.Itoa(r)
		pending.Add(4)
		if err := l.SetEpoch(room, 1, durable); err != nil {
			b.Fatal(err)
		}
		for seq := uint64(1); seq <= 3; seq++ {
			if err := l.Append(rec(room, 1, seq, 1, ""), nil, durable); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Close waits for every durable callback.
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	if l, err = Open(Config{Dir: l.cfg.Dir, SweepInterval: 1 << 62}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		states, err := l.Rooms()
		if err != nil || len(states) != rooms || states[0].Head != 3 {
			b.Fatalf("Rooms: %d rooms, %v", len(states), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rooms), "ns/room")
}

// BenchmarkLookupKeyMiss measures a lookup of a key the index does not
// hold (what a room pays on a miss for a window after a restart), with
// 100 rooms × 2,000 keys indexed across a ten-minute window, flushed to
// sstables.
func BenchmarkLookupKeyMiss(b *testing.B) {
	start := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	l, clk := openKeyIndexBench(b, start)
	const rooms, keys = 100, 2000
	for i := range keys {
		ts := start.UnixMilli() + int64(i)*300 // 2,000 keys over 10 minutes
		clk.ms.Store(ts)
		for r := range rooms {
			done := make(chan error, 1)
			k := KeyUse{Key: "key-" + strconv.Itoa(i), DedupEntry: DedupEntry{Epoch: 1, Seq: uint64(i + 1), TS: ts}}
			if err := l.IndexKeys("room-"+strconv.Itoa(r), []KeyUse{k}, func(err error) { done <- err }); err != nil {
				b.Fatal(err)
			}
			if i == keys-1 && r == rooms-1 {
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	if err := l.db.Flush(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, found, err := l.LookupKey("room-"+strconv.Itoa(i%rooms), "absent-"+strconv.Itoa(i)); err != nil || found {
			b.Fatal(found, err)
		}
	}
}

// BenchmarkIndexedKeys: a restarted room reads which keys its index holds
// (IndexedKeys): 200,000 keys over a ten-minute window, flushed, one scan
// per op.
func BenchmarkIndexedKeys(b *testing.B) {
	start := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	l, clk := openKeyIndexBench(b, start)
	const calls, perCall = 200, 1000
	for c := range calls {
		ts := start.UnixMilli() + int64(c)*3000 // 200,000 keys over 10 minutes
		clk.ms.Store(ts)
		uses := make([]KeyUse, perCall)
		for i := range uses {
			n := c*perCall + i
			uses[i] = KeyUse{Key: "key-" + strconv.Itoa(n), DedupEntry: DedupEntry{Epoch: 1, Seq: uint64(n + 1), TS: ts}}
		}
		done := make(chan error, 1)
		if err := l.IndexKeys("room", uses, func(err error) { done <- err }); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	if err := l.db.Flush(); err != nil {
		b.Fatal(err)
	}
	since := start.UnixMilli()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		n := 0
		all, err := l.IndexedKeys("room", since, calls*perCall, func([]byte, DedupEntry) { n++ })
		if err != nil || !all || n != calls*perCall {
			b.Fatal(n, all, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*calls*perCall), "ns/key")
}

// openKeyIndexBench opens a log for a key index benchmark: a ten-minute
// dedup window, no sweeps, and a clock at start that the benchmark moves.
func openKeyIndexBench(b *testing.B, start time.Time) (*Log, *clock) {
	clk := newClock(start)
	l, err := Open(Config{Dir: b.TempDir(), SweepInterval: 1 << 62, DedupWindow: 10 * time.Minute, Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	return l, clk
}
