package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodeClient feeds DecodeClient arbitrary bytes. It must never panic,
// must reject bad input with a bad_request *Error (still returning a
// frame for the id echo), and a frame it accepts must survive a round
// trip: encoding it and decoding the result gives the same frame.
func FuzzDecodeClient(f *testing.F) {
	for _, tc := range validFrames {
		f.Add([]byte(tc.in))
	}
	f.Add([]byte(`{"op":"pub","room":"r","data":{"a" : [1, "<>"]},"key":"é"}`))
	f.Add([]byte(`{"op":"sub","id":1,"room":"r","since":{"epoch":1,"seq":2},"msgs":[{}]}`))
	f.Add([]byte(`[1]`))
	f.Add([]byte(`{"op":"rooms","id":1,"rooms":[{"room":"r","head":{"epoch":1,"seq":2},"read":{"epoch":1,"seq":1},"unread":1}]}`))
	f.Add([]byte(`{"op":"rooms","rooms":[],"members":[],"edges":[]}`))
	f.Add([]byte(`{"op":"read","room":"r","seq":0}`))
	f.Add([]byte(`{"op":"history","room":"r","before":1,"after":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		f1, err := DecodeClient(b)
		if f1 == nil {
			t.Fatalf("DecodeClient(%q) returned a nil frame", b)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeBadRequest {
				t.Fatalf("DecodeClient(%q) error %v is not a bad_request *Error", b, err)
			}
			return
		}
		enc1, err := Encode(f1)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", *f1, err)
		}
		if bytes.IndexByte(enc1, '\n') >= 0 {
			t.Fatalf("encoded frame has a newline: %q", enc1)
		}
		f2, err := DecodeClient(enc1)
		if err != nil {
			t.Fatalf("re-encoded frame %q of %q does not decode: %v", enc1, b, err)
		}
		// encoding/json compacts data (and escapes <, >, &), so compare data
		// as JSON values and the rest field by field.
		if !jsonEqual(f1.Data, f2.Data) && !(f1.Data == nil && f2.Data == nil) {
			t.Fatalf("data changed in the round trip: %s -> %s", f1.Data, f2.Data)
		}
		c1, c2 := *f1, *f2
		c1.Data, c2.Data = nil, nil
		c1.Msgs, c2.Msgs = nil, nil // server-only field; its nil data becomes "null"
		for _, c := range []*Frame{&c1, &c2} {
			// omitempty drops an empty list, which then decodes as nil.
			if len(c.Members) == 0 {
				c.Members = nil
			}
			if len(c.Rooms) == 0 {
				c.Rooms = nil
			}
			if len(c.Edges) == 0 {
				c.Edges = nil
			}
		}
		if !reflect.DeepEqual(c1, c2) {
			t.Fatalf("round trip of %q changed the frame:\n got %+v\nwant %+v", b, c2, c1)
		}
		// A second encoding is a fixed point.
		enc2, err := Encode(f2)
		if err != nil || !bytes.Equal(enc1, enc2) {
			t.Fatalf("second encoding differs (%v):\n%s\n%s", err, enc1, enc2)
		}
	})
}

// TestMsgRoundTrip checks that a msg frame written by AppendMsg decodes,
// as a client reads it, into a Frame with the same message.
func TestMsgRoundTrip(t *testing.T) {
	m := Msg{Room: "chat:x", Epoch: 9, Seq: 3, TS: 123, From: "bob", Key: "k", Data: json.RawMessage(`{"x":"<y>"}`)}
	var fr Frame
	if err := json.Unmarshal(AppendMsg(nil, &m), &fr); err != nil {
		t.Fatal(err)
	}
	got := Msg{Room: fr.Room, Epoch: fr.Epoch, Seq: fr.Seq, TS: fr.TS, From: fr.From, Key: fr.Key, Data: fr.Data}
	if fr.Op != OpMsg || got.Position() != m.Position() || !jsonEqual(got.Data, m.Data) || got.From != m.From || got.Key != m.Key || got.Room != m.Room {
		t.Errorf("decoded %+v, want %+v", got, m)
	}
}
