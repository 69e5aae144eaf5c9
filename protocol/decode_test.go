package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func id(n int64) *int64         { return &n }
func u64(n uint64) *uint64      { return &n }
func pos(e, s uint64) *Position { return &Position{Epoch: e, Seq: s} }

// validFrames holds one well-formed frame of every client op, with the
// Frame it decodes to. The fuzz target is seeded with them too.
var validFrames = []struct {
	name string
	in   string
	want Frame
}{
	{"connect", `{"op":"connect","id":1,"token":"t.o.k","name":"arena-go/1"}`,
		Frame{Op: OpConnect, ID: id(1), Token: "t.o.k", Name: "arena-go/1"}},
	{"connect bare", `{"op":"connect"}`, Frame{Op: OpConnect}},
	{"sub", `{"op":"sub","id":2,"room":"chat:lobby"}`,
		Frame{Op: OpSub, ID: id(2), Room: "chat:lobby"}},
	{"sub since presence", `{"op":"sub","id":3,"room":"a","since":{"epoch":7,"seq":0},"presence":true}`,
		Frame{Op: OpSub, ID: id(3), Room: "a", Since: pos(7, 0), Presence: true}},
	{"unsub", `{"op":"unsub","id":4,"room":"a"}`, Frame{Op: OpUnsub, ID: id(4), Room: "a"}},
	{"pub", `{"op":"pub","id":5,"room":"chat:x","data":{"text":"hi"},"key":"k1"}`,
		Frame{Op: OpPub, ID: id(5), Room: "chat:x", Data: json.RawMessage(`{"text":"hi"}`), Key: "k1"}},
	{"pub scalar data no key", `{"op":"pub","room":"r","data":42}`,
		Frame{Op: OpPub, Room: "r", Data: json.RawMessage(`42`)}},
	{"pub null data", `{"op":"pub","room":"r","data":null}`,
		Frame{Op: OpPub, Room: "r", Data: json.RawMessage(`null`)}},
	{"pub key of 64 bytes", `{"op":"pub","room":"r","data":1,"key":"` + strings.Repeat("k", 64) + `"}`,
		Frame{Op: OpPub, Room: "r", Data: json.RawMessage(`1`), Key: strings.Repeat("k", 64)}},
	{"recv", `{"op":"recv","room":"r","seq":9}`, Frame{Op: OpRecv, Room: "r", Seq: 9}},
	{"read", `{"op":"read","id":6,"room":"r","seq":1}`, Frame{Op: OpRead, ID: id(6), Room: "r", Seq: 1}},
	{"history newest", `{"op":"history","id":7,"room":"r"}`, Frame{Op: OpHistory, ID: id(7), Room: "r"}},
	{"history before", `{"op":"history","room":"r","before":10,"limit":1000}`,
		Frame{Op: OpHistory, Room: "r", Before: u64(10), Limit: 1000}},
	{"history after zero", `{"op":"history","room":"r","after":0,"limit":1}`,
		Frame{Op: OpHistory, Room: "r", After: u64(0), Limit: 1}},
	{"presence", `{"op":"presence","id":8,"room":"r"}`, Frame{Op: OpPresence, ID: id(8), Room: "r"}},
	{"refresh", `{"op":"refresh","id":9,"token":"new"}`, Frame{Op: OpRefresh, ID: id(9), Token: "new"}},
	{"ping", `{"op":"ping","id":10}`, Frame{Op: OpPing, ID: id(10)}},
	{"rooms", `{"op":"rooms","id":12}`, Frame{Op: OpRooms, ID: id(12)}},
	{"ping negative id", `{"op":"ping","id":-3}`, Frame{Op: OpPing, ID: id(-3)}},
	{"unknown field ignored", `{"op":"ping","id":11,"extra":[1,2]}`, Frame{Op: OpPing, ID: id(11)}},
	{"room of every allowed byte", `{"op":"sub","room":"AZaz09:_-.@/"}`, Frame{Op: OpSub, Room: "AZaz09:_-.@/"}},
	{"room of 200 bytes", `{"op":"sub","room":"` + strings.Repeat("r", 200) + `"}`,
		Frame{Op: OpSub, Room: strings.Repeat("r", 200)}},
	{"whitespace around", " \t{\"op\" : \"ping\" }\r\n", Frame{Op: OpPing}},
}

func TestDecodeClientValid(t *testing.T) {
	for _, tc := range validFrames {
		t.Run(tc.name, func(t *testing.T) {
			f, err := DecodeClient([]byte(tc.in))
			if err != nil {
				t.Fatalf("DecodeClient(%s) = %v", tc.in, err)
			}
			if !reflect.DeepEqual(*f, tc.want) {
				t.Errorf("DecodeClient(%s)\n got %+v\nwant %+v", tc.in, *f, tc.want)
			}
		})
	}
}

func TestDecodeClientInvalid(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantID  *int64 // the id the error reply must echo
		message string // a part of the error message
	}{
		{"empty", ``, nil, "malformed"},
		{"not JSON", `hello`, nil, "invalid JSON"},
		{"truncated", `{"op":"ping","id":3`, nil, "malformed"},
		{"array", `[{"op":"ping"}]`, nil, "JSON object"},
		{"string", `"ping"`, nil, "JSON object"},
		{"number", `12`, nil, "JSON object"},
		{"null", `null`, nil, "no op"},
		{"empty object", `{}`, nil, "no op"},
		{"no op with id", `{"id":4,"room":"r"}`, id(4), "no op"},
		{"unknown op", `{"op":"publish","id":5}`, id(5), "unknown op"},
		{"server op", `{"op":"msg","id":6}`, id(6), "unknown op"},
		{"long unknown op", `{"op":"` + strings.Repeat("x", 1000) + `","id":7}`, id(7), "unknown op"},
		{"op wrong type", `{"op":1,"id":8}`, id(8), "op"},
		{"id wrong type", `{"op":"ping","id":"8"}`, nil, "id"},
		{"id fraction", `{"op":"ping","id":1.5}`, nil, "id"},
		{"id overflow", `{"op":"ping","id":9223372036854775808}`, nil, "id"},
		{"room wrong type", `{"op":"sub","id":9,"room":7}`, id(9), "room"},
		{"since wrong type", `{"op":"sub","id":10,"room":"r","since":5}`, id(10), "since"},
		{"since negative seq", `{"op":"sub","id":11,"room":"r","since":{"epoch":1,"seq":-1}}`, id(11), "seq"},
		{"since without epoch", `{"op":"sub","id":12,"room":"r","since":{"seq":3}}`, id(12), "epoch"},
		{"presence wrong type", `{"op":"sub","id":13,"room":"r","presence":"yes"}`, id(13), "presence"},
		{"seq negative", `{"op":"recv","id":14,"room":"r","seq":-1}`, id(14), "seq"},
		{"limit wrong type", `{"op":"history","id":15,"room":"r","limit":"all"}`, id(15), "limit"},
		{"key wrong type", `{"op":"pub","id":16,"room":"r","data":1,"key":5}`, id(16), "key"},
		{"data invalid", `{"op":"pub","id":17,"room":"r","data":{x}}`, nil, "invalid JSON"},
		{"sub no room", `{"op":"sub","id":20}`, id(20), "empty"},
		{"sub bad room byte", `{"op":"sub","id":21,"room":"chat lobby"}`, id(21), "character"},
		{"sub room too long", `{"op":"sub","id":22,"room":"` + strings.Repeat("r", 201) + `"}`, id(22), "longer"},
		{"sub room unicode", `{"op":"sub","id":23,"room":"caf\u00e9"}`, id(23), "character"},
		{"sub room NUL", `{"op":"sub","id":24,"room":"a\u0000b"}`, id(24), "character"},
		{"unsub no room", `{"op":"unsub","id":25}`, id(25), "empty"},
		{"presence bad room", `{"op":"presence","id":26,"room":"a*"}`, id(26), "character"},
		{"pub no room", `{"op":"pub","id":30,"data":1}`, id(30), "empty"},
		{"pub bad room", `{"op":"pub","id":31,"room":"#x","data":1}`, id(31), "character"},
		{"pub no data", `{"op":"pub","id":32,"room":"r"}`, id(32), "data"},
		{"pub key too long", `{"op":"pub","id":33,"room":"r","data":1,"key":"` + strings.Repeat("k", 65) + `"}`, id(33), "key"},
		{"pub key of multibyte runes too long", `{"op":"pub","id":34,"room":"r","data":1,"key":"` + strings.Repeat("é", 33) + `"}`, id(34), "key"},
		{"recv no seq", `{"op":"recv","id":40,"room":"r"}`, id(40), "seq"},
		{"read seq zero", `{"op":"read","id":41,"room":"r","seq":0}`, id(41), "seq"},
		{"read no room", `{"op":"read","id":42,"seq":3}`, id(42), "empty"},
		{"history bad room", `{"op":"history","id":50,"room":""}`, id(50), "empty"},
		{"history before and after", `{"op":"history","id":51,"room":"r","before":5,"after":1}`, id(51), "not both"},
		{"history limit too big", `{"op":"history","id":52,"room":"r","limit":1001}`, id(52), "limit"},
		{"history limit negative", `{"op":"history","id":53,"room":"r","limit":-1}`, id(53), "limit"},
		{"refresh no token", `{"op":"refresh","id":60}`, id(60), "token"},
		{"refresh empty token", `{"op":"refresh","id":61,"token":""}`, id(61), "token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := DecodeClient([]byte(tc.in))
			if err == nil {
				t.Fatalf("DecodeClient(%s) = %+v, want an error", tc.in, *f)
			}
			if f == nil {
				t.Fatalf("DecodeClient(%s) returned a nil frame with its error", tc.in)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not a *protocol.Error", err, err)
			}
			if e.Code != CodeBadRequest {
				t.Errorf("code = %q, want %q", e.Code, CodeBadRequest)
			}
			if !strings.Contains(e.Message, tc.message) {
				t.Errorf("message %q does not mention %q", e.Message, tc.message)
			}
			if len(e.Message) > 120 {
				t.Errorf("message is %d bytes long; it must not echo the input: %q", len(e.Message), e.Message)
			}
			if !reflect.DeepEqual(f.ID, tc.wantID) {
				t.Errorf("echoed id = %v, want %v", deref(f.ID), deref(tc.wantID))
			}
			// The error reply must carry the same id and code.
			reply := ErrorFrame(f.ID, err)
			if reply.Op != OpError || reply.Code != CodeBadRequest || !reflect.DeepEqual(reply.ID, tc.wantID) {
				t.Errorf("ErrorFrame = %+v", reply)
			}
		})
	}
}

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestLines(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"one frame", `{"op":"ping"}`, []string{`{"op":"ping"}`}},
		{"trailing newline", "{\"a\":1}\n", []string{`{"a":1}`}},
		{"batch", "{\"a\":1}\n{\"b\":2}\n{\"c\":3}", []string{`{"a":1}`, `{"b":2}`, `{"c":3}`}},
		{"crlf and blanks", "\r\n{\"a\":1}\r\n\n  \n\t{\"b\":2} \r\n", []string{`{"a":1}`, `{"b":2}`}},
		{"only separators", "\n\n \r\n\t", nil},
		{"inner spaces kept", `{"a": "x y"}`, []string{`{"a": "x y"}`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for line := range Lines([]byte(tc.in)) {
				got = append(got, string(line))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Lines(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	t.Run("stops early", func(t *testing.T) {
		n := 0
		for range Lines([]byte("a\nb\nc")) {
			n++
			break
		}
		if n != 1 {
			t.Errorf("yielded %d lines after break, want 1", n)
		}
	})
	t.Run("aliases input", func(t *testing.T) {
		msg := []byte("ab\ncd")
		for line := range Lines(msg) {
			line[0] = 'X'
		}
		if string(msg) != "Xb\nXd" {
			t.Errorf("lines do not alias the message: %q", msg)
		}
	})
}

// TestDecodeBatch decodes a batched message of every valid frame, as a
// server reads one WebSocket message.
func TestDecodeBatch(t *testing.T) {
	var msg []byte
	for _, tc := range validFrames {
		msg = append(msg, strings.TrimSpace(tc.in)...)
		msg = append(msg, '\n')
	}
	i := 0
	for line := range Lines(msg) {
		f, err := DecodeClient(line)
		if err != nil {
			t.Fatalf("frame %d (%s): %v", i, validFrames[i].name, err)
		}
		if !reflect.DeepEqual(*f, validFrames[i].want) {
			t.Errorf("frame %d (%s) = %+v, want %+v", i, validFrames[i].name, *f, validFrames[i].want)
		}
		i++
	}
	if i != len(validFrames) {
		t.Errorf("decoded %d frames, want %d", i, len(validFrames))
	}
}

func TestCheckKey(t *testing.T) {
	tests := []struct {
		name string
		key  string
		ok   bool
	}{
		{"none", "", true},
		{"one byte", "k", true},
		{"64 bytes", strings.Repeat("k", 64), true},
		{"65 bytes", strings.Repeat("k", 65), false},
		{"invalid UTF-8", "k\xff", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckKey(tc.key)
			if (err == nil) != tc.ok {
				t.Fatalf("CheckKey(%q) = %v, want ok=%v", tc.key, err, tc.ok)
			}
			if err != nil && AsError(err).Code != CodeBadRequest {
				t.Errorf("code = %q", AsError(err).Code)
			}
		})
	}
}

func TestDataTooLarge(t *testing.T) {
	if err := DataTooLarge(make([]byte, DefaultMaxData), DefaultMaxData); err != nil {
		t.Errorf("data at the limit: %v", err)
	}
	err := DataTooLarge(make([]byte, DefaultMaxData+1), DefaultMaxData)
	if e := AsError(err); err == nil || e.Code != CodeTooLarge {
		t.Errorf("data over the limit: %v", err)
	}
}

func TestErrors(t *testing.T) {
	t.Run("AsError keeps codes", func(t *testing.T) {
		in := &Error{Code: CodeRateLimited, Message: "slow down", RetryMS: 250}
		wrapped := errors.Join(errors.New("context"), in)
		if got := AsError(wrapped); got != in {
			t.Errorf("AsError(wrapped) = %v, want %v", got, in)
		}
		reply := ErrorFrame(id(3), wrapped)
		want := ErrorReply{Op: OpError, ID: id(3), Code: CodeRateLimited, Message: "slow down", RetryMS: 250}
		if !reflect.DeepEqual(reply, want) {
			t.Errorf("ErrorFrame = %+v, want %+v", reply, want)
		}
	})
	t.Run("AsError hides internal errors", func(t *testing.T) {
		got := AsError(errors.New("pebble: disk on fire at /var/lib/x"))
		if got.Code != CodeInternal || strings.Contains(got.Message, "pebble") {
			t.Errorf("AsError = %+v", got)
		}
	})
	t.Run("HTTP statuses", func(t *testing.T) {
		want := map[Code]int{
			CodeBadRequest: 400, CodeUnauthorized: 401, CodeForbidden: 403, CodeNotSubscribed: 409,
			CodeRateLimited: 429, CodeTooLarge: 413, CodeUnavailable: 503, CodeNotFound: 404,
			CodeInternal: 500, Code("other"): 500,
		}
		for c, s := range want {
			if got := c.HTTPStatus(); got != s {
				t.Errorf("%s.HTTPStatus() = %d, want %d", c, got, s)
			}
		}
	})
	t.Run("error reply JSON", func(t *testing.T) {
		b, err := Encode(ErrorFrame(nil, Errorf(CodeForbidden, "no pub on %q", "r")))
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"op":"error","code":"forbidden","message":"no pub on \"r\""}`; string(b) != want {
			t.Errorf("got %s, want %s", b, want)
		}
	})
}

// TestRepliesKeepRequiredFields checks that required reply fields are on
// the wire even at their zero value, as PROTOCOL.md promises.
func TestRepliesKeepRequiredFields(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"connected", Connected{Op: OpConnected}, `{"op":"connected","session":"","user":"","node":"","region":"","expires":0}`},
		{"subscribed", Subscribed{Op: OpSubscribed, ID: id(1), Room: "r"}, `{"op":"subscribed","id":1,"room":"r","head":{"epoch":0,"seq":0}}`},
		{"subscribed reset", Subscribed{Op: OpSubscribed, Room: "r", Head: Position{2, 9}, Reset: true, Oldest: pos(2, 5)},
			`{"op":"subscribed","room":"r","head":{"epoch":2,"seq":9},"reset":true,"oldest":{"epoch":2,"seq":5}}`},
		{"ack", Ack{Op: OpAck, ID: id(0), Room: "r", Epoch: 1, Seq: 1, TS: 5}, `{"op":"ack","id":0,"room":"r","epoch":1,"seq":1,"ts":5}`},
		{"ack dup", Ack{Op: OpAck, Room: "r", Epoch: 1, Seq: 1, TS: 5, Dup: true}, `{"op":"ack","room":"r","epoch":1,"seq":1,"ts":5,"dup":true}`},
		{"history", History{Op: OpHistory, Room: "r", Epoch: 3, Msgs: []Msg{}}, `{"op":"history","room":"r","epoch":3,"msgs":[]}`},
		{"presence", PresenceReply{Op: OpPresence, Room: "r", Members: []Member{{User: "u", Conns: 2}}},
			`{"op":"presence","room":"r","members":[{"user":"u","conns":2}]}`},
		{"pong", Pong{Op: OpPong, ID: id(4)}, `{"op":"pong","id":4}`},
		{"reconnect", Reconnect{Op: OpReconnect, Reason: "drain", Edges: []string{"ws://a"}},
			`{"op":"reconnect","reason":"drain","edges":["ws://a"]}`},
		{"receipt", Receipt{Op: OpReceipt, Room: "r", Seq: 2, User: "u", Status: "read"},
			`{"op":"receipt","room":"r","seq":2,"user":"u","status":"read"}`},
		{"rooms", RoomsReply{Op: OpRooms, ID: id(5), Rooms: []UserRoom{{Room: "r", Head: Position{1, 9}, Read: Position{1, 4}, Unread: 5}}},
			`{"op":"rooms","id":5,"rooms":[{"room":"r","head":{"epoch":1,"seq":9},"read":{"epoch":1,"seq":4},"unread":5}]}`},
		{"rooms empty", RoomsReply{Op: OpRooms, Rooms: []UserRoom{}}, `{"op":"rooms","rooms":[]}`},
		{"join", PresenceChange{Op: OpJoin, Room: "r", User: "u"}, `{"op":"join","room":"r","user":"u"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Encode(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("got  %s\nwant %s", b, tc.want)
			}
		})
	}
}

// TestTrimFrame: trimFrame is bytes.Trim with the cut set " \t\r".
func TestTrimFrame(t *testing.T) {
	for _, in := range []string{"", " ", "\t\r ", "{}", " {} ", "\r\n{}\n\r", "\t{ }\t", "x\r", "\ry", " \u00a0 ", "\v{}\f"} {
		if got, want := string(trimFrame([]byte(in))), string(bytes.Trim([]byte(in), " \t\r")); got != want {
			t.Errorf("trimFrame(%q) = %q, want %q", in, got, want)
		}
	}
}
