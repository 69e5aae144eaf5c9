package edge_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/arena-mesh/arena/edge"
	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/protocol"
	"github.com/arena-mesh/arena/router"
)

// TestIdleWriterRetires: an idle session's writer goroutine exits, and
// work that comes later (a message, an ack) starts a new one.
func TestIdleWriterRetires(t *testing.T) {
	n := edgetest.Start(t)
	sub := connectWS(t, n, n.AllToken("alice"))
	sub.sub("idle", nil)
	pub := connectWS(t, n, n.AllToken("bob"))
	idle := func() bool { return edge.WritersRunning(n.Server()) == 0 }
	waitFor(t, "writers to retire", idle)

	for i := range 2 {
		if ack := pub.pub("idle", "", fmt.Sprintf(`{"n":%d}`, i)); ack.Seq != uint64(i+1) {
			t.Fatalf("ack %d: seq %d", i, ack.Seq)
		}
		if m := sub.msgs(1)[0]; m.Seq != uint64(i+1) || string(m.Data) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("msg %d: %+v", i, m)
		}
		waitFor(t, "writers to retire again", idle)
	}
}

// TestFramesRightBehindUpgrade: frames a client sends in the same packet
// as the upgrade request (read by net/http along with the request) are
// handled. Uses a raw TCP client to be sure they travel together.
func TestFramesRightBehindUpgrade(t *testing.T) {
	n := edgetest.Start(t)
	host := strings.TrimPrefix(n.URL, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	var out bytes.Buffer
	fmt.Fprintf(&out, "GET /v1/ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Protocol: %s\r\n\r\n", host, protocol.Subprotocol)
	one, two := int64(1), int64(2)
	for _, f := range []protocol.Frame{
		{Op: protocol.OpConnect, ID: &one, Token: n.AllToken("alice")},
		{Op: protocol.OpSub, ID: &two, Room: "behind"},
	} {
		b, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(maskedFrame(b))
	}
	if _, err := conn.Write(out.Bytes()); err != nil {
		t.Fatal(err)
	}

	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	want := []string{protocol.OpConnected, protocol.OpSubscribed}
	for len(want) > 0 {
		for _, f := range readServerFrames(t, br) {
			if f.Op != want[0] {
				t.Fatalf("got %s (%s), want %s", f.Op, f.Message, want[0])
			}
			want = want[1:]
		}
	}
	if _, err := n.Router().Publish(context.Background(), router.PublishRequest{Room: "behind", From: "x", Data: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	if fs := readServerFrames(t, br); len(fs) != 1 || fs[0].Op != protocol.OpMsg || fs[0].Seq != 1 {
		t.Fatalf("got %+v, want msg 1", fs)
	}
}

// maskedFrame is a client text frame of payload (length < 65536).
func maskedFrame(payload []byte) []byte {
	b := []byte{0x81}
	if len(payload) > 125 {
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	} else {
		b = append(b, 0x80|byte(len(payload)))
	}
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

// readServerFrames reads one unmasked text frame and decodes its frames.
func readServerFrames(t *testing.T, br *bufio.Reader) []protocol.Frame {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatal(err)
	}
	if h[0] != 0x81 {
		t.Fatalf("frame header %x, want a final text frame", h)
	}
	size := uint64(h[1] & 0x7f)
	switch size {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			t.Fatal(err)
		}
		size = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			t.Fatal(err)
		}
		size = binary.BigEndian.Uint64(l[:])
	}
	payload := make([]byte, size)
	if _, err := io.ReadFull(br, payload); err != nil {
		t.Fatal(err)
	}
	var out []protocol.Frame
	for line := range protocol.Lines(payload) {
		var f protocol.Frame
		if err := json.Unmarshal(line, &f); err != nil {
			t.Fatalf("bad frame %q: %v", line, err)
		}
		out = append(out, f)
	}
	return out
}
