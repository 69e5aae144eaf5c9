package edge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/arena-mesh/arena/edge"
	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/protocol"
)

// fuzzConn is a connection to a node shared by fuzz iterations (a new
// node per input would be far too slow); it is redialled when an input
// made the server close it.
type fuzzConn struct {
	mu sync.Mutex
	n  *edgetest.Node
	c  *wsClient
}

// FuzzSessionFrames feeds arbitrary bytes as WebSocket messages through a
// real session of a real node. Whatever the input, the server must not
// crash; every reply must be a well-formed frame; a closed connection
// must have been closed with a protocol close code (not dropped); and a
// ping afterwards must be answered.
func FuzzSessionFrames(f *testing.F) {
	seeds := []string{
		`{"op":"ping","id":1}`,
		`{"op":"sub","id":2,"room":"fz"}`,
		`{"op":"sub","id":3,"room":"fz","since":{"epoch":1,"seq":0}}`,
		`{"op":"unsub","id":4,"room":"fz"}`,
		`{"op":"pub","id":5,"room":"fz","data":{"a":[1,2,"x"]},"key":"k"}`,
		`{"op":"history","id":6,"room":"fz","before":3,"limit":10}`,
		`{"op":"history","id":7,"room":"fz","after":1}`,
		`{"op":"recv","room":"fz","seq":1}`,
		`{"op":"read","id":8,"room":"fz","seq":2}`,
		`{"op":"presence","id":9,"room":"fz"}`,
		`{"op":"rooms","id":12}`,
		`{"op":"sub","id":13,"room":"fz","presence":true}`,
		"{\"op\":\"sub\",\"room\":\"fz\",\"presence\":true}\n{\"op\":\"read\",\"room\":\"fz\",\"seq\":99}\n{\"op\":\"rooms\",\"id\":1}",
		`{"op":"refresh","id":10,"token":"x.y.z"}`,
		`{"op":"connect","id":11}`,
		"{\"op\":\"ping\",\"id\":1}\n{\"op\":\"pub\",\"room\":\"fz\",\"data\":null}\n",
		`[]`, `null`, `{"op":"sub","room":"` + "\xff" + `"}`, "", "\n\n\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	fc := fuzzConn{n: edgetest.Start(f, edgetest.WithQuietLogs(), edgetest.WithConfig(func(c *edge.Config) {
		c.MaxDataBytes = 1 << 10
		c.PublishRate = 1e9
	}))}
	tok := fc.n.AllToken("fuzzer")
	f.Cleanup(func() {
		if fc.c != nil {
			_ = fc.c.conn.CloseNow()
		}
	})
	f.Fuzz(func(t *testing.T, msg []byte) {
		fc.mu.Lock()
		defer fc.mu.Unlock()
		if fc.c == nil {
			// Not dialWS: the connection outlives this iteration.
			conn, _, err := websocket.Dial(t.Context(), fc.n.WSURL, &websocket.DialOptions{
				HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}},
			})
			if err != nil {
				t.Fatal(err)
			}
			conn.SetReadLimit(-1)
			fc.c = &wsClient{t: t, conn: conn}
			fc.c.mustCall(protocol.Frame{Op: protocol.OpConnect}, protocol.OpConnected)
		}
		c := fc.c
		c.t = t

		ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
		defer cancel()
		if err := c.conn.Write(ctx, websocket.MessageText, msg); err != nil {
			t.Fatalf("write: %v", err)
		}
		// A ping after the input: everything the input caused comes
		// before its pong.
		const pingID = 1 << 40
		id := int64(pingID)
		pingFrame, _ := json.Marshal(protocol.Frame{Op: protocol.OpPing, ID: &id})
		if err := c.conn.Write(ctx, websocket.MessageText, pingFrame); err != nil {
			t.Fatalf("write ping: %v", err)
		}
		for {
			fr, err := c.readErr()
			if err != nil {
				switch websocket.CloseStatus(err) {
				case websocket.StatusPolicyViolation, websocket.StatusMessageTooBig,
					websocket.StatusCode(protocol.CloseUnauthorized), websocket.StatusCode(protocol.CloseRateLimited):
					_ = c.conn.CloseNow()
					fc.c = nil // legitimately closed by the input; redial next time
					return
				}
				t.Fatalf("connection lost after input %q: %v", truncateBytes(msg), err)
			}
			if fr.ID != nil && *fr.ID == pingID && fr.Op == protocol.OpPong {
				break
			}
			if fr.Op == protocol.OpError && (fr.Code == "" || fr.Message == "") {
				t.Fatalf("error frame without code or message: %+v", fr)
			}
		}
		c.backlog = c.backlog[:0]
	})
}

func truncateBytes(b []byte) []byte {
	if len(b) > 200 {
		return append(bytes.Clone(b[:200]), "..."...)
	}
	return b
}

// FuzzPublishBody posts arbitrary bodies to the HTTP publish endpoint:
// the answer is always a 201/200 with a position or a JSON error with a
// protocol code and the fitting status, never a 5xx.
func FuzzPublishBody(f *testing.F) {
	for _, s := range []string{
		`{"data":1}`, `{"data":{"a":"b"},"key":"k1"}`, `{"data":null}`, `{"data":[1,2,3],"key":""}`,
		`{"data":"x"} `, `{"key":"k"}`, `[]`, `{"data":1,"x":2}`, ``, `{"data":` + "\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	n := edgetest.Start(f, edgetest.WithQuietLogs(), edgetest.WithConfig(func(c *edge.Config) {
		c.MaxDataBytes = 1 << 10
		c.PublishRate = 1e9
	}))
	tok := n.AllToken("fuzzer")
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := http.NewRequest(http.MethodPost, n.URL+"/v1/rooms/fz/messages", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Seq   uint64
			Error *protocol.HTTPErrorBody
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%d: undecodable answer: %v", resp.StatusCode, err)
		}
		switch resp.StatusCode {
		case http.StatusCreated, http.StatusOK:
			if out.Seq == 0 || out.Error != nil {
				t.Fatalf("%d without a position", resp.StatusCode)
			}
			// What was stored is valid JSON without a newline.
			var v json.RawMessage
			if err := json.Unmarshal(body, &struct {
				Data *json.RawMessage `json:"data"`
			}{&v}); err != nil {
				t.Fatalf("accepted a body encoding/json rejects: %q", body)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if out.Error == nil || out.Error.Code.HTTPStatus() != resp.StatusCode {
				t.Fatalf("%d with error %+v", resp.StatusCode, out.Error)
			}
		default:
			t.Fatalf("status %d for body %q", resp.StatusCode, truncateBytes(body))
		}
	})
}
