package router

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arena-mesh/arena/mesh"
	"github.com/arena-mesh/arena/wal"
)

// room is one room homed on this node: its sequencer, ring and subscribers.
//
// Lock order: Router.mu, then room.mu, then room.subsMu, then ring.mu.
// The wal callbacks (written, durable) run on the wal's goroutine and take
// only ring.mu, subsMu (read) and pendMu, never room.mu: a publisher may hold
// room.mu while blocked in wal.Append waiting for the committer.
type room struct {
	name  string
	epoch uint64 // fixed for the room's life in memory
	r     *Router

	mu  sync.Mutex // guards seq, moving; held across wal.Append so that enqueue order is seq order
	seq *sequencer
	// moving is set once the room is being handed to its new home: no
	// publish is sequenced here any more; it is closed when the handoff
	// ended, and the waiting publishers go to the new home.
	moving chan struct{}

	// evicted is set (under mu and subsMu) when the room leaves memory;
	// whoever finds it set looks the room up again.
	evicted atomic.Bool
	// lastActive is the Now of the last publish or unsubscribe, in Unix ns.
	lastActive atomic.Int64
	// inflight counts publishes handed to the wal whose durable callback has
	// not run yet; a room with some is never evicted.
	inflight atomic.Int64

	// needKeys: the room was recovered from the wal and has not relearnt
	// its keys yet (loadKeysLocked). copiedEpoch is the epoch a hot
	// restart copied into this one, 0 if none. Guarded by mu.
	needKeys    bool
	copiedEpoch uint64

	pendMu  sync.Mutex // guards pending, indexing; never held while blocking (wal callbacks take it)
	pending map[string]*publication
	// indexing holds the keys evicted from memory whose wal index entries
	// are not written yet (see dedup.go).
	indexing map[string]origin

	ring *ring

	// marked: the room's hot mark is queued (wal.MarkHot) and no cold
	// mark since; guarded by mu. See hot.go.
	marked bool

	gateMu sync.Mutex // guards fast, hotGen, undelivered; taken by the wal callbacks, never while blocking
	// fast: the hot mark is durable, so applied messages are delivered
	// at once instead of after their fsync.
	fast bool
	// hotGen counts hot and cold marks, so that a hot mark's late
	// callback does not open a room marked cold since.
	hotGen uint64
	// undelivered are the messages applied to the wal and not delivered
	// yet, in seq order.
	undelivered []*Message

	subsMu sync.RWMutex // guards subs, each Subscription.idx, interest
	subs   []*Subscription
	// interest lists the peers this room pushes its messages to, each
	// with the token of its interest frame: for a home room, the
	// interested nodes of its region and the relays of other regions;
	// for a replica on its region's relay, the other interested nodes
	// of the region.
	interest map[mesh.NodeID]uint64

	// rep is set for a replica: a room homed on another node, mirrored
	// here for local subscribers. nil for a room homed here.
	rep *replica
	// ended is set once this room object's epoch is over on this node
	// (the room moved to another home, or its home restarted it): Pull
	// returns ErrRoomRestarted once a subscription has pulled the rest.
	ended atomic.Bool
	// moved is set with ended when the room moved to another home in the
	// same epoch (a planned move): Pull then returns ErrRoomMoved.
	moved atomic.Bool
}

// newRoom returns a room in epoch whose last written (and assigned) seq is head.
func newRoom(r *Router, name string, epoch, head uint64, lookupUntil time.Time) *room {
	rm := &room{
		name:  name,
		epoch: epoch,
		r:     r,
		seq:   newSequencer(epoch, head, r.cfg.DedupWindow, r.cfg.DedupMemory, lookupUntil),
		ring:  newRing(r.cfg.RingSize, head),
	}
	rm.lastActive.Store(r.cfg.Now().UnixNano())
	return rm
}

// written delivers m, the next message of the room in seq order: m joins
// the ring and every subscriber not yet told is notified (and interested
// nodes are pushed m). It runs under gateMu, on a wal goroutine, once m
// may be delivered (see hot.go); it must not block.
func (rm *room) written(m *Message) {
	rm.ring.append(m)
	// Subscribers registered after the append already count m in their
	// head; those registered before are in the slice read here (see
	// Subscribe), so nobody misses m.
	rm.subsMu.RLock()
	n := 0
	for _, s := range rm.subs {
		if s.notify() {
			n++
		}
	}
	if len(rm.interest) > 0 {
		rm.r.pushLocked(rm, m)
	}
	rm.subsMu.RUnlock()
	if n > 0 {
		rm.r.metrics.notifications.Add(float64(n))
	}
}

// end marks the room's epoch over on this node and wakes every
// subscription so that it pulls the rest and then gets ErrRoomRestarted
// (ErrRoomMoved if moved). The caller has removed the room from the
// router's maps. It returns the interest the room had (nil for none).
func (rm *room) end(moved bool) (interest map[mesh.NodeID]uint64) {
	if rm.rep == nil {
		rm.mu.Lock() // publishes check evicted under mu
		defer rm.mu.Unlock()
	}
	rm.moved.Store(moved)
	if rm.rep == nil {
		// Whatever it delivered early is before this in the wal.
		if err := rm.markColdLocked(); err != nil && !errors.Is(err, wal.ErrClosed) {
			rm.r.logger.Warn().Err(err).Msg("ended room not marked cold")
		}
	}
	rm.subsMu.Lock()
	rm.evicted.Store(true)
	rm.ended.Store(true)
	interest, rm.interest = rm.interest, nil
	// A copy: removeSubscriber reuses the array once the lock is released.
	subs := slices.Clone(rm.subs)
	rm.subsMu.Unlock()
	for _, s := range subs {
		s.notify()
	}
	return interest
}

// addSubscriber registers s with its cursor set by pick from the ring's head
// and oldest held seq, atomically with respect to written: every message
// after the cursor is either readable now or will notify s. It returns false
// if the room was evicted meanwhile.
func (rm *room) addSubscriber(s *Subscription, pick func(head, ringOldest uint64) (cursor uint64)) (head uint64, ok bool) {
	rm.subsMu.Lock()
	defer rm.subsMu.Unlock()
	if rm.evicted.Load() {
		return 0, false
	}
	head, oldest := rm.ring.bounds()
	s.cursor.Store(pick(head, oldest))
	s.idx = len(rm.subs)
	rm.subs = append(rm.subs, s)
	return head, true
}

// removeSubscriber unregisters s; idempotent. For a replica it reports
// whether s was the last subscriber and no peer takes the room from here:
// the replica is then marked evicted and the caller drops it.
func (rm *room) removeSubscriber(s *Subscription) (emptied bool) {
	rm.subsMu.Lock()
	defer rm.subsMu.Unlock()
	i := s.idx
	if i < 0 || i >= len(rm.subs) || rm.subs[i] != s {
		return false
	}
	last := len(rm.subs) - 1
	rm.subs[i] = rm.subs[last]
	rm.subs[i].idx = i
	rm.subs[last] = nil
	rm.subs = rm.subs[:last]
	s.idx = -1
	if len(rm.subs) == 0 && cap(rm.subs) > 64 {
		rm.subs = nil
	}
	rm.touch()
	return rm.evictUnusedLocked()
}

// evictUnusedLocked marks a replica that has neither subscribers nor
// interested peers evicted and reports whether it did (the caller then
// drops it, see dropReplica). rm.subsMu is held.
func (rm *room) evictUnusedLocked() bool {
	if rm.rep != nil && len(rm.subs) == 0 && len(rm.interest) == 0 && !rm.evicted.Load() {
		rm.evicted.Store(true)
		return true
	}
	return false
}

// removeInterest ends peer's interest if its token is still token (0:
// any) and reports whether the room, a replica, is then unused (marked
// evicted: the caller drops it).
func (rm *room) removeInterest(peer mesh.NodeID, token uint64) (emptied bool) {
	rm.subsMu.Lock()
	defer rm.subsMu.Unlock()
	tok, ok := rm.interest[peer]
	if !ok || token != 0 && tok != token {
		return false
	}
	delete(rm.interest, peer)
	return rm.evictUnusedLocked()
}

// touch records activity, delaying eviction.
func (rm *room) touch() {
	rm.lastActive.Store(rm.r.cfg.Now().UnixNano())
}

// tryEvict marks the room evicted if it is idle at now: no subscriber, no
// in-flight publish, no activity for a DedupWindow, not hot (coolIdle
// marks it cold long before). It never blocks (a
// publisher may hold mu, blocked in wal.Append). On success it returns what
// a dormant room needs to come back. The caller holds Router.mu.
func (rm *room) tryEvict(now time.Time) (dormantRoom, bool) {
	if !rm.mu.TryLock() {
		return dormantRoom{}, false
	}
	defer rm.mu.Unlock()
	rm.subsMu.Lock()
	defer rm.subsMu.Unlock()
	idle := now.Sub(time.Unix(0, rm.lastActive.Load())) >= rm.r.cfg.DedupWindow
	if len(rm.subs) > 0 || len(rm.interest) > 0 || rm.inflight.Load() > 0 || !idle || rm.marked {
		return dormantRoom{}, false
	}
	rm.evicted.Store(true)
	// No publish is in flight, so the written head is the assigned head;
	// every key in memory has expired (idle for a window), so carrying
	// lookupUntil over keeps dedup exact.
	return dormantRoom{epoch: rm.epoch, head: rm.ring.Head(), lookupUntil: rm.seq.lookupDeadline()}, true
}
