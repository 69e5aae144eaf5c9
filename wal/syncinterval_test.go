package wal

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// walSyncTimes wraps the OS filesystem so that the start time of every
// fsync of a WAL file is recorded.
type walSyncTimes struct {
	mu    sync.Mutex
	times []time.Time // guarded by mu
}

func (w *walSyncTimes) fs() vfs.FS {
	return errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if isWALSync(op) {
			w.mu.Lock()
			w.times = append(w.times, time.Now())
			w.mu.Unlock()
		}
		return nil
	}))
}

func (w *walSyncTimes) snapshot() []time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Time(nil), w.times...)
}

// TestSyncIntervalSpacesFsyncs appends records one at a time, each waiting
// for the previous one to be durable, so that every record needs an fsync
// of its own. With SyncInterval set, no two WAL fsyncs start closer
// together than the interval (the interval runs from the end of one fsync,
// so start to start is at least that); without it they would follow each
// other as fast as the disk allows.
func TestSyncIntervalSpacesFsyncs(t *testing.T) {
	const interval = 30 * time.Millisecond
	var syncs walSyncTimes
	cfg := testConfig(t)
	cfg.FS = syncs.fs()
	cfg.SyncInterval = interval
	l := openLog(t, cfg)

	setEpochWait(t, l, "r", 1)
	from := len(syncs.snapshot())
	const n = 6
	for seq := uint64(1); seq <= n; seq++ {
		appendWait(t, l, rec("r", 1, seq, 1, ""))
	}
	times := syncs.snapshot()[from:]
	if len(times) < n {
		t.Fatalf("%d WAL fsyncs for %d records appended one by one, want at least %d", len(times), n, n)
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < interval {
			t.Errorf("WAL fsync %d started %v after the previous one, want at least the sync interval %v", i, gap, interval)
		}
	}
	if got, err := l.Read("r", 1, 1, n+1); err != nil || len(got) != n {
		t.Fatalf("read %d records (err %v), want %d", len(got), err, n)
	}
}

// TestSyncIntervalCloseKeepsPending closes the log while records wait for
// a delayed fsync: Close makes them durable (their callbacks report
// success) and they are there after a reopen.
func TestSyncIntervalCloseKeepsPending(t *testing.T) {
	cfg := testConfig(t)
	cfg.SyncInterval = MaxSyncInterval
	l, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	setEpochWait(t, l, "r", 1) // an fsync: the next one waits for the interval
	const n = 5
	errs := make(chan error, n)
	for seq := uint64(1); seq <= n; seq++ {
		if err := l.Append(rec("r", 1, seq, 1, ""), nil, func(err error) { errs <- err }); err != nil {
			t.Fatalf("Append %d: %v", seq, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("durable callback after Close: %v", err)
		}
	}

	cfg.Registerer = nil
	l = openLog(t, cfg)
	got, err := l.Read("r", 1, 1, n+1)
	if err != nil || len(got) != n {
		t.Fatalf("after reopen: read %d records (err %v), want %d", len(got), err, n)
	}
}

// TestSyncIntervalValidated refuses negative intervals and intervals above
// MaxSyncInterval.
func TestSyncIntervalValidated(t *testing.T) {
	for _, d := range []time.Duration{-time.Millisecond, MaxSyncInterval + time.Millisecond} {
		cfg := testConfig(t)
		cfg.SyncInterval = d
		if l, err := Open(cfg); !errors.Is(err, ErrInvalid) {
			if err == nil {
				_ = l.Close()
			}
			t.Errorf("SyncInterval %v: Open error %v, want ErrInvalid", d, err)
		}
	}
}
