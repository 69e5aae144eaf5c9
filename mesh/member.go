package mesh

import "net/netip"

// NodeID names a node; unique in the mesh and stable across restarts.
type NodeID string

// State is a member's health as the local failure detector sees it.
type State uint8

// The states a live member can be in. Dead and departed nodes are not
// members: Members leaves them out and OnChange reports the set without
// them.
const (
	// StateAlive: the member answers probes.
	StateAlive State = iota
	// StateSuspect: a probe failed and the member has not refuted it yet;
	// it is still a member until the suspicion timeout declares it dead.
	StateSuspect
)

// String names the state for logs and the cluster API.
func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	default:
		return "unknown"
	}
}

// Member is a live node of the mesh, as gossiped.
type Member struct {
	ID        NodeID
	Region    string
	ClientURL string // where clients connect (PROTOCOL.md /v1/edges); may be empty
	// Addr is the node's mesh address: gossip over UDP and TCP, and QUIC
	// over UDP, all on this one port.
	Addr  netip.AddrPort
	Load  uint32 // as last set by the node with SetLoad
	State State
}

// memberIDs lists the IDs of ms, for logs.
func memberIDs(ms []Member) []string {
	out := make([]string, len(ms))
	for i, mb := range ms {
		out[i] = string(mb.ID)
	}
	return out
}
