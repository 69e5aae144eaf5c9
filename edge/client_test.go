package edge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/internal/testwait"
	"github.com/arena-mesh/arena/protocol"
)

// readTimeout bounds one wait for a frame, so a broken test fails instead
// of hanging; it is not a timing assertion.
const readTimeout = 20 * time.Second

// wsClient is a raw protocol client for tests: it sends frames as given
// and reads server frames one by one, splitting batched messages.
type wsClient struct {
	t       testing.TB
	conn    *websocket.Conn
	backlog []protocol.Frame // frames read but not yet consumed
	nextID  int64
	// messages counts WebSocket messages read, frames the frames in them.
	messages, frames int
	maxBatch         int // most frames seen in one message
}

// dialWS opens a WebSocket to n, with the token in the Authorization
// header when token is not empty. It does not send connect.
func dialWS(t testing.TB, n *edgetest.Node, token string) *wsClient {
	t.Helper()
	c, err := tryDial(t, n.WSURL, token, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", n.WSURL, err)
	}
	return c
}

func tryDial(t testing.TB, url, token string, header http.Header) (*wsClient, error) {
	t.Helper()
	if header == nil {
		header = http.Header{}
	}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPHeader:   header,
		Subprotocols: []string{protocol.Subprotocol},
	})
	if err != nil {
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		return nil, err
	}
	conn.SetReadLimit(-1)
	c := &wsClient{t: t, conn: conn}
	t.Cleanup(func() { _ = conn.CloseNow() })
	return c, nil
}

// connectWS dials n with token in the header and completes connect.
func connectWS(t testing.TB, n *edgetest.Node, token string) *wsClient {
	t.Helper()
	c := dialWS(t, n, token)
	c.mustCall(protocol.Frame{Op: protocol.OpConnect, Name: "edge-test"}, protocol.OpConnected)
	return c
}

// sendRaw sends b as one WebSocket message.
func (c *wsClient) sendRaw(b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// send sends frames batched in one WebSocket message.
func (c *wsClient) send(frames ...protocol.Frame) {
	c.t.Helper()
	var buf bytes.Buffer
	for i, f := range frames {
		if i > 0 {
			buf.WriteByte('\n')
		}
		b, err := json.Marshal(f)
		if err != nil {
			c.t.Fatal(err)
		}
		buf.Write(b)
	}
	c.sendRaw(buf.Bytes())
}

// id returns a fresh frame id.
func (c *wsClient) id() *int64 {
	c.nextID++
	id := c.nextID
	return &id
}

// readErr returns the next frame, or the read error.
func (c *wsClient) readErr() (protocol.Frame, error) {
	if len(c.backlog) > 0 {
		f := c.backlog[0]
		c.backlog = c.backlog[1:]
		return f, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	for {
		_, msg, err := c.conn.Read(ctx)
		if err != nil {
			return protocol.Frame{}, err
		}
		c.messages++
		n := 0
		for line := range protocol.Lines(msg) {
			var f protocol.Frame
			if err := json.Unmarshal(line, &f); err != nil {
				return protocol.Frame{}, fmt.Errorf("server sent a bad frame %q: %w", line, err)
			}
			if f.Op == "" {
				return protocol.Frame{}, fmt.Errorf("server sent a frame without op: %q", line)
			}
			c.backlog = append(c.backlog, f)
			n++
		}
		c.frames += n
		c.maxBatch = max(c.maxBatch, n)
		if len(c.backlog) > 0 {
			f := c.backlog[0]
			c.backlog = c.backlog[1:]
			return f, nil
		}
	}
}

// read returns the next frame.
func (c *wsClient) read() protocol.Frame {
	c.t.Helper()
	f, err := c.readErr()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

// call sends f with a fresh id and returns the reply with that id. Frames
// without that id (msgs, other replies) stay in the backlog, in order.
func (c *wsClient) call(f protocol.Frame) protocol.Frame {
	c.t.Helper()
	f.ID = c.id()
	c.send(f)
	return c.waitID(*f.ID)
}

// mustCall is call that fails unless the reply has op want.
func (c *wsClient) mustCall(f protocol.Frame, want string) protocol.Frame {
	c.t.Helper()
	r := c.call(f)
	if r.Op != want {
		c.t.Fatalf("%s: got %s (%s: %s), want %s", f.Op, r.Op, r.Code, r.Message, want)
	}
	return r
}

// waitID reads until the frame with id, keeping the others.
func (c *wsClient) waitID(id int64) protocol.Frame {
	c.t.Helper()
	var kept []protocol.Frame
	defer func() { c.backlog = append(kept, c.backlog...) }()
	for {
		r := c.read()
		if r.ID != nil && *r.ID == id {
			return r
		}
		kept = append(kept, r)
	}
}

// ping checks that the connection still answers.
func (c *wsClient) ping() {
	c.t.Helper()
	c.mustCall(protocol.Frame{Op: protocol.OpPing}, protocol.OpPong)
}

// sub subscribes to room and returns the subscribed reply.
func (c *wsClient) sub(room string, since *protocol.Position) protocol.Frame {
	c.t.Helper()
	return c.mustCall(protocol.Frame{Op: protocol.OpSub, Room: room, Since: since}, protocol.OpSubscribed)
}

// pub publishes data to room with key and returns the ack.
func (c *wsClient) pub(room, key string, data string) protocol.Frame {
	c.t.Helper()
	return c.mustCall(protocol.Frame{Op: protocol.OpPub, Room: room, Key: key, Data: json.RawMessage(data)}, protocol.OpAck)
}

// msgs reads n msg frames, failing on any other frame.
func (c *wsClient) msgs(n int) []protocol.Frame {
	c.t.Helper()
	out := make([]protocol.Frame, 0, n)
	for len(out) < n {
		f := c.read()
		if f.Op != protocol.OpMsg {
			c.t.Fatalf("got %s (%s) while waiting for msg %d of %d", f.Op, f.Message, len(out)+1, n)
		}
		out = append(out, f)
	}
	return out
}

// closeStatus reads until the connection ends and returns its close
// status (-1 for no close frame). Frames read on the way are returned.
func (c *wsClient) closeStatus() (websocket.StatusCode, []protocol.Frame) {
	c.t.Helper()
	var seen []protocol.Frame
	for {
		f, err := c.readErr()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				c.t.Fatalf("connection still open after %v", readTimeout)
			}
			return websocket.CloseStatus(err), seen
		}
		seen = append(seen, f)
	}
}

// expectClose fails unless the connection closes with code.
func (c *wsClient) expectClose(code websocket.StatusCode) []protocol.Frame {
	c.t.Helper()
	got, seen := c.closeStatus()
	if got != code {
		c.t.Fatalf("close status %d, want %d (frames before: %+v)", got, code, seen)
	}
	return seen
}

// httpDo sends an HTTP request to n with an optional bearer token and
// returns status, headers and body.
func httpDo(t testing.TB, method, url, token string, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// httpErrorCode decodes an HTTP error body and returns its code.
func httpErrorCode(t testing.TB, body []byte) protocol.Code {
	t.Helper()
	var e protocol.HTTPError
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e.Error.Code
}

// waitFor polls cond until it holds, failing after a generous deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, readTimeout, what, cond)
}

// all is the pattern list that allows every room.
var all = []string{"*"}
