package router

import (
	"context"
	"fmt"

	"github.com/arena-mesh/arena/mesh"
)

// The multi-node half of presence and receipts: reports of local counts to
// remote homes, events from a home to the nodes with connections, and the
// queries (members, a user's rooms) answered by other homes. The peer
// frames for them are not wired yet (see the package doc): on several
// nodes, presence and receipts work for rooms homed on the node the
// clients are connected to.

// remoteMembers asks home for room's members.
func (r *Router) remoteMembers(ctx context.Context, home mesh.NodeID, room string) ([]Member, error) {
	return nil, fmt.Errorf("%w: presence of rooms homed on %s is not available yet", ErrUnavailable, home)
}

// remoteUserRooms asks every other node for user's rooms homed there.
func (r *Router) remoteUserRooms(ctx context.Context, user string) ([]UserRoom, error) {
	return nil, nil
}

// forwardReceipt sends a receipt to the room's home.
func (r *Router) forwardReceipt(ctx context.Context, home mesh.NodeID, req ReceiptRequest) error {
	return nil
}

// sendReports sends this node's changed counts to the rooms' homes.
func (e *events) sendReports(reports map[string][]userCount) {}

// sendEvents sends a room's events to node.
func (e *events) sendEvents(node mesh.NodeID, room string, evs []Event) {}
