package wal

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/internal/testwait"
)

// testConfig is a Config on a fresh temp dir with a test logger, a private
// registry and a sweeper that does not run on its own.
func testConfig(t *testing.T) Config {
	t.Helper()
	return Config{
		Dir:           t.TempDir(),
		Logger:        zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel),
		Registerer:    prometheus.NewRegistry(),
		SweepInterval: time.Hour,
	}
}

// clockedConfig is testConfig with the given dedup window (0: the
// default), on a clock at 2025-06-01 that the test moves.
func clockedConfig(t *testing.T, window time.Duration) (Config, *clock) {
	t.Helper()
	clk := newClock(time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC))
	cfg := testConfig(t)
	cfg.Now = clk.Now
	cfg.DedupWindow = window
	return cfg, clk
}

// openLog opens cfg and closes the log at the end of the test.
func openLog(t *testing.T, cfg Config) *Log {
	t.Helper()
	l, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// appendWait appends rec and waits for durable.
func appendWait(t *testing.T, l *Log, rec *Record) {
	t.Helper()
	done := make(chan error, 1)
	if err := l.Append(rec, nil, func(err error) { done <- err }); err != nil {
		t.Fatalf("Append %s/%d: %v", rec.Room, rec.Seq, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("durable %s/%d: %v", rec.Room, rec.Seq, err)
	}
}

// indexWait indexes keys of room and waits for durable.
func indexWait(t *testing.T, l *Log, room string, keys ...KeyUse) {
	t.Helper()
	done := make(chan error, 1)
	if err := l.IndexKeys(room, keys, func(err error) { done <- err }); err != nil {
		t.Fatalf("IndexKeys %s: %v", room, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("IndexKeys %s durable: %v", room, err)
	}
}

// setEpochWait records room's epoch and waits for durable.
func setEpochWait(t *testing.T, l *Log, room string, epoch uint64) {
	t.Helper()
	done := make(chan error, 1)
	if err := l.SetEpoch(room, epoch, func(err error) { done <- err }); err != nil {
		t.Fatalf("SetEpoch %s: %v", room, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("SetEpoch %s durable: %v", room, err)
	}
}

// rec builds a record with data derived from its position.
func rec(room string, epoch, seq uint64, ts int64, key string) *Record {
	return &Record{
		Room: room, Epoch: epoch, Seq: seq, TS: ts,
		From: "user-" + room, Key: key,
		Data: fmt.Appendf(nil, `{"room":%q,"seq":%d}`, room, seq),
	}
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline (a hang detector, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, 30*time.Second, what, cond)
}

// clock is a settable Config.Now.
type clock struct{ ms atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ms.Store(t.UnixMilli())
	return c
}

func (c *clock) Now() time.Time      { return time.UnixMilli(c.ms.Load()) }
func (c *clock) Add(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// seqs returns the seqs of recs.
func seqs(recs []Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

// orderLog records callback order from the log's goroutines.
type orderLog struct {
	mu sync.Mutex
	// ids are appended in callback order; guarded by mu.
	ids []int
}

func (o *orderLog) add(id int) {
	o.mu.Lock()
	o.ids = append(o.ids, id)
	o.mu.Unlock()
}

func (o *orderLog) snapshot() []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]int(nil), o.ids...)
}

// appendAll appends recs without waiting in between, then waits until all
// are durable.
func appendAll(t *testing.T, l *Log, recs []*Record) {
	t.Helper()
	errs := make(chan error, len(recs))
	for _, r := range recs {
		if err := l.Append(r, nil, func(err error) { errs <- err }); err != nil {
			t.Fatalf("Append %s/%d: %v", r.Room, r.Seq, err)
		}
	}
	for range recs {
		if err := <-errs; err != nil {
			t.Fatalf("durable: %v", err)
		}
	}
}

// metricValue reads a counter's value, or a histogram's sample count.
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if h := d.GetHistogram(); h != nil {
		return float64(h.GetSampleCount())
	}
	return d.GetCounter().GetValue()
}
