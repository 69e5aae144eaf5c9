package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arena-mesh/arena/client"
	"github.com/arena-mesh/arena/edge"
	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/protocol"
)

// publishAll publishes total messages to room in order from its own
// goroutine and returns a channel that yields the acks (or the first
// error) once done.
func publishAll(t *testing.T, c *client.Client, room string, total int) <-chan []client.Ack {
	t.Helper()
	ctx := ctxFor(t)
	done := make(chan []client.Ack, 1)
	go func() {
		acks := make([]client.Ack, 0, total)
		defer func() { done <- acks }()
		for i := 1; i <= total; i++ {
			ack, err := c.Publish(ctx, room, json.RawMessage(fmt.Sprint(i)), client.PublishOptions{})
			if err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
			acks = append(acks, ack)
		}
	}()
	return done
}

// checkAcks checks that the acks are seqs 1..total of one epoch, each once.
func checkAcks(t *testing.T, acks []client.Ack, total int) {
	t.Helper()
	if len(acks) != total {
		t.Fatalf("%d acks, want %d", len(acks), total)
	}
	seqs := make([]int, len(acks))
	for i, a := range acks {
		seqs[i] = int(a.Seq)
		if a.Epoch != acks[0].Epoch {
			t.Errorf("ack %d in epoch %d, want %d", i, a.Epoch, acks[0].Epoch)
		}
	}
	sort.Ints(seqs)
	for i, s := range seqs {
		if s != i+1 {
			t.Fatalf("acked seqs %v, want 1..%d each once", seqs, total)
		}
	}
}

// TestResumeAfterCut cuts the subscriber's TCP connection again and again
// while a publisher keeps publishing: the subscriber must see every
// message exactly once, in order.
func TestResumeAfterCut(t *testing.T) {
	n := edgetest.Start(t)
	var k cutter
	var connected atomic.Int32
	subC := dial(t, n, "bob", client.Options{DialContext: k.dial, OnConnState: func(s client.ConnState) {
		if s.Connected {
			connected.Add(1)
		}
	}})
	pubC := dial(t, n, "alice", client.Options{})
	sub := subscribe(t, subC, "room", client.SubscribeOptions{})

	const total, cuts = 300, 5
	acks := publishAll(t, pubC, "room", total)
	done := 0
	for seq := uint64(1); seq <= total; seq++ {
		m := nextMsg(t, sub)
		if m.Seq != seq || string(m.Data) != fmt.Sprint(seq) {
			t.Fatalf("got seq %d (%s), want %d", m.Seq, m.Data, seq)
		}
		if seq%(total/(cuts+1)) == 0 && seq < total {
			waitFor(t, "the client to reconnect", func() bool { return connected.Load() == int32(done+1) })
			k.last().Cut()
			done++
		}
	}
	checkAcks(t, <-acks, total)
	waitFor(t, "the last reconnection", func() bool { return connected.Load() == cuts+1 })
	if got := k.count(); got != cuts+1 {
		t.Errorf("%d connections, want %d", got, cuts+1)
	}
	select {
	case ev := <-sub.C():
		t.Errorf("extra event %v %+v", ev.Kind, ev.Msg)
	default:
	}
}

// TestResumeAfterRestart restarts the node (a reconnect frame, close 1001,
// a refused upgrade while it is down) twice while a publisher publishes:
// publisher and subscriber both reconnect, the publisher's retried
// publishes take effect once, and the subscriber misses nothing.
func TestResumeAfterRestart(t *testing.T) {
	n := edgetest.Start(t)
	var lost atomic.Int32
	onState := func(s client.ConnState) {
		if !s.Connected && !s.Closed {
			lost.Add(1)
		}
	}
	subC := dial(t, n, "bob", client.Options{OnConnState: onState})
	pubC := dial(t, n, "alice", client.Options{OnConnState: onState})
	sub := subscribe(t, subC, "room", client.SubscribeOptions{})

	const total = 300
	acks := publishAll(t, pubC, "room", total)
	for seq := uint64(1); seq <= total; seq++ {
		m := nextMsg(t, sub)
		if m.Seq != seq {
			t.Fatalf("got seq %d, want %d", m.Seq, seq)
		}
		if seq == 100 || seq == 200 {
			n.Restart()
		}
	}
	checkAcks(t, <-acks, total)
	if got := lost.Load(); got < 4 {
		t.Errorf("connections lost %d times, want at least 4 (2 clients, 2 restarts)", got)
	}
	_, msgs, err := subC.History(ctxFor(t), "room", client.HistoryOptions{Limit: 1})
	if err != nil || len(msgs) != 1 || msgs[0].Seq != total {
		t.Errorf("newest message %v (%v), want seq %d: a retry was published twice", msgs, err, total)
	}
}

// TestPublishRetryAfterCut loses the connection after the server has
// published a message but before the client read its ack: the client
// sends it again with the same key, and the server answers with the
// original position instead of publishing it twice.
func TestPublishRetryAfterCut(t *testing.T) {
	n := edgetest.Start(t)
	var k cutter
	pubC := dial(t, n, "alice", client.Options{DialContext: k.dial})
	watcher := dial(t, n, "bob", client.Options{})
	sub := subscribe(t, watcher, "r", client.SubscribeOptions{})

	k.last().Stall() // the ack will never reach the client on this connection
	type result struct {
		ack client.Ack
		err error
	}
	done := make(chan result, 1)
	go func() {
		ack, err := pubC.Publish(ctxFor(t), "r", json.RawMessage(`"once"`), client.PublishOptions{})
		done <- result{ack, err}
	}()
	m := nextMsg(t, sub) // it was published
	k.last().Cut()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.ack.Position() != m.Position() || !r.ack.Dup {
		t.Errorf("ack %+v, want the original position %+v marked dup", r.ack, m.Position())
	}
	if got := k.count(); got != 2 {
		t.Errorf("%d connections, want 2", got)
	}
	after := publish(t, watcher, "r", `"after"`)
	if after.Seq != m.Seq+1 {
		t.Errorf("next seq %d, want %d: the retry was published again", after.Seq, m.Seq+1)
	}
	if m := nextMsg(t, sub); m.Seq != after.Seq {
		t.Errorf("watcher got seq %d, want %d", m.Seq, after.Seq)
	}
}

// TestSlowSubscriber lets a subscription's channel fill up: the client
// must neither block its connection (publishes on it go on) nor lose or
// repeat messages once the reader catches up.
func TestSlowSubscriber(t *testing.T) {
	n := edgetest.Start(t)
	c := dial(t, n, "alice", client.Options{})
	slow := subscribe(t, c, "slow", client.SubscribeOptions{Buffer: 2})
	fast := subscribe(t, c, "fast", client.SubscribeOptions{})
	const total = 200
	for i := 1; i <= total; i++ {
		publish(t, c, "slow", fmt.Sprint(i))
		if i%50 == 0 {
			publish(t, c, "fast", fmt.Sprint(i))
			nextMsg(t, fast) // the other room is not held up
		}
	}
	expectSeqs(t, slow, 1, total)
	publish(t, c, "slow", `"live"`)
	expectSeqs(t, slow, total+1, total+1)
}

// TestRateLimited checks rate_limited errors and RetryRateLimited.
func TestRateLimited(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithConfig(func(c *edge.Config) { c.PublishRate, c.PublishBurst = 20, 1 }))
	t.Run("error", func(t *testing.T) {
		c := dial(t, n, "alice", client.Options{})
		var err error
		for i := 0; i < 10 && err == nil; i++ {
			_, err = c.Publish(ctxFor(t), "r", json.RawMessage(`1`), client.PublishOptions{})
		}
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeRateLimited || pe.RetryMS <= 0 {
			t.Fatalf("err = %v, want rate_limited with retry_ms", err)
		}
	})
	t.Run("retry", func(t *testing.T) {
		c := dial(t, n, "bob", client.Options{RetryRateLimited: true})
		for i := 1; i <= 5; i++ {
			if ack := publish(t, c, "r2", fmt.Sprint(i)); ack.Seq != uint64(i) {
				t.Fatalf("publish %d acked as seq %d", i, ack.Seq)
			}
		}
	})
}

// TestReconnectToEdges drains a node that names another edge in its
// reconnect frame: the client goes there first.
func TestReconnectToEdges(t *testing.T) {
	one := edgetest.Start(t, edgetest.WithDev())
	two := edgetest.Start(t, edgetest.WithDev(), edgetest.WithConfig(func(c *edge.Config) {
		c.NodeID = "two"
		c.Edges = func() []edge.Edge {
			return []edge.Edge{{Node: "one", URL: one.URL}, {Node: "two", URL: "http://unused"}}
		}
	}))
	connected := make(chan string, 8)
	c := dial(t, two, "", client.Options{OnConnState: func(s client.ConnState) {
		if s.Connected {
			connected <- s.URL
		}
	}})
	if u := <-connected; u != two.WSURL {
		t.Fatalf("first connected to %s, want %s", u, two.WSURL)
	}
	drained := make(chan error, 1)
	go func() { drained <- two.Drain(waitTimeout) }()
	select {
	case u := <-connected:
		if u != one.WSURL {
			t.Errorf("reconnected to %s, want the suggested edge %s", u, one.WSURL)
		}
	case <-time.After(waitTimeout):
		t.Fatal("client did not reconnect")
	}
	if err := <-drained; err != nil {
		t.Errorf("drain: %v", err)
	}
	publish(t, c, "r", `1`) // works on the new edge
}

// TestCredentialsRefusedOnReconnect: when the server no longer accepts
// the token on a reconnection, the client closes itself with that error.
func TestCredentialsRefusedOnReconnect(t *testing.T) {
	var skew atomic.Int64
	n := edgetest.Start(t, edgetest.WithAuthClock(func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }))
	var k cutter
	closed := make(chan client.ConnState, 1)
	c := dial(t, n, "alice", client.Options{DialContext: k.dial, OnConnState: func(s client.ConnState) {
		if s.Closed {
			closed <- s
		}
	}})
	sub := subscribe(t, c, "r", client.SubscribeOptions{})

	skew.Store(int64(2 * time.Hour)) // the one-hour token has expired
	k.last().Cut()
	st := <-closed
	if client.Code(st.Err) != protocol.CodeUnauthorized {
		t.Errorf("closed with %v, want unauthorized", st.Err)
	}
	for range sub.C() {
	}
	if client.Code(sub.Err()) != protocol.CodeUnauthorized {
		t.Errorf("subscription ended with %v, want unauthorized", sub.Err())
	}
	_, err := c.Publish(ctxFor(t), "r", json.RawMessage(`1`), client.PublishOptions{})
	if !errors.Is(err, client.ErrClosed) || client.Code(err) != protocol.CodeUnauthorized {
		t.Errorf("publish after: %v, want ErrClosed wrapping unauthorized", err)
	}
}

// TestCloseStopsGoroutines closes a busy client: every goroutine it
// started ends, its subscriptions' channels close, and calls fail with
// ErrClosed.
func TestCloseStopsGoroutines(t *testing.T) {
	n := edgetest.Start(t)
	waitFor(t, "earlier clients to stop", func() bool { return len(clientGoroutines()) == 0 })
	c := dial(t, n, "alice", client.Options{})
	sub := subscribe(t, c, "r", client.SubscribeOptions{Buffer: 1})
	for i := range 5 {
		publish(t, c, "r", fmt.Sprint(i)) // the subscription lags: its helper waits to deliver
	}
	if len(clientGoroutines()) == 0 {
		t.Fatal("no client goroutine found: the check below would prove nothing")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "client goroutines to stop", func() bool { return len(clientGoroutines()) == 0 })
	got := 0
	for range sub.C() {
		got++
	}
	if got > 2 {
		t.Errorf("%d events left in a channel of capacity 1", got)
	}
	if _, err := c.Publish(ctxFor(t), "r", json.RawMessage(`1`), client.PublishOptions{}); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
	if _, err := c.Subscribe(ctxFor(t), "r2", client.SubscribeOptions{}); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Subscribe after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestCloseUnblocksCalls closes a client whose server is gone while a
// Publish waits for a connection.
func TestCloseUnblocksCalls(t *testing.T) {
	n := edgetest.Start(t)
	lost := make(chan struct{})
	c := dial(t, n, "alice", client.Options{OnConnState: func(s client.ConnState) {
		if !s.Connected && !s.Closed {
			close(lost)
		}
	}})
	n.Close()
	<-lost
	done := make(chan error, 1)
	go func() {
		_, err := c.Publish(context.Background(), "r", json.RawMessage(`1`), client.PublishOptions{})
		done <- err
	}()
	c.Close()
	if err := <-done; !errors.Is(err, client.ErrClosed) {
		t.Errorf("Publish: %v, want ErrClosed", err)
	}
	waitFor(t, "client goroutines to stop", func() bool { return len(clientGoroutines()) == 0 })
}

// TestLocalAddr dials from a chosen loopback address.
func TestLocalAddr(t *testing.T) {
	remote := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		remote <- r.RemoteAddr
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	_, err := client.Dial(ctxFor(t), srv.URL, client.Options{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}})
	if client.Code(err) != protocol.CodeUnauthorized {
		t.Errorf("Dial: %v, want unauthorized", err)
	}
	host, _, _ := net.SplitHostPort(<-remote)
	if host != "127.0.0.2" {
		t.Errorf("server saw %s, want 127.0.0.2", host)
	}
}
