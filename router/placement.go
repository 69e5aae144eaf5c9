package router

import (
	"strings"

	"github.com/arena-mesh/arena/mesh"
)

// PlacementRule homes the rooms whose names start with Prefix in Region.
type PlacementRule struct {
	Prefix string // room-name prefix; "" matches every room
	Region string
}

// Placement says which region is a room's home region (DESIGN.md,
// "Placement and regions"). The zero value homes every room in no
// particular region: the home is chosen among all live members.
type Placement struct {
	// Rules map room-name prefixes to regions; the longest matching prefix
	// wins. Zero: no rules.
	Rules []PlacementRule
	// DefaultRegion is the home region of rooms no rule matches. Zero: no
	// region preference (all live members).
	DefaultRegion string
}

// Region returns room's home region ("" for none).
func (p *Placement) Region(room string) string {
	best, region := -1, p.DefaultRegion
	for _, rule := range p.Rules {
		if len(rule.Prefix) > best && strings.HasPrefix(room, rule.Prefix) {
			best, region = len(rule.Prefix), rule.Region
		}
	}
	return region
}

// Home returns the home node of room among members: the rendezvous
// (highest-random-weight) winner among the members in region, or among
// all members when region is "" or has no member. It returns "" when
// members is empty. It is a pure function of its arguments: every node
// with the same member list computes the same home, and a member joining
// takes over only the rooms it wins (about 1/N of them).
func Home(room, region string, members []mesh.Member) mesh.NodeID {
	var best mesh.NodeID
	var bestW uint64
	found := false
	if region != "" {
		for i := range members {
			if members[i].Region != region {
				continue
			}
			if w := rendezvousWeight(room, members[i].ID); !found || w > bestW || w == bestW && members[i].ID < best {
				best, bestW, found = members[i].ID, w, true
			}
		}
		if found {
			return best
		}
	}
	for i := range members {
		if w := rendezvousWeight(room, members[i].ID); !found || w > bestW || w == bestW && members[i].ID < best {
			best, bestW, found = members[i].ID, w, true
		}
	}
	return best
}

// rendezvousWeight is the weight of node for room: FNV-1a 64 over the
// node ID, a separator and the room name, then a splitmix64 finalizer so
// that names differing in one byte get unrelated weights. No allocation.
func rendezvousWeight(room string, node mesh.NodeID) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(node); i++ {
		h = (h ^ uint64(node[i])) * prime
	}
	h = (h ^ 0xff) * prime // separator: ("ab","c") and ("a","bc") differ
	for i := 0; i < len(room); i++ {
		h = (h ^ uint64(room[i])) * prime
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// view is the router's snapshot of the live members, replaced whole on
// every membership change (read lock-free on the hot path).
type view struct {
	members []mesh.Member // live members, as the mesh lists them
	live    map[mesh.NodeID]bool
	// placed are the members rooms are homed on: members minus the nodes
	// handing their rooms over before leaving (Handoff).
	placed []mesh.Member
	// others are the members minus this node, leaving ones included: the
	// home a room would have without this node, which is where it was
	// before this node won it (see Router.prevHome).
	others []mesh.Member
	// region maps every live member to its region; self is this node.
	region map[mesh.NodeID]string
	self   mesh.NodeID
}

// newView builds a view of ms in which the nodes of leaving hold no room.
func newView(ms []mesh.Member, self mesh.NodeID, leaving map[mesh.NodeID]bool) *view {
	v := &view{members: ms, live: make(map[mesh.NodeID]bool, len(ms)), region: make(map[mesh.NodeID]string, len(ms)), self: self}
	for _, m := range ms {
		v.live[m.ID] = true
		v.region[m.ID] = m.Region
		if !leaving[m.ID] {
			v.placed = append(v.placed, m)
		}
		if m.ID != self {
			v.others = append(v.others, m)
		}
	}
	return v
}

// Members returns the members the router places rooms over: the list of
// its last MembersChanged. It lags the mesh's own view by the time the
// mesh takes to call OnChange; nil without a mesh.
func (r *Router) Members() []mesh.Member {
	if r.mesh == nil {
		return nil
	}
	return r.view.Load().members
}

// homeOf returns room's home node in the current view; "" means this node
// (single node, or this node won, or the view is empty).
func (r *Router) homeOf(room string) mesh.NodeID {
	if r.mesh == nil {
		return ""
	}
	v := r.view.Load()
	h := Home(room, r.cfg.Placement.Region(room), v.placed)
	if h == r.self || h == "" {
		return ""
	}
	return h
}

// isMember reports whether peer is a live member in this node's view.
func (r *Router) isMember(peer mesh.NodeID) bool { return r.view.Load().live[peer] }

// isHome reports whether this node orders room's messages.
func (r *Router) isHome(room string) bool { return r.homeOf(room) == "" }

// prevHome returns the node that would be room's home without this node
// ("" if none): after a planned change made this node the home, that is
// the node that held the room (a member that joined takes rooms from the
// runner-up; a leaving member is the runner-up of the rooms it gives up).
func (r *Router) prevHome(room string) mesh.NodeID {
	return Home(room, r.cfg.Placement.Region(room), r.view.Load().others)
}

// sourceOf returns room's home ("" when this node is the home, see
// homeOf) and the node this node takes the room's pushed messages from,
// its feed: the home itself when this node is in the home's region (or
// is the relay of its own region), else the relay of this node's region,
// the rendezvous winner for the room among the region's placed members
// (DESIGN.md, "Placement and regions": the home sends each message once
// per remote region, to its relay, which fans it out in the region).
func (r *Router) sourceOf(room string) (home, feed mesh.NodeID) {
	if home = r.homeOf(room); home == "" {
		return "", ""
	}
	v := r.view.Load()
	region, ok := v.region[v.self]
	if !ok || v.region[home] == region {
		return home, home
	}
	relay := Home(room, region, v.placed)
	if relay == v.self || relay == "" || v.region[relay] != region {
		// This node is the relay, or the region has no other placed
		// member (this node leaves): take the home's pushes directly.
		return home, home
	}
	return home, relay
}
