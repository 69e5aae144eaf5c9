package router

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/internal/testwait"
	"github.com/arena-mesh/arena/wal"
)

// clock is a settable test clock, shared by the router and the wal.
type clock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func newClock() *clock {
	return &clock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is a router on a real wal in a temporary directory, restartable.
type env struct {
	t     testing.TB
	dir   string
	clock *clock
	wcfg  wal.Config
	rcfg  Config
	log   *wal.Log
	r     *Router
}

// newEnv opens a wal and a router; tweak adjusts both configs first.
func newEnv(t testing.TB, tweak func(*wal.Config, *Config)) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), clock: newClock()}
	e.wcfg = wal.Config{Now: e.clock.Now}
	e.rcfg = Config{Now: e.clock.Now}
	if tt, ok := t.(*testing.T); ok {
		e.wcfg.Logger = zerolog.New(zerolog.NewTestWriter(tt)).Level(zerolog.InfoLevel)
		e.rcfg.Logger = zerolog.New(zerolog.NewTestWriter(tt))
	}
	if tweak != nil {
		tweak(&e.wcfg, &e.rcfg)
	}
	e.wcfg.Dir = e.dir
	e.start()
	t.Cleanup(e.stop)
	return e
}

// start opens the wal and the router.
func (e *env) start() {
	e.t.Helper()
	log, err := wal.Open(e.wcfg)
	if err != nil {
		e.t.Fatalf("open wal: %v", err)
	}
	cfg := e.rcfg
	cfg.Log = log
	r, err := New(cfg)
	if err != nil {
		log.Close()
		e.t.Fatalf("new router: %v", err)
	}
	e.log, e.r = log, r
}

// stop closes the router, then the wal.
func (e *env) stop() {
	e.t.Helper()
	if err := e.r.Close(); err != nil {
		e.t.Errorf("close router: %v", err)
	}
	if err := e.log.Close(); err != nil {
		e.t.Errorf("close wal: %v", err)
	}
}

// restart closes everything and opens it again on the same directory.
func (e *env) restart() {
	e.t.Helper()
	e.stop()
	e.start()
}

// publish publishes data to room with key and fails the test on error.
func (e *env) publish(room, key string) Ack {
	e.t.Helper()
	ack, err := e.r.Publish(context.Background(), PublishRequest{Room: room, From: "tester", Key: key, Data: []byte(`{"n":1}`)})
	if err != nil {
		e.t.Fatalf("publish to %q key %q: %v", room, key, err)
	}
	return ack
}

// publishKeys publishes n messages to room with keys prefix0 to
// prefix(n-1) and returns their acks.
func (e *env) publishKeys(room, prefix string, n int) []Ack {
	e.t.Helper()
	acks := make([]Ack, n)
	for i := range acks {
		acks[i] = e.publish(room, prefix+strconv.Itoa(i))
	}
	return acks
}

// publishN publishes n messages without keys.
func (e *env) publishN(room string, n int) {
	e.t.Helper()
	for range n {
		e.publish(room, "")
	}
}

// chanSink is a Sink that signals a channel (never blocking).
type chanSink struct{ c chan struct{} }

func newChanSink() *chanSink { return &chanSink{c: make(chan struct{}, 1)} }

func (s *chanSink) Notify(*Subscription) {
	select {
	case s.c <- struct{}{}:
	default:
	}
}

// countSink counts notifications.
type countSink struct {
	mu sync.Mutex // guards n
	n  int
}

func (s *countSink) Notify(*Subscription) {
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
}

func (s *countSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// subscribe subscribes with a chanSink and fails the test on error.
func (e *env) subscribe(room string, since *Position) (SubscribeResult, *chanSink) {
	e.t.Helper()
	sink := newChanSink()
	res, err := e.r.Subscribe(context.Background(), SubscribeRequest{Room: room, Since: since, Sink: sink})
	if err != nil {
		e.t.Fatalf("subscribe to %q: %v", room, err)
	}
	e.t.Cleanup(res.Sub.Close)
	return res, sink
}

// errTimeout is returned by pullUntil when the messages don't come.
var errTimeout = errors.New("timed out waiting for messages")

// pullUntil pulls from sub, waiting for notifications, until the cursor
// reaches seq; it returns every message pulled.
func pullUntil(sub *Subscription, sink *chanSink, seq uint64) ([]*Message, error) {
	var got []*Message
	deadline := time.After(20 * time.Second)
	for {
		var err error
		if got, err = sub.Pull(got, 100); err != nil {
			return got, err
		}
		if sub.Position().Seq >= seq {
			return got, nil
		}
		select {
		case <-sink.c:
		case <-deadline:
			return got, errTimeout
		}
	}
}

// checkSeqs fails unless msgs are exactly from..to in order, in epoch.
func checkSeqs(t testing.TB, msgs []*Message, epoch, from, to uint64) {
	t.Helper()
	got := seqs(msgs)
	if want := span(from, to); !slices.Equal(got, want) {
		t.Fatalf("seqs = %v, want %d..%d", compact(got), from, to)
	}
	for _, m := range msgs {
		if m.Epoch != epoch {
			t.Fatalf("message %d has epoch %d, want %d", m.Seq, m.Epoch, epoch)
		}
	}
}

// compact shortens a long seq list for error messages.
func compact(s []uint64) []uint64 {
	if len(s) > 40 {
		return append(slices.Clip(s[:20]), s[len(s)-20:]...)
	}
	return s
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, 20*time.Second, what, cond)
}

// catchups reads the catch-up counter.
func (e *env) catchups() float64 { return counterValue(e.t, e.r.metrics.catchups) }

// counterValue reads a counter.
func gaugeValue(t testing.TB, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatalf("read gauge: %v", err)
	}
	return m.GetGauge().GetValue()
}

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatalf("read counter: %v", err)
	}
	return m.GetCounter().GetValue()
}
