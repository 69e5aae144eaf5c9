package wal

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// isWALSync reports whether op syncs one of Pebble's WAL files.
func isWALSync(op errorfs.Op) bool {
	switch op.Kind {
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
		return strings.HasSuffix(op.Path, ".log")
	}
	return false
}

// TestGroupCommitGroups holds one WAL fsync in flight (an errorfs injector
// that blocks instead of failing) while many appenders publish, and checks
// that (1) every one of them is written (applied, readable) while the
// fsync is held, (2) none is durable before it completes, and (3) all of
// them are then made durable by at most one more fsync: far fewer fsyncs
// than records.
func TestGroupCommitGroups(t *testing.T) {
	var (
		walSyncs atomic.Int64
		hold     atomic.Bool
		held     = make(chan struct{}, 1)
		release  = make(chan struct{})
	)
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if isWALSync(op) {
			walSyncs.Add(1)
			if hold.CompareAndSwap(true, false) {
				held <- struct{}{}
				<-release
			}
		}
		return nil
	})
	cfg := testConfig(t)
	cfg.FS = errorfs.Wrap(vfs.Default, inj)
	l := openLog(t, cfg)
	// Registered after openLog, so it runs before Close: a failing test
	// must not leave the fsync held.
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce)
	setEpochWait(t, l, "r", 1)

	hold.Store(true)
	var written, durable atomic.Int64
	errs := make(chan error, 1000)
	onWritten := func() { written.Add(1) }
	onDurable := func(err error) {
		if err != nil {
			errs <- err
		}
		durable.Add(1)
	}
	if err := l.Append(rec("r", 1, 1, 1, ""), onWritten, onDurable); err != nil {
		t.Fatal(err)
	}
	<-held // seq 1's fsync is in flight and held
	syncsBefore := walSyncs.Load()

	const appenders, perG = 20, 25
	const total = 1 + appenders*perG
	var (
		mu  sync.Mutex // seq assignment + Append, as the router does
		seq uint64     = 1
		wg  sync.WaitGroup
	)
	for range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perG {
				mu.Lock()
				seq++
				err := l.Append(rec("r", 1, seq, 1, ""), onWritten, onDurable)
				mu.Unlock()
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	waitFor(t, "all records written while the fsync is held", func() bool { return written.Load() == total })
	if got := durable.Load(); got != 0 {
		t.Fatalf("%d records durable before their fsync completed", got)
	}
	if got, err := l.Read("r", 1, 1, total+1); err != nil || len(got) != total {
		t.Fatalf("read %d records while the fsync is held (err %v), want %d", len(got), err, total)
	}

	releaseOnce()
	waitFor(t, "all records durable", func() bool { return durable.Load() == total })
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	syncs := walSyncs.Load() - syncsBefore
	t.Logf("%d records made durable by %d fsync(s) after the held one, in %d groups",
		total, syncs, int(metricValue(t, l.metrics.batchRecords)))
	if syncs > 1 {
		t.Fatalf("%d WAL fsyncs after the held one, want 1 covering all %d records", syncs, total-1)
	}
	if got := metricValue(t, l.metrics.appends); got != total {
		t.Fatalf("appends metric = %v, want %d", got, total)
	}
	if groups := l.groups.Load(); groups > total+1 || groups == 0 {
		t.Fatalf("%d groups for %d records and one epoch change", groups, total)
	}
}

// TestGroupsBatchQueuedRecords checks the committer puts everything queued
// into one batch: with the committer parked (in a written callback that
// blocks, which real callers must not do) until MaxBatch records are
// queued, the next group holds all of them.
func TestGroupsBatchQueuedRecords(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBatch = 100
	l := openLog(t, cfg)
	setEpochWait(t, l, "r", 1)
	groupsBefore := l.groups.Load()

	parked := make(chan struct{})
	unpark := make(chan struct{})
	unparkOnce := sync.OnceFunc(func() { close(unpark) })
	t.Cleanup(unparkOnce) // runs before Close
	if err := l.Append(rec("r", 1, 1, 1, ""), func() { close(parked); <-unpark }, nil); err != nil {
		t.Fatal(err)
	}
	<-parked
	done := make(chan error, cfg.MaxBatch)
	for seq := uint64(2); seq <= uint64(cfg.MaxBatch)+1; seq++ {
		if err := l.Append(rec("r", 1, seq, 1, ""), nil, func(err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
	}
	if len(l.queue) != cfg.MaxBatch {
		t.Fatalf("%d records queued, want %d", len(l.queue), cfg.MaxBatch)
	}
	unparkOnce()
	for range cfg.MaxBatch {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if groups := l.groups.Load() - groupsBefore; groups != 2 {
		t.Fatalf("%d groups for 1 + %d queued records, want 2", groups, cfg.MaxBatch)
	}
}
