package router

import (
	"bytes"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// TestMessageEncoded: the encoding is computed once and shared.
func TestMessageEncoded(t *testing.T) {
	m := &Message{Room: "r", Seq: 7}
	var calls atomic.Int32
	enc := func(m *Message) []byte {
		calls.Add(1)
		return []byte("msg " + strconv.FormatUint(m.Seq, 10))
	}
	results := make([][]byte, 16)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i] = m.Encoded(enc) })
	}
	wg.Wait()
	for _, b := range results {
		if !bytes.Equal(b, []byte("msg 7")) || &b[0] != &results[0][0] {
			t.Fatalf("Encoded = %q, not the shared cached bytes", b)
		}
	}
	before := calls.Load()
	m.Encoded(enc)
	if calls.Load() != before {
		t.Fatal("Encoded ran the encoder again after caching")
	}
}

// TestFanoutAllocs pins the Notify/Pull hot path: a written message
// notifies every subscriber and each pulls it without allocating.
func TestFanoutAllocs(t *testing.T) {
	e := newEnv(t, nil)
	rm, err := e.r.room("allocs")
	if err != nil {
		t.Fatal(err)
	}
	const subs = 100
	sink := &countSink{}
	var list []*Subscription
	for range subs {
		res, err := e.r.Subscribe(t.Context(), SubscribeRequest{Room: "allocs", Sink: sink})
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, res.Sub)
	}
	// Messages are made up front: the test drives the written callback
	// directly (what the wal calls), bypassing the wal.
	const runs = 50
	msgs := make([]*Message, runs+1)
	for i := range msgs {
		msgs[i] = &Message{Room: "allocs", Epoch: rm.epoch, Seq: uint64(i + 1)}
	}
	next := 0
	buf := make([]*Message, 0, 16)
	allocs := testing.AllocsPerRun(runs, func() {
		rm.written(msgs[next])
		next++
		for _, s := range list {
			buf, err = s.Pull(buf[:0], 16)
			if err != nil || len(buf) != 1 {
				t.Fatalf("pull: %d messages, %v", len(buf), err)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("written+Pull allocate %.1f times per message, want 0", allocs)
	}
	if got, want := sink.count(), subs*(runs+1); got != want {
		t.Fatalf("%d notifications, want %d (one per subscriber per message)", got, want)
	}
}
