package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/protocol"
)

func TestWSURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ws://h:1", "ws://h:1/v1/ws"},
		{"ws://h:1/", "ws://h:1/v1/ws"},
		{"http://h:1", "ws://h:1/v1/ws"},
		{"https://h", "wss://h/v1/ws"},
		{"wss://h/custom/ws?x=1", "wss://h/custom/ws?x=1"},
		{"ftp://h", ""},
		{"ws://", ""},
		{"::", ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := wsURL(tc.in)
			if (err != nil) != (tc.want == "") || got != tc.want {
				t.Errorf("wsURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestNextBatch(t *testing.T) {
	tests := []struct {
		name string
		buf  string
		max  int
		want []string
	}{
		{"fits", "aa\nbb\ncc", 100, []string{"aa\nbb\ncc"}},
		{"split", "aa\nbb\ncc", 5, []string{"aa\nbb", "cc"}},
		{"exact", "aa\nbb\ncc", 2, []string{"aa", "bb", "cc"}},
		{"long frame alone", "aaaaaa\nb\nc", 3, []string{"aaaaaa", "b\nc"}},
		{"one long frame", "aaaaaa", 3, []string{"aaaaaa"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for rest := []byte(tc.buf); len(rest) > 0; {
				var msg []byte
				msg, rest = nextBatch(rest, tc.max)
				got = append(got, string(msg))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("batches %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAppendPub(t *testing.T) {
	keys := []string{"", "k", "a\"b\\c", "tab\there\nnl\x00\x1f", "é😀<>&", strings.Repeat("k", 64)}
	for _, key := range keys {
		t.Run(fmt.Sprintf("%q", key), func(t *testing.T) {
			data := json.RawMessage(`{"x":[1,"<y>"]}`)
			b := appendPub(nil, 42, "chat:x", key, data)
			if bytes.IndexByte(b, '\n') >= 0 {
				t.Fatalf("frame has a newline: %s", b)
			}
			f, err := protocol.DecodeClient(b)
			if err != nil {
				t.Fatalf("DecodeClient(%s): %v", b, err)
			}
			if f.Op != protocol.OpPub || f.ID == nil || *f.ID != 42 || f.Room != "chat:x" || f.Key != key || !bytes.Equal(f.Data, data) {
				t.Errorf("decoded %+v from %s", f, b)
			}
		})
	}
}

func TestCheckData(t *testing.T) {
	tests := []struct {
		in, want string // want "" for an error
	}{
		{`1`, `1`},
		{`{"a": "b c"}`, `{"a": "b c"}`},
		{"{\n\t\"a\": [1,\r\n 2]\n}", `{"a":[1,2]}`},
		{`{"a":`, ""},
		{``, ""},
		{`1 2`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := checkData(json.RawMessage(tc.in))
			if tc.want == "" {
				if err == nil || protocol.AsError(err).Code != protocol.CodeBadRequest {
					t.Errorf("checkData(%q) = %s, %v; want bad_request", tc.in, got, err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Errorf("checkData(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	c := &Client{opts: Options{ReconnectMin: 100 * time.Millisecond, ReconnectMax: 5 * time.Second}}
	for n := range 100 {
		d := c.backoff(n)
		lo, hi := time.Duration(0), 100*time.Millisecond
		if n > 0 {
			full := min(5*time.Second, 100*time.Millisecond<<min(n, 20))
			lo, hi = full/2, full
		}
		if d < lo || d > hi {
			t.Errorf("backoff(%d) = %v, want within [%v, %v]", n, d, lo, hi)
		}
	}
}

func TestNewKey(t *testing.T) {
	c := &Client{keyPrefix: "abcdefghijkl-"}
	seen := map[string]bool{}
	for range 1000 {
		k := c.newKey()
		if seen[k] || protocol.CheckKey(k) != nil {
			t.Fatalf("key %q repeated or invalid", k)
		}
		seen[k] = true
	}
}

// testRig is a Client with one session that has no socket: frames the
// session would read are fed to dispatch, frames it writes pile up in its
// buffer. It exercises the reader's logic on arbitrary input.
type testRig struct {
	c   *Client
	s   *session
	sub *Subscription
}

func newTestRig(t testing.TB, buffer int) *testRig {
	t.Helper()
	opts, _ := Options{Logger: zerolog.Nop()}.withDefaults()
	c := &Client{opts: opts, log: opts.Logger, ready: make(chan struct{}), timers: map[*time.Timer]struct{}{}, subs: map[string]*Subscription{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	sctx, scancel := context.WithCancel(c.ctx)
	s := &session{c: c, log: c.log, ctx: sctx, cancel: scancel, wsignal: make(chan struct{}, 1),
		wdone: make(chan struct{}), pending: map[int64]replyFunc{}}
	c.sess = s
	close(c.ready)
	sub := &Subscription{c: c, room: "r", ch: make(chan Event, buffer), ready: make(chan struct{}), done: make(chan struct{})}
	c.subs["r"] = sub
	s.resync(sub) // sends the sub frame with request id 1
	t.Cleanup(func() {
		c.cancel()
		sub.close(nil)
		c.wg.Wait()
	})
	return &testRig{c: c, s: s, sub: sub}
}

// events returns what the subscription delivered so far.
func (r *testRig) events() []Event {
	var evs []Event
	for {
		select {
		case ev, ok := <-r.sub.ch:
			if !ok {
				return evs
			}
			evs = append(evs, ev)
		default:
			return evs
		}
	}
}

// checkOrder checks the subscription's promise: messages in order, none
// twice, a change of epoch or a jump announced by a reset.
func checkOrder(t testing.TB, evs []Event) {
	t.Helper()
	var last protocol.Position
	for i, ev := range evs {
		switch ev.Kind {
		case EventReset:
			if ev.Notice == nil {
				t.Fatalf("event %d: reset without notice", i)
			}
			last = protocol.Position{Epoch: ev.Notice.To.Epoch, Seq: max(ev.Notice.To.Seq, 1) - 1}
		case EventMsg:
			p := ev.Msg.Position()
			if last.Epoch != 0 && (p.Epoch != last.Epoch || p.Seq != last.Seq+1) {
				t.Fatalf("event %d: message %+v after %+v without a reset", i, p, last)
			}
			last = p
		}
	}
}

func TestDispatchOrder(t *testing.T) {
	msg := func(e, s uint64) string {
		return string(protocol.AppendMsg(nil, &protocol.Msg{Room: "r", Epoch: e, Seq: s, Data: json.RawMessage(`1`)}))
	}
	tests := []struct {
		name  string
		lines []string
		want  []string // kinds and positions delivered
	}{
		{"in order", []string{`{"op":"subscribed","id":1,"room":"r","head":{"epoch":5,"seq":2}}`, msg(5, 3), msg(5, 4)},
			[]string{"msg 5.3", "msg 5.4"}},
		{"duplicates dropped", []string{`{"op":"subscribed","id":1,"room":"r","head":{"epoch":5,"seq":0}}`, msg(5, 1), msg(5, 1), msg(5, 2), msg(5, 1)},
			[]string{"msg 5.1", "msg 5.2"}},
		{"gap waits for the replay", []string{`{"op":"subscribed","id":1,"room":"r","head":{"epoch":5,"seq":0}}`, msg(5, 1), msg(5, 3), msg(5, 2)},
			[]string{"msg 5.1", "msg 5.2"}},
		{"reset reply", []string{`{"op":"subscribed","id":1,"room":"r","head":{"epoch":5,"seq":9},"reset":true,"oldest":{"epoch":6,"seq":4}}`, msg(6, 4)},
			[]string{"reset 6.4", "msg 6.4"}},
		{"new epoch", []string{`{"op":"subscribed","id":1,"room":"r","head":{"epoch":5,"seq":1}}`, msg(6, 1), msg(5, 2)},
			[]string{"reset 6.1", "msg 6.1"}},
		{"other room and junk ignored", []string{`{"op":"subscribed","id":1,"room":"r","head":{"epoch":5,"seq":0}}`,
			`{"op":"msg","room":"x","epoch":5,"seq":1,"data":1}`, `nope`, `{"op":"ack","id":99}`, msg(5, 1)},
			[]string{"msg 5.1"}},
		{"notices", []string{`{"op":"subscribed","id":1,"room":"r","head":{"epoch":5,"seq":0}}`,
			`{"op":"join","room":"r","user":"u"}`, `{"op":"receipt","room":"r","seq":1,"user":"u","status":"read"}`, `{"op":"leave","room":"r","user":"u"}`},
			[]string{"join u", "receipt u", "leave u"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRig(t, 64)
			for _, l := range tc.lines {
				r.s.dispatch([]byte(l))
			}
			var got []string
			evs := r.events()
			for _, ev := range evs {
				switch ev.Kind {
				case EventMsg:
					got = append(got, fmt.Sprintf("msg %d.%d", ev.Msg.Epoch, ev.Msg.Seq))
				case EventReset:
					got = append(got, fmt.Sprintf("reset %d.%d", ev.Notice.To.Epoch, ev.Notice.To.Seq))
				default:
					got = append(got, ev.Kind.String()+" "+ev.Notice.User)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("delivered %q, want %q", got, tc.want)
			}
			checkOrder(t, evs)
		})
	}
}

// FuzzDispatch feeds arbitrary server frames to a connection's reader:
// it must never panic, and whatever it delivers must keep the
// subscription's promise of order without duplicates.
func FuzzDispatch(f *testing.F) {
	msg := func(e, s uint64) string {
		return string(protocol.AppendMsg(nil, &protocol.Msg{Room: "r", Epoch: e, Seq: s, From: "u", Data: json.RawMessage(`{"a":1}`)}))
	}
	f.Add(strings.Join([]string{`{"op":"subscribed","id":1,"room":"r","head":{"epoch":5,"seq":2}}`, msg(5, 3), msg(5, 5), msg(5, 4)}, "\n"))
	f.Add(strings.Join([]string{msg(5, 1), `{"op":"subscribed","id":1,"room":"r","head":{"epoch":5,"seq":0},"reset":true,"oldest":{"epoch":7,"seq":1}}`, msg(7, 1), msg(7, 2)}, "\n"))
	f.Add(strings.Join([]string{`{"op":"error","id":1,"code":"unavailable","message":"x"}`, `{"op":"reconnect","reason":"drain","edges":["ws://a"]}`}, "\n"))
	f.Add(strings.Join([]string{`{"op":"subscribed","id":1,"room":"r","head":{"epoch":1,"seq":0}}`, msg(1, 1), msg(2, 1), msg(1, 2), `{"op":"join","room":"r","user":"u"}`}, "\n"))
	f.Add(`{"op":"error","id":1,"code":"forbidden","message":"no"}`)
	f.Fuzz(func(t *testing.T, in string) {
		r := newTestRig(t, 4)
		var evs []Event
		for line := range protocol.Lines([]byte(in)) {
			r.s.dispatch(line)
			evs = append(evs, r.events()...)
		}
		checkOrder(t, evs)
		// Whatever the frames did, writes stay one frame per line.
		r.s.wmu.Lock()
		defer r.s.wmu.Unlock()
		for line := range protocol.Lines(r.s.wbuf) {
			if _, err := protocol.DecodeClient(line); err != nil {
				t.Fatalf("client wrote a bad frame %q: %v", line, err)
			}
		}
	})
}

// BenchmarkDispatchMsg is the reader's cost per message: decoding a msg
// frame and handing it to its subscription.
func BenchmarkDispatchMsg(b *testing.B) {
	r := newTestRig(b, 1)
	r.s.dispatch([]byte(`{"op":"subscribed","id":1,"room":"r","head":{"epoch":5,"seq":0}}`))
	m := &protocol.Msg{Room: "r", Epoch: 5, From: "alice", Key: "0123456789abcdef", Data: json.RawMessage(`{"text":"hello, world","n":42}`)}
	var frame []byte
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.Seq = uint64(i + 1)
		frame = protocol.AppendMsg(frame[:0], m)
		r.s.dispatch(frame)
		<-r.sub.ch
	}
}

// BenchmarkAppendPub is the cost of writing a publish frame.
func BenchmarkAppendPub(b *testing.B) {
	data := json.RawMessage(`{"text":"hello, world","n":42}`)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = appendPub(buf[:0], int64(i), "chat:lobby", "0123456789abcdef-42", data)
	}
}

// FuzzDecodeMsg checks the reader's msg fast path against encoding/json:
// whenever decodeMsg accepts a frame, encoding/json decodes it to the
// same message, and when its data is not valid JSON (which decodeMsg
// does not check: the server did), encoding/json decodes the same frame
// with null for data to the same envelope.
func FuzzDecodeMsg(f *testing.F) {
	f.Add(string(protocol.AppendMsg(nil, &protocol.Msg{Room: "chat:x", Epoch: 1700000000000000, Seq: 1, TS: 1700000000123, From: "alice", Key: "k", Data: json.RawMessage(`{"a":[1,"é"]}`)})))
	f.Add(string(protocol.AppendMsg(nil, &protocol.Msg{Room: "r", Epoch: ^uint64(0), Seq: 1, TS: -1 << 63, From: "é", Data: json.RawMessage(`"x"`)})))
	f.Add(`{"op":"msg","room":"r","epoch":01,"seq":1,"ts":0,"from":"","data":1}`)
	f.Add(`{"op":"msg","room":"r","epoch":1,"seq":1,"ts":-0,"from":"a\"b","data":1}`)
	f.Add(`{"op":"msg","room":"r","epoch":1,"seq":1,"ts":1,"from":"","data":1},"x":2}`)
	f.Add(`{"op":"msg","room":"r","epoch":18446744073709551616,"seq":1,"ts":1,"from":"","data": 1 }`)
	f.Fuzz(func(t *testing.T, line string) {
		m, ok := decodeMsg([]byte(line))
		if !ok {
			return
		}
		var f protocol.Frame
		check := line
		if !json.Valid(m.data) {
			check = line[:len(line)-len(m.data)-1] + "null}"
			m.data = []byte("null")
		}
		if err := json.Unmarshal([]byte(check), &f); err != nil {
			t.Fatalf("decodeMsg accepted %q, encoding/json refuses %q: %v", line, check, err)
		}
		if f.Op != protocol.OpMsg || f.Room != string(m.room) || f.Epoch != m.epoch || f.Seq != m.seq || f.TS != m.ts ||
			f.From != string(m.from) || f.Key != string(m.key) || !bytes.Equal(f.Data, m.data) {
			t.Fatalf("decodeMsg(%q) = %+v, encoding/json gives %+v for %q", line, m, f, check)
		}
	})
}

// A subscription whose reader stalls keeps at most maxPendingNotices
// notices; the ones beyond are counted and reported by one
// EventNoticesLost after those kept, so a presence view knows it is stale.
func TestLaggingSubscriptionReportsLostNotices(t *testing.T) {
	c := &Client{ctx: t.Context()}
	s := &Subscription{c: c, room: "r", ch: make(chan Event, 1), done: make(chan struct{}), state: subLive}
	const extra = 5
	total := 2 + maxPendingNotices + extra // one on C, one taken by the helper, the queue, the overflow
	for i := range total {
		s.onNotice(Event{Kind: EventJoin, Notice: &Notice{Room: "r", User: fmt.Sprint(i)}})
	}
	joins, lost := 0, 0
	for lost == 0 {
		select {
		case ev := <-s.ch:
			switch ev.Kind {
			case EventJoin:
				if ev.Notice.User != fmt.Sprint(joins) {
					t.Fatalf("join %d is of user %s: notices out of order", joins, ev.Notice.User)
				}
				joins++
			case EventNoticesLost:
				lost = ev.Notice.Lost
				if lost <= 0 || ev.Notice.Room != "r" {
					t.Fatalf("notices-lost event %+v", ev.Notice)
				}
			default:
				t.Fatalf("unexpected event %v", ev.Kind)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no notices-lost event after %d joins", joins)
		}
	}
	if joins+lost != total {
		t.Errorf("%d joins delivered + %d reported lost, want %d in all", joins, lost, total)
	}
	c.wg.Wait() // the helper has returned
	select {
	case ev := <-s.ch:
		t.Errorf("event %v after notices-lost, which must come last", ev.Kind)
	default:
	}
}

// FuzzDecodeAck checks the reader's ack fast path against encoding/json:
// whenever decodeAck accepts a frame, encoding/json decodes it to the
// same frame.
func FuzzDecodeAck(f *testing.F) {
	f.Add(`{"op":"ack","id":7,"room":"chat:x","epoch":1700000000000000,"seq":42,"ts":1700000000123}`)
	f.Add(`{"op":"ack","id":9223372036854775807,"room":"é","epoch":18446744073709551615,"seq":1,"ts":-9223372036854775808,"dup":true}`)
	f.Add(`{"op":"ack","id":-1,"room":"r","epoch":1,"seq":1,"ts":-0}`)
	f.Add(`{"op":"ack","id":1,"room":"a\"b","epoch":1,"seq":1,"ts":1}`)
	f.Add(`{"op":"ack","id":1,"room":"r","epoch":1,"seq":1,"ts":1,"dup":false}`)
	f.Add(`{"op":"ack","id":1,"room":"r","epoch":1,"seq":1,"ts":1} `)
	f.Add(`{"op":"ack","id":9223372036854775808,"room":"r","epoch":1,"seq":1,"ts":1}`)
	f.Fuzz(func(t *testing.T, line string) {
		var got protocol.Frame
		var id int64
		if !decodeAck([]byte(line), &got, &id) {
			return
		}
		var want protocol.Frame
		if err := json.Unmarshal([]byte(line), &want); err != nil {
			t.Fatalf("decodeAck accepted %q, encoding/json refuses it: %v", line, err)
		}
		if got.ID != &id || want.ID == nil || id != *want.ID {
			t.Fatalf("decodeAck(%q) id %d, encoding/json gives %v", line, id, want.ID)
		}
		got.ID, want.ID = nil, nil
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeAck(%q) = %+v, encoding/json gives %+v", line, got, want)
		}
	})
}

// TestDecodeAckTakesServerAcks: the acks the server writes take the fast
// path (they would all fall back to encoding/json without it, unnoticed).
func TestDecodeAckTakesServerAcks(t *testing.T) {
	for _, line := range []string{
		`{"op":"ack","id":1,"room":"chat:x","epoch":1700000000000000,"seq":42,"ts":1700000000123}`,
		`{"op":"ack","id":2,"room":"r","epoch":1,"seq":1,"ts":1,"dup":true}`,
	} {
		var f protocol.Frame
		var id int64
		if !decodeAck([]byte(line), &f, &id) {
			t.Errorf("decodeAck refused %s", line)
		}
	}
}

// FuzzCheckData: checkData accepts exactly the data encoding/json.Valid
// accepts (its jsontext shortcut must not let through anything more).
func FuzzCheckData(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `[1, "x"]`, "\"\xff\"", `{"a":1,"a":2}`, ` 1 `, `{"a":}`, "\"é\"", `1e999`, `-0`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		if data == "" {
			return
		}
		_, err := checkData(json.RawMessage(data))
		if valid := json.Valid([]byte(data)); valid != (err == nil) {
			t.Fatalf("checkData(%q): %v; encoding/json.Valid: %v", data, err, valid)
		}
	})
}

// BenchmarkDecodeAck: the ack fast path against encoding/json, which
// decoded every ack before.
func BenchmarkDecodeAck(b *testing.B) {
	line := []byte(`{"op":"ack","id":123456,"room":"durable-417","epoch":1763880000000000,"seq":4242,"ts":1763880000123}`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		var f protocol.Frame
		var id int64
		for b.Loop() {
			if !decodeAck(line, &f, &id) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		var f protocol.Frame
		for b.Loop() {
			f = protocol.Frame{}
			if err := json.Unmarshal(line, &f); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDecodeMsg is the reader's msg fast path alone.
func BenchmarkDecodeMsg(b *testing.B) {
	line := protocol.AppendMsg(nil, &protocol.Msg{Room: "fanout-1763880000", Epoch: 1763880000000000, Seq: 123456, TS: 1763880000123,
		From: "bench-publisher-1", Key: "k7f3a9c2e1b5d8-123456", Data: json.RawMessage(`{"p":1,"n":123456,"t":5000000000,"s":5000012345,"x":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)})
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := decodeMsg(line); !ok {
			b.Fatal("not decoded")
		}
	}
}
