package edge_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/protocol"
	"github.com/arena-mesh/arena/router"
)

// until reads frames until one satisfies match and returns it; frames
// before it are returned too (in order).
func (c *wsClient) until(what string, match func(protocol.Frame) bool) (protocol.Frame, []protocol.Frame) {
	c.t.Helper()
	var seen []protocol.Frame
	for {
		f, err := c.readErr()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v (seen %+v)", what, err, seen)
		}
		if match(f) {
			return f, seen
		}
		seen = append(seen, f)
	}
}

func isEvent(op, user string) func(protocol.Frame) bool {
	return func(f protocol.Frame) bool { return f.Op == op && f.User == user }
}

func isReceipt(user, status string, seq uint64) func(protocol.Frame) bool {
	return func(f protocol.Frame) bool {
		return f.Op == protocol.OpReceipt && f.User == user && f.Status == status && f.Seq == seq
	}
}

func subPresence(c *wsClient, room string) {
	c.t.Helper()
	c.mustCall(protocol.Frame{Op: protocol.OpSub, Room: room, Presence: true}, protocol.OpSubscribed)
}

func members(c *wsClient, room string) []protocol.Member {
	c.t.Helper()
	return c.mustCall(protocol.Frame{Op: protocol.OpPresence, Room: room}, protocol.OpPresence).Members
}

func TestPresenceJoinLeave(t *testing.T) {
	n := edgetest.Start(t)
	alice := connectWS(t, n, n.AllToken("alice"))
	subPresence(alice, "chat:p")
	bob := connectWS(t, n, n.AllToken("bob"))
	bob.sub("chat:p", nil) // presence counts every subscribed connection
	alice.until("bob's join", isEvent(protocol.OpJoin, "bob"))
	want := []protocol.Member{{User: "alice", Conns: 1}, {User: "bob", Conns: 1}}
	if got := members(alice, "chat:p"); !slices.Equal(got, want) {
		t.Fatalf("presence = %+v, want %+v", got, want)
	}
	// Over HTTP too.
	code, _, body := httpDo(t, "GET", n.URL+"/v1/rooms/chat:p/presence", n.AllToken("carol"), "")
	var hp struct{ Members []protocol.Member }
	if err := json.Unmarshal(body, &hp); code != http.StatusOK || err != nil || !slices.Equal(hp.Members, want) {
		t.Fatalf("GET presence = %d %s", code, body)
	}

	// bob closes his connection: he leaves at once (no grace for a close).
	if err := bob.conn.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("close: %v", err)
	}
	alice.until("bob's leave", isEvent(protocol.OpLeave, "bob"))
	if got := members(alice, "chat:p"); !slices.Equal(got, want[:1]) {
		t.Fatalf("presence after leave = %+v", got)
	}
}

func TestPresenceUnsubLeaves(t *testing.T) {
	n := edgetest.Start(t)
	alice := connectWS(t, n, n.AllToken("alice"))
	subPresence(alice, "chat:u")
	bob := connectWS(t, n, n.AllToken("bob"))
	bob.sub("chat:u", nil)
	bob.sub("chat:u", nil) // a second sub replaces the first: no flicker
	alice.until("bob's join", isEvent(protocol.OpJoin, "bob"))
	bob.mustCall(protocol.Frame{Op: protocol.OpUnsub, Room: "chat:u"}, protocol.OpUnsubscribed)
	_, seen := alice.until("bob's leave", isEvent(protocol.OpLeave, "bob"))
	for _, f := range seen {
		if f.User == "bob" {
			t.Fatalf("extra event %+v before bob's leave", f)
		}
	}
}

// TestPresenceReconnectWithinGrace: a connection that drops and comes back
// within the grace period makes no leave and no second join.
func TestPresenceReconnectWithinGrace(t *testing.T) {
	n := edgetest.Start(t) // default grace, 15 s
	alice := connectWS(t, n, n.AllToken("alice"))
	subPresence(alice, "chat:g")
	bob := connectWS(t, n, n.AllToken("bob"))
	bob.sub("chat:g", nil)
	alice.until("bob's join", isEvent(protocol.OpJoin, "bob"))
	_ = bob.conn.CloseNow() // a drop: no close frame
	waitFor(t, "the server to see the drop", func() bool { return n.Server().Connections() == 1 })
	// A flush after the drop: dave's join comes, nothing about bob.
	dave := connectWS(t, n, n.AllToken("dave"))
	dave.sub("chat:g", nil)
	_, seen := alice.until("dave's join", isEvent(protocol.OpJoin, "dave"))
	for _, f := range seen {
		if f.User == "bob" {
			t.Fatalf("got %+v: a dropped connection keeps its user for the grace period", f)
		}
	}
	bob = connectWS(t, n, n.AllToken("bob"))
	bob.sub("chat:g", nil)
	// A marker user joins after bob is back; nothing about bob before it.
	carol := connectWS(t, n, n.AllToken("carol"))
	carol.sub("chat:g", nil)
	_, seen = alice.until("carol's join", isEvent(protocol.OpJoin, "carol"))
	for _, f := range seen {
		if f.User == "bob" {
			t.Fatalf("got %+v: a reconnect within the grace period must not show", f)
		}
	}
	waitFor(t, "bob counted once", func() bool {
		return slices.Contains(members(alice, "chat:g"), protocol.Member{User: "bob", Conns: 1})
	})
}

func TestPresenceDropLeavesAfterGrace(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithRouterConfig(func(c *router.Config) { c.PresenceGrace = 300 * time.Millisecond }))
	alice := connectWS(t, n, n.AllToken("alice"))
	subPresence(alice, "chat:d")
	bob := connectWS(t, n, n.AllToken("bob"))
	bob.sub("chat:d", nil)
	alice.until("bob's join", isEvent(protocol.OpJoin, "bob"))
	_ = bob.conn.CloseNow()
	alice.until("bob's leave after the grace period", isEvent(protocol.OpLeave, "bob"))
}

func TestReceipts(t *testing.T) {
	n := edgetest.Start(t)
	pub := connectWS(t, n, n.AllToken("pub"))
	pub.sub("chat:r", nil)
	watcher := connectWS(t, n, n.AllToken("watcher"))
	subPresence(watcher, "chat:r")
	ann := connectWS(t, n, n.AllToken("ann"))
	ann.sub("chat:r", nil)
	for range 3 {
		pub.pub("chat:r", "", `"hi"`)
	}
	for _, m := range ann.msgs(3) {
		ann.send(protocol.Frame{Op: protocol.OpRecv, Room: "chat:r", Seq: m.Seq})
	}
	ann.send(protocol.Frame{Op: protocol.OpRead, Room: "chat:r", Seq: 2})
	pub.until("read receipt", isReceipt("ann", "read", 2))
	watcher.until("read receipt to the watcher", isReceipt("ann", "read", 2))

	// rooms: ann has read 2 of 3.
	r := ann.mustCall(protocol.Frame{Op: protocol.OpRooms}, protocol.OpRooms)
	if len(r.Rooms) != 1 || r.Rooms[0].Room != "chat:r" || r.Rooms[0].Read.Seq != 2 || r.Rooms[0].Head.Seq != 3 || r.Rooms[0].Unread != 1 {
		t.Fatalf("rooms = %+v", r.Rooms)
	}
}

// TestUnreadAfterGoingOffline: messages that arrive after the user left
// count as unread, over HTTP as over the rooms frame.
func TestUnreadAfterGoingOffline(t *testing.T) {
	n := edgetest.Start(t)
	tok := n.AllToken("ann")
	ann := connectWS(t, n, tok)
	ann.sub("chat:o", nil)
	bob := connectWS(t, n, n.AllToken("bob"))
	bob.pub("chat:o", "", `1`)
	m := ann.msgs(1)[0]
	ann.send(protocol.Frame{Op: protocol.OpRead, Room: "chat:o", Seq: m.Seq})
	waitFor(t, "ann's read position", func() bool {
		r := ann.mustCall(protocol.Frame{Op: protocol.OpRooms}, protocol.OpRooms)
		return len(r.Rooms) == 1 && r.Rooms[0].Read.Seq == 1
	})
	_ = ann.conn.Close(websocket.StatusNormalClosure, "")
	for range 4 {
		bob.pub("chat:o", "", `2`)
	}
	code, _, body := httpDo(t, "GET", n.URL+"/v1/users/ann/rooms", tok, "")
	var res struct{ Rooms []protocol.UserRoom }
	if err := json.Unmarshal(body, &res); code != http.StatusOK || err != nil {
		t.Fatalf("GET rooms = %d %s", code, body)
	}
	if len(res.Rooms) != 1 || res.Rooms[0].Unread != 4 || res.Rooms[0].Head.Seq != 5 || res.Rooms[0].Read.Seq != 1 {
		t.Fatalf("rooms = %s", body)
	}
	ann = connectWS(t, n, tok)
	r := ann.mustCall(protocol.Frame{Op: protocol.OpRooms}, protocol.OpRooms)
	if len(r.Rooms) != 1 || r.Rooms[0].Unread != 4 {
		t.Fatalf("rooms frame = %+v", r.Rooms)
	}
}

// TestReadPositionSurvivesRestart: read positions are stored on the home.
func TestReadPositionSurvivesRestart(t *testing.T) {
	n := edgetest.Start(t)
	tok := n.AllToken("ann")
	ann := connectWS(t, n, tok)
	ann.pub("chat:s", "", `1`)
	ann.pub("chat:s", "", `2`)
	ann.send(protocol.Frame{Op: protocol.OpRead, Room: "chat:s", Seq: 1})
	ann.ping() // the read was handled
	n.Restart()
	code, _, body := httpDo(t, "GET", n.URL+"/v1/users/ann/rooms", tok, "")
	var res struct{ Rooms []protocol.UserRoom }
	if err := json.Unmarshal(body, &res); code != http.StatusOK || err != nil || len(res.Rooms) != 1 || res.Rooms[0].Read.Seq != 1 || res.Rooms[0].Unread != 1 {
		t.Fatalf("GET rooms after restart = %d %s", code, body)
	}
}
