package edge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/arena-mesh/arena/protocol"
	"github.com/arena-mesh/arena/router"
)

// testSession is a session with no socket, for the parts that need none.
func testSession(t testing.TB) *session {
	t.Helper()
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{cfg: Config{SendQueue: DefaultSendQueue}, m: m}
	// writerOn: no writer goroutine is ever started (there is no socket);
	// the tests take the queued work themselves.
	s := &session{srv: srv, done: make(chan struct{}), writerOn: true}
	s.space.L = &s.mu
	return s
}

// TestHotPathAllocs pins the allocations of the fan-out and ack paths.
func TestHotPathAllocs(t *testing.T) {
	s := testSession(t)
	st := &subState{sess: s, room: "r", ready: true}
	t.Run("notify", func(t *testing.T) {
		s.dirty = make([]*subState, 0, 1)
		if n := testing.AllocsPerRun(1000, func() {
			st.Notify(nil)
			s.mu.Lock()
			s.dirty = s.dirty[:0]
			st.queued.Store(false)
			s.mu.Unlock()
		}); n != 0 {
			t.Errorf("Notify allocates %v times", n)
		}
	})
	t.Run("ack", func(t *testing.T) {
		s.ctrl = make([]byte, 0, 1<<16)
		id := int64(12345)
		ack := router.Ack{Epoch: 1795414745384913, Seq: 99999, TS: 1795414745392}
		if n := testing.AllocsPerRun(1000, func() {
			s.sendAck(id, "chat:room", ack)
			s.mu.Lock()
			s.ctrl, s.ctrlCount = s.ctrl[:0], 0
			s.mu.Unlock()
		}); n != 0 {
			t.Errorf("sendAck allocates %v times", n)
		}
	})
	t.Run("encode msg", func(t *testing.T) {
		m := &router.Message{Room: "r", Epoch: 1, Seq: 2, TS: 3, From: "u", Data: []byte(`{"a":1}`)}
		if n := testing.AllocsPerRun(1000, func() { _ = encodeMsg(m) }); n != 1 {
			t.Errorf("encodeMsg allocates %v times, want 1 (the frame)", n)
		}
	})
}

// TestAckEncoding: the hand-written ack is what encoding/json writes for
// protocol.Ack.
func TestAckEncoding(t *testing.T) {
	s := testSession(t)
	for _, dup := range []bool{false, true} {
		id := int64(-7)
		ack := router.Ack{Epoch: 1 << 52, Seq: 42, TS: 1700000000000, Dup: dup}
		s.sendAck(id, "dm:a@b/c.d_e-f", ack)
		want, _ := json.Marshal(protocol.Ack{Op: protocol.OpAck, ID: &id, Room: "dm:a@b/c.d_e-f",
			Epoch: ack.Epoch, Seq: ack.Seq, TS: ack.TS, Dup: dup})
		if string(s.ctrl) != string(want) {
			t.Errorf("ack\n got %s\nwant %s", s.ctrl, want)
		}
		s.ctrl, s.ctrlCount = s.ctrl[:0], 0
	}
}

func TestStrikes(t *testing.T) {
	var k strikes
	now := time.Unix(1000, 0)
	for i := 1; i <= 3; i++ {
		if k.add(now, 3) {
			t.Fatalf("strike %d over the limit", i)
		}
	}
	if !k.add(now.Add(time.Second), 3) {
		t.Fatal("fourth strike in the window not over the limit")
	}
	if k.add(now.Add(abuseWindow+2*time.Second), 3) {
		t.Fatal("a new window did not reset the count")
	}
}

func TestLimiters(t *testing.T) {
	l := newLimiters(1, 2)
	now := time.Unix(1000, 0)
	for i := range 2 {
		if ok, _ := l.allow("u", now); !ok {
			t.Fatalf("publish %d refused within the burst", i)
		}
	}
	ok, retry := l.allow("u", now)
	if ok || retry != time.Second {
		t.Fatalf("third: ok=%v retry=%v, want refused with 1s", ok, retry)
	}
	if ok, _ := l.allow("v", now); !ok {
		t.Fatal("another user shares the bucket")
	}
	if ok, _ := l.allow("u", now.Add(time.Second)); !ok {
		t.Fatal("refused after the refill")
	}
	// Idle buckets are dropped by the sweep.
	l.allow("w", now.Add(sweepEvery+time.Hour))
	l.mu.Lock()
	n := len(l.byUser)
	l.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d buckets after the sweep, want 1", n)
	}
}

// FuzzDecodePublishBody round-trips publish bodies: whatever is accepted
// is compact, valid JSON equal (as a value) to the body's data; whatever is
// refused is a bad_request or too_large protocol error.
func FuzzDecodePublishBody(f *testing.F) {
	for _, s := range []string{
		`{"data":1}`, `{"data":{"a":"b"},"key":"k1"}`, `{"data":null}`, `{"data":[1, 2 ,3],"key":""}`,
		"{\"data\":\n{\"x\":\t\"y\"}}", `{"key":"k"}`, `[]`, `{"data":1,"x":2}`, ``, `{"data":1}{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodePublishBody(bytes.NewReader(body), 1<<10)
		if err != nil {
			var pe *protocol.Error
			if !errors.As(err, &pe) || (pe.Code != protocol.CodeBadRequest && pe.Code != protocol.CodeTooLarge) {
				t.Fatalf("error %v is not a bad_request or too_large protocol error", err)
			}
			return
		}
		if bytes.ContainsAny(req.Data, "\n\r\t") || !json.Valid(req.Data) {
			t.Fatalf("accepted data %q is not compact JSON", req.Data)
		}
		var in struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			t.Fatalf("accepted a body encoding/json rejects: %v", err)
		}
		var a, b any
		if json.Unmarshal(in.Data, &a) != nil || json.Unmarshal(req.Data, &b) != nil || fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("data %s decoded to %s", in.Data, req.Data)
		}
		if protocol.CheckKey(req.Key) != nil {
			t.Fatalf("accepted bad key %q", req.Key)
		}
	})
}

// FuzzParseEventID round-trips SSE resume positions.
func FuzzParseEventID(f *testing.F) {
	for _, s := range []string{"1795414745384913:42", "1:0", "0:1", "x", "1:", ":1", "1:2:3", "-1:2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Last-Event-ID", id)
		pos, err := parseEventID(r)
		switch {
		case err != nil:
			if protocol.AsError(err).Code != protocol.CodeBadRequest {
				t.Fatalf("error %v", err)
			}
		case id == "":
			if pos != nil {
				t.Fatalf("empty id gave %+v", pos)
			}
		default:
			canon := fmt.Sprintf("%d:%d", pos.Epoch, pos.Seq)
			r.Header.Set("Last-Event-ID", canon)
			again, err := parseEventID(r)
			if pos.Epoch == 0 || err != nil || *again != *pos {
				t.Fatalf("%q parsed as %+v, which does not round-trip through %q", id, pos, canon)
			}
		}
	})
}

// A fresh session's writer lingers writerLinger/writerWarmup; one that
// has written writerWarmup messages or more, all of it.
func TestWriterLingerGrows(t *testing.T) {
	for _, tc := range []struct {
		written int64
		want    time.Duration
	}{
		{0, writerLinger / writerWarmup},
		{1, writerLinger / writerWarmup},
		{writerWarmup / 2, writerLinger / 2},
		{writerWarmup - 1, writerLinger * (writerWarmup - 1) / writerWarmup},
		{writerWarmup, writerLinger},
		{1 << 40, writerLinger},
	} {
		if got := writerLingerFor(tc.written); got != tc.want {
			t.Errorf("writerLingerFor(%d) = %v, want %v", tc.written, got, tc.want)
		}
	}
}
