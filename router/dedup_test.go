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
		var acks []Ack
		for i := range 5 {
			acks = append(acks, e.publish("mem", fmt.Sprintf("k%d", i)))
		}
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
}
