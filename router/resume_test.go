package router

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/arena-mesh/arena/wal"
)

// TestResume: Subscribe with Since resumes exactly from the ring or from the
// wal, and resets when Since can't be resumed.
func TestResume(t *testing.T) {
	const n = 50
	const ringSize = 8
	e := newEnv(t, func(_ *wal.Config, c *Config) { c.RingSize = ringSize })

	at := func(dEpoch int64, seq uint64) func(uint64) *Position {
		return func(ep uint64) *Position { return &Position{uint64(int64(ep) + dEpoch), seq} }
	}
	tests := []struct {
		name        string
		since       func(epoch uint64) *Position // nil: Since nil
		wantReset   bool
		wantFrom    uint64 // first seq delivered
		wantCatchUp bool   // served (at least partly) from the wal
	}{
		{name: "live from head", wantFrom: n + 1},
		{name: "at head", since: at(0, n), wantFrom: n + 1},
		{name: "from the ring", since: at(0, 45), wantFrom: 46},
		{name: "oldest in the ring", since: at(0, n-ringSize), wantFrom: n - ringSize + 1},
		{name: "from the wal after the ring wrapped", since: at(0, 10), wantFrom: 11, wantCatchUp: true},
		{name: "from the very start", since: at(0, 0), wantFrom: 1, wantCatchUp: true},
		{name: "older epoch resets", since: at(-1, 10), wantReset: true, wantFrom: 1, wantCatchUp: true},
		{name: "newer epoch resets", since: at(1, 0), wantReset: true, wantFrom: 1, wantCatchUp: true},
		{name: "beyond head resets", since: at(0, n+1), wantReset: true, wantFrom: 1, wantCatchUp: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			room := fmt.Sprintf("resume-%d", i)
			e.publishN(room, n)
			head, err := e.r.Head(room)
			if err != nil {
				t.Fatal(err)
			}
			ep := head.Epoch
			var since *Position
			if tt.since != nil {
				since = tt.since(ep)
			}
			before := e.catchups()
			res, sink := e.subscribe(room, since)
			if res.Head != (Position{ep, n}) || res.Reset != tt.wantReset {
				t.Fatalf("subscribe: head %+v reset %v, want %+v, %v", res.Head, res.Reset, Position{ep, n}, tt.wantReset)
			}
			if tt.wantReset && res.Oldest != (Position{ep, tt.wantFrom}) {
				t.Fatalf("oldest = %+v, want %+v", res.Oldest, Position{ep, tt.wantFrom})
			}
			if got := res.Sub.Position(); got != (Position{ep, tt.wantFrom - 1}) {
				t.Fatalf("cursor = %+v, want %+v", got, Position{ep, tt.wantFrom - 1})
			}
			if tt.wantFrom <= n {
				select {
				case <-sink.c:
				default:
					t.Fatal("no notification for messages ready at subscribe time")
				}
			}
			msgs, err := pullUntil(res.Sub, sink, n)
			if err != nil {
				t.Fatal(err)
			}
			checkSeqs(t, msgs, ep, tt.wantFrom, n)
			if got := e.catchups() > before; got != tt.wantCatchUp {
				t.Fatalf("catch-up from the wal = %v, want %v", got, tt.wantCatchUp)
			}
			// The live stream follows with no gap and no duplicate.
			e.publish(room, "")
			msgs, err = pullUntil(res.Sub, sink, n+1)
			if err != nil {
				t.Fatal(err)
			}
			checkSeqs(t, msgs, ep, n+1, n+1)
		})
	}
}

// TestResumeAfterRetention: once retention dropped old messages, a Since
// older than them resets to the oldest retained, and a subscription whose
// cursor is older gets ErrTooSlow.
func TestResumeAfterRetention(t *testing.T) {
	const n, keep = 60, 20
	e := newEnv(t, func(w *wal.Config, c *Config) {
		c.RingSize = 8
		w.Retention.MaxCount = keep
		w.SweepInterval = 5 * time.Millisecond
	})
	stale, staleSink := e.subscribe("ret", &Position{})
	if !stale.Reset {
		// Since (0, 0) is from another epoch.
		t.Fatalf("subscribe with a zero Since: %+v, want a reset", stale)
	}
	e.publishN("ret", n)
	head, _ := e.r.Head("ret")
	ep := head.Epoch
	waitFor(t, "retention sweep", func() bool {
		first, err := e.log.First("ret", ep)
		return err == nil && first == n-keep+1
	})

	t.Run("too old resets to the oldest retained", func(t *testing.T) {
		res, sink := e.subscribe("ret", &Position{ep, 5})
		want := Position{ep, n - keep + 1}
		if !res.Reset || res.Oldest != want {
			t.Fatalf("subscribe: %+v, want reset to %+v", res, want)
		}
		msgs, err := pullUntil(res.Sub, sink, n)
		if err != nil {
			t.Fatal(err)
		}
		checkSeqs(t, msgs, ep, want.Seq, n)
	})
	t.Run("just before the oldest retained resumes", func(t *testing.T) {
		res, sink := e.subscribe("ret", &Position{ep, n - keep})
		if res.Reset {
			t.Fatalf("subscribe: %+v, want no reset", res)
		}
		msgs, err := pullUntil(res.Sub, sink, n)
		if err != nil {
			t.Fatal(err)
		}
		checkSeqs(t, msgs, ep, n-keep+1, n)
	})
	t.Run("a cursor out of retention is too slow", func(t *testing.T) {
		_, err := pullUntil(stale.Sub, staleSink, n)
		if !errors.Is(err, ErrTooSlow) {
			t.Fatalf("pull = %v, want ErrTooSlow", err)
		}
		if _, err := stale.Sub.Pull(nil, 10); !errors.Is(err, ErrTooSlow) {
			t.Fatalf("second pull = %v, want ErrTooSlow again", err)
		}
	})
}
