package router

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arena-mesh/arena/mesh"
)

// replica mirrors a room homed on another node while local clients
// subscribe to it: the home pushes every written message (interest), the
// replica appends them to a local room's ring in seq order, so
// Subscription and Pull work as for a home room. Gaps (a frame lost with a
// connection, or dropped by a full fan-out queue) are detected by seq and
// filled by fetching from the home.
type replica struct {
	name string
	// home and token change when a planned move re-registers the
	// interest at the room's new home (rehome); read them with homeID
	// and tokenID.
	home  atomic.Pointer[mesh.NodeID]
	token atomic.Uint64 // the interest's token (and its request id)
	ready chan struct{} // closed once rm or err is set

	rm  *room // set before ready is closed, on success
	err error // set before ready is closed, on failure

	mu        sync.Mutex // guards early, pending, highest, repairing, ended; serializes appends to rm's ring
	early     []*Message // pushed before the interest was answered
	pending   map[uint64]*Message
	highest   uint64 // highest seq pushed
	repairing bool   // a repair goroutine runs
	ended     bool
}

// newReplica returns a replica of room name homed on home, not registered yet.
func (r *Router) newReplica(name string, home mesh.NodeID) *replica {
	rep := &replica{name: name, ready: make(chan struct{})}
	rep.home.Store(&home)
	rep.token.Store(r.nextReq.Add(1))
	return rep
}

// homeID returns the node the replica mirrors.
func (rep *replica) homeID() mesh.NodeID { return *rep.home.Load() }

// replicaFor returns the replica of room name homed on home, registering
// interest at home if there is none yet.
func (r *Router) replicaFor(ctx context.Context, name string, home mesh.NodeID) (*replica, error) {
	for {
		if r.closed.Load() {
			return nil, ErrClosed
		}
		r.mu.Lock()
		rep := r.replicas[name]
		if rep != nil && (rep.homeID() != home || rep.rm != nil && rep.rm.evicted.Load()) {
			delete(r.replicas, name) // on its way out; start anew
			rep = nil
		}
		if rep == nil {
			rep = r.newReplica(name, home)
			r.replicas[name] = rep
			r.mu.Unlock()
			// Not with ctx: other subscribers may wait for this registration.
			r.registerReplica(rep)
		} else {
			r.mu.Unlock()
		}
		select {
		case <-rep.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if rep.err != nil {
			return nil, rep.err
		}
		if rep.rm.evicted.Load() {
			continue
		}
		return rep, nil
	}
}

// registerReplica asks rep's home for interest and sets up rep's room at the
// home's head.
func (r *Router) registerReplica(rep *replica) {
	home, token := rep.homeID(), rep.token.Load()
	frame := appendInterest(nil, peerInterest, rep.name, 0, token)
	res, err := r.call(r.ctx, home, rep.name, token, frame)
	if err == nil {
		err = codeError(home, res.f.Code)
	}
	if err != nil {
		rep.err = err
		close(rep.ready)
		r.mu.Lock()
		if r.replicas[rep.name] == rep {
			delete(r.replicas, rep.name)
		}
		r.mu.Unlock()
		return
	}
	rm := newRoom(r, rep.name, res.f.Epoch, res.f.Seq, time.Time{})
	rm.rep = rep
	rep.mu.Lock()
	rep.rm = rm
	ended := rep.ended
	start := false
	for _, m := range rep.early {
		start = rep.applyLocked(m) || start
	}
	rep.early = nil
	rep.mu.Unlock()
	close(rep.ready)
	if ended {
		rm.end(false)
	}
	if start {
		r.spawn(func() { r.repair(rep) })
	}
	r.logger.Debug().Str("room", rep.name).Str("peer", string(home)).Uint64("epoch", rm.epoch).Msg("interest registered")
}

// receiveMsg applies a message pushed by a room's home.
func (r *Router) receiveMsg(from mesh.NodeID, f *peerFrame) {
	r.mu.RLock()
	rep := r.replicas[string(f.Room)]
	r.mu.RUnlock()
	if rep == nil || rep.homeID() != from {
		return // no longer interested, or not from the home we know
	}
	m := &Message{
		Room: rep.name, Epoch: f.Epoch, Seq: f.Msg.Seq, TS: f.Msg.TS,
		From: string(f.Msg.From), Key: string(f.Msg.Key), Data: f.Msg.Data,
	}
	rep.mu.Lock()
	if rep.rm == nil {
		if len(rep.early) < r.cfg.RingSize {
			rep.early = append(rep.early, m)
		}
		rep.mu.Unlock()
		return
	}
	if m.Epoch > rep.rm.epoch {
		// The home restarted the room (its log was lost): this epoch is over.
		rep.mu.Unlock()
		r.restartReplica(rep)
		return
	}
	start := rep.applyLocked(m)
	rep.mu.Unlock()
	if start {
		r.spawn(func() { r.repair(rep) })
	}
}

// applyLocked appends m to the ring if it is the next seq (then any pending
// successors too), keeps it pending if it is ahead, and ignores it if
// stale. It reports whether a repair should start. rep.mu is held.
func (rep *replica) applyLocked(m *Message) (startRepair bool) {
	rm := rep.rm
	if rep.ended || m.Epoch != rm.epoch {
		return false // another epoch: stale (older) or handled by the caller
	}
	head := rm.ring.Head()
	switch {
	case m.Seq <= head:
		return false // already have it
	case m.Seq == head+1:
		rm.written(m)
		for next := rm.ring.Head() + 1; ; next++ {
			p := rep.pending[next]
			if p == nil {
				break
			}
			delete(rep.pending, next)
			rm.written(p)
		}
	default:
		if rep.pending == nil {
			rep.pending = make(map[uint64]*Message)
		}
		if len(rep.pending) < rm.r.cfg.RingSize {
			rep.pending[m.Seq] = m
		}
	}
	rep.highest = max(rep.highest, m.Seq)
	if rep.highest > rm.ring.Head() && !rep.repairing {
		rep.repairing = true
		return true
	}
	return false
}

// repair fetches the messages missing between the ring's head and the
// highest seq pushed, until there is no gap.
func (r *Router) repair(rep *replica) {
	for {
		rep.mu.Lock()
		rm := rep.rm
		head, target := rm.ring.Head(), rep.highest
		if rep.ended || head >= target {
			rep.repairing = false
			rep.mu.Unlock()
			return
		}
		rep.mu.Unlock()
		r.metrics.repairs.Inc()
		res, err := r.fetch(r.ctx, rep.homeID(), rep.name, rm.epoch, fetchAfter, head, int(min(target-head, maxFetchMsgs)))
		if err == nil && res.f.Code == codeOK && len(res.msgs) > 0 {
			rep.mu.Lock()
			for _, m := range res.msgs {
				rep.applyLocked(m)
			}
			advanced := rm.ring.Head() > head
			rep.mu.Unlock()
			if advanced {
				continue
			}
		}
		rep.mu.Lock()
		rep.repairing = false
		rep.mu.Unlock()
		if r.ctx.Err() != nil {
			return
		}
		// The home lost the epoch or the messages (retention), or cannot
		// be reached: this replica cannot be made whole. Its subscribers
		// resume, which resets them if need be.
		r.logger.Warn().Err(err).Str("room", rep.name).Uint64("epoch", rm.epoch).Uint64("seq", head+1).Msg("replica gap not repaired")
		r.restartReplica(rep)
		return
	}
}

// restartReplica ends rep: it leaves the router's map and its subscribers
// get ErrRoomRestarted once they pulled what it has.
func (r *Router) restartReplica(rep *replica) {
	r.mu.Lock()
	if r.replicas[rep.name] == rep {
		delete(r.replicas, rep.name)
	}
	r.mu.Unlock()
	rep.end(false)
}

// end marks rep ended and ends its room (moved: see room.end).
func (rep *replica) end(moved bool) {
	rep.mu.Lock()
	rep.ended = true
	rep.pending, rep.early = nil, nil
	rm := rep.rm
	rep.mu.Unlock()
	if rm != nil {
		rm.end(moved)
	}
}

// dropReplica is called when rm, a replica, lost its last subscriber: the
// replica leaves the map and the interest at the home is dropped.
func (r *Router) dropReplica(rm *room) {
	rep := rm.rep
	r.mu.Lock()
	if r.replicas[rep.name] == rep {
		delete(r.replicas, rep.name)
	}
	r.mu.Unlock()
	rep.mu.Lock()
	rep.ended = true
	rep.pending = nil
	rep.mu.Unlock()
	r.enqueue(rep.homeID(), rep.name, appendInterest(nil, peerDrop, rep.name, rm.epoch, rep.token.Load()))
}

// fetch asks home for messages of room (see the fetch frame).
func (r *Router) fetch(ctx context.Context, home mesh.NodeID, room string, epoch uint64, mode byte, seq uint64, limit int) (callResult, error) {
	req := r.nextReq.Add(1)
	res, err := r.call(ctx, home, room, req, appendFetch(nil, room, epoch, req, mode, seq, uint64(limit)))
	if err != nil {
		return res, err
	}
	if res.f.Code != codeOK && res.f.Code != codeEpoch {
		return res, codeError(home, res.f.Code)
	}
	return res, nil
}
