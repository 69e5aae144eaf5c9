package edge_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/arena-mesh/arena/edge"
	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/protocol"
)

// TestMalformedFrames sends every kind of bad frame: each gets a
// bad_request error (echoing the id when it was readable) and the
// connection keeps working.
func TestMalformedFrames(t *testing.T) {
	n := edgetest.Start(t)
	c := connectWS(t, n, n.AllToken("alice"))
	long := strings.Repeat("a", protocol.MaxRoomLen+1)
	tests := []struct {
		name  string
		frame string
		id    int64 // 0: no id expected on the error
	}{
		{"not JSON", `hello`, 0},
		{"truncated JSON", `{"op":"ping","id":7`, 0},
		{"JSON array", `[1,2,3]`, 0},
		{"JSON string", `"ping"`, 0},
		{"JSON number", `42`, 0},
		{"null", `null`, 0},
		{"no op", `{"id":1}`, 1},
		{"empty op", `{"op":"","id":2}`, 2},
		{"unknown op", `{"op":"explode","id":3}`, 3},
		{"op wrong type", `{"op":5,"id":4}`, 4},
		{"id wrong type", `{"op":"ping","id":"x"}`, 0},
		{"sub without room", `{"op":"sub","id":5}`, 5},
		{"room with space", `{"op":"sub","id":6,"room":"a b"}`, 6},
		{"room with unicode", `{"op":"sub","id":7,"room":"café"}`, 7},
		{"room too long", `{"op":"sub","id":8,"room":"` + long + `"}`, 8},
		{"room wrong type", `{"op":"sub","id":9,"room":5}`, 9},
		{"since without epoch", `{"op":"sub","id":10,"room":"r","since":{"seq":3}}`, 10},
		{"since wrong type", `{"op":"sub","id":11,"room":"r","since":"1:2"}`, 11},
		{"pub without data", `{"op":"pub","id":12,"room":"r"}`, 12},
		{"pub key too long", `{"op":"pub","id":13,"room":"r","data":1,"key":"` + strings.Repeat("k", 65) + `"}`, 13},
		{"pub bad room", `{"op":"pub","id":14,"room":"","data":1}`, 14},
		{"history limit too big", `{"op":"history","id":15,"room":"r","limit":1001}`, 15},
		{"history limit negative", `{"op":"history","id":16,"room":"r","limit":-1}`, 16},
		{"history before and after", `{"op":"history","id":17,"room":"r","before":5,"after":1}`, 17},
		{"history before wrong type", `{"op":"history","id":18,"room":"r","before":"5"}`, 18},
		{"recv without seq", `{"op":"recv","id":19,"room":"r"}`, 19},
		{"refresh without token", `{"op":"refresh","id":20}`, 20},
		{"unsub bad room", `{"op":"unsub","id":21,"room":"x y"}`, 21},
		{"presence bad room", `{"op":"presence","id":22,"room":""}`, 22},
		{"seq negative", `{"op":"read","id":23,"room":"r","seq":-1}`, 23},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.sendRaw([]byte(tt.frame))
			r := c.read()
			if r.Op != protocol.OpError || r.Code != protocol.CodeBadRequest || r.Message == "" {
				t.Fatalf("reply %+v, want a bad_request error", r)
			}
			switch {
			case tt.id == 0 && r.ID != nil:
				t.Errorf("error has id %d, want none", *r.ID)
			case tt.id != 0 && (r.ID == nil || *r.ID != tt.id):
				t.Errorf("error id %v, want %d", r.ID, tt.id)
			}
			c.ping()
		})
	}
}

// TestBadFrameInBatch: a bad frame in the middle of a batch does not stop
// the frames after it.
func TestBadFrameInBatch(t *testing.T) {
	n := edgetest.Start(t)
	c := connectWS(t, n, n.AllToken("alice"))
	c.sendRaw([]byte("{\"op\":\"ping\",\"id\":101}\n\n  garbage  \r\n{\"op\":\"ping\",\"id\":102}\n"))
	var got []string
	for range 3 {
		r := c.read()
		got = append(got, r.Op)
	}
	want := []string{protocol.OpPong, protocol.OpError, protocol.OpPong}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("replies %v, want %v", got, want)
		}
	}
}

func TestTooManyBadFramesCloses(t *testing.T) {
	n := edgetest.Start(t)
	c := connectWS(t, n, n.AllToken("alice"))
	c.sendRaw(bytes.Repeat([]byte("x\n"), 150))
	seen := c.expectClose(websocket.StatusPolicyViolation)
	if len(seen) < 100 {
		t.Errorf("%d error frames before the close, want > 100", len(seen))
	}
}

func TestTooLarge(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithConfig(func(c *edge.Config) { c.MaxDataBytes = 1000 }))
	c := connectWS(t, n, n.AllToken("alice"))
	big := `"` + strings.Repeat("x", 1000) + `"`
	r := c.call(protocol.Frame{Op: protocol.OpPub, Room: "r", Data: json.RawMessage(big)})
	if r.Code != protocol.CodeTooLarge {
		t.Fatalf("oversized data: %+v, want too_large", r)
	}
	c.pub("r", "", `"`+strings.Repeat("x", 998)+`"`) // exactly at the limit
	c.ping()

	// A WebSocket message over the read limit (1 MiB here) closes 1009.
	c.sendRaw(bytes.Repeat([]byte(" "), 1<<20+1))
	c.expectClose(websocket.StatusMessageTooBig)
}

// TestBatchingBothWays: a client may send several frames in one message,
// and the server batches frames that are ready together.
func TestBatchingBothWays(t *testing.T) {
	n := edgetest.Start(t)
	c := connectWS(t, n, n.AllToken("alice"))
	// 100 publishes in one WebSocket message.
	var frames []protocol.Frame
	for i := range 100 {
		id := int64(1000 + i)
		frames = append(frames, protocol.Frame{Op: protocol.OpPub, ID: &id, Room: "batch", Data: json.RawMessage(`1`)})
	}
	c.send(frames...)
	for i := range 100 {
		r := c.waitID(int64(1000 + i))
		if r.Op != protocol.OpAck || r.Seq != uint64(i+1) {
			t.Fatalf("reply %d = %+v", i, r)
		}
	}
	// A subscriber resuming from the start gets the backlog in batches.
	s := connectWS(t, n, n.AllToken("bob"))
	head := s.sub("batch", &protocol.Position{Epoch: firstEpoch(t, c), Seq: 0})
	if head.Reset {
		t.Fatalf("resume from seq 0 of the current epoch reset: %+v", head)
	}
	msgs := s.msgs(100)
	for i, m := range msgs {
		if m.Seq != uint64(i+1) {
			t.Fatalf("msg %d has seq %d", i, m.Seq)
		}
	}
	if s.maxBatch < 50 {
		t.Errorf("largest batch had %d frames; the backlog should come in few messages", s.maxBatch)
	}
}

// firstEpoch returns the epoch of room "batch" by asking for its history.
func firstEpoch(t *testing.T, c *wsClient) uint64 {
	t.Helper()
	return c.mustCall(protocol.Frame{Op: protocol.OpHistory, Room: "batch", Limit: 1}, protocol.OpHistory).Epoch
}
