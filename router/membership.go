package router

import (
	"fmt"

	"github.com/arena-mesh/arena/mesh"
)

// MembersChanged adopts a new member list (the mesh OnChange, through
// MeshHooks). Only rooms whose home changed are touched:
//
//   - a room held here (in memory or dormant) that a live node now wins
//     is handed over to it, keeping its epoch (see Handoff for what moves);
//     its local subscribers pull what they have, then get ErrRoomMoved and
//     resume (without Reset) through the new home. Publishes to it wait
//     for the handoff, then go to the new home;
//   - to every member that appeared, this node then says it handed over
//     all it owed it (the handedOver frame). Rooms this node now wins from
//     a live member wait for that member's handoff (or its handedOver, or
//     its departure) before they load or start: only a room whose previous
//     home is gone starts a new epoch;
//   - a replica whose home moved to a live node in a planned move, or
//     whose feed changed (its region's relay for the room came, went or
//     leaves), re-registers its interest at its new feed and continues
//     the same stream (gaps fetched from the home); one whose home died
//     ends (its subscribers get ErrRoomRestarted and resume, with
//     Reset), and so does a relay's, whose peers are told (ended);
//   - interest of peers that are gone is dropped, calls waiting for them
//     fail with ErrUnavailable, and their fan-out queues stop.
//
// ms is only a notice: the router applies the mesh's membership as it is
// now. The mesh computes a list before it calls OnChange, so a list can
// arrive after a newer view was already applied (New reads Members while
// the first callback is on its way); applying it would roll the view back,
// and a joining node would for a moment think itself alone, drop the
// handoffs it waits for and start rooms anew that live elsewhere.
func (r *Router) MembersChanged(ms []mesh.Member) {
	if r.mesh == nil || r.closed.Load() {
		return
	}
	r.viewMu.Lock()
	joined := r.mesh.HasJoined() // before Members: see settleIfJoined
	ms = r.mesh.Members()
	old := r.view.Load()
	if sameMembership(old.members, ms) {
		// Only loads changed (every node gossips its load every few
		// seconds): the member list is refreshed for /v1/edges and
		// reconnect hints, and nothing moves. Going the whole way would
		// re-report every room's presence in full each time.
		r.view.Store(newView(ms, r.self, r.leaving))
		r.viewMu.Unlock()
		r.settleIfJoined(joined)
		return
	}
	r.metrics.viewChanges.Inc()
	present := make(map[mesh.NodeID]bool, len(ms))
	for _, m := range ms {
		present[m.ID] = true
	}
	for id := range r.leaving {
		if id != r.self && !present[id] {
			delete(r.leaving, id)
		}
	}
	var appeared []mesh.NodeID
	for _, m := range ms {
		if m.ID != r.self && !old.live[m.ID] {
			appeared = append(appeared, m.ID)
			r.expect.open(m.ID) // before the view that may make its rooms ours
		}
	}
	for id := range old.live {
		if !present[id] {
			r.expect.close(id) // gone: what it did not hand over starts anew
		}
	}
	nv := newView(ms, r.self, r.leaving)
	ch := r.applyViewLocked(old, nv)
	r.viewMu.Unlock()
	r.settleIfJoined(joined)

	gone := func(id mesh.NodeID) bool { return !nv.live[id] }
	r.calls.failPeers(gone, fmt.Errorf("%w: the room's home left the mesh", ErrUnavailable))
	r.dropSenders(gone)
	r.presenceViewChanged() // presence_remote.go
	if len(ch.moved) > 0 || len(appeared) > 0 {
		r.spawn(func() { r.handOverThenGreet(r.ctx, ch.moved, appeared) })
	}
	r.logger.Info().Int("members", len(ms)).Int("rooms_moved", len(ch.moved)+ch.dropped).Int("replicas_ended", ch.ended).Int("replicas_rehomed", ch.rehomed).Msg("membership changed")
}

// viewChange is what applyViewLocked found to do.
type viewChange struct {
	moved          []movedRoom // rooms to hand over, frozen
	dropped        int         // recovered dormant rooms dropped
	ended, rehomed int         // replicas
}

// applyViewLocked installs nv and moves what it moves: home rooms that
// are no longer homed here are taken out of the maps and frozen (the
// caller hands them over), replicas are re-registered or ended, interest
// of gone peers is dropped. The caller holds r.viewMu.
func (r *Router) applyViewLocked(old, nv *view) viewChange {
	r.view.Store(nv)
	var ch viewChange
	var ended []*replica
	type rehoming struct {
		rep      *replica
		to, feed mesh.NodeID
	}
	var rehome []rehoming
	var relayed []*room // replicas that may have interested peers
	r.mu.Lock()
	for name, rm := range r.active {
		if to := r.homeOf(name); to != "" {
			delete(r.active, name)
			ch.moved = append(ch.moved, movedRoom{name: name, to: to, rm: rm})
		}
	}
	for name, d := range r.dormant {
		to := r.homeOf(name)
		if to == "" {
			continue
		}
		delete(r.dormant, name)
		if d.recovered {
			ch.dropped++
			continue
		}
		ch.moved = append(ch.moved, movedRoom{name: name, to: to, d: d})
	}
	for name, rep := range r.replicas {
		from := rep.homeID()
		to, feed := r.sourceOf(name)
		rm := rep.established()
		if to == from && feed == rep.feedID() {
			if rm != nil {
				relayed = append(relayed, rm)
			}
			continue
		}
		if to != "" && nv.live[from] && rm != nil {
			// A planned move (the home hands the room over), or
			// another relay: follow it.
			rehome = append(rehome, rehoming{rep, to, feed})
			relayed = append(relayed, rm)
			continue
		}
		delete(r.replicas, name)
		ended = append(ended, rep)
	}
	homed := make([]*room, 0, len(r.active))
	for _, rm := range r.active {
		homed = append(homed, rm)
	}
	r.metrics.rooms.Set(float64(len(r.active)))
	r.mu.Unlock()

	for _, mv := range ch.moved {
		if mv.rm != nil {
			mv.rm.freeze()
		}
	}
	for _, rep := range ended {
		// Its home died (or this node won the room): the epoch may not
		// survive; subscribers resume and are reset if it did not.
		rep.end(nv.live[rep.homeID()])
	}
	for _, rh := range rehome {
		if r.moveInterest(rh.rep, rh.to, rh.feed, 0) {
			ch.rehomed++
		}
	}
	ch.ended = len(ended)
	gone := func(p mesh.NodeID) bool { return !nv.live[p] }
	for _, rm := range homed {
		rm.dropInterestOf(gone)
	}
	for _, rm := range relayed {
		if rm.dropInterestOf(gone) {
			r.dropReplica(rm)
		}
	}
	return ch
}

// dropInterestOf ends the interest of the peers for which gone is true
// and reports whether the room, a replica, is then unused (marked
// evicted: the caller drops it).
func (rm *room) dropInterestOf(gone func(mesh.NodeID) bool) (emptied bool) {
	rm.subsMu.Lock()
	defer rm.subsMu.Unlock()
	n := len(rm.interest)
	for p := range rm.interest {
		if gone(p) {
			delete(rm.interest, p)
		}
	}
	return len(rm.interest) < n && rm.evictUnusedLocked()
}

// sameMembership reports whether a and b (both sorted, as the mesh lists
// members) name the same nodes in the same regions at the same addresses
// and states: whether they differ in loads at most.
func sameMembership(a, b []mesh.Member) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		x.Load, y.Load = 0, 0
		if x != y {
			return false
		}
	}
	return true
}
