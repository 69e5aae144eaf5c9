package router

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arena-mesh/arena/mesh"
)

// replica mirrors a room homed on another node while local clients
// subscribe to it, or while nodes of this region take it from here (this
// node is the region's relay for the room): its feed (the home, or the
// region's relay, see Router.sourceOf) pushes every written message
// (interest), the replica appends them to a local room's ring in seq
// order, so Subscription and Pull work as for a home room, and the ring's
// written pushes them on to the room's own interested peers. Gaps (a
// frame lost with a connection, or dropped by a full fan-out queue) are
// detected by seq and filled by fetching from the home.
type replica struct {
	name string
	// home, feed and token change when the interest moves (a planned
	// move of the room, or its feed changed, see moveInterest); read
	// them with homeID and feedID. Fetches go to home, the interest to
	// feed, and only feed's pushes are taken.
	home  atomic.Pointer[mesh.NodeID]
	feed  atomic.Pointer[mesh.NodeID]
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

// newReplica returns a replica of room name homed on home and fed by
// feed, not registered yet.
func (r *Router) newReplica(name string, home, feed mesh.NodeID) *replica {
	rep := &replica{name: name, ready: make(chan struct{})}
	rep.home.Store(&home)
	rep.feed.Store(&feed)
	rep.token.Store(r.nextReq.Add(1))
	return rep
}

// homeID returns the room's home, which fetches go to.
func (rep *replica) homeID() mesh.NodeID { return *rep.home.Load() }

// feedID returns the node the interest is registered at, whose pushes
// the replica takes: the home, or the relay of this node's region.
func (rep *replica) feedID() mesh.NodeID { return *rep.feed.Load() }

// established returns the replica's room once its interest was first
// answered, else nil.
func (rep *replica) established() *room {
	select {
	case <-rep.ready:
		return rep.rm
	default:
		return nil
	}
}

// replicaFor returns the replica of room name, registering interest at
// its feed if there is none yet. Home and feed are read under r.mu, so
// that a view change (applyViewLocked) sees every replica created with
// an older view. It returns errNotHome when this node is the home.
func (r *Router) replicaFor(ctx context.Context, name string) (*replica, error) {
	for {
		if r.closed.Load() {
			return nil, ErrClosed
		}
		r.mu.Lock()
		rep := r.replicas[name]
		if rep != nil {
			if rm := rep.established(); rm != nil && rm.evicted.Load() {
				delete(r.replicas, name) // on its way out; start anew
				rep = nil
			}
		}
		if rep == nil {
			home, feed := r.sourceOf(name)
			if home == "" {
				r.mu.Unlock()
				return nil, errNotHome
			}
			rep = r.newReplica(name, home, feed)
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
			if rep.isEnded() {
				continue // a view change ended it: start anew
			}
			return nil, rep.err
		}
		if rep.rm.evicted.Load() {
			continue
		}
		return rep, nil
	}
}

// registerReplica asks rep's feed for interest and sets up rep's room at
// the feed's head. A feed that does not take the interest (its view of
// the members lags, or it is busy) is asked again, up to PeerTimeout; a
// relay that still does not is given up for the home itself (the replica
// moves to its relay at the next membership change).
func (r *Router) registerReplica(rep *replica) {
	home, feed, token := rep.homeID(), rep.feedID(), rep.token.Load()
	frame := appendInterest(nil, peerInterest, rep.name, 0, token)
	deadline := time.Now().Add(r.cfg.PeerTimeout)
	var res callResult
	var err error
	for {
		res, err = r.call(r.ctx, feed, rep.name, token, frame)
		if err == nil {
			err = codeError(feed, res.f.Code)
		}
		if err == nil || rep.isEnded() || r.ctx.Err() != nil {
			break
		}
		if r.waitUntil(r.ctx, nil, deadline) == nil {
			continue
		}
		if feed == home {
			break
		}
		r.logger.Debug().Err(err).Str("room", rep.name).Str("peer", string(feed)).Msg("relay did not take the interest; taking the room from its home")
		feed, deadline = home, time.Now().Add(r.cfg.PeerTimeout)
		rep.feed.Store(&home)
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
		// Ended while registering (a view change): drop the interest
		// the feed just took, and tell whoever registered here meanwhile.
		r.enqueueLive(feed, rep.name, appendInterest(nil, peerDrop, rep.name, rm.epoch, token))
		rep.endRoom(rm, false)
		return
	}
	if start {
		r.spawn(func() { r.repair(rep) })
	}
	r.settleFeed(rep, token)
	r.logger.Debug().Str("room", rep.name).Str("peer", string(feed)).Uint64("epoch", rm.epoch).Msg("interest registered")
}

// isEnded reports whether rep ended.
func (rep *replica) isEnded() bool {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	return rep.ended
}

// receiveMsg applies a message pushed by a room's home or relay.
func (r *Router) receiveMsg(from mesh.NodeID, f *peerFrame) {
	r.mu.RLock()
	rep := r.replicas[string(f.Room)]
	r.mu.RUnlock()
	if rep == nil || rep.feedID() != from {
		// No longer interested, or not from the feed we know: the
		// sender holds an interest of ours that should be gone. A drop
		// can lose a race with its registration (which the sender serves
		// asynchronously), and a stale interest would double the
		// region's fan-out for as long as the room lives, so every
		// unexpected push is answered with a drop of whatever interest we
		// have there (token 0). If we register there again, that frame
		// follows this one on the room's ordered lane.
		r.enqueueLive(from, string(f.Room), appendInterest(nil, peerDrop, string(f.Room), f.Epoch, 0))
		return
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
		rep.endRoom(rm, moved)
	}
}

// endRoom ends rm, rep's room, and tells the peers that took the room
// from this node (it was their region's relay) that their interest
// ended: they register again, at this node or at their new feed, and
// continue the stream if its epoch goes on.
func (rep *replica) endRoom(rm *room, moved bool) {
	for peer, token := range rm.end(moved) {
		rm.r.enqueueLive(peer, rep.name, appendInterest(nil, peerEnded, rep.name, rm.epoch, token))
	}
}

// enqueueLive is enqueue for a peer that is live in the current view (a
// frame for a gone peer would start a sender that nobody stops).
func (r *Router) enqueueLive(peer mesh.NodeID, key string, frame []byte) {
	if r.isMember(peer) {
		r.enqueue(peer, key, frame)
	}
}

// serveEnded: the relay this node's replica takes the room from ended
// the interest (its own mirror of the room ended). The interest is
// registered again, at the feed of the current view; the stream goes on
// if the room's epoch does.
func (r *Router) serveEnded(from mesh.NodeID, f *peerFrame) {
	r.mu.RLock()
	rep := r.replicas[string(f.Room)]
	r.mu.RUnlock()
	if rep == nil || rep.feedID() != from || rep.token.Load() != f.Req {
		return // not ours any more
	}
	if home, feed := r.sourceOf(rep.name); home != "" {
		r.moveInterest(rep, home, feed, f.Req)
	}
}

// moveInterest points rep at home and feed and registers its interest
// there with a new token (see rehome), unless rep ended, is not
// established yet, or (expect != 0) its token is no longer expect. It
// reports whether it did.
func (r *Router) moveInterest(rep *replica, home, feed mesh.NodeID, expect uint64) bool {
	rep.mu.Lock()
	if rep.ended || rep.rm == nil || expect != 0 && rep.token.Load() != expect {
		rep.mu.Unlock()
		return false
	}
	oldFeed, oldToken := rep.feedID(), rep.token.Load()
	token := r.nextReq.Add(1)
	// Before asking, so that the new feed's pushes are taken.
	rep.home.Store(&home)
	rep.feed.Store(&feed)
	rep.token.Store(token)
	rep.mu.Unlock()
	if oldFeed != feed {
		r.enqueueLive(oldFeed, rep.name, appendInterest(nil, peerDrop, rep.name, rep.rm.epoch, oldToken))
	}
	return r.spawn(func() { r.rehome(rep, feed, token) })
}

// dropReplica is called when rm, a replica, lost its last subscriber and
// its last interested peer: the replica leaves the map and the interest
// at its feed is dropped.
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
	r.enqueueLive(rep.feedID(), rep.name, appendInterest(nil, peerDrop, rep.name, rm.epoch, rep.token.Load()))
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
