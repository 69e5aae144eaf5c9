package router

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/arena-mesh/arena/wal"
)

// TestTotalOrder: many concurrent publishers in one room; every subscriber
// sees 1..N exactly once, in order, and the acks are exactly 1..N.
func TestTotalOrder(t *testing.T) {
	const publishers, each, subscribers = 8, 150, 5
	const total = publishers * each
	e := newEnv(t, func(_ *wal.Config, c *Config) { c.RingSize = 64 })
	head, err := e.r.Head("order")
	if err != nil {
		t.Fatal(err)
	}

	type result struct {
		msgs []*Message
		err  error
	}
	results := make([]result, subscribers)
	var wg sync.WaitGroup
	for i := range subscribers {
		res, sink := e.subscribe("order", nil)
		if res.Reset || res.Head != head {
			t.Fatalf("subscribe: %+v, want head %+v without reset", res, head)
		}
		wg.Go(func() {
			results[i].msgs, results[i].err = pullUntil(res.Sub, sink, total)
		})
	}

	acked := make([][]uint64, publishers)
	var pwg sync.WaitGroup
	for p := range publishers {
		pwg.Go(func() {
			for range each {
				ack, err := e.r.Publish(t.Context(), PublishRequest{Room: "order", From: fmt.Sprint(p), Data: []byte(`1`)})
				if err != nil {
					t.Errorf("publish: %v", err)
					return
				}
				if ack.Epoch != head.Epoch || ack.Dup {
					t.Errorf("ack %+v, want epoch %d, not dup", ack, head.Epoch)
				}
				acked[p] = append(acked[p], ack.Seq)
			}
		})
	}
	pwg.Wait()
	wg.Wait()

	seen := make([]bool, total+1)
	for p, acks := range acked {
		for i, s := range acks {
			if i > 0 && s <= acks[i-1] {
				t.Fatalf("publisher %d: acks not increasing: %d after %d", p, s, acks[i-1])
			}
			if s < 1 || s > total || seen[s] {
				t.Fatalf("ack seq %d out of range or acked twice", s)
			}
			seen[s] = true
		}
	}
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("subscriber %d: %v", i, r.err)
		}
		checkSeqs(t, r.msgs, head.Epoch, 1, total)
	}
}

// TestSubscribeDuringPublish: subscribers joining while messages flow get
// exactly the messages after their Head, with no gap and no duplicate.
func TestSubscribeDuringPublish(t *testing.T) {
	const total = 600
	e := newEnv(t, func(_ *wal.Config, c *Config) { c.RingSize = 32 })
	ctx := context.Background()

	var pwg sync.WaitGroup
	for range 4 {
		pwg.Go(func() {
			for range total / 4 {
				if _, err := e.r.Publish(ctx, PublishRequest{Room: "join", Data: []byte(`1`)}); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
			}
		})
	}
	var wg sync.WaitGroup
	for i := range 10 {
		res, sink := e.subscribe("join", nil)
		wg.Go(func() {
			msgs, err := pullUntil(res.Sub, sink, total)
			if err != nil {
				t.Errorf("subscriber %d: %v", i, err)
				return
			}
			checkSeqs(t, msgs, res.Head.Epoch, res.Head.Seq+1, total)
		})
		// Let some messages through before the next one joins.
		waitFor(t, "progress", func() bool { h, _ := e.r.Head("join"); return h.Seq >= uint64(i*total/12) })
	}
	pwg.Wait()
	wg.Wait()
}
