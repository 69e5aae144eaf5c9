package routertest

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arena-mesh/arena/router"
	"github.com/arena-mesh/arena/wal"
)

// asyncResult records the done calls of one PublishAsync.
type asyncResult struct {
	calls atomic.Int32
	ack   router.Ack
	err   error
	once  chan struct{} // closed by the first call
}

func newAsyncResult() *asyncResult { return &asyncResult{once: make(chan struct{})} }

func (a *asyncResult) done(ack router.Ack, err error) {
	if a.calls.Add(1) == 1 {
		a.ack, a.err = ack, err
		close(a.once)
	}
}

func (a *asyncResult) wait(t *testing.T) (router.Ack, error) {
	t.Helper()
	select {
	case <-a.once:
		return a.ack, a.err
	case <-time.After(20 * time.Second):
		t.Fatal("done was never called")
		return router.Ack{}, nil
	}
}

// TestClusterPublishAsyncPipelined: one caller pipelines publishes to a
// room homed on another node without waiting for acks; the home
// sequences them in call order and every done runs once with its ack.
func TestClusterPublishAsyncPipelined(t *testing.T) {
	c := Start(t, 2)
	room := c.RoomHomedOn("pipe:", 0)
	edge := c.Nodes[1].Router
	first := publish(t, edge, room, "ann", "", `-1`) // membership settled
	s := subscribe(t, c.Nodes[1].Router, room, nil)

	const n = 200
	results := make([]*asyncResult, n)
	for i := range results {
		results[i] = newAsyncResult()
		req := router.PublishRequest{Room: room, From: "ann", Data: fmt.Appendf(nil, "%d", i)}
		if i%3 == 0 {
			req.Key = fmt.Sprintf("k%d", i)
		}
		if err := edge.PublishAsync(t.Context(), req, results[i].done); err != nil {
			t.Fatalf("PublishAsync %d: %v", i, err)
		}
	}
	for i, r := range results {
		ack, err := r.wait(t)
		if want := first.Seq + 1 + uint64(i); err != nil || ack.Epoch != first.Epoch || ack.Seq != want || ack.Dup {
			t.Fatalf("publish %d: ack %+v, %v; want (%d, %d)", i, ack, err, first.Epoch, want)
		}
	}
	for i, m := range s.pull(t, n) {
		if string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("seq %d carries %s, want %d", m.Seq, m.Data, i)
		}
	}
	// A retried key is answered by the home's window, through the same path.
	dup := newAsyncResult()
	if err := edge.PublishAsync(t.Context(), router.PublishRequest{Room: room, Key: "k3", Data: []byte(`3`)}, dup.done); err != nil {
		t.Fatal(err)
	}
	if ack, err := dup.wait(t); err != nil || !ack.Dup || ack.Seq != first.Seq+4 {
		t.Fatalf("retry of k3: %+v, %v; want dup of seq %d", ack, err, first.Seq+4)
	}
	for i, r := range results {
		if n := r.calls.Load(); n != 1 {
			t.Fatalf("publish %d: done called %d times", i, n)
		}
	}
}

// TestClusterHomeUnavailable: a home that is still a member but does not
// answer (its router closed, its mesh up) makes every call through
// another node fail with ErrUnavailable once PeerTimeout has passed; a
// pipelined publish reports it through done, once.
func TestClusterHomeUnavailable(t *testing.T) {
	c := Start(t, 2, WithPeerTimeout(300*time.Millisecond))
	room := c.RoomHomedOn("down:", 0)
	edge := c.Nodes[1].Router
	publish(t, edge, room, "ann", "", `1`)
	if err := c.Nodes[0].Router.Close(); err != nil {
		t.Fatal(err)
	}

	r := newAsyncResult()
	if err := edge.PublishAsync(t.Context(), router.PublishRequest{Room: room, Key: "k", Data: []byte(`2`)}, r.done); err != nil {
		t.Fatalf("PublishAsync = %v, want nil (the frame is queued)", err)
	}
	if _, err := r.wait(t); !errors.Is(err, router.ErrUnavailable) {
		t.Fatalf("done got %v, want ErrUnavailable", err)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"publish", func() error {
			_, err := edge.Publish(t.Context(), router.PublishRequest{Room: room, Data: []byte(`3`)})
			return err
		}},
		{"history", func() error {
			_, _, err := edge.History(t.Context(), room, router.HistoryQuery{FromOldest: true})
			return err
		}},
		{"subscribe", func() error {
			res, err := edge.Subscribe(t.Context(), router.SubscribeRequest{Room: room, Sink: newSink()})
			if err == nil {
				res.Sub.Close()
			}
			return err
		}},
		{"head", func() error {
			_, err := edge.Head(room)
			return err
		}},
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, router.ErrUnavailable) {
				t.Fatalf("%s = %v, want ErrUnavailable", tt.name, err)
			}
		})
	}
	if n := r.calls.Load(); n != 1 {
		t.Fatalf("done called %d times, want 1", n)
	}
}

// TestClusterHistoryFromOldest: "after 0" through a node that is not the
// home (the fetch frame's after mode with seq 0) starts at the oldest
// message the home retains, after retention dropped the first ones.
func TestClusterHistoryFromOldest(t *testing.T) {
	const n, keep = 60, 20
	c := Start(t, 2, WithRingSize(8), WithWALConfig(func(w *wal.Config) {
		w.Retention.MaxCount = keep
		w.SweepInterval = 5 * time.Millisecond
	}))
	const home = 0
	room := c.RoomHomedOn("old:", home)
	var epoch uint64
	for k := 1; k <= n; k++ {
		epoch = publish(t, c.Nodes[1].Router, room, "ann", "", fmt.Sprint(k)).Epoch
	}
	WaitFor(t, 20*time.Second, "retention on the home", func() bool {
		first, err := c.Nodes[home].Log.First(room, epoch)
		return err == nil && first == n-keep+1
	})
	tests := []struct {
		name     string
		node     int
		limit    int
		from, to uint64
	}{
		{"via another node, first page", 1, 5, n - keep + 1, n - keep + 5},
		{"via another node, all", 1, 1000, n - keep + 1, n},
		{"on the home", home, 5, n - keep + 1, n - keep + 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, msgs, err := c.Nodes[tt.node].Router.History(t.Context(), room, router.HistoryQuery{FromOldest: true, Limit: tt.limit})
			if err != nil || e != epoch {
				t.Fatalf("history: epoch %d, %v", e, err)
			}
			if uint64(len(msgs)) != tt.to-tt.from+1 {
				t.Fatalf("%d messages, want %d..%d", len(msgs), tt.from, tt.to)
			}
			for k, m := range msgs {
				if m.Seq != tt.from+uint64(k) || string(m.Data) != fmt.Sprint(m.Seq) {
					t.Fatalf("message %d is seq %d (%s), want %d..%d", k, m.Seq, m.Data, tt.from, tt.to)
				}
			}
		})
	}
}
