//go:build linux

package edge_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/arena-mesh/arena/edge"
	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/protocol"
)

// parkLinger is the reader linger of these tests: short, so that readers
// park soon.
const parkLinger = 40 * time.Millisecond

// startParking starts a node whose idle readers park after parkLinger.
func startParking(t *testing.T, opts ...edgetest.Option) *edgetest.Node {
	t.Helper()
	n := edgetest.Start(t, opts...)
	edge.SetReaderLinger(n.Server(), parkLinger)
	return n
}

// readersRunning counts the goroutines in a session's reader.
func readersRunning() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "edge.(*session).read(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// waitParked waits until want readers are parked and no reader goroutine
// runs.
func waitParked(t *testing.T, n *edgetest.Node, want int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d readers parked", want), func() bool {
		return metricValue(t, n, "arena_edge_parked_readers") == float64(want) && readersRunning() == 0
	})
}

// TestIdleReaderParks: an idle connection's reader goroutine exits, and
// whatever the client sends later (a publish, a ping, a subscribe) wakes
// a new one, again and again; deliveries to a parked connection need no
// reader at all.
func TestIdleReaderParks(t *testing.T) {
	n := startParking(t)
	sub := connectWS(t, n, n.AllToken("alice"))
	sub.sub("idle", nil)
	pub := connectWS(t, n, n.AllToken("bob"))
	waitParked(t, n, 2)

	for i := range 3 {
		if ack := pub.pub("idle", "", fmt.Sprintf(`{"n":%d}`, i)); ack.Seq != uint64(i+1) {
			t.Fatalf("ack %d: seq %d", i, ack.Seq)
		}
		if m := sub.msgs(1)[0]; m.Seq != uint64(i+1) || string(m.Data) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("msg %d: %+v", i, m)
		}
		waitParked(t, n, 2)
	}
	sub.ping()
	sub.sub("other", nil)
	waitParked(t, n, 2)
	if got := metricValue(t, n, "arena_edge_connections"); got != 2 {
		t.Fatalf("%v connections, want 2", got)
	}
}

// TestFreshReaderParksSoon: a fresh connection that has only connected
// and subscribed parks after a tenth of the linger. With a linger longer
// than waitFor's patience, only that rule can park it in time.
func TestFreshReaderParksSoon(t *testing.T) {
	n := edgetest.Start(t)
	edge.SetReaderLinger(n.Server(), 2*readTimeout)
	c := connectWS(t, n, n.AllToken("alice"))
	c.sub("fresh", nil)
	waitParked(t, n, 1)
	// Woken by a publish, the reader is no longer fresh: it reads the
	// publish and lingers the whole time, so it still runs once the ack
	// is in.
	if ack := c.pub("fresh", "", `{"n":1}`); ack.Seq != 1 {
		t.Fatalf("ack: seq %d", ack.Seq)
	}
	if got := readersRunning(); got != 1 {
		t.Fatalf("%d readers running after a publish, want 1", got)
	}
}

// TestParkedReaderSeesClose: a parked connection whose client closes, with
// a close frame or by dropping the socket, ends on the server.
func TestParkedReaderSeesClose(t *testing.T) {
	n := startParking(t)
	polite := connectWS(t, n, n.AllToken("alice"))
	rude := connectWS(t, n, n.AllToken("bob"))
	waitParked(t, n, 2)

	if err := polite.conn.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("close: %v", err)
	}
	waitFor(t, "the closed connection to end", func() bool {
		return metricValue(t, n, "arena_edge_connections") == 1
	})
	_ = rude.conn.CloseNow()
	waitFor(t, "the dropped connection to end", func() bool {
		return metricValue(t, n, "arena_edge_connections") == 0 &&
			metricValue(t, n, "arena_edge_parked_readers") == 0
	})
}

// TestParkedReaderDrain: draining reaches parked connections: each gets
// its reconnect frame and a 1001 close.
func TestParkedReaderDrain(t *testing.T) {
	n := startParking(t)
	tok := n.AllToken("alice")
	clients := []*wsClient{connectWS(t, n, tok), connectWS(t, n, tok)}
	waitParked(t, n, len(clients))

	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
		defer cancel()
		drained <- n.Server().Drain(ctx)
	}()
	for i, c := range clients {
		seen := c.expectClose(websocket.StatusGoingAway)
		if len(seen) != 1 || seen[0].Op != protocol.OpReconnect {
			t.Fatalf("client %d got %+v before the close, want one reconnect", i, seen)
		}
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
}

// TestParkedReaderCut: a parked connection whose client never answers the
// close handshake is cut when the drain's time is up, and Drain returns.
func TestParkedReaderCut(t *testing.T) {
	n := startParking(t)
	_ = connectWS(t, n, n.AllToken("alice")) // never reads again
	waitParked(t, n, 1)
	if err := n.Drain(100 * time.Millisecond); err != context.DeadlineExceeded {
		t.Fatalf("Drain = %v, want deadline exceeded", err)
	}
	waitFor(t, "connections to reach 0", func() bool {
		return metricValue(t, n, "arena_edge_connections") == 0
	})
}
