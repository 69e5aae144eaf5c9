package router

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/arena-mesh/arena/wal"
)

func TestIdempotentPublish(t *testing.T) {
	t.Run("same key twice", func(t *testing.T) {
		e := newEnv(t, nil)
		first := e.publish("dup", "k1")
		e.clock.Advance(time.Minute)
		second := e.publish("dup", "k1")
		if first.Dup || !second.Dup {
			t.Fatalf("acks %+v, %+v: want the second one Dup", first, second)
		}
		if second.Epoch != first.Epoch || second.Seq != first.Seq || second.TS != first.TS {
			t.Fatalf("dup ack %+v, want the original %+v", second, first)
		}
		if h, _ := e.r.Head("dup"); h.Seq != 1 {
			t.Fatalf("head = %+v, want seq 1: the duplicate was published", h)
		}
		// The same key in another room is another message.
		if other := e.publish("dup2", "k1"); other.Dup {
			t.Fatalf("key in another room: %+v, want not Dup", other)
		}
	})

	t.Run("key expires after the window", func(t *testing.T) {
		e := newEnv(t, nil)
		first := e.publish("exp", "k")
		e.clock.Advance(DefaultDedupWindow)
		again := e.publish("exp", "k")
		if again.Dup || again.Seq != first.Seq+1 {
			t.Fatalf("after the window: %+v, want a new message after %+v", again, first)
		}
	})

	t.Run("concurrent duplicates", func(t *testing.T) {
		e := newEnv(t, nil)
		const racers = 20
		acks := make([]Ack, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				ack, err := e.r.Publish(context.Background(), PublishRequest{Room: "race", Key: "same", Data: []byte(`1`)})
				if err != nil {
					t.Errorf("publish: %v", err)
				}
				acks[i] = ack
			})
		}
		wg.Wait()
		originals := 0
		for _, a := range acks {
			if !a.Dup {
				originals++
			}
			if a.Seq != 1 || a.Epoch != acks[0].Epoch {
				t.Fatalf("ack %+v, want seq 1 in epoch %d", a, acks[0].Epoch)
			}
		}
		if originals != 1 {
			t.Fatalf("%d acks not Dup, want exactly 1", originals)
		}
		if h, _ := e.r.Head("race"); h.Seq != 1 {
			t.Fatalf("head = %+v, want seq 1", h)
		}
	})

	t.Run("keys evicted from memory are found in the wal", func(t *testing.T) {
		e := newEnv(t, func(_ *wal.Config, c *Config) { c.DedupMemory = 2 })
		acks := e.publishKeys("mem", "k", 5)
		for i, want := range acks {
			got := e.publish("mem", fmt.Sprintf("k%d", i))
			if !got.Dup || got.Seq != want.Seq || got.TS != want.TS {
				t.Fatalf("republish k%d: %+v, want Dup of %+v", i, got, want)
			}
		}
		if n := e.publish("mem", "fresh"); n.Dup || n.Seq != 6 {
			t.Fatalf("fresh key: %+v, want seq 6", n)
		}
	})

	t.Run("dedup survives a restart", func(t *testing.T) {
		e := newEnv(t, nil)
		orig := e.publish("restart", "k")
		e.publishN("restart", 3)
		e.restart()
		e.clock.Advance(time.Minute)
		again := e.publish("restart", "k")
		if !again.Dup || again.Seq != orig.Seq || again.Epoch != orig.Epoch || again.TS != orig.TS {
			t.Fatalf("after restart: %+v, want Dup of %+v", again, orig)
		}
		next := e.publish("restart", "k2")
		if next.Dup || next.Seq != 5 || next.Epoch != orig.Epoch {
			t.Fatalf("new key after restart: %+v, want seq 5 in epoch %d", next, orig.Epoch)
		}
		// Once the window has passed since the original, the key is new.
		e.clock.Advance(DefaultDedupWindow)
		if late := e.publish("restart", "k"); late.Dup {
			t.Fatalf("after the window: %+v, want not Dup", late)
		}
	})

	t.Run("a publish writes no index entry; a restart relearns keys from the messages", func(t *testing.T) {
		e := newEnv(t, nil)
		acks := e.publishKeys("relearn", "k", 5)
		e.publishN("relearn", 2)
		if _, found, err := e.log.LookupKey("relearn", "k0"); err != nil || found {
			t.Fatalf("k0 in the wal's index: %v, %v; want only in its message", found, err)
		}
		e.restart()
		e.clock.Advance(time.Minute)
		for i, want := range acks {
			got := e.publish("relearn", fmt.Sprintf("k%d", i))
			if !got.Dup || got.Epoch != want.Epoch || got.Seq != want.Seq || got.TS != want.TS {
				t.Fatalf("republish k%d after the restart: %+v, want Dup of %+v", i, got, want)
			}
		}
	})

	t.Run("keys evicted from memory are indexed and survive a restart", func(t *testing.T) {
		e := newEnv(t, func(_ *wal.Config, c *Config) { c.DedupMemory = 2 })
		acks := e.publishKeys("evict", "k", 5)
		for i := range 5 {
			_, found, err := e.log.LookupKey("evict", fmt.Sprintf("k%d", i))
			if err != nil || found != (i < 3) {
				t.Fatalf("k%d in the wal's index: %v, %v; want %v (memory holds the newest 2)", i, found, err, i < 3)
			}
		}
		e.restart()
		for i, want := range acks {
			got := e.publish("evict", fmt.Sprintf("k%d", i))
			if !got.Dup || got.Epoch != want.Epoch || got.Seq != want.Seq {
				t.Fatalf("republish k%d after the restart: %+v, want Dup of %+v", i, got, want)
			}
		}
		// The relearnt keys are evicted like any other: k3 is indexed now.
		e.publish("evict", "k5")
		if _, found, err := e.log.LookupKey("evict", "k3"); err != nil || !found {
			t.Fatalf("k3 after k5 pushed it out of memory: in the index %v, %v; want indexed", found, err)
		}
	})

	t.Run("a restarted room relearns which keys its index holds", func(t *testing.T) {
		e := newEnv(t, func(_ *wal.Config, c *Config) { c.DedupMemory = 10 })
		const n = 300
		acks := e.publishKeys("relearnt", "k", n)
		e.restart()
		e.clock.Advance(time.Minute)
		// Without the index's keys in the room's filter, each new key
		// would be looked up for a window after the restart.
		for i := range n {
			if a := e.publish("relearnt", fmt.Sprintf("new%d", i)); a.Dup {
				t.Fatalf("new key %d after the restart: %+v, want a new message", i, a)
			}
		}
		if got := counterValue(t, e.r.metrics.keyLookups); got > 10 {
			t.Fatalf("%v key lookups for %d new keys after the restart, want nearly none", got, n)
		}
		// Every key used before the restart is still a duplicate: those
		// evicted before it through the index, the newest through memory.
		for _, i := range []int{0, 150, n - 11, n - 1} {
			if got := e.publish("relearnt", fmt.Sprintf("k%d", i)); !got.Dup || got.Seq != acks[i].Seq || got.Epoch != acks[i].Epoch {
				t.Fatalf("republish k%d after the restart: %+v, want Dup of %+v", i, got, acks[i])
			}
		}
	})

	t.Run("a room with too many indexed keys looks up every miss after a restart", func(t *testing.T) {
		defer func(n int) { maxRelearntKeys = n }(maxRelearntKeys)
		maxRelearntKeys = 50
		e := newEnv(t, func(_ *wal.Config, c *Config) { c.DedupMemory = 10 })
		const n = 100
		acks := e.publishKeys("toomany", "k", n)
		e.restart()
		for i := range 20 {
			e.publish("toomany", fmt.Sprintf("new%d", i))
		}
		if got := counterValue(t, e.r.metrics.keyLookups); got != 20 {
			t.Fatalf("%v key lookups for 20 new keys, want 20: the filter holds only part of the index", got)
		}
		if got := e.publish("toomany", "k70"); !got.Dup || got.Seq != acks[70].Seq {
			t.Fatalf("republish k70 (indexed past the limit): %+v, want Dup of %+v", got, acks[70])
		}
	})

	t.Run("a lowered dedup memory forgets no key across a restart", func(t *testing.T) {
		e := newEnv(t, func(_ *wal.Config, c *Config) { c.DedupMemory = 100 })
		if n, err := e.log.KeptKeys(); err != nil || n != 100 {
			t.Fatalf("kept keys recorded at start: %d, %v; want 100", n, err)
		}
		acks := e.publishKeys("lowered", "k", 100)
		// Memory held all 100: none is in the index.
		if _, found, err := e.log.LookupKey("lowered", "k0"); err != nil || found {
			t.Fatalf("k0 in the index before the restart: %v, %v; want not", found, err)
		}
		e.rcfg.DedupMemory = 10
		e.restart()
		e.clock.Advance(time.Minute)
		for _, i := range []int{0, 50, 89, 90, 99} {
			if got := e.publish("lowered", fmt.Sprintf("k%d", i)); !got.Dup || got.Seq != acks[i].Seq {
				t.Fatalf("republish k%d after lowering dedup_memory: %+v, want Dup of %+v", i, got, acks[i])
			}
		}
		// The surplus was evicted into the index when the room relearnt
		// it, queued before the next append.
		e.publish("lowered", "fresh")
		if _, found, err := e.log.LookupKey("lowered", "k0"); err != nil || !found {
			t.Fatalf("k0 in the index after the restart: %v, %v; want indexed", found, err)
		}
		// The larger number stays recorded for a window, so that a crash
		// meanwhile leaves other rooms relearning it too.
		e.r.lowerKeptKeys(e.clock.Now())
		if n, err := e.log.KeptKeys(); err != nil || n != 100 {
			t.Fatalf("kept keys recorded within the window: %d, %v; want 100", n, err)
		}
		e.clock.Advance(DefaultDedupWindow)
		e.r.lowerKeptKeys(e.clock.Now())
		if n, err := e.log.KeptKeys(); err != nil || n != 10 {
			t.Fatalf("kept keys recorded after the window: %d, %v; want 10", n, err)
		}
		e.rcfg.DedupMemory = 50
		e.restart()
		if n, err := e.log.KeptKeys(); err != nil || n != 50 {
			t.Fatalf("kept keys recorded after raising dedup_memory: %d, %v; want 50", n, err)
		}
	})

	t.Run("a key being indexed is a duplicate", func(t *testing.T) {
		e := newEnv(t, func(_ *wal.Config, c *Config) { c.DedupMemory = 1 })
		orig := e.publish("indexing", "a")
		e.publish("indexing", "b") // a leaves memory
		rm, err := e.r.room("indexing")
		if err != nil {
			t.Fatal(err)
		}
		// As if a's index entry were still queued: the room must answer
		// from indexing before the wal's index (which names seq 1).
		rm.pendMu.Lock()
		rm.indexing = map[string]origin{"a": {Epoch: orig.Epoch, Seq: 99, TS: orig.TS}}
		rm.pendMu.Unlock()
		if got := e.publish("indexing", "a"); !got.Dup || got.Seq != 99 {
			t.Fatalf("publish of a key being indexed: %+v, want Dup of the indexing entry's seq 99", got)
		}
	})

	t.Run("a busy room looks up only the keys it evicted", func(t *testing.T) {
		e := newEnv(t, func(_ *wal.Config, c *Config) { c.DedupMemory = 10 })
		const n = 300
		for i := range n {
			e.publish("busy", fmt.Sprintf("k%d", i))
		}
		// Each new key after the first 10 evicted one; a lookup of each
		// would make n-10. The filter of evicted keys allows its false
		// positives (about 1%).
		if got := counterValue(t, e.r.metrics.keyLookups); got > 10 {
			t.Fatalf("%v key lookups for %d new keys, want nearly none", got, n)
		}
		before := counterValue(t, e.r.metrics.keyLookups)
		if again := e.publish("busy", "k0"); !again.Dup || again.Seq != 1 {
			t.Fatalf("republish of an evicted key: %+v, want Dup of seq 1", again)
		}
		if got := counterValue(t, e.r.metrics.keyLookups); got != before+1 {
			t.Fatalf("key lookups %v after republishing an evicted key, want %v", got, before+1)
		}
	})
}
