package router

import (
	"slices"
	"strings"
	"time"

	"github.com/arena-mesh/arena/mesh"
)

// Presence is kept in two layers, both pure state machines without I/O,
// locks or timers of their own (the event loop in events.go drives them
// with its clock and feeds their output to the network and the sinks):
//
//   - localPresence, on every node, counts this node's connections per
//     room and user. A connection that drops without closing keeps
//     counting for the grace period, so a quick reconnect (here or on
//     another node) changes nothing anyone can see.
//   - homePresence, on a room's home, holds the authoritative member set:
//     for each user, the connection count every node reported. A user
//     joins when the sum goes from 0 to more and leaves when it returns
//     to 0; changes are coalesced per event interval (a join and a leave
//     within one interval cancel out) and a dead node's counts are
//     dropped at once (its failure was detected by the mesh already).

// presenceKey names a user in a room.
type presenceKey struct{ room, user string }

// graceEntry is a dropped connection that still counts until deadline.
type graceEntry struct {
	key      presenceKey
	deadline time.Time
}

// localPresence counts this node's connections per room and user.
// The zero value is not usable; see newLocalPresence.
type localPresence struct {
	grace time.Duration
	conns map[presenceKey]int // live connections plus those in grace
	// graced is the FIFO of dropped connections, in deadline order (the
	// grace period is fixed and the clock only moves forward).
	graced []graceEntry
	// reclaimed counts, per key, graced entries a reconnect took over:
	// they expire without decrementing, because the new connection
	// replaced the dropped one in conns.
	reclaimed map[presenceKey]int
	// pendingGrace counts, per key, graced entries not yet expired nor
	// reclaimed.
	pendingGrace map[presenceKey]int
}

func newLocalPresence(grace time.Duration) *localPresence {
	return &localPresence{
		grace:        grace,
		conns:        make(map[presenceKey]int),
		reclaimed:    make(map[presenceKey]int),
		pendingGrace: make(map[presenceKey]int),
	}
}

// enter counts a new connection of k and reports whether the count
// changed: a connection that reconnects while one of k's is in grace
// takes that one's place.
func (p *localPresence) enter(k presenceKey) (changed bool) {
	if n := p.pendingGrace[k]; n > 0 {
		if n == 1 {
			delete(p.pendingGrace, k)
		} else {
			p.pendingGrace[k] = n - 1
		}
		p.reclaimed[k]++
		return false
	}
	p.conns[k]++
	return true
}

// exit ends a connection of k at now. A graceful exit (the client closed,
// or unsubscribed) counts down at once and reports true; a drop keeps
// counting until now+grace (see expire) and reports false.
func (p *localPresence) exit(k presenceKey, now time.Time, graceful bool) (changed bool) {
	if p.conns[k] == 0 {
		return false
	}
	if !graceful && p.grace > 0 {
		p.graced = append(p.graced, graceEntry{key: k, deadline: now.Add(p.grace)})
		p.pendingGrace[k]++
		return false
	}
	p.decrement(k)
	return true
}

func (p *localPresence) decrement(k presenceKey) {
	if n := p.conns[k] - 1; n > 0 {
		p.conns[k] = n
	} else {
		delete(p.conns, k)
	}
}

// expire counts down the graced connections whose deadline is at or
// before now, and appends the keys whose count changed to changed.
func (p *localPresence) expire(now time.Time, changed []presenceKey) []presenceKey {
	n := 0
	for ; n < len(p.graced) && !p.graced[n].deadline.After(now); n++ {
		k := p.graced[n].key
		if p.reclaimed[k] > 0 {
			if p.reclaimed[k]--; p.reclaimed[k] == 0 {
				delete(p.reclaimed, k)
			}
			continue
		}
		if p.pendingGrace[k]--; p.pendingGrace[k] <= 0 {
			delete(p.pendingGrace, k)
		}
		p.decrement(k)
		changed = append(changed, k)
	}
	if n > 0 {
		clear(p.graced[:n])
		p.graced = p.graced[n:]
		if len(p.graced) == 0 {
			p.graced = nil
		}
	}
	return changed
}

// count returns k's connections on this node (graced ones included).
func (p *localPresence) count(k presenceKey) int { return p.conns[k] }

// countsOf returns, for each of rooms that has connections here, the
// (user, count) of every user with connections in it, in one pass over
// this node's connections.
func (p *localPresence) countsOf(rooms map[string]struct{}) map[string][]userCount {
	out := make(map[string][]userCount, len(rooms))
	for k, n := range p.conns {
		if _, ok := rooms[k.room]; ok {
			out[k.room] = append(out[k.room], userCount{user: k.user, conns: n})
		}
	}
	return out
}

// userCount is a user's connection count, as reported to a home.
type userCount struct {
	user  string
	conns int
}

// Member is one user present in a room with the number of their
// connections over the whole mesh.
type Member struct {
	User  string
	Conns int
}

// PresenceChange is a join (Joined) or leave of a user in a room.
type PresenceChange struct {
	User   string
	Joined bool
}

// homePresence is the authoritative member set of the rooms homed here.
type homePresence struct {
	rooms map[string]*homeRoom
}

// homeRoom is one room's members.
type homeRoom struct {
	users map[string]*homeUser
	// dirty lists the users whose presence may differ from what was
	// last announced.
	dirty map[string]struct{}
}

// homeUser is one user's connections in a room, counted per node.
// Nearly every user is connected through one node, so the first node's
// count is kept inline and a map is made only when another node has
// connections of the same user too: a home holds one homeUser per member
// of each of its rooms, and the map was most of its size.
type homeUser struct {
	node      mesh.NodeID         // the node of the inline count, when conns > 0
	conns     int                 // node's connections
	others    map[mesh.NodeID]int // every other node's (> 0); nil until needed
	total     int
	announced bool // the last flushed change was a join
}

// count returns node's connections of the user.
func (u *homeUser) count(node mesh.NodeID) int {
	if u.conns > 0 && node == u.node {
		return u.conns
	}
	return u.others[node]
}

// setCount sets node's connections of the user to n (n <= 0 removes them).
func (u *homeUser) setCount(node mesh.NodeID, n int) {
	n = max(n, 0)
	u.total += n - u.count(node)
	switch {
	case u.conns > 0 && node == u.node:
		u.conns = n
	case u.conns > 0 || u.others[node] > 0:
		if n == 0 {
			delete(u.others, node)
			return
		}
		if u.others == nil {
			u.others = make(map[mesh.NodeID]int, 1)
		}
		u.others[node] = n
	default:
		u.node, u.conns = node, n
	}
}

// appendNodes appends the nodes with connections of the user that dst
// does not list yet.
func (u *homeUser) appendNodes(dst []mesh.NodeID) []mesh.NodeID {
	if u.conns > 0 && !slices.Contains(dst, u.node) {
		dst = append(dst, u.node)
	}
	for n := range u.others {
		if !slices.Contains(dst, n) {
			dst = append(dst, n)
		}
	}
	return dst
}

func newHomePresence() *homePresence {
	return &homePresence{rooms: make(map[string]*homeRoom)}
}

// set records that node has conns connections of user in room.
func (h *homePresence) set(room, user string, node mesh.NodeID, conns int) {
	hr := h.rooms[room]
	if hr == nil {
		if conns <= 0 {
			return
		}
		hr = &homeRoom{users: make(map[string]*homeUser), dirty: make(map[string]struct{})}
		h.rooms[room] = hr
	}
	u := hr.users[user]
	if u == nil {
		if conns <= 0 {
			return
		}
		u = &homeUser{}
		hr.users[user] = u
	}
	u.setCount(node, conns)
	hr.dirty[user] = struct{}{}
}

// replaceNode sets node's counts in room to exactly counts: users it no
// longer lists drop to 0 (a node's full report after a home change).
func (h *homePresence) replaceNode(room string, node mesh.NodeID, counts []userCount) {
	if hr := h.rooms[room]; hr != nil {
		for user, u := range hr.users {
			if u.count(node) > 0 {
				h.set(room, user, node, 0)
			}
		}
	}
	for _, c := range counts {
		h.set(room, c.user, node, c.conns)
	}
}

// dropNode removes every count of node (it left the mesh).
func (h *homePresence) dropNode(node mesh.NodeID) {
	for room, hr := range h.rooms {
		for user, u := range hr.users {
			if u.count(node) > 0 {
				h.set(room, user, node, 0)
			}
		}
	}
}

// dropRoom forgets room (it is no longer homed here): its new home
// learns the members again from the nodes' reports.
func (h *homePresence) dropRoom(room string) { delete(h.rooms, room) }

// flush returns the changes of room since the last flush, at most limit
// (the rest stay for the next one), joins and leaves in user order.
// A user who joined and left in between shows no change.
func (h *homePresence) flush(room string, limit int) []PresenceChange {
	hr := h.rooms[room]
	if hr == nil || len(hr.dirty) == 0 {
		return nil
	}
	users := make([]string, 0, len(hr.dirty))
	for u := range hr.dirty {
		users = append(users, u)
	}
	slices.Sort(users)
	var out []PresenceChange
	for _, name := range users {
		if len(out) >= limit {
			break
		}
		delete(hr.dirty, name)
		u := hr.users[name]
		present := u != nil && u.total > 0
		if u != nil && present != u.announced {
			out = append(out, PresenceChange{User: name, Joined: present})
			u.announced = present
		}
		if u != nil && !present {
			delete(hr.users, name)
		}
	}
	if len(hr.users) == 0 && len(hr.dirty) == 0 {
		delete(h.rooms, room)
	}
	return out
}

// dirtyRooms appends the rooms with changes to flush.
func (h *homePresence) dirtyRooms(dst []string) []string {
	for room, hr := range h.rooms {
		if len(hr.dirty) > 0 {
			dst = append(dst, room)
		}
	}
	return dst
}

// members returns room's present users (total > 0), by user name.
func (h *homePresence) members(room string) []Member {
	hr := h.rooms[room]
	out := []Member{}
	if hr == nil {
		return out
	}
	for name, u := range hr.users {
		if u.total > 0 {
			out = append(out, Member{User: name, Conns: u.total})
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.User, b.User) })
	return out
}

// nodes appends the nodes with connections in room: where its events go.
func (h *homePresence) nodes(room string, dst []mesh.NodeID) []mesh.NodeID {
	hr := h.rooms[room]
	if hr == nil {
		return dst
	}
	for _, u := range hr.users {
		dst = u.appendNodes(dst)
	}
	return dst
}
