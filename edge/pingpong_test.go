package edge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/protocol"
)

// TestPongsBetweenMessages: a subscriber that pings while messages pour in
// gets every pong and every message intact, in order, through a real
// coder/websocket client. The edge writes its messages itself
// (leanConn.WriteText) and coder/websocket writes the pongs on the same
// socket; TestLeanConnWriteTextTakesTurns checks the turn-taking itself
// with frames written in pieces, which pongs this small never are.
func TestPongsBetweenMessages(t *testing.T) {
	const total, batch = 3000, 25
	n := edgetest.Start(t)
	sub := connectWS(t, n, n.AllToken("bob"))
	sub.sub("pp", nil)
	pub := connectWS(t, n, n.AllToken("alice"))

	// Data of every header size: 7-bit, 16-bit lengths, batched or not.
	data := func(i int) string { return fmt.Sprintf(`{"i":%d,"pad":%q}`, i, strings.Repeat("x", i%7*600)) }
	read := make(chan error, 1)
	go func() {
		defer func() {
			// Go on reading, for the pongs of the last pings; this ends
			// when the test closes the connection.
			for {
				if _, err := sub.readErr(); err != nil {
					return
				}
			}
		}()
		for i := 1; i <= total; i++ {
			f, err := sub.readErr()
			switch {
			case err != nil:
				read <- fmt.Errorf("after %d messages: %w", i-1, err)
				return
			case f.Op != protocol.OpMsg || f.Seq != uint64(i) || string(f.Data) != data(i):
				read <- fmt.Errorf("message %d: got %s seq %d with %d bytes of data", i, f.Op, f.Seq, len(f.Data))
				return
			}
		}
		read <- nil
	}()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	for i := 1; i <= total; i += batch {
		frames := make([]protocol.Frame, 0, batch)
		for j := i; j < i+batch && j <= total; j++ {
			frames = append(frames, protocol.Frame{Op: protocol.OpPub, Room: "pp", Data: json.RawMessage(data(j))})
		}
		pub.send(frames...) // no ids: no acks to read
		if err := sub.conn.Ping(ctx); err != nil {
			t.Fatalf("ping after message %d: %v", i+batch-1, err)
		}
	}
	if err := <-read; err != nil {
		t.Fatal(err)
	}
}
