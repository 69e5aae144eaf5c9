package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arena-mesh/arena/client"
	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/protocol"
)

// TestRefresh gives the server a fresh token: the connection lives on, and
// a later reconnection uses the new token even once the old one expired.
func TestRefresh(t *testing.T) {
	var skew atomic.Int64
	n := edgetest.Start(t, edgetest.WithAuthClock(func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }))
	var k cutter
	var connected atomic.Int32
	c := dial(t, n, "alice", client.Options{DialContext: k.dial, OnConnState: func(s client.ConnState) {
		if s.Connected {
			connected.Add(1)
		}
	}})
	old := c.Info().Expires
	exp, err := c.Refresh(ctxFor(t), n.TokenTTL("alice", []string{"*"}, []string{"*"}, 3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !exp.After(old.Add(time.Hour)) {
		t.Errorf("new expiry %v, old %v", exp, old)
	}
	t.Run("other user", func(t *testing.T) {
		_, err := c.Refresh(ctxFor(t), n.AllToken("mallory"))
		if client.Code(err) != protocol.CodeUnauthorized {
			t.Errorf("refresh with another user's token: %v", err)
		}
	})
	skew.Store(int64(2 * time.Hour)) // the first token has expired, the new one not
	k.last().Cut()
	waitFor(t, "the reconnection", func() bool { return connected.Load() == 2 })
	publish(t, c, "r", `1`)
}

// TestKeepAlive stops the server's frames from reaching the client: its
// pings go unanswered, and it replaces the silent connection.
func TestKeepAlive(t *testing.T) {
	n := edgetest.Start(t)
	var k cutter
	var connected atomic.Int32
	c := dial(t, n, "alice", client.Options{KeepAlive: 20 * time.Millisecond, DialContext: k.dial,
		OnConnState: func(s client.ConnState) {
			if s.Connected {
				connected.Add(1)
			}
		}})
	sub := subscribe(t, c, "r", client.SubscribeOptions{})
	publish(t, c, "r", `1`)
	expectSeqs(t, sub, 1, 1)
	k.last().Stall()
	waitFor(t, "a new connection", func() bool { return connected.Load() >= 2 })
	publish(t, c, "r", `2`)
	expectSeqs(t, sub, 2, 2)
}

func TestMarkRead(t *testing.T) {
	n := edgetest.Start(t)
	c := dial(t, n, "", client.Options{Token: n.Token("u", []string{"*"}, []string{"mine:*"})})
	ack := publish(t, c, "mine:a", `1`)
	if err := c.MarkDelivered(ctxFor(t), "mine:a", ack.Seq); err != nil {
		t.Fatal(err)
	}
	if err := c.MarkRead(ctxFor(t), "mine:a", ack.Seq); err != nil {
		t.Fatal(err)
	}
	if err := c.MarkRead(ctxFor(t), "mine:a", 0); client.Code(err) != protocol.CodeBadRequest {
		t.Errorf("MarkRead seq 0: %v", err)
	}
	// A refused mark has no reply to wait for; the connection goes on.
	if err := c.MarkRead(ctxFor(t), "other", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ping(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
}

// TestRetryUntilDeadline: a call the server keeps answering with
// unavailable is retried until its context ends; so is a PublishAsync,
// whose done then reports the context's end.
func TestRetryUntilDeadline(t *testing.T) {
	n := edgetest.Start(t)
	c := dial(t, n, "alice", client.Options{})
	publish(t, c, "r", `1`)
	_ = n.Router().Close() // the edge now answers unavailable
	t.Run("presence", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_, err := c.Presence(ctx, "r")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Presence: %v, want the deadline", err)
		}
	})
	t.Run("publish async", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		res := newAsyncResults(t, 1)
		c.PublishAsync(ctx, "r", json.RawMessage(`2`), client.PublishOptions{}, res.done(1))
		res.wait()
		if err := res.errs[1]; !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("PublishAsync: %v, want the deadline", err)
		}
	})
}

// TestPresenceReceiptsRooms: presence events, receipts to the publisher,
// and the user's rooms with unread counts, through the SDK.
func TestPresenceReceiptsRooms(t *testing.T) {
	n := edgetest.Start(t)
	alice := dial(t, n, "alice", client.Options{})
	bob := dial(t, n, "bob", client.Options{})
	asub := subscribe(t, alice, "chat:x", client.SubscribeOptions{Presence: true})
	bsub := subscribe(t, bob, "chat:x", client.SubscribeOptions{})
	next := func(sub *client.Subscription, what string, ok func(client.Event) bool) {
		t.Helper()
		for {
			select {
			case ev := <-sub.C():
				if ok(ev) {
					return
				}
			case <-ctxFor(t).Done():
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	next(asub, "bob's join", func(ev client.Event) bool { return ev.Kind == client.EventJoin && ev.Notice.User == "bob" })
	ms, err := alice.Presence(ctxFor(t), "chat:x")
	if err != nil || len(ms) != 2 {
		t.Fatalf("Presence = %+v, %v", ms, err)
	}
	ack := publish(t, alice, "chat:x", `"hi"`)
	next(bsub, "the message", func(ev client.Event) bool { return ev.Kind == client.EventMsg })
	if err := bob.MarkRead(ctxFor(t), "chat:x", ack.Seq); err != nil {
		t.Fatal(err)
	}
	next(asub, "bob's read receipt", func(ev client.Event) bool {
		return ev.Kind == client.EventReceipt && ev.Notice.User == "bob" && ev.Notice.Status == "read" && ev.Notice.Seq == ack.Seq
	})
	publish(t, alice, "chat:x", `"more"`)
	rooms, err := bob.Rooms(ctxFor(t))
	if err != nil || len(rooms) != 1 || rooms[0].Room != "chat:x" || rooms[0].Read.Seq != ack.Seq || rooms[0].Unread != 1 {
		t.Fatalf("Rooms = %+v, %v", rooms, err)
	}
}

// TestPublishContextEnds: a Publish waiting for its ack returns when its
// context ends.
func TestPublishContextEnds(t *testing.T) {
	n := edgetest.Start(t)
	var k cutter
	c := dial(t, n, "alice", client.Options{DialContext: k.dial, KeepAlive: -1})
	k.last().Stall()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := c.Publish(ctx, "r", json.RawMessage(`1`), client.PublishOptions{})
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Publish: %v, want context.Canceled", err)
	}
}
