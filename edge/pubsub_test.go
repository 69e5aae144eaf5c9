package edge_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/arena-mesh/arena/edge/auth"
	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/protocol"
)

func TestPubSubRoundTrip(t *testing.T) {
	n := edgetest.Start(t)
	sub := connectWS(t, n, n.AllToken("bob"))
	s := sub.sub("chat:1", nil)
	if s.Head == nil || s.Head.Seq != 0 || s.Head.Epoch == 0 || s.Reset {
		t.Fatalf("subscribed to a new room: %+v", s)
	}
	pub := connectWS(t, n, n.AllToken("alice"))
	ack := pub.pub("chat:1", "k1", `{"text":"hi"}`)
	if ack.Room != "chat:1" || ack.Seq != 1 || ack.Epoch != s.Head.Epoch || ack.TS == 0 || ack.Dup {
		t.Fatalf("ack = %+v", ack)
	}
	m := sub.msgs(1)[0]
	if m.Room != "chat:1" || m.Seq != 1 || m.Epoch != ack.Epoch || m.TS != ack.TS || m.From != "alice" ||
		m.Key != "k1" || string(m.Data) != `{"text":"hi"}` {
		t.Fatalf("msg = %+v", m)
	}

	r := sub.mustCall(protocol.Frame{Op: protocol.OpUnsub, Room: "chat:1"}, protocol.OpUnsubscribed)
	if r.Room != "chat:1" {
		t.Errorf("unsubscribed = %+v", r)
	}
	r = sub.call(protocol.Frame{Op: protocol.OpUnsub, Room: "chat:1"})
	if r.Code != protocol.CodeNotSubscribed {
		t.Errorf("second unsub: %+v, want not_subscribed", r)
	}
	pub.pub("chat:1", "", `2`)
	sub.ping()
	for _, f := range sub.backlog {
		if f.Op == protocol.OpMsg {
			t.Errorf("msg after unsubscribed: %+v", f)
		}
	}
}

func TestFramesWithoutIDGetNoReply(t *testing.T) {
	n := edgetest.Start(t)
	c := connectWS(t, n, n.AllToken("alice"))
	c.send(
		protocol.Frame{Op: protocol.OpSub, Room: "quiet"},
		protocol.Frame{Op: protocol.OpPub, Room: "quiet", Data: json.RawMessage(`"x"`)},
		protocol.Frame{Op: protocol.OpPing},
		protocol.Frame{Op: protocol.OpRecv, Room: "quiet", Seq: 1},
		protocol.Frame{Op: protocol.OpRead, Room: "quiet", Seq: 1},
	)
	// The msg of the publish arrives (the sub was live), but no reply.
	m := c.msgs(1)[0]
	if string(m.Data) != `"x"` {
		t.Fatalf("msg = %+v", m)
	}
	c.ping()
	if len(c.backlog) != 0 {
		t.Fatalf("unexpected frames: %+v", c.backlog)
	}
}

func TestPermissions(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithAPIKeys(
		auth.APIKey{Name: "bot", Key: "botkey0123456789abcdef", Pub: []string{"news:*"}, Sub: []string{"news:*"}},
	))
	dm := []string{"dm:{user}:*"}
	c := connectWS(t, n, n.Token("alice", append([]string{"chat:*"}, dm...), dm))
	tests := []struct {
		name  string
		frame protocol.Frame
		want  string // op of the reply, or the error code
	}{
		{"sub own dm", protocol.Frame{Op: protocol.OpSub, Room: "dm:alice:bob"}, protocol.OpSubscribed},
		{"sub other dm", protocol.Frame{Op: protocol.OpSub, Room: "dm:bob:alice"}, string(protocol.CodeForbidden)},
		{"sub chat without sub permission", protocol.Frame{Op: protocol.OpSub, Room: "chat:x"}, string(protocol.CodeForbidden)},
		{"pub chat", protocol.Frame{Op: protocol.OpPub, Room: "chat:x", Data: json.RawMessage(`1`)}, protocol.OpAck},
		{"pub own dm", protocol.Frame{Op: protocol.OpPub, Room: "dm:alice:x", Data: json.RawMessage(`1`)}, protocol.OpAck},
		{"pub other dm", protocol.Frame{Op: protocol.OpPub, Room: "dm:bob:x", Data: json.RawMessage(`1`)}, string(protocol.CodeForbidden)},
		{"pub prefix lookalike", protocol.Frame{Op: protocol.OpPub, Room: "chat", Data: json.RawMessage(`1`)}, string(protocol.CodeForbidden)},
		{"history own dm", protocol.Frame{Op: protocol.OpHistory, Room: "dm:alice:bob"}, protocol.OpHistory},
		{"history other dm", protocol.Frame{Op: protocol.OpHistory, Room: "dm:carol:x"}, string(protocol.CodeForbidden)},
		{"presence other dm", protocol.Frame{Op: protocol.OpPresence, Room: "dm:carol:x"}, string(protocol.CodeForbidden)},
		{"presence own dm", protocol.Frame{Op: protocol.OpPresence, Room: "dm:alice:x"}, protocol.OpPresence},
		{"read other dm", protocol.Frame{Op: protocol.OpRead, Room: "dm:carol:x", Seq: 1}, string(protocol.CodeForbidden)},
		{"rooms", protocol.Frame{Op: protocol.OpRooms}, protocol.OpRooms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.call(tt.frame)
			got := r.Op
			if r.Op == protocol.OpError {
				got = string(r.Code)
			}
			if got != tt.want {
				t.Fatalf("%s %s: got %s (%s), want %s", tt.frame.Op, tt.frame.Room, got, r.Message, tt.want)
			}
		})
	}

	t.Run("api key over HTTP", func(t *testing.T) {
		code, _, body := httpDo(t, http.MethodPost, n.URL+"/v1/rooms/news:1/messages", "botkey0123456789abcdef", `{"data":"x"}`)
		if code != http.StatusCreated {
			t.Fatalf("publish with API key: %d %s", code, body)
		}
		code, _, body = httpDo(t, http.MethodPost, n.URL+"/v1/rooms/chat:1/messages", "botkey0123456789abcdef", `{"data":"x"}`)
		if code != http.StatusForbidden || httpErrorCode(t, body) != protocol.CodeForbidden {
			t.Fatalf("publish outside the key's patterns: %d %s", code, body)
		}
		code, _, body = httpDo(t, http.MethodGet, n.URL+"/v1/rooms/news:1/messages", "botkey0123456789abcdef", "")
		if code != http.StatusOK {
			t.Fatalf("history with API key: %d %s", code, body)
		}
		code, _, body = httpDo(t, http.MethodPost, n.URL+"/v1/rooms/news:1/messages", "wrong-key", `{"data":"x"}`)
		if code != http.StatusUnauthorized {
			t.Fatalf("wrong API key: %d %s", code, body)
		}
	})
	t.Run("api key over WebSocket", func(t *testing.T) {
		k := connectWS(t, n, "botkey0123456789abcdef")
		k.sub("news:1", nil)
		r := k.call(protocol.Frame{Op: protocol.OpSub, Room: "chat:1"})
		if r.Code != protocol.CodeForbidden {
			t.Fatalf("API key sub outside its patterns: %+v", r)
		}
	})
}

// TestTotalOrder has several publisher connections publish concurrently
// while several subscribers listen: every subscriber must see the same
// gap-free sequence, containing every published message once.
func TestTotalOrder(t *testing.T) {
	const (
		publishers  = 4
		subscribers = 3
		perPub      = 150
		total       = publishers * perPub
	)
	n := edgetest.Start(t)
	room := "order:1"
	subs := make([]*wsClient, subscribers)
	var epoch uint64
	for i := range subs {
		subs[i] = connectWS(t, n, n.AllToken(fmt.Sprintf("sub%d", i)))
		epoch = subs[i].sub(room, nil).Head.Epoch
	}
	pubs := make([]*wsClient, publishers)
	for i := range pubs {
		pubs[i] = connectWS(t, n, n.AllToken(fmt.Sprintf("pub%d", i)))
	}
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for i, p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Pipelined: send everything in batches, then collect acks.
			for j := 0; j < perPub; j += 10 {
				var batch []protocol.Frame
				for k := j; k < j+10; k++ {
					id := int64(k + 1)
					batch = append(batch, protocol.Frame{Op: protocol.OpPub, ID: &id, Room: room,
						Data: json.RawMessage(fmt.Sprintf(`{"p":%d,"i":%d}`, i, k))})
				}
				p.send(batch...)
			}
			acks := 0
			for acks < perPub {
				f, err := p.readErr()
				if err != nil {
					errs <- err
					return
				}
				if f.Op == protocol.OpAck {
					acks++
				} else if f.Op == protocol.OpError {
					errs <- fmt.Errorf("publisher %d: %s %s", i, f.Code, f.Message)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	var first []string
	for i, s := range subs {
		msgs := s.msgs(total)
		seen := make(map[string]bool)
		var order []string
		for j, m := range msgs {
			if m.Epoch != epoch || m.Seq != uint64(j+1) {
				t.Fatalf("subscriber %d: msg %d at (%d,%d), want (%d,%d)", i, j, m.Epoch, m.Seq, epoch, j+1)
			}
			if seen[string(m.Data)] {
				t.Fatalf("subscriber %d: duplicate %s", i, m.Data)
			}
			seen[string(m.Data)] = true
			order = append(order, string(m.Data))
		}
		if first == nil {
			first = order
			continue
		}
		for j := range order {
			if order[j] != first[j] {
				t.Fatalf("subscriber %d differs at seq %d: %s vs %s", i, j+1, order[j], first[j])
			}
		}
	}
	// Each publisher's own messages keep their order within the room.
	last := make(map[float64]float64)
	for _, d := range first {
		var v struct{ P, I float64 }
		if err := json.Unmarshal([]byte(d), &v); err != nil {
			t.Fatal(err)
		}
		if prev, ok := last[v.P]; ok && v.I <= prev {
			t.Fatalf("publisher %v: message %v after %v", v.P, v.I, prev)
		}
		last[v.P] = v.I
	}
}

func TestIdempotentPublish(t *testing.T) {
	n := edgetest.Start(t)
	tok := n.AllToken("alice")
	c := connectWS(t, n, tok)
	sub := connectWS(t, n, n.AllToken("bob"))
	sub.sub("idem", nil)

	a1 := c.pub("idem", "key-1", `"first"`)
	a2 := c.pub("idem", "key-1", `"second"`)
	if !a2.Dup || a2.Seq != a1.Seq || a2.Epoch != a1.Epoch || a2.TS != a1.TS {
		t.Fatalf("repeat ack %+v, want dup of %+v", a2, a1)
	}
	code, _, body := httpDo(t, http.MethodPost, n.URL+"/v1/rooms/idem/messages", tok, `{"data":"third","key":"key-1"}`)
	var hr struct {
		Epoch, Seq uint64
		TS         int64
		Dup        bool
	}
	if err := json.Unmarshal(body, &hr); err != nil || code != http.StatusOK || !hr.Dup || hr.Seq != a1.Seq || hr.TS != a1.TS {
		t.Fatalf("HTTP repeat: %d %s, want 200 dup seq %d", code, body, a1.Seq)
	}
	code, _, body = httpDo(t, http.MethodPost, n.URL+"/v1/rooms/idem/messages", tok, `{"data":"fourth","key":"key-2"}`)
	hr.Dup = false
	if err := json.Unmarshal(body, &hr); err != nil || code != http.StatusCreated || hr.Dup || hr.Seq != a1.Seq+1 {
		t.Fatalf("HTTP new key: %d %s", code, body)
	}
	a3 := c.pub("idem", "key-2", `"fifth"`)
	if !a3.Dup || a3.Seq != a1.Seq+1 {
		t.Fatalf("WS repeat of an HTTP key: %+v", a3)
	}
	// Subscribers saw exactly two messages.
	msgs := sub.msgs(2)
	if string(msgs[0].Data) != `"first"` || string(msgs[1].Data) != `"fourth"` {
		t.Fatalf("delivered %s, %s", msgs[0].Data, msgs[1].Data)
	}
	sub.ping()
	if len(sub.backlog) != 0 {
		t.Fatalf("extra frames: %+v", sub.backlog)
	}
}

func TestHistoryFrame(t *testing.T) {
	n := edgetest.Start(t)
	c := connectWS(t, n, n.AllToken("alice"))
	for i := 1; i <= 60; i++ {
		c.pub("hist", "", strconv.Itoa(i))
	}
	u := func(v uint64) *uint64 { return &v }
	tests := []struct {
		name          string
		before, after *uint64
		limit         int
		first, count  uint64
	}{
		{"default newest 50", nil, nil, 0, 11, 50},
		{"limit", nil, nil, 5, 56, 5},
		{"after", nil, u(10), 3, 11, 3},
		{"before", u(10), nil, 3, 7, 3},
		{"before 1", u(1), nil, 3, 0, 0},
		{"before 0", u(0), nil, 3, 0, 0},
		{"after head", nil, u(60), 3, 0, 0},
		{"after 0", nil, u(0), 4, 1, 4},
		{"max limit", nil, nil, 1000, 1, 60},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.mustCall(protocol.Frame{Op: protocol.OpHistory, Room: "hist", Before: tt.before, After: tt.after, Limit: tt.limit}, protocol.OpHistory)
			if r.Room != "hist" || r.Epoch == 0 {
				t.Fatalf("history reply %+v", r)
			}
			if uint64(len(r.Msgs)) != tt.count {
				t.Fatalf("%d msgs, want %d", len(r.Msgs), tt.count)
			}
			for i, m := range r.Msgs {
				if m.Seq != tt.first+uint64(i) || string(m.Data) != strconv.FormatUint(m.Seq, 10) || m.From != "alice" {
					t.Fatalf("msg %d = %+v", i, m)
				}
			}
		})
	}
}
