package router

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/arena-mesh/arena/wal"
)

// TestRestart: heads and epochs are recovered; publishing continues at
// head+1 in the same epoch; resume works across the restart.
func TestRestart(t *testing.T) {
	e := newEnv(t, func(_ *wal.Config, c *Config) { c.RingSize = 4 })
	e.publishN("a", 3)
	e.publishN("b", 7)
	headA, _ := e.r.Head("a")
	headB, _ := e.r.Head("b")
	emptyHead, _ := e.r.Head("empty")
	e.clock.Advance(time.Second) // a re-created room would get a later epoch

	e.restart()
	for _, tc := range []struct {
		room string
		want Position
	}{{"a", headA}, {"b", headB}, {"empty", emptyHead}} {
		got, err := e.r.Head(tc.room)
		if err != nil || got != tc.want {
			t.Fatalf("head of %q after restart = %+v, %v; want %+v", tc.room, got, err, tc.want)
		}
	}
	if ack := e.publish("a", ""); ack.Epoch != headA.Epoch || ack.Seq != 4 {
		t.Fatalf("publish after restart: %+v, want seq 4 in epoch %d", ack, headA.Epoch)
	}
	// Resume from before the restart: served from the wal.
	res, sink := e.subscribe("b", &Position{headB.Epoch, 2})
	if res.Reset {
		t.Fatalf("resume after restart: %+v, want no reset", res)
	}
	msgs, err := pullUntil(res.Sub, sink, 7)
	if err != nil {
		t.Fatal(err)
	}
	checkSeqs(t, msgs, headB.Epoch, 3, 7)
	if string(msgs[0].Data) != `{"n":1}` || msgs[0].From != "tester" {
		t.Fatalf("recovered message %+v", msgs[0])
	}
}

// TestClose: Close is idempotent and later calls fail with ErrClosed; a
// closed wal fails publishes with ErrClosed too.
func TestClose(t *testing.T) {
	t.Run("router closed", func(t *testing.T) {
		e := newEnv(t, nil)
		e.publish("c", "")
		if err := e.r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := e.r.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := e.r.Publish(t.Context(), PublishRequest{Room: "c"}); !errors.Is(err, ErrClosed) {
			t.Fatalf("publish after close = %v, want ErrClosed", err)
		}
		if _, err := e.r.Subscribe(t.Context(), SubscribeRequest{Room: "c", Sink: newChanSink()}); !errors.Is(err, ErrClosed) {
			t.Fatalf("subscribe after close = %v, want ErrClosed", err)
		}
	})
	t.Run("wal closed", func(t *testing.T) {
		e := newEnv(t, nil)
		e.publish("c", "")
		if err := e.log.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := e.r.Publish(t.Context(), PublishRequest{Room: "c", Data: []byte(`1`)}); !errors.Is(err, ErrClosed) {
			t.Fatalf("publish on a closed wal = %v, want ErrClosed", err)
		}
		if _, err := e.r.Publish(t.Context(), PublishRequest{Room: "new", Data: []byte(`1`)}); !errors.Is(err, ErrClosed) {
			t.Fatalf("publish to a new room on a closed wal = %v, want ErrClosed", err)
		}
	})
	t.Run("canceled context", func(t *testing.T) {
		e := newEnv(t, nil)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := e.r.Publish(ctx, PublishRequest{Room: "c"}); !errors.Is(err, context.Canceled) {
			t.Fatalf("publish = %v, want context.Canceled", err)
		}
	})
	t.Run("config", func(t *testing.T) {
		if _, err := New(Config{}); err == nil {
			t.Fatal("New without a Log succeeded")
		}
	})
}

// TestEvictIdle: an idle room without subscribers leaves memory and comes
// back with its epoch and head; a room with a subscriber stays.
func TestEvictIdle(t *testing.T) {
	e := newEnv(t, nil)
	e.publish("idle", "k")
	e.publishN("watched", 2)
	e.subscribe("watched", nil)
	head, _ := e.r.Head("idle")

	if n := e.r.evictIdle(e.clock.Now()); n != 0 {
		t.Fatalf("evicted %d rooms right away, want 0", n)
	}
	e.clock.Advance(DefaultDedupWindow)
	if n := e.r.evictIdle(e.clock.Now()); n != 1 {
		t.Fatalf("evicted %d rooms, want 1 (the one without subscribers)", n)
	}
	e.r.mu.RLock()
	_, active := e.r.active["idle"]
	_, dormant := e.r.dormant["idle"]
	e.r.mu.RUnlock()
	if active || !dormant {
		t.Fatalf("idle room: active %v dormant %v, want dormant only", active, dormant)
	}
	if got, _ := e.r.Head("idle"); got != head {
		t.Fatalf("head after eviction = %+v, want %+v", got, head)
	}
	if ack := e.publish("idle", "k"); ack.Dup || ack.Seq != head.Seq+1 || ack.Epoch != head.Epoch {
		t.Fatalf("publish after eviction: %+v, want seq %d in epoch %d (the key expired)", ack, head.Seq+1, head.Epoch)
	}
	_, msgs, err := e.r.History(t.Context(), "idle", HistoryQuery{})
	if err != nil || len(msgs) != 2 {
		t.Fatalf("history after eviction: %d messages, %v; want 2", len(msgs), err)
	}
}
