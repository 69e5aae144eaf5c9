package router

import (
	"fmt"

	"github.com/arena-mesh/arena/mesh"
)

// MembersChanged adopts a new member list (the mesh OnChange, through
// MeshHooks). Only rooms whose home changed are touched:
//
//   - a room homed here that now belongs to another node leaves memory
//     (and the dormant set): its subscribers pull what they have, then get
//     ErrRoomRestarted and resume through the new home. If the room comes
//     back here later it starts a new epoch, since this node cannot know
//     what the other home sequenced meanwhile;
//   - a replica whose home changed (the home died, or another node won
//     the room) ends the same way; the subscribers' resume registers
//     interest at the new home, which starts the room with a new epoch
//     (its log was not handed over), so Since there gives Reset;
//   - interest of peers that are gone is dropped, calls waiting for them
//     fail with ErrUnavailable, and their fan-out queues stop.
//
// Planned handoff (keeping the epoch when a node leaves or joins) is not
// done yet.
func (r *Router) MembersChanged(ms []mesh.Member) {
	if r.mesh == nil || r.closed.Load() {
		return
	}
	nv := newView(ms)
	r.view.Store(nv)
	gone := func(id mesh.NodeID) bool { return !nv.live[id] }

	var moved []*room
	var reps []*replica
	r.mu.Lock()
	dropped := 0
	for name, rm := range r.active {
		if !r.isHome(name) {
			delete(r.active, name)
			moved = append(moved, rm)
		}
	}
	for name := range r.dormant {
		if !r.isHome(name) {
			delete(r.dormant, name)
			dropped++
		}
	}
	for name, rep := range r.replicas {
		if r.homeOf(name) != rep.home {
			delete(r.replicas, name)
			reps = append(reps, rep)
		}
	}
	homed := make([]*room, 0, len(r.active))
	for _, rm := range r.active {
		homed = append(homed, rm)
	}
	r.metrics.rooms.Set(float64(len(r.active)))
	r.mu.Unlock()

	for _, rm := range moved {
		rm.end()
	}
	for _, rep := range reps {
		rep.end()
	}
	for _, rm := range homed {
		rm.subsMu.Lock()
		for p := range rm.interest {
			if gone(p) {
				delete(rm.interest, p)
			}
		}
		rm.subsMu.Unlock()
	}
	r.calls.failPeers(gone, fmt.Errorf("%w: the room's home left the mesh", ErrUnavailable))
	r.dropSenders(gone)
	r.logger.Info().Int("members", len(ms)).Int("rooms_moved", len(moved)+dropped).Int("replicas_ended", len(reps)).Msg("membership changed")
}
