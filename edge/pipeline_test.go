package edge_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/edge"
	"github.com/arena-mesh/arena/edge/auth"
	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/protocol"
	"github.com/arena-mesh/arena/router"
	"github.com/arena-mesh/arena/router/routertest"
	"github.com/arena-mesh/arena/wal"
	"github.com/arena-mesh/arena/wal/waltest"
)

// TestPublishPipelined: publishes from one connection are sequenced as
// they are read, without waiting for the previous one to be durable.
// With the first fsync held, no message of a pipelined batch reaches
// subscribers and no ack is sent; once the fsync completes, subscribers
// get every message and every publish is acked, with seqs in send order
// per room.
func TestPublishPipelined(t *testing.T) {
	gate := waltest.NewSyncGate()
	n := edgetest.Start(t, edgetest.WithWALConfig(func(c *wal.Config) { c.FS = gate.FS() }))
	t.Cleanup(gate.Release) // before the node closes: never leave the fsync held
	tok := n.AllToken("alice")
	rooms := []string{"pipe:a", "pipe:b"}
	sub := connectWS(t, n, tok)
	epochs := map[string]uint64{}
	for _, room := range rooms {
		epochs[room] = sub.sub(room, nil).Head.Epoch
	}
	p := connectWS(t, n, tok)
	p.ping() // rooms created, connection settled

	const perRoom = 10
	gate.Hold()
	var batch []protocol.Frame
	for i := range 2 * perRoom {
		id := int64(i + 1)
		batch = append(batch, protocol.Frame{Op: protocol.OpPub, ID: &id, Room: rooms[i%2],
			Data: json.RawMessage(strconv.Itoa(i / 2))})
	}
	p.send(batch...)
	select {
	case <-gate.Held():
	case <-time.After(readTimeout):
		t.Fatal("no wal fsync started")
	}

	// Nothing is durable, so nothing is delivered (a message seen before
	// its fsync could be lost to a crash and its seq reused) and nothing
	// is acked: each connection's pong comes first.
	if f := sub.call(protocol.Frame{Op: protocol.OpPing}); f.Op != protocol.OpPong || len(sub.backlog) != 0 {
		t.Fatalf("subscriber before durability: %s and %d more frames, want only pong", f.Op, len(sub.backlog))
	}
	if f := p.call(protocol.Frame{Op: protocol.OpPing}); f.Op != protocol.OpPong || len(p.backlog) != 0 {
		t.Fatalf("publisher before durability: %s and %d more frames, want only pong", f.Op, len(p.backlog))
	}

	gate.Release()
	// Once durable: every message, in send order per room.
	next := map[string]uint64{}
	for _, m := range sub.msgs(2 * perRoom) {
		next[m.Room]++
		if m.Epoch != epochs[m.Room] || m.Seq != next[m.Room] || string(m.Data) != strconv.FormatUint(m.Seq-1, 10) {
			t.Fatalf("room %s: msg (%d,%d) %s, want seq %d carrying %d", m.Room, m.Epoch, m.Seq, m.Data, next[m.Room], next[m.Room]-1)
		}
	}
	for range 2 * perRoom {
		f := p.read()
		if f.Op != protocol.OpAck || f.ID == nil {
			t.Fatalf("got %s (%s %s), want ack", f.Op, f.Code, f.Message)
		}
		i := int(*f.ID - 1)
		if room, seq := rooms[i%2], uint64(i/2+1); f.Room != room || f.Seq != seq || f.Epoch != epochs[room] || f.Dup {
			t.Fatalf("ack of pub %d: %s (%d,%d), want %s seq %d", *f.ID, f.Room, f.Epoch, f.Seq, room, seq)
		}
	}
}

// TestPublishInFlightBound: with MaxInFlight 1 a connection still gets
// every publish through, in order, one at a time.
func TestPublishInFlightBound(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithConfig(func(c *edge.Config) { c.MaxInFlight = 1; c.SendQueue = 2 }))
	p := connectWS(t, n, n.AllToken("alice"))
	const total = 50
	var batch []protocol.Frame
	for i := range total {
		id := int64(i + 1)
		batch = append(batch, protocol.Frame{Op: protocol.OpPub, ID: &id, Room: "bound", Data: json.RawMessage(strconv.Itoa(i))})
	}
	p.send(batch...)
	for i := range total {
		f := p.read()
		if f.Op != protocol.OpAck || *f.ID != int64(i+1) || f.Seq != uint64(i+1) {
			t.Fatalf("frame %d: %s id %v seq %d (%s)", i, f.Op, f.ID, f.Seq, f.Message)
		}
	}
}

// TestHistoryAfterZeroRetention: after=0 starts at the oldest retained
// message once retention removed the room's first ones, on the history
// frame and on GET .../messages.
func TestHistoryAfterZeroRetention(t *testing.T) {
	const total, keep = 40, 10
	n := edgetest.Start(t,
		edgetest.WithRingSize(4),
		edgetest.WithRetention(wal.Retention{MaxCount: keep}),
		edgetest.WithWALConfig(func(c *wal.Config) { c.SweepInterval = 10 * time.Millisecond }),
	)
	tok := n.AllToken("alice")
	const room = "ret:1"
	var epoch uint64
	for i := 1; i <= total; i++ {
		ack, err := n.Router().Publish(t.Context(), router.PublishRequest{Room: room, From: "alice", Data: []byte(strconv.Itoa(i))})
		if err != nil {
			t.Fatal(err)
		}
		epoch = ack.Epoch
	}
	const oldest = total - keep + 1
	waitFor(t, "retention to drop the first messages", func() bool {
		first, err := n.WAL().First(room, epoch)
		return err == nil && first == oldest
	})
	check := func(t *testing.T, e uint64, msgs []protocol.Msg, from, count uint64) {
		t.Helper()
		if e != epoch || uint64(len(msgs)) != count {
			t.Fatalf("epoch %d, %d msgs; want %d, %d from %d", e, len(msgs), epoch, count, from)
		}
		for i, m := range msgs {
			if m.Seq != from+uint64(i) || string(m.Data) != strconv.FormatUint(m.Seq, 10) {
				t.Fatalf("msg %d = seq %d %s, want seq %d", i, m.Seq, m.Data, from+uint64(i))
			}
		}
	}
	zero := uint64(0)
	tests := []struct {
		name  string
		limit int
		count uint64
	}{
		{"first page", 3, 3},
		{"everything retained", 1000, keep},
		{"default limit", 0, keep},
	}
	c := connectWS(t, n, tok)
	for _, tt := range tests {
		t.Run("ws "+tt.name, func(t *testing.T) {
			r := c.mustCall(protocol.Frame{Op: protocol.OpHistory, Room: room, After: &zero, Limit: tt.limit}, protocol.OpHistory)
			check(t, r.Epoch, r.Msgs, oldest, tt.count)
		})
		t.Run("http "+tt.name, func(t *testing.T) {
			q := "?after=0"
			if tt.limit > 0 {
				q += "&limit=" + strconv.Itoa(tt.limit)
			}
			code, _, body := httpDo(t, http.MethodGet, n.URL+"/v1/rooms/"+room+"/messages"+q, tok, "")
			var r struct {
				Epoch uint64
				Msgs  []protocol.Msg
			}
			if err := json.Unmarshal(body, &r); err != nil || code != http.StatusOK {
				t.Fatalf("%d %s", code, body)
			}
			check(t, r.Epoch, r.Msgs, oldest, tt.count)
		})
	}
}

// TestHomeUnavailable: an edge whose room's home does not answer (the
// home's router is closed while its node stays in the mesh) answers
// unavailable, or HTTP 503, on every path that needs the home.
func TestHomeUnavailable(t *testing.T) {
	c := routertest.Start(t, 2, routertest.WithPeerTimeout(300*time.Millisecond))
	room := c.RoomHomedOn("down:", 0)
	rt := c.Nodes[1].Router
	routertest.WaitFor(t, readTimeout, "the home to answer", func() bool {
		_, err := rt.Publish(t.Context(), router.PublishRequest{Room: room, From: "alice", Data: []byte(`0`)})
		if err != nil && !errors.Is(err, router.ErrUnavailable) {
			t.Fatalf("publish: %v", err)
		}
		return err == nil
	})
	if err := c.Nodes[0].Router.Close(); err != nil {
		t.Fatal(err)
	}
	url, tok := serveEdge(t, rt)

	ws, err := tryDial(t, "ws"+strings.TrimPrefix(url, "http")+"/v1/ws", tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.mustCall(protocol.Frame{Op: protocol.OpConnect}, protocol.OpConnected)
	zero := uint64(0)
	for _, f := range []protocol.Frame{
		{Op: protocol.OpPub, Room: room, Key: "k1", Data: json.RawMessage(`1`)},
		{Op: protocol.OpSub, Room: room},
		{Op: protocol.OpHistory, Room: room},
		{Op: protocol.OpHistory, Room: room, After: &zero},
	} {
		t.Run("ws "+f.Op, func(t *testing.T) {
			if r := ws.call(f); r.Op != protocol.OpError || r.Code != protocol.CodeUnavailable {
				t.Fatalf("%s: got %s %s (%s), want error unavailable", f.Op, r.Op, r.Code, r.Message)
			}
		})
	}
	base := url + "/v1/rooms/" + room
	for _, tt := range []struct{ name, method, url, body string }{
		{"publish", http.MethodPost, base + "/messages", `{"data":1,"key":"k2"}`},
		{"history", http.MethodGet, base + "/messages?limit=5", ""},
		{"history after 0", http.MethodGet, base + "/messages?after=0", ""},
		{"events", http.MethodGet, base + "/events", ""},
	} {
		t.Run("http "+tt.name, func(t *testing.T) {
			code, _, body := httpDo(t, tt.method, tt.url, tok, tt.body)
			if code != http.StatusServiceUnavailable || httpErrorCode(t, body) != protocol.CodeUnavailable {
				t.Fatalf("%d %s, want 503 unavailable", code, body)
			}
		})
	}
}

// serveEdge runs an edge server over rt on 127.0.0.1 until the test ends
// and returns its URL and a token allowed everywhere.
func serveEdge(t *testing.T, rt *router.Router) (url, token string) {
	t.Helper()
	secret := []byte("pipeline-test-secret-0123456789abcdef")
	a, err := auth.New(auth.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := edge.New(edge.Config{NodeID: "n2", Router: rt, Auth: a, Logger: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		_ = srv.Close()
		hs.CloseClientConnections()
		hs.Close()
	})
	token, err = auth.Sign(secret, "alice", all, all, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return hs.URL, token
}
