package wal

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestWALWriteFailure injects a failure into Pebble's WAL (the fsync, or
// the write before it) and checks that the affected record's durable
// callback gets the error, that later appends fail the same way instead of
// hanging or reaching Pebble, that Close returns, and that a reopened log
// still holds every record acknowledged before the failure.
//
// Pebble keeps a WAL error (record.LogWriter's flusher error is sticky) and
// calls Logger.Fatalf if a later commit trips over it; the log therefore
// stops applying batches after the first failure. With the small records
// here Pebble reports the error through Batch.SyncWait without reaching
// Fatalf.
func TestWALWriteFailure(t *testing.T) {
	tests := []struct {
		name   string
		inject func(op errorfs.Op) bool
	}{
		{"fsync fails", isWALSync},
		{"write fails", func(op errorfs.Op) bool {
			return op.Kind == errorfs.OpFileWrite && strings.HasSuffix(op.Path, ".log")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			toggle := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
				if tt.inject(op) {
					return errorfs.ErrInjected
				}
				return nil
			})}
			cfg := testConfig(t)
			cfg.FS = errorfs.Wrap(vfs.Default, toggle)
			l, err := Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			setEpochWait(t, l, "r", 1)
			for seq := uint64(1); seq <= 10; seq++ {
				appendWait(t, l, rec("r", 1, seq, 1, ""))
			}

			toggle.On()
			failed := make(chan error, 1)
			if err := l.Append(rec("r", 1, 11, 1, ""), nil, func(err error) { failed <- err }); err != nil {
				t.Fatal(err)
			}
			err = <-failed
			if !errors.Is(err, ErrFailed) || !errors.Is(err, errorfs.ErrInjected) {
				t.Fatalf("durable(%v), want an error wrapping ErrFailed and the injected error", err)
			}
			toggle.Off() // the log must stay failed without further injection

			later := make(chan error, 1)
			wrote := false
			if err := l.Append(rec("r", 1, 12, 1, ""), func() { wrote = true }, func(err error) { later <- err }); err != nil {
				t.Fatal(err)
			}
			if err := <-later; !errors.Is(err, ErrFailed) {
				t.Fatalf("append after the failure: durable(%v), want ErrFailed", err)
			}
			if wrote {
				t.Fatal("append after the failure was applied")
			}
			if err := l.Close(); !errors.Is(err, ErrFailed) {
				t.Fatalf("Close = %v, want ErrFailed", err)
			}

			cfg.FS = nil
			l2 := openLog(t, cfg)
			got, err := l2.Read("r", 1, 1, 100)
			if err != nil {
				t.Fatal(err)
			}
			// 1..10 were acknowledged; 11 may or may not have reached the
			// disk; 12 never reached Pebble.
			if s := seqs(got); !slices.Equal(s, span(1, 10)) && !slices.Equal(s, span(1, 11)) {
				t.Fatalf("after reopen the log holds %v, want 1..10 or 1..11", s)
			}
		})
	}
}
