package router

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/arena-mesh/arena/wal"
)

// TestSlowSubscriber: a subscriber that never pulls doesn't delay another
// one nor grow memory; it later catches up from the wal with no gap.
func TestSlowSubscriber(t *testing.T) {
	const n, ringSize = 1000, 16
	e := newEnv(t, func(_ *wal.Config, c *Config) { c.RingSize = ringSize })
	slowSink := &countSink{}
	slowRes, err := e.r.Subscribe(t.Context(), SubscribeRequest{Room: "slow", Sink: slowSink})
	if err != nil {
		t.Fatal(err)
	}
	slow := slowRes.Sub
	t.Cleanup(slow.Close)
	fastRes, fastSink := e.subscribe("slow", nil)

	var fast []*Message
	var fastErr error
	var wg sync.WaitGroup
	wg.Go(func() { fast, fastErr = pullUntil(fastRes.Sub, fastSink, n) })
	var pwg sync.WaitGroup
	for range 4 {
		pwg.Go(func() {
			for range n / 4 {
				if _, err := e.r.Publish(t.Context(), PublishRequest{Room: "slow", Data: []byte(`1`)}); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
			}
		})
	}
	pwg.Wait()
	wg.Wait()
	if fastErr != nil {
		t.Fatal(fastErr)
	}
	ep := fastRes.Head.Epoch
	checkSeqs(t, fast, ep, 1, n)

	// Memory: the room holds the ring and nothing per subscriber.
	rm, _ := e.r.room("slow")
	rm.ring.mu.RLock()
	held, bufLen := rm.ring.count, len(rm.ring.buf)
	rm.ring.mu.RUnlock()
	if held > ringSize || bufLen > ringSize {
		t.Fatalf("ring holds %d messages in a buffer of %d, want <= %d", held, bufLen, ringSize)
	}
	// The slow one was told once and never again while it did not pull.
	if got := slowSink.count(); got != 1 {
		t.Fatalf("slow subscriber notified %d times, want 1", got)
	}

	before := e.catchups()
	var slowMsgs []*Message
	for slow.Position().Seq < n {
		if slowMsgs, err = slow.Pull(slowMsgs, 64); err != nil {
			t.Fatal(err)
		}
	}
	checkSeqs(t, slowMsgs, ep, 1, n)
	if e.catchups() <= before {
		t.Fatal("slow subscriber caught up without reading the wal")
	}
}

// TestSlowSubscriberOutOfRetention: a subscriber that fell behind the wal's
// retention gets ErrTooSlow, while the others keep going.
func TestSlowSubscriberOutOfRetention(t *testing.T) {
	const n, keep = 300, 50
	e := newEnv(t, func(w *wal.Config, c *Config) {
		c.RingSize = 16
		w.Retention.MaxCount = keep
		w.SweepInterval = 5 * time.Millisecond
	})
	slow, _ := e.subscribe("gone", nil)
	fastRes, fastSink := e.subscribe("gone", nil)
	// The fast one keeps up (well within retention) in steps of 10.
	var fast []*Message
	for seq := uint64(10); seq <= n; seq += 10 {
		e.publishN("gone", 10)
		msgs, err := pullUntil(fastRes.Sub, fastSink, seq)
		if err != nil {
			t.Fatalf("fast subscriber at %d: %v", seq, err)
		}
		fast = append(fast, msgs...)
	}
	checkSeqs(t, fast, fastRes.Head.Epoch, 1, n)
	waitFor(t, "retention sweep", func() bool {
		first, err := e.log.First("gone", fastRes.Head.Epoch)
		return err == nil && first > 1
	})
	if _, err := slow.Sub.Pull(nil, 64); !errors.Is(err, ErrTooSlow) {
		t.Fatalf("slow pull = %v, want ErrTooSlow", err)
	}
	// The fast one is unaffected.
	e.publish("gone", "")
	if msgs, err := pullUntil(fastRes.Sub, fastSink, n+1); err != nil || len(msgs) != 1 {
		t.Fatalf("fast pull after: %d messages, %v", len(msgs), err)
	}
}
