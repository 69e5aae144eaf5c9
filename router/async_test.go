package router

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/arena-mesh/arena/wal"
	"github.com/arena-mesh/arena/wal/waltest"
)

// asyncResult records the done calls of one PublishAsync.
type asyncResult struct {
	calls atomic.Int32
	ack   Ack
	err   error
	once  chan struct{} // closed by the first call
}

func newAsyncResult() *asyncResult { return &asyncResult{once: make(chan struct{})} }

func (a *asyncResult) done(ack Ack, err error) {
	if a.calls.Add(1) == 1 {
		a.ack, a.err = ack, err
		close(a.once)
	}
}

// wait returns the result once done ran, failing the test after 20s.
func (a *asyncResult) wait(t testing.TB) (Ack, error) {
	t.Helper()
	waitFor(t, "done to be called", func() bool { return a.calls.Load() > 0 })
	<-a.once
	return a.ack, a.err
}

// TestPublishAsyncPipelined: PublishAsync returns once a message is
// sequenced, so one caller's messages to a room are all queued in call
// order while the fsync of the first is still held; neither subscribers
// nor done see any of them until then, and then subscribers get them in
// call order and done runs exactly once for each, with seqs in call order. A duplicate of an in-flight key waits for its
// original.
func TestPublishAsyncPipelined(t *testing.T) {
	gate := waltest.NewSyncGate()
	e := newEnv(t, func(w *wal.Config, _ *Config) { w.FS = gate.FS() })
	t.Cleanup(gate.Release) // runs before the env closes: never leave the fsync held
	const room, n = "pipe", 20
	first := e.publish(room, "") // the room and its epoch are durable
	res, sink := e.subscribe(room, nil)

	gate.Hold()
	results := make([]*asyncResult, n)
	for i := range results {
		results[i] = newAsyncResult()
		req := PublishRequest{Room: room, From: "ann", Data: fmt.Appendf(nil, "%d", i)}
		if i%2 == 0 {
			req.Key = fmt.Sprintf("k%d", i)
		}
		if err := e.r.PublishAsync(t.Context(), req, results[i].done); err != nil {
			t.Fatalf("PublishAsync %d: %v", i, err)
		}
	}
	dup := newAsyncResult()
	if err := e.r.PublishAsync(t.Context(), PublishRequest{Room: room, Key: "k4", Data: []byte(`"again"`)}, dup.done); err != nil {
		t.Fatalf("PublishAsync of an in-flight key: %v", err)
	}
	<-gate.Held()

	// Nothing is durable yet: no subscriber sees any of them (a message
	// delivered before its fsync could be lost to a crash and its seq
	// reused), and no publisher is acked.
	if early, err := res.Sub.Pull(nil, n); err != nil || len(early) != 0 {
		t.Fatalf("pulled %d messages (err %v) while their fsync is held, want 0", len(early), err)
	}
	for i, r := range append(results, dup) {
		if c := r.calls.Load(); c != 0 {
			t.Fatalf("publish %d: done called %d times while its fsync is held", i, c)
		}
	}

	gate.Release()
	// Delivered in call order once durable.
	msgs, err := pullUntil(res.Sub, sink, first.Seq+n)
	if err != nil {
		t.Fatal(err)
	}
	checkSeqs(t, msgs, first.Epoch, first.Seq+1, first.Seq+n)
	for i, m := range msgs {
		if string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("seq %d carries %s, want %d: not in call order", m.Seq, m.Data, i)
		}
	}
	for i, r := range results {
		ack, err := r.wait(t)
		if err != nil || ack.Dup || ack.Epoch != first.Epoch || ack.Seq != first.Seq+1+uint64(i) {
			t.Fatalf("publish %d: ack %+v, %v; want seq %d", i, ack, err, first.Seq+1+uint64(i))
		}
	}
	if ack, err := dup.wait(t); err != nil || !ack.Dup || ack.Seq != first.Seq+5 {
		t.Fatalf("duplicate of in-flight k4: %+v, %v; want dup of seq %d", ack, err, first.Seq+5)
	}
	// Exactly once: a later durable group must not call them again.
	e.publish(room, "")
	for i, r := range append(results, dup) {
		if c := r.calls.Load(); c != 1 {
			t.Fatalf("publish %d: done called %d times, want 1", i, c)
		}
	}
}

// TestPublishAsyncOutcomes: the cases where done runs at once, or never.
func TestPublishAsyncOutcomes(t *testing.T) {
	t.Run("durable duplicate is answered before returning", func(t *testing.T) {
		e := newEnv(t, nil)
		orig := e.publish("out", "k")
		r := newAsyncResult()
		if err := e.r.PublishAsync(t.Context(), PublishRequest{Room: "out", Key: "k", Data: []byte(`1`)}, r.done); err != nil {
			t.Fatal(err)
		}
		if r.calls.Load() != 1 || !r.ack.Dup || r.ack.Seq != orig.Seq || r.err != nil {
			t.Fatalf("after return: %d calls, %+v, %v; want one dup of %+v", r.calls.Load(), r.ack, r.err, orig)
		}
	})
	t.Run("closed router: error, done never called", func(t *testing.T) {
		e := newEnv(t, nil)
		e.publish("out", "")
		if err := e.r.Close(); err != nil {
			t.Fatal(err)
		}
		r := newAsyncResult()
		if err := e.r.PublishAsync(t.Context(), PublishRequest{Room: "out", Data: []byte(`1`)}, r.done); !errors.Is(err, ErrClosed) {
			t.Fatalf("PublishAsync after Close = %v, want ErrClosed", err)
		}
		if c := r.calls.Load(); c != 0 {
			t.Fatalf("done called %d times after an error return", c)
		}
	})
	t.Run("canceled context: error, done never called", func(t *testing.T) {
		e := newEnv(t, nil)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		r := newAsyncResult()
		if err := e.r.PublishAsync(ctx, PublishRequest{Room: "out", Data: []byte(`1`)}, r.done); !errors.Is(err, context.Canceled) {
			t.Fatalf("PublishAsync with a canceled ctx = %v", err)
		}
		if c := r.calls.Load(); c != 0 {
			t.Fatalf("done called %d times after an error return", c)
		}
	})
}
