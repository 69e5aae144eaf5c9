package edge_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/arena-mesh/arena/edge"
	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/protocol"
)

func TestDrain(t *testing.T) {
	others := []edge.Edge{
		{Node: "test", Region: "local", URL: "http://self"},
		{Node: "b", Region: "eu", URL: "http://b.example"},
		{Node: "c", Region: "us", URL: "http://c.example"},
	}
	n := edgetest.Start(t, edgetest.WithConfig(func(c *edge.Config) { c.Edges = func() []edge.Edge { return others } }))
	tok := n.AllToken("alice")
	clients := []*wsClient{connectWS(t, n, tok), connectWS(t, n, tok)}
	clients[0].sub("d", nil)
	sse := openSSE(t, n.URL+"/v1/rooms/d/events", tok, "")
	sse.next()

	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
		defer cancel()
		drained <- n.Server().Drain(ctx)
	}()
	for i, c := range clients {
		seen := c.expectClose(websocket.StatusGoingAway)
		if len(seen) != 1 || seen[0].Op != protocol.OpReconnect || seen[0].Reason != "draining" ||
			len(seen[0].Edges) != 2 || seen[0].Edges[0] != "http://b.example" || seen[0].Edges[1] != "http://c.example" {
			t.Fatalf("client %d got %+v before the close, want one reconnect", i, seen)
		}
	}
	if _, ok := sse.next(); ok {
		t.Fatal("SSE stream still open after drain")
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if code, _, _ := httpDo(t, http.MethodGet, n.URL+"/readyz", "", ""); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz after drain: %d, want 503", code)
	}
	if code, _, body := httpDo(t, http.MethodGet, n.URL+"/v1/ws", tok, ""); code != http.StatusServiceUnavailable {
		t.Errorf("/v1/ws after drain: %d %s, want 503", code, body)
	}
	if code, _, _ := httpDo(t, http.MethodGet, n.URL+"/healthz", "", ""); code != http.StatusOK {
		t.Errorf("/healthz after drain: %d, want 200", code)
	}
}

// TestDrainDeadline: a client that never answers the close handshake
// does not hold Drain past its context.
func TestDrainDeadline(t *testing.T) {
	n := edgetest.Start(t)
	c := dialSmallBuffer(t, n, n.AllToken("alice")) // never reads again
	_ = c
	err := n.Drain(200 * time.Millisecond)
	if err != context.DeadlineExceeded {
		t.Fatalf("Drain = %v, want deadline exceeded", err)
	}
	waitFor(t, "connections to reach 0", func() bool {
		code, _, body := httpDo(t, http.MethodGet, n.URL+"/metrics", "", "")
		return code == http.StatusOK && containsLine(string(body), "arena_edge_connections 0")
	})
}
