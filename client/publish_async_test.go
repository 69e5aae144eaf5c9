package client_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/arena-mesh/arena/client"
	"github.com/arena-mesh/arena/edge"
	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/protocol"
)

// asyncResults collects PublishAsync outcomes and fails the test on a
// second call of one publish's done.
type asyncResults struct {
	t    *testing.T
	mu   sync.Mutex
	acks map[int]client.Ack
	errs map[int]error
	all  chan struct{}
	want int
}

func newAsyncResults(t *testing.T, want int) *asyncResults {
	return &asyncResults{t: t, acks: map[int]client.Ack{}, errs: map[int]error{}, all: make(chan struct{}), want: want}
}

// done returns the done func of publish i.
func (r *asyncResults) done(i int) func(client.Ack, error) {
	return func(ack client.Ack, err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, ok := r.acks[i]; ok {
			r.t.Errorf("publish %d: done called twice", i)
		}
		if _, ok := r.errs[i]; ok {
			r.t.Errorf("publish %d: done called twice", i)
		}
		if err != nil {
			r.errs[i] = err
		} else {
			r.acks[i] = ack
		}
		if len(r.acks)+len(r.errs) == r.want {
			close(r.all)
		}
	}
}

func (r *asyncResults) wait() {
	r.t.Helper()
	select {
	case <-r.all:
	case <-time.After(30 * time.Second):
		r.mu.Lock()
		defer r.mu.Unlock()
		r.t.Fatalf("%d of %d publishes done", len(r.acks)+len(r.errs), r.want)
	}
}

// TestPublishAsync keeps many publishes in flight from one goroutine:
// each gets one ack, in call order on the wire, so seqs follow the calls.
func TestPublishAsync(t *testing.T) {
	n := edgetest.Start(t)
	c := dial(t, n, "alice", client.Options{})
	sub := subscribe(t, dial(t, n, "bob", client.Options{}), "feed", client.SubscribeOptions{})
	const total = 500
	res := newAsyncResults(t, total)
	for i := 1; i <= total; i++ {
		c.PublishAsync(ctxFor(t), "feed", json.RawMessage(fmt.Sprint(i)), client.PublishOptions{}, res.done(i))
	}
	res.wait()
	if len(res.errs) > 0 {
		t.Fatalf("errors: %v", res.errs)
	}
	for i := 1; i <= total; i++ {
		if a := res.acks[i]; a.Seq != uint64(i) || a.Dup {
			t.Fatalf("publish %d acked %+v, want seq %d: not in call order", i, a, i)
		}
	}
	msgs := expectSeqs(t, sub, 1, total)
	for i, m := range msgs {
		if string(m.Data) != fmt.Sprint(i+1) {
			t.Fatalf("seq %d carries %s, want %d", m.Seq, m.Data, i+1)
		}
	}
}

// TestPublishAsyncRefusals: bad arguments come back before PublishAsync
// returns; the server's refusals come back through done, unretried.
func TestPublishAsyncRefusals(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithConfig(func(c *edge.Config) { c.PublishRate, c.PublishBurst = 1, 1 }))
	c := dial(t, n, "alice", client.Options{})
	var called bool
	c.PublishAsync(ctxFor(t), "bad room!", json.RawMessage(`1`), client.PublishOptions{}, func(_ client.Ack, err error) {
		called = true
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeBadRequest {
			t.Errorf("bad room: %v, want bad_request", err)
		}
	})
	if !called {
		t.Fatal("done not called before PublishAsync returned for a bad room")
	}
	res := newAsyncResults(t, 3)
	for i := 1; i <= 3; i++ {
		c.PublishAsync(ctxFor(t), "r", json.RawMessage(`1`), client.PublishOptions{}, res.done(i))
	}
	res.wait()
	limited := 0
	for _, err := range res.errs {
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeRateLimited {
			t.Errorf("error %v, want rate_limited", err)
		}
		limited++
	}
	if limited == 0 || len(res.acks) == 0 {
		t.Fatalf("%d acked, %d rate limited; want both (burst 1)", len(res.acks), limited)
	}
}

// TestPublishAsyncRetryAfterCut: publishes in flight when the connection
// is cut are retried with their keys on the next connection, and each is
// published once.
func TestPublishAsyncRetryAfterCut(t *testing.T) {
	n := edgetest.Start(t)
	var k cutter
	c := dial(t, n, "alice", client.Options{DialContext: k.dial})
	watcher := dial(t, n, "bob", client.Options{})
	sub := subscribe(t, watcher, "r", client.SubscribeOptions{})

	k.last().Stall() // no ack reaches the client on this connection
	const total = 20
	res := newAsyncResults(t, total)
	for i := 1; i <= total; i++ {
		c.PublishAsync(ctxFor(t), "r", json.RawMessage(fmt.Sprint(i)), client.PublishOptions{}, res.done(i))
	}
	expectSeqs(t, sub, 1, total) // published, acks stalled
	k.last().Cut()
	res.wait()
	if len(res.errs) > 0 {
		t.Fatalf("errors: %v", res.errs)
	}
	for i := 1; i <= total; i++ {
		if a := res.acks[i]; a.Seq != uint64(i) || !a.Dup {
			t.Errorf("publish %d acked %+v, want the original seq %d marked dup", i, a, i)
		}
	}
	if after := publish(t, watcher, "r", `"after"`); after.Seq != total+1 {
		t.Errorf("next seq %d, want %d: a retry was published again", after.Seq, total+1)
	}
}
