package client_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/arena-mesh/arena/client"
	"github.com/arena-mesh/arena/edge"
	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/protocol"
)

func TestPublishSubscribe(t *testing.T) {
	n := edgetest.Start(t)
	alice := dial(t, n, "alice", client.Options{})
	bob := dial(t, n, "bob", client.Options{})
	if info := alice.Info(); info.User != "alice" || info.Node == "" || info.URL != n.WSURL || info.Expires.IsZero() {
		t.Errorf("Info() = %+v", info)
	}

	sub := subscribe(t, bob, "chat:lobby", client.SubscribeOptions{})
	if p := sub.Position(); p.Epoch == 0 || p.Seq != 0 {
		t.Errorf("position of a new room = %+v, want (epoch, 0)", p)
	}
	var acks []client.Ack
	for i := range 3 {
		acks = append(acks, publish(t, alice, "chat:lobby", fmt.Sprintf(`{"n": %d, "text": "a\nb <c>"}`, i)))
	}
	msgs := expectSeqs(t, sub, 1, 3)
	for i, m := range msgs {
		if m.Position() != acks[i].Position() || m.TS != acks[i].TS || acks[i].Dup {
			t.Errorf("message %d at %+v ts %d, ack %+v", i, m.Position(), m.TS, acks[i])
		}
		if m.Room != "chat:lobby" || m.From != "alice" || m.Key == "" {
			t.Errorf("message %d: room %q from %q key %q", i, m.Room, m.From, m.Key)
		}
		var data struct {
			N    int
			Text string
		}
		if err := json.Unmarshal(m.Data, &data); err != nil || data.N != i || data.Text != "a\nb <c>" {
			t.Errorf("message %d data %s: %+v %v", i, m.Data, data, err)
		}
	}
	if got := sub.Position(); got != acks[2].Position() {
		t.Errorf("Position() = %+v, want %+v", got, acks[2].Position())
	}
	if _, err := bob.Ping(ctxFor(t)); err != nil {
		t.Errorf("ping: %v", err)
	}
}

func TestHistory(t *testing.T) {
	n := edgetest.Start(t)
	c := dial(t, n, "alice", client.Options{})
	var acks []client.Ack
	for i := range 10 {
		acks = append(acks, publish(t, c, "h", fmt.Sprint(i)))
	}
	tests := []struct {
		name       string
		opts       client.HistoryOptions
		first, end uint64 // expected seqs first..end-1
	}{
		{"newest", client.HistoryOptions{Limit: 3}, 8, 11},
		{"default limit", client.HistoryOptions{}, 1, 11},
		{"from oldest", client.HistoryOptions{FromOldest: true, Limit: 4}, 1, 5},
		{"after", client.HistoryOptions{After: 6, Limit: 2}, 7, 9},
		{"before", client.HistoryOptions{Before: 4}, 1, 4},
		{"nothing after the head", client.HistoryOptions{After: 10}, 11, 11},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			epoch, msgs, err := c.History(ctxFor(t), "h", tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if epoch != acks[0].Epoch {
				t.Errorf("epoch %d, want %d", epoch, acks[0].Epoch)
			}
			if msgs == nil || len(msgs) != int(tc.end-tc.first) {
				t.Fatalf("got %d messages (%v), want seqs %d..%d", len(msgs), msgs, tc.first, tc.end-1)
			}
			for i, m := range msgs {
				if m.Seq != tc.first+uint64(i) || string(m.Data) != fmt.Sprint(m.Seq-1) {
					t.Errorf("message %d: seq %d data %s", i, m.Seq, m.Data)
				}
			}
		})
	}
	t.Run("before and after", func(t *testing.T) {
		_, _, err := c.History(ctxFor(t), "h", client.HistoryOptions{Before: 5, After: 1})
		if client.Code(err) != protocol.CodeBadRequest {
			t.Errorf("err = %v, want bad_request", err)
		}
	})
}

func TestSubscribeSince(t *testing.T) {
	n := edgetest.Start(t)
	c := dial(t, n, "alice", client.Options{})
	var last client.Ack
	for i := range 5 {
		last = publish(t, c, "r", fmt.Sprint(i))
	}
	t.Run("resume", func(t *testing.T) {
		c2 := dial(t, n, "bob", client.Options{})
		sub := subscribe(t, c2, "r", client.SubscribeOptions{Since: &protocol.Position{Epoch: last.Epoch, Seq: 2}})
		expectSeqs(t, sub, 3, 5)
		publish(t, c, "r", "5")
		expectSeqs(t, sub, 6, 6)
	})
	t.Run("other epoch resets", func(t *testing.T) {
		c2 := dial(t, n, "carol", client.Options{})
		from := protocol.Position{Epoch: last.Epoch - 1, Seq: 3}
		sub := subscribe(t, c2, "r", client.SubscribeOptions{Since: &from})
		ev := next(t, sub)
		if ev.Kind != client.EventReset || ev.Notice.From != from || ev.Notice.To != (protocol.Position{Epoch: last.Epoch, Seq: 1}) {
			t.Fatalf("first event %v %+v, want a reset from %+v to (%d, 1)", ev.Kind, ev.Notice, from, last.Epoch)
		}
		expectSeqs(t, sub, 1, 6)
	})
}

func TestIdempotentKey(t *testing.T) {
	n := edgetest.Start(t)
	c := dial(t, n, "alice", client.Options{})
	sub := subscribe(t, c, "r", client.SubscribeOptions{})
	first, err := c.Publish(ctxFor(t), "r", json.RawMessage(`1`), client.PublishOptions{Key: "order-17"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Publish(ctxFor(t), "r", json.RawMessage(`2`), client.PublishOptions{Key: "order-17"})
	if err != nil {
		t.Fatal(err)
	}
	if first.Dup || !again.Dup || again.Position() != first.Position() || again.TS != first.TS {
		t.Errorf("first %+v, again %+v: want the same position, the second a dup", first, again)
	}
	other := publish(t, c, "r", `3`)
	if other.Seq != first.Seq+1 || other.Dup {
		t.Errorf("next publish %+v, want seq %d", other, first.Seq+1)
	}
	if m := nextMsg(t, sub); m.Key != "order-17" || string(m.Data) != "1" {
		t.Errorf("first message key %q data %s", m.Key, m.Data)
	}
	if m := nextMsg(t, sub); m.Seq != other.Seq {
		t.Errorf("second message seq %d, want %d (the dup must not be delivered)", m.Seq, other.Seq)
	}
}

func TestServerErrors(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithConfig(func(c *edge.Config) { c.MaxDataBytes = 100 }))
	limited := dial(t, n, "", client.Options{Token: n.Token("limited", []string{"pub:*"}, []string{"sub:*"})})
	tests := []struct {
		name string
		call func() error
		want protocol.Code
	}{
		{"subscribe forbidden", func() error {
			_, err := limited.Subscribe(ctxFor(t), "pub:x", client.SubscribeOptions{})
			return err
		}, protocol.CodeForbidden},
		{"publish forbidden", func() error {
			_, err := limited.Publish(ctxFor(t), "sub:x", json.RawMessage(`1`), client.PublishOptions{})
			return err
		}, protocol.CodeForbidden},
		{"history forbidden", func() error {
			_, _, err := limited.History(ctxFor(t), "pub:x", client.HistoryOptions{})
			return err
		}, protocol.CodeForbidden},
		{"too large", func() error {
			_, err := limited.Publish(ctxFor(t), "pub:x", json.RawMessage(`"`+strings.Repeat("x", 200)+`"`), client.PublishOptions{})
			return err
		}, protocol.CodeTooLarge},
		{"bad room", func() error {
			_, err := limited.Publish(ctxFor(t), "pub x", json.RawMessage(`1`), client.PublishOptions{})
			return err
		}, protocol.CodeBadRequest},
		{"bad data", func() error {
			_, err := limited.Publish(ctxFor(t), "pub:x", json.RawMessage(`{oops`), client.PublishOptions{})
			return err
		}, protocol.CodeBadRequest},
		{"empty data", func() error {
			_, err := limited.Publish(ctxFor(t), "pub:x", nil, client.PublishOptions{})
			return err
		}, protocol.CodeBadRequest},
		{"key too long", func() error {
			_, err := limited.Publish(ctxFor(t), "pub:x", json.RawMessage(`1`), client.PublishOptions{Key: strings.Repeat("k", 65)})
			return err
		}, protocol.CodeBadRequest},
		{"bad since", func() error {
			_, err := limited.Subscribe(ctxFor(t), "sub:x", client.SubscribeOptions{Since: &protocol.Position{Seq: 3}})
			return err
		}, protocol.CodeBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != tc.want {
				t.Fatalf("err = %v, want a *protocol.Error with code %s", err, tc.want)
			}
		})
	}
	// None of that broke the connection.
	sub := subscribe(t, limited, "sub:ok", client.SubscribeOptions{})
	publish(t, dial(t, n, "other", client.Options{}), "sub:ok", `1`)
	expectSeqs(t, sub, 1, 1)
	if _, err := limited.Subscribe(ctxFor(t), "sub:ok", client.SubscribeOptions{}); !errors.Is(err, client.ErrAlreadySubscribed) {
		t.Errorf("second subscribe: %v, want ErrAlreadySubscribed", err)
	}
}

func TestDialErrors(t *testing.T) {
	n := edgetest.Start(t)
	tests := []struct {
		name string
		url  string
		opts client.Options
		want protocol.Code // "" for a plain error
	}{
		{"no token", n.WSURL, client.Options{}, protocol.CodeUnauthorized},
		{"bad token", n.WSURL, client.Options{Token: "not-a-token"}, protocol.CodeUnauthorized},
		{"expired token", n.WSURL, client.Options{Token: n.TokenTTL("u", nil, nil, -time.Hour)}, protocol.CodeUnauthorized},
		{"bad token in the header", n.WSURL, client.Options{Header: map[string][]string{"Authorization": {"Bearer nope"}}}, protocol.CodeUnauthorized},
		{"bad scheme", "ftp://127.0.0.1:1", client.Options{}, ""},
		{"nothing listening", "ws://127.0.0.1:1", client.Options{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := client.Dial(ctxFor(t), tc.url, tc.opts)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			if got := client.Code(err); got != tc.want {
				t.Errorf("Dial error %v has code %q, want %q", err, got, tc.want)
			}
		})
	}
	t.Run("http URL", func(t *testing.T) {
		c, err := client.Dial(ctxFor(t), n.URL, client.Options{Token: n.AllToken("u")})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := c.Info().URL; got != n.WSURL {
			t.Errorf("connected to %s, want %s", got, n.WSURL)
		}
	})
}

func TestUnsubscribe(t *testing.T) {
	n := edgetest.Start(t)
	c := dial(t, n, "alice", client.Options{})
	sub := subscribe(t, c, "r", client.SubscribeOptions{})
	publish(t, c, "r", `1`)
	expectSeqs(t, sub, 1, 1)
	if err := sub.Unsubscribe(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	if err := sub.Unsubscribe(ctxFor(t)); err != nil {
		t.Fatalf("second Unsubscribe: %v", err)
	}
	publish(t, c, "r", `2`)
	if ev, ok := <-sub.C(); ok {
		t.Fatalf("event %+v after Unsubscribe", ev)
	}
	if sub.Err() != nil {
		t.Errorf("Err() = %v after Unsubscribe", sub.Err())
	}
	// The room can be subscribed again.
	sub = subscribe(t, c, "r", client.SubscribeOptions{Since: &protocol.Position{Epoch: sub.Position().Epoch, Seq: 1}})
	expectSeqs(t, sub, 2, 2)
}
