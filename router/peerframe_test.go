package router

import (
	"errors"
	"reflect"
	"testing"
)

// peerFrameSeeds are valid encodings of every frame type.
func peerFrameSeeds() map[string][]byte {
	m := &Message{Room: "chat:1", Epoch: 1700000000000000, Seq: 42, TS: 1700000000123, From: "ann", Key: "k1", Data: []byte(`{"t":"hi"}`)}
	m2 := &Message{Room: "chat:1", Epoch: m.Epoch, Seq: 43, TS: -5, Data: []byte(`1`)}
	fr, _ := appendFetchReply(nil, "chat:1", m.Epoch, 9, codeOK, 43, 1, []*Message{m, m2}, maxFetchReplyBytes)
	return map[string][]byte{
		"publish":           appendPublish(nil, "chat:1", 0, 7, "ann", "k1", []byte(`"x"`)),
		"reply":             appendReply(nil, "chat:1", m.Epoch, 7, codeOK, flagDup, 42, 0, m.TS),
		"reply-error":       appendReply(nil, "r", 0, 8, codeNotHome, 0, 0, 0, 0),
		"interest":          appendInterest(nil, peerInterest, "chat:1", 0, 11),
		"drop":              appendInterest(nil, peerDrop, "a", 7, 5),
		"msg":               appendMsg(nil, m),
		"fetch":             appendFetch(nil, "chat:1", m.Epoch, 9, fetchBefore, 40, 50),
		"fetch-reply":       fr,
		"fetch-failed":      fetchFailure("chat:1", m.Epoch, 9, codeEpoch, 43),
		"handoff":           appendHandoff(nil, "chat:1", m.Epoch, 12, 43, 1, 1700000600123, []*Message{m, m2}, []keyUse{{key: "k1", seq: 42, ts: m.TS}}),
		"handoff-bare":      appendHandoff(nil, "chat:1", m.Epoch, 13, 0, 0, 0, nil, nil),
		"leaving":           appendInterest(nil, peerLeaving, "n1", 0, 14),
		"handed-over":       appendInterest(nil, peerHandedOver, "n1", 0, 15),
		"reply-retry":       appendReply(nil, "r", 0, 8, codeRetry, 0, 0, 0, 0),
		"ended":             appendInterest(nil, peerEnded, "chat:1", m.Epoch, 16),
		"handoff-keys":      appendHandoffKeys(nil, "chat:1", m.Epoch, 17, []keyUse{{key: "k0", seq: 40, ts: m.TS - 9}, {key: "k\x00", seq: 41, ts: -1}}),
		"handoff-keys-none": appendHandoffKeys(nil, "chat:1", m.Epoch, 18, nil),
	}
}

func TestPeerFrameDocExample(t *testing.T) {
	got := appendInterest(nil, peerDrop, "a", 7, 5)
	want := []byte{0x04, 0x01, 0x61, 0x07, 0x05}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("drop frame = % x, want % x", got, want)
	}
}

func TestPeerFrameRoundTrip(t *testing.T) {
	for name, b := range peerFrameSeeds() {
		t.Run(name, func(t *testing.T) {
			var f peerFrame
			if err := decodePeerFrame(b, &f); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got := encodePeerFrame(&f); !reflect.DeepEqual(got, b) {
				t.Fatalf("re-encoded % x, want % x", got, b)
			}
		})
	}
	var f peerFrame
	_ = decodePeerFrame(peerFrameSeeds()["msg"], &f)
	if f.Msg.Seq != 42 || string(f.Msg.From) != "ann" || string(f.Msg.Data) != `{"t":"hi"}` || f.Epoch != 1700000000000000 {
		t.Fatalf("msg decoded as %+v", f)
	}
}

func TestPeerFrameRejects(t *testing.T) {
	seeds := peerFrameSeeds()
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, errPeerTruncated},
		{"unknown type", []byte{0x1f, 0x01, 'a', 0x00}, errPeerType},
		{"handoff count beyond frame", []byte{peerHandoff, 0x01, 'a', 0x00, 0x01, 0x00, 0x00, 0x00, 0x05}, errPeerField},
		{"handoffKeys count beyond frame", []byte{peerHandoffKeys, 0x01, 'a', 0x07, 0x01, 0x03, 0x01}, errPeerField},
		{"handoffKeys key too long", appendHandoffKeys(nil, "a", 7, 1, []keyUse{{key: string(make([]byte, maxPeerKey+1)), seq: 1}}), errPeerField},
		{"handoffKeys truncated", seeds["handoff-keys"][:len(seeds["handoff-keys"])-1], errPeerTruncated},
		{"empty room", []byte{peerDrop, 0x00, 0x00, 0x01}, errPeerField},
		{"room too long", append([]byte{peerDrop, 0xff, 0xff, 0x03}, make([]byte, 10)...), errPeerField},
		{"truncated msg", seeds["msg"][:len(seeds["msg"])-1], errPeerTruncated},
		{"trailing", append(append([]byte(nil), seeds["drop"]...), 0), errPeerTrailing},
		{"bad code", appendReply(nil, "r", 0, 1, 9, 0, 0, 0, 0), errPeerField},
		{"bad flags", appendReply(nil, "r", 0, 1, codeOK, 2, 0, 0, 0), errPeerField},
		{"bad mode", appendFetch(nil, "r", 0, 1, 3, 0, 1), errPeerField},
		{"limit too big", appendFetch(nil, "r", 0, 1, fetchAfter, 0, maxFetchMsgs+1), errPeerField},
		{"overlong varint", []byte{peerDrop, 0x01, 'a', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, errPeerTruncated},
		{"count beyond frame", []byte{peerFetchReply, 0x01, 'a', 0x00, 0x01, 0x00, 0x00, 0x00, 0x05}, errPeerField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f peerFrame
			err := decodePeerFrame(tt.b, &f)
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrBadPeerFrame) {
				t.Fatalf("decode(% x) = %v, want %v", tt.b, err, tt.want)
			}
		})
	}
}

// encodePeerFrame re-encodes a decoded frame (tests and fuzzing only).
func encodePeerFrame(f *peerFrame) []byte {
	room := string(f.Room)
	switch f.Type {
	case peerPublish:
		return appendPublish(nil, room, f.Epoch, f.Req, string(f.Msg.From), string(f.Msg.Key), f.Msg.Data)
	case peerReply:
		return appendReply(nil, room, f.Epoch, f.Req, f.Code, f.Flags, f.Seq, f.Aux, f.TS)
	case peerInterest, peerDrop, peerLeaving, peerHandedOver, peerEnded:
		return appendInterest(nil, f.Type, room, f.Epoch, f.Req)
	case peerHandoff:
		msgs := make([]*Message, len(f.Msgs))
		for i, e := range f.Msgs {
			msgs[i] = entryMessage(room, f.Epoch, e)
		}
		keys := make([]keyUse, len(f.Keys))
		for i, k := range f.Keys {
			keys[i] = keyUse{key: string(k.Key), seq: k.Seq, ts: k.TS}
		}
		return appendHandoff(nil, room, f.Epoch, f.Req, f.Head, f.First, f.Until, msgs, keys)
	case peerHandoffKeys:
		keys := make([]keyUse, len(f.Keys))
		for i, k := range f.Keys {
			keys[i] = keyUse{key: string(k.Key), seq: k.Seq, ts: k.TS}
		}
		return appendHandoffKeys(nil, room, f.Epoch, f.Req, keys)
	case peerMsg:
		return appendMsg(nil, entryMessage(room, f.Epoch, f.Msg))
	case peerFetch:
		return appendFetch(nil, room, f.Epoch, f.Req, f.Mode, f.Seq, f.Limit)
	case peerFetchReply:
		msgs := make([]*Message, len(f.Msgs))
		for i, e := range f.Msgs {
			msgs[i] = entryMessage(room, f.Epoch, e)
		}
		b, _ := appendFetchReply(nil, room, f.Epoch, f.Req, f.Code, f.Head, f.First, msgs, 1<<30)
		return b
	}
	return nil
}

func entryMessage(room string, epoch uint64, e peerMsgEntry) *Message {
	return &Message{Room: room, Epoch: epoch, Seq: e.Seq, TS: e.TS, From: string(e.From), Key: string(e.Key), Data: e.Data}
}

// FuzzPeerFrame: the decoder never panics; whatever it accepts re-encodes
// to a frame that decodes to the same value.
func FuzzPeerFrame(f *testing.F) {
	for _, b := range peerFrameSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var f1 peerFrame
		if err := decodePeerFrame(b, &f1); err != nil {
			if !errors.Is(err, ErrBadPeerFrame) {
				t.Fatalf("error %v does not wrap ErrBadPeerFrame", err)
			}
			return
		}
		enc := encodePeerFrame(&f1)
		var f2 peerFrame
		if err := decodePeerFrame(enc, &f2); err != nil {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		if !reflect.DeepEqual(normalize(f1), normalize(f2)) {
			t.Fatalf("round trip changed the frame:\n%+v\n%+v", f1, f2)
		}
	})
}

// normalize makes decoded frames comparable (nil vs empty slices).
func normalize(f peerFrame) peerFrame {
	fix := func(b []byte) []byte {
		if len(b) == 0 {
			return nil
		}
		return b
	}
	f.Room = fix(f.Room)
	f.Msg.From, f.Msg.Key, f.Msg.Data = fix(f.Msg.From), fix(f.Msg.Key), fix(f.Msg.Data)
	if len(f.Msgs) == 0 {
		f.Msgs = nil
	}
	for i := range f.Msgs {
		e := &f.Msgs[i]
		e.From, e.Key, e.Data = fix(e.From), fix(e.Key), fix(e.Data)
	}
	if len(f.Keys) == 0 {
		f.Keys = nil
	}
	for i := range f.Keys {
		f.Keys[i].Key = fix(f.Keys[i].Key)
	}
	return f
}

func BenchmarkAppendMsg(b *testing.B) {
	m := &Message{Room: "chat:lobby", Epoch: 1700000000000000, Seq: 12345, TS: 1700000000123, From: "user-1", Key: "k-123", Data: make([]byte, 200)}
	buf := make([]byte, 0, msgFrameSize(m))
	b.ReportAllocs()
	for b.Loop() {
		buf = appendMsg(buf[:0], m)
	}
}
