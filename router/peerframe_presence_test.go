package router

import (
	"errors"
	"reflect"
	"testing"
)

func presenceFrameSeeds() []*presenceFrame {
	return []*presenceFrame{
		{Type: peerPresenceReport, Room: "chat:1", Counts: []userCount{{"ann", 2}, {"bob", 0}}},
		{Type: peerPresenceReport, Room: "chat:1", Full: true},
		{Type: peerPresenceEvents, Room: "r", Events: []Event{
			{Kind: EventJoin, Room: "r", User: "ann"},
			{Kind: EventLeave, Room: "r", User: "bob"},
			{Kind: EventRead, Room: "r", User: "cy", Seq: 9, To: []string{"ann", "bob"}},
			{Kind: EventDelivered, Room: "r", User: "cy", Seq: 10, To: []string{"ann"}},
		}},
		{Type: peerReceipt, Room: "a", User: "ann", Seq: 5, Read: true},
		{Type: peerReceipt, Room: "a", User: "ann", Seq: 1},
		{Type: peerMembersQuery, Room: "a", Req: 7},
		{Type: peerMembersReply, Room: "a", Req: 7, Code: codeNotHome},
		{Type: peerMembersReply, Room: "a", Req: 8, Counts: []userCount{{"ann", 1}}},
		{Type: peerUserRoomsQuery, Room: "ann", Req: 9},
		{Type: peerUserRoomsReply, Room: "ann", Req: 9, States: []userRoomState{{"a", 7, 3, 2}, {"b", 1, 0, 0}}},
	}
}

func TestPresenceFrameRoundTrip(t *testing.T) {
	for _, f := range presenceFrameSeeds() {
		b := encodePresenceFrame(f)
		var got presenceFrame
		if err := decodePresenceFrame(b, &got); err != nil {
			t.Fatalf("decode %x (%+v): %v", b, f, err)
		}
		if !reflect.DeepEqual(&got, f) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, *f)
		}
	}
	// The documented example.
	b := appendReceiptFrame(nil, ReceiptRequest{Room: "a", User: "ann", Seq: 5, Read: true})
	if want := []byte{0x22, 1, 'a', 0, 3, 'a', 'n', 'n', 5, 1}; !reflect.DeepEqual(b, want) {
		t.Fatalf("receipt frame = % x, want % x", b, want)
	}
}

func TestPresenceFrameRejects(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"no room", []byte{peerReceipt, 0, 0}},
		{"epoch set", []byte{peerMembersQuery, 1, 'a', 1, 5}},
		{"bad flag", []byte{peerPresenceReport, 1, 'a', 0, 2, 0}},
		{"receipt seq 0", []byte{peerReceipt, 1, 'a', 0, 1, 'u', 0, 0}},
		{"event kind 0", []byte{peerPresenceEvents, 1, 'a', 0, 1, 0, 1, 'u', 0, 0}},
		{"too many entries", []byte{peerPresenceReport, 1, 'a', 0, 0, 0xff, 0xff, 0x03}},
		{"trailing", append(appendQuery(nil, peerMembersQuery, "a", 1), 0)},
		{"truncated", appendQuery(nil, peerMembersQuery, "a", 300)[:5]},
		{"unknown type", []byte{0x2f, 1, 'a', 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f presenceFrame
			if err := decodePresenceFrame(tt.b, &f); !errors.Is(err, ErrBadPeerFrame) {
				t.Fatalf("decode % x = %v, want ErrBadPeerFrame", tt.b, err)
			}
		})
	}
}

func TestEventFramesSplit(t *testing.T) {
	evs := make([]Event, maxPresenceEntries+10)
	for i := range evs {
		evs[i] = Event{Kind: EventJoin, Room: "r", User: "u"}
	}
	frames := eventFrames("r", evs)
	if len(frames) != 2 {
		t.Fatalf("%d frames, want 2", len(frames))
	}
	n := 0
	for _, b := range frames {
		var f presenceFrame
		if err := decodePresenceFrame(b, &f); err != nil {
			t.Fatal(err)
		}
		n += len(f.Events)
	}
	if n != len(evs) {
		t.Fatalf("%d events after the split, want %d", n, len(evs))
	}
}

func FuzzPresenceFrame(f *testing.F) {
	for _, s := range presenceFrameSeeds() {
		f.Add(encodePresenceFrame(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var f1 presenceFrame
		if err := decodePresenceFrame(b, &f1); err != nil {
			if !errors.Is(err, ErrBadPeerFrame) {
				t.Fatalf("error %v does not wrap ErrBadPeerFrame", err)
			}
			return
		}
		enc := encodePresenceFrame(&f1)
		var f2 presenceFrame
		if err := decodePresenceFrame(enc, &f2); err != nil {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		if !reflect.DeepEqual(f1, f2) {
			t.Fatalf("round trip changed the frame:\n%+v\n%+v", f1, f2)
		}
	})
}
