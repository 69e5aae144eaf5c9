package protocol

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"unicode/utf8"
)

// opMsg is the struct encoding/json must encode exactly as AppendMsg does.
type opMsg struct {
	Op string `json:"op"`
	Msg
}

func marshalMsg(t testing.TB, m *Msg) []byte {
	t.Helper()
	b, err := json.Marshal(opMsg{Op: OpMsg, Msg: *m})
	if err != nil {
		t.Fatalf("json.Marshal(%+v): %v", *m, err)
	}
	return b
}

func TestAppendMsg(t *testing.T) {
	tests := []struct {
		name string
		m    Msg
		want string // empty: only compare with encoding/json
	}{
		{"plain", Msg{Room: "chat:lobby", Epoch: 1700000000000000, Seq: 42, TS: 1700000000123, From: "alice", Key: "k-1", Data: json.RawMessage(`{"text":"hi"}`)},
			`{"op":"msg","room":"chat:lobby","epoch":1700000000000000,"seq":42,"ts":1700000000123,"from":"alice","key":"k-1","data":{"text":"hi"}}`},
		{"no key", Msg{Room: "r", Epoch: 1, Seq: 1, TS: 2, From: "u", Data: json.RawMessage(`[1,2]`)},
			`{"op":"msg","room":"r","epoch":1,"seq":1,"ts":2,"from":"u","data":[1,2]}`},
		{"nil data", Msg{Room: "r", Epoch: 1, Seq: 1}, `{"op":"msg","room":"r","epoch":1,"seq":1,"ts":0,"from":"","data":null}`},
		{"max integers", Msg{Room: "r", Epoch: ^uint64(0), Seq: ^uint64(0), TS: -1 << 63, From: "u", Data: json.RawMessage(`0`)}, ""},
		{"escapes in strings", Msg{Room: "r", From: "a\"b\\c\n\r\t\b\f\x00\x1f\x7f<>&\u2028\u2029é😀", Key: "\xff\xfe k", Data: json.RawMessage(`1`)}, ""},
		{"invalid UTF-8 from", Msg{Room: "r", From: "a\xc3", Data: json.RawMessage(`1`)}, ""},
		{"data with whitespace", Msg{Room: "r", Data: json.RawMessage(" {\n\t\"a\" : [ 1 ,\r\n 2 ] ,\"b c\": \" x \" }\n")},
			`{"op":"msg","room":"r","epoch":0,"seq":0,"ts":0,"from":"","data":{"a":[1,2],"b c":" x "}}`},
		{"data with html and separators", Msg{Room: "r", Data: json.RawMessage(`"<a href=\"x\">&amp;</a>` + "\u2028\u2029" + `"`)}, ""},
		{"data with escaped quotes", Msg{Room: "r", Data: json.RawMessage(`["\\", "\"", "\\\" <"  , {"k\"":" "}]`)}, ""},
		{"data with unicode escapes", Msg{Room: "r", Data: json.RawMessage(`"\u2028 \u003c é"`)}, ""},
		{"data with invalid UTF-8", Msg{Room: "r", Data: json.RawMessage("\"\xff \xe2\x80\"")}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := AppendMsg(nil, &tc.m)
			want := marshalMsg(t, &tc.m)
			if !bytes.Equal(got, want) {
				t.Errorf("AppendMsg differs from encoding/json:\n got %s\nwant %s", got, want)
			}
			if tc.want != "" && string(got) != tc.want {
				t.Errorf("AppendMsg:\n got %s\nwant %s", got, tc.want)
			}
			if bytes.IndexByte(got, '\n') >= 0 {
				t.Errorf("frame contains a newline: %q", got)
			}
		})
	}
	t.Run("appends", func(t *testing.T) {
		m := &Msg{Room: "r", Data: json.RawMessage(`1`)}
		b := AppendMsg([]byte("prefix\n"), m)
		if want := "prefix\n" + string(marshalMsg(t, m)); string(b) != want {
			t.Errorf("got %q, want %q", b, want)
		}
	})
}

func TestAppendMsgAllocs(t *testing.T) {
	m := &Msg{Room: "chat:lobby", Epoch: 1700000000000000, Seq: 42, TS: 1700000000123, From: "alice <a@x>",
		Key: "key-0001", Data: json.RawMessage(`{"text": "hello <world> & friends", "n": [1, 2, 3]}`)}
	buf := make([]byte, 0, 512)
	allocs := testing.AllocsPerRun(1000, func() {
		buf = AppendMsg(buf[:0], m)
	})
	if allocs != 0 {
		t.Errorf("AppendMsg into a pre-sized buffer allocates %v times per call, want 0", allocs)
	}
}

// FuzzAppendMsg checks that AppendMsg writes exactly what encoding/json
// writes for any strings, any integers and any valid JSON data, and that
// the frame decodes back to the same message.
func FuzzAppendMsg(f *testing.F) {
	f.Add("chat:lobby", uint64(1700000000000000), uint64(1), int64(1700000000123), "alice", "k1", []byte(`{"text":"hi"}`))
	f.Add("r", uint64(0), uint64(0), int64(-1), "", "", []byte(nil))
	f.Add("<r>", ^uint64(0), uint64(7), int64(0), "a\"\\\n\b\f\x00\u2028", "\xff", []byte(" [ \"<&>\" , 1e5 , null ]\n"))
	f.Add("r", uint64(2), uint64(3), int64(4), "é😀", "\x7f", []byte("\"\u2029\\\" \\\\\""))
	f.Fuzz(func(t *testing.T, room string, epoch, seq uint64, ts int64, from, key string, data []byte) {
		if len(data) == 0 {
			data = nil // AppendMsg writes null for empty data, json.Marshal fails
		} else if !json.Valid(data) {
			// AppendMsg's contract: data is valid JSON. Use it as a string instead.
			data, _ = json.Marshal(string(data))
		}
		m := &Msg{Room: room, Epoch: epoch, Seq: seq, TS: ts, From: from, Key: key, Data: data}
		got := AppendMsg(nil, m)
		want := marshalMsg(t, m)
		if !bytes.Equal(got, want) {
			t.Fatalf("AppendMsg differs from encoding/json:\n got %q\nwant %q", got, want)
		}
		if bytes.IndexByte(got, '\n') >= 0 {
			t.Fatalf("frame contains a newline: %q", got)
		}
		var back opMsg
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("frame does not decode: %v: %q", err, got)
		}
		if back.Op != OpMsg || back.Epoch != epoch || back.Seq != seq || back.TS != ts {
			t.Fatalf("decoded %+v from %q", back, got)
		}
		if utf8.ValidString(room) && back.Room != room || utf8.ValidString(from) && back.From != from ||
			utf8.ValidString(key) && back.Key != key {
			t.Fatalf("strings changed: %+v from %+v", back.Msg, *m)
		}
		if len(data) > 0 && !jsonEqual(back.Data, data) {
			t.Fatalf("data changed: %s, want %s", back.Data, data)
		}
		// The same data spread over lines must give the same frame.
		var indented bytes.Buffer
		if len(data) > 0 && json.Indent(&indented, data, "\r", " \t\n") == nil {
			m.Data = indented.Bytes()
			if got2 := AppendMsg(nil, m); !bytes.Equal(got2, want) {
				t.Fatalf("AppendMsg of indented data:\n got %q\nwant %q", got2, want)
			}
		}
	})
}

// jsonEqual reports whether a and b hold the same JSON value.
func jsonEqual(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return bytes.Equal(ja, jb)
}

// A buffer of MsgCap's capacity takes the frame without growing, for the
// widest numbers, with and without a key, as long as nothing needs an
// escape.
func TestMsgCapHoldsTheFrame(t *testing.T) {
	for _, m := range []*Msg{
		{Room: "r", Epoch: 1, Seq: 1, TS: 0, From: "a", Data: json.RawMessage(`1`)},
		{Room: "chat:lobby", Epoch: 1700000000000000, Seq: 42, TS: 1700000000123, From: "alice", Data: json.RawMessage(`{"p":3,"x":"xxxx"}`)},
		{Room: "r", Epoch: math.MaxUint64, Seq: math.MaxUint64, TS: math.MinInt64, From: "bob", Key: "k-1", Data: json.RawMessage(`[1,2,3]`)},
		{Room: "r", Epoch: math.MaxUint64, Seq: math.MaxUint64, TS: math.MaxInt64, From: "", Key: "", Data: nil},
	} {
		buf := make([]byte, 0, MsgCap(m))
		out := AppendMsg(buf, m)
		if cap(out) != cap(buf) || &out[:1][0] != &buf[:1][0] {
			t.Errorf("%+v: the frame (%d bytes) outgrew MsgCap %d", m, len(out), MsgCap(m))
		}
	}
}
