package edge_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/arena-mesh/arena/protocol"
)

// connectNode dials the node at base (http://host:port) as the token's
// user and completes connect.
func connectNode(t *testing.T, base, token string) *wsClient {
	t.Helper()
	c, err := tryDial(t, "ws"+strings.TrimPrefix(base, "http")+"/v1/ws", token, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", base, err)
	}
	c.mustCall(protocol.Frame{Op: protocol.OpConnect}, protocol.OpConnected)
	return c
}

// TestClusterPresenceOverWebSockets: real clients on different edges of a
// three-node mesh see each other join, get receipts across edges, see
// unread counts from any edge, and see the users of a killed edge leave
// once the mesh detected its failure.
func TestClusterPresenceOverWebSockets(t *testing.T) {
	wc := startWebCluster(t, 3, "default")
	room := wc.c.RoomHomedOn("chat:w", 0)
	n1, n2 := wc.nodes[1], wc.nodes[2]

	alice := connectNode(t, n1.URL, wc.token(t, "alice"))
	subPresence(alice, room)
	bob := connectNode(t, n2.URL, wc.token(t, "bob"))
	bob.sub(room, nil)
	alice.until("bob's join from another edge", isEvent(protocol.OpJoin, "bob"))

	// bob reads alice's message on his edge; her edge gets the receipt.
	ack := alice.pub(room, "", `"hi"`)
	m := bob.msgs(1)[0]
	bob.send(protocol.Frame{Op: protocol.OpRead, Room: room, Seq: m.Seq})
	alice.until("bob's read receipt", isReceipt("bob", "read", ack.Seq))

	// Two more messages while bob is away; his unread count, from the
	// third edge, over HTTP.
	alice.pub(room, "", `"more"`)
	alice.pub(room, "", `"more"`)
	code, _, body := httpDo(t, "GET", wc.nodes[0].URL+"/v1/users/bob/rooms", wc.token(t, "bob"), "")
	var res struct{ Rooms []protocol.UserRoom }
	if err := json.Unmarshal(body, &res); code != http.StatusOK || err != nil ||
		len(res.Rooms) != 1 || res.Rooms[0].Read.Seq != ack.Seq || res.Rooms[0].Unread != 2 {
		t.Fatalf("GET rooms = %d %s", code, body)
	}

	// bob's edge dies: he leaves once the failure is detected.
	wc.kill(n2)
	alice.until("bob's leave after his edge died", isEvent(protocol.OpLeave, "bob"))
	if got := members(alice, room); !slices.Equal(got, []protocol.Member{{User: "alice", Conns: 1}}) {
		t.Fatalf("presence = %+v", got)
	}
}
