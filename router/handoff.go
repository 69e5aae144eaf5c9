package router

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arena-mesh/arena/mesh"
	"github.com/arena-mesh/arena/wal"
)

// Handoff budgets: a handoff is one peer frame, well under the mesh's
// frame limit. The newest messages and keys that fit are handed over.
const (
	handoffMsgBytes = mesh.DefaultMaxFrameSize * 3 / 8
	handoffKeyBytes = mesh.DefaultMaxFrameSize / 4
	// handoffIndexBytes bounds a handoffKeys frame's keys.
	handoffIndexBytes = mesh.DefaultMaxFrameSize / 2
)

// movedRoom is a room this node held that another node now wins: in
// memory (rm, frozen) or dormant (d).
type movedRoom struct {
	name string
	to   mesh.NodeID
	rm   *room
	d    dormantRoom
}

// freeze stops the room from sequencing: publishes from now on wait for
// the handoff (see room.moving).
func (rm *room) freeze() {
	rm.mu.Lock()
	if rm.moving == nil {
		rm.moving = make(chan struct{})
	}
	rm.mu.Unlock()
}

// Handoff hands every room homed on this node over to the node that
// becomes its home once this one is gone, keeping each room's epoch, and
// returns once all are handed over (or ctx ended: the rooms not handed
// over then start a new epoch on their new homes once this node leaves).
// Call it on drain, after the edge stopped taking clients and before
// mesh.Leave; the router keeps serving as an edge meanwhile (rooms are
// forwarded to their new homes).
//
// In order: every peer is told that this node leaves (from then on they
// home its rooms elsewhere, and the new homes hold each such room back
// until its handoff arrives); each room stops sequencing, its in-flight
// publishes become durable, and the new home receives its epoch, head,
// newest messages (up to RingSize and MaxHistoryLimit, what fits in one
// frame) and live idempotency keys, stores them in its wal and serves the
// room from head+1 in the same epoch. Publishes that arrive meanwhile wait
// and then go to the new home. Older history stays in this node's wal
// only. Handoff is idempotent; without a mesh it does nothing.
func (r *Router) Handoff(ctx context.Context) error {
	if r.mesh == nil {
		return nil
	}
	if r.closed.Load() {
		return ErrClosed
	}
	r.viewMu.Lock()
	if r.leaving[r.self] {
		r.viewMu.Unlock()
		return nil
	}
	var peers []mesh.NodeID
	for _, m := range r.view.Load().others {
		peers = append(peers, m.ID)
	}
	r.viewMu.Unlock()

	// 1. Everybody places our rooms elsewhere and waits for them.
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Go(func() {
			if err := r.notify(ctx, p, peerLeaving); err != nil {
				r.logger.Warn().Err(err).Str("peer", string(p)).Msg("peer not told of leaving")
			}
		})
	}
	wg.Wait()

	// 2. So do we.
	r.viewMu.Lock()
	r.leaving[r.self] = true
	old := r.view.Load()
	ch := r.applyViewLocked(old, newView(old.members, r.self, r.leaving))
	r.viewMu.Unlock()

	// 3. Hand the rooms over, then tell everyone we are done.
	failed := r.handOverThenGreet(ctx, ch.moved, peers)
	r.logger.Info().Int("rooms", len(ch.moved)).Int("failed", failed).Msg("rooms handed over")
	if failed > 0 {
		return fmt.Errorf("handoff: %d of %d rooms not handed over: %w", failed, len(ch.moved), ErrUnavailable)
	}
	return ctx.Err()
}

// handOverThenGreet hands moved over to their new homes, then greets
// peers with handedOver: "this node owes you no room any more". Calls are
// serialized, because a greeting must not overtake a handoff that another
// call is still making to the same node: a node that flaps in this
// node's view (gone for a moment, then back) is greeted by each change,
// and if the second greeting arrived before the first change's handoff,
// the node would start the room from its own log and refuse the handoff,
// and two messages would share a seq.
func (r *Router) handOverThenGreet(ctx context.Context, moved []movedRoom, peers []mesh.NodeID) (failed int) {
	r.greetMu.Lock()
	defer r.greetMu.Unlock()
	failed = r.handOver(ctx, moved)
	r.sendHandedOver(ctx, peers)
	return failed
}

// handOver hands each moved room to its new home, up to
// handoffParallelism at a time, and returns how many could not be.
func (r *Router) handOver(ctx context.Context, moved []movedRoom) int {
	markErr := r.markDormantHandedAway(ctx, moved)
	noKeys := make(map[mesh.NodeID]bool) // see handOverIndexedKeys
	var (
		wg      sync.WaitGroup
		slots   = make(chan struct{}, handoffParallelism)
		nFailed atomic.Int64
	)
	for _, mv := range moved {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			err := markErr
			if mv.rm != nil || err == nil {
				err = r.handOverRoom(ctx, mv, noKeys)
			}
			if err != nil {
				nFailed.Add(1)
				if r.ctx.Err() == nil {
					r.logger.Warn().Err(err).Str("room", mv.name).Str("peer", string(mv.to)).Msg("room not handed over")
				}
			}
		})
	}
	wg.Wait()
	return int(nFailed.Load())
}

// handoffParallelism is how many rooms one handOver moves at a time. A
// handoff is a round trip to the new home and an fsync on each side, so
// one at a time a node moved about 300 rooms a second on loopback and a
// few a second across a WAN, with every room waiting its turn unserved
// (its new home waits for the handoff). Each room in flight holds its
// handoff frame, up to MaxHistoryLimit messages and the keys that fit;
// the keys beyond go one room at a time (indexKeysMu).
const handoffParallelism = 8

// handOverRoom hands one room to its new home and ends it here. A
// dormant room (mv.rm nil) must be marked handed away already
// (markDormantHandedAway); an active one is marked here. noKeys holds
// the new homes that took no handoffKeys frame in this batch.
func (r *Router) handOverRoom(ctx context.Context, mv movedRoom, noKeys map[mesh.NodeID]bool) (err error) {
	epoch, head, until := mv.d.epoch, mv.d.head, mv.d.lookupUntil
	var keys []keyUse
	if rm := mv.rm; rm != nil {
		defer func() {
			rm.end(err == nil)
			rm.mu.Lock()
			close(rm.moving)
			rm.mu.Unlock()
		}()
		// The handed-away mark is also a barrier: its durable callback
		// runs after those of every publish sequenced before the freeze.
		barrier := make(chan error, 1)
		rm.mu.Lock()
		if err := rm.loadKeysLocked(r.cfg.Now()); err != nil {
			rm.mu.Unlock()
			return fmt.Errorf("hand over room %q: %w", mv.name, err)
		}
		epoch, until = rm.epoch, rm.seq.lookupDeadline()
		keys = rm.seq.liveKeys(r.cfg.Now())
		err := rm.markHandedAwayLocked(func(err error) { barrier <- err })
		rm.mu.Unlock()
		if err := waitMark(ctx, barrier, err); err != nil {
			return fmt.Errorf("hand over room %q: mark: %w", mv.name, err)
		}
		head = rm.ring.Head()
	}
	first, err := r.log.First(mv.name, epoch)
	if err != nil {
		return fmt.Errorf("hand over room %q: first retained: %w", mv.name, err)
	}
	recs, err := r.log.ReadBefore(mv.name, epoch, head+1, min(r.cfg.RingSize, MaxHistoryLimit))
	if err != nil {
		return fmt.Errorf("hand over room %q: read: %w", mv.name, err)
	}
	msgs := handoffMessages(messagesFromRecords(nil, recs), head)
	if rm := mv.rm; rm != nil {
		// The keys that do not fit in the handoff frame, and those the
		// room's memory evicted into the wal's index, go first, in
		// frames of their own; the new home looks its misses up among
		// them until the handoff's until.
		sent := handoffKeys(keys)
		rest := keys[:len(keys)-len(sent)]
		if until, err = r.handOverIndexedKeys(ctx, rm, mv.to, epoch, until, rest, noKeys); err != nil {
			return fmt.Errorf("hand over room %q: keys: %w", mv.name, err)
		}
		keys = sent
	}
	var untilMS int64
	if !until.IsZero() {
		untilMS = until.UnixMilli()
	}
	req := r.nextReq.Add(1)
	frame := appendHandoff(nil, mv.name, epoch, req, head, first, untilMS, msgs, keys)
	for {
		res, err := r.call(ctx, mv.to, mv.name, req, frame)
		switch {
		case err == nil && res.f.Code == codeOK:
			r.logger.Debug().Str("room", mv.name).Uint64("epoch", epoch).Uint64("seq", head).Str("peer", string(mv.to)).Msg("room handed over")
			return nil
		case err == nil && res.f.Code == codeEpoch:
			return fmt.Errorf("hand over room %q: %s holds the room already", mv.name, mv.to)
		case errors.Is(err, ErrClosed), !r.isMember(mv.to):
			return fmt.Errorf("hand over room %q to %s: %w", mv.name, mv.to, ErrUnavailable)
		}
		// Not answered, or the new home cannot take it yet: again.
		if werr := r.waitUntil(ctx, nil, time.Now().Add(retryInterval)); werr != nil && ctx.Err() != nil {
			return fmt.Errorf("hand over room %q: %w", mv.name, ctx.Err())
		}
	}
}

// markDormantHandedAway marks every dormant room of moved as handed away
// in the wal (see markHandedAwayLocked) and waits until the marks are
// durable: one group commit for all of them, where a mark per room before
// its handoff would cost an fsync each.
func (r *Router) markDormantHandedAway(ctx context.Context, moved []movedRoom) error {
	var dormant []movedRoom
	for _, mv := range moved {
		if mv.rm == nil {
			dormant = append(dormant, mv)
		}
	}
	if len(dormant) == 0 {
		return nil
	}
	durable := make(chan error, 1)
	report := func(err error) {
		select { // the first report wins; the rest are dropped
		case durable <- err:
		default:
		}
	}
	failed := func(err error) {
		if err != nil {
			report(err)
		}
	}
	for i, mv := range dormant {
		// The wal completes the marks in queue order and fails every one
		// after a failed one, so the last one's success covers them all.
		cb := failed
		if i == len(dormant)-1 {
			cb = report
		}
		if err := r.log.MarkHot(mv.name, mv.d.epoch, cb); err != nil {
			return fmt.Errorf("mark dormant rooms handed away: %w", err)
		}
	}
	if err := waitMark(ctx, durable, nil); err != nil {
		return fmt.Errorf("mark dormant rooms handed away: %w", err)
	}
	return nil
}

// waitMark waits for a wal mark's durable callback on ch, unless queueing
// it failed (err).
func waitMark(ctx context.Context, ch <-chan error, err error) error {
	if err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handOverIndexedKeys sends to, before the room's handoff, the room's
// idempotency keys of epoch still in the window that the handoff frame
// does not carry: rest (from memory, beyond the frame's budget) and the
// entries of the wal's key index. They go in handoffKeys frames of up to
// handoffIndexBytes, each stored there before the next. It returns until,
// extended to when the last of rest leaves the window (the new home looks
// every miss up until then). A new home that does not answer (an older
// build drops the frame) gets none of them, as before they were sent:
// retries of those keys after the move are then published again. It is
// noted in noKeys (guarded by indexKeysMu, which this holds: the batch's
// rooms send their keys one at a time), and the batch's other rooms do
// not wait on it again. The caller has frozen the room and passed its
// handed-away barrier, so the index holds every key the room evicted.
func (r *Router) handOverIndexedKeys(ctx context.Context, rm *room, to mesh.NodeID, epoch uint64, until time.Time, rest []keyUse, noKeys map[mesh.NodeID]bool) (time.Time, error) {
	r.indexKeysMu.Lock()
	defer r.indexKeysMu.Unlock()
	now := r.cfg.Now()
	for _, k := range rest {
		if u := time.UnixMilli(k.ts).Add(r.cfg.DedupWindow); u.After(until) {
			until = u
		}
	}
	rm.mu.Lock()
	copied := rm.copiedEpoch
	rm.mu.Unlock()
	keys := slices.Clip(rest)
	all, err := r.log.IndexedKeys(rm.name, r.windowStart(now), maxRelearntKeys, func(key []byte, e wal.DedupEntry) {
		// A hot restart copied the copied epoch into this one, seqs
		// unchanged (see copyOf); other epochs' keys name positions
		// the new home cannot take as this epoch's.
		if e.Epoch == epoch || e.Epoch == copied {
			keys = append(keys, keyUse{key: string(key), seq: e.Seq, ts: e.TS})
		}
	})
	if err != nil {
		return until, err
	}
	if !all {
		r.logger.Warn().Str("room", rm.name).Int("limit", maxRelearntKeys).Msg("room's key index too large to hand over whole")
	}
	for len(keys) > 0 && !noKeys[to] {
		n, size := 0, 0
		for n < len(keys) && (n == 0 || size+keyEntrySize(keys[n]) <= handoffIndexBytes) {
			size += keyEntrySize(keys[n])
			n++
		}
		req := r.nextReq.Add(1)
		res, err := r.call(ctx, to, rm.name, req, appendHandoffKeys(nil, rm.name, epoch, req, keys[:n]))
		switch {
		case err == nil && res.f.Code == codeOK:
			keys = keys[n:]
			continue
		case errors.Is(err, ErrClosed), ctx.Err() != nil:
			return until, errors.Join(err, ctx.Err())
		}
		if err == nil {
			err = codeError(to, res.f.Code)
		}
		noKeys[to] = true
		r.logger.Warn().Err(err).Str("room", rm.name).Str("peer", string(to)).Int("keys", len(keys)).
			Msg("idempotency keys not handed over (nor those of the other rooms moving to this peer now): retries of them after the move are published again")
	}
	return until, nil
}

// serveHandoffKeys stores in the wal's key index the idempotency keys a
// room's previous home sends before its handoff (handOverIndexedKeys);
// the room, handed over next, looks its misses up there.
func (r *Router) serveHandoffKeys(from mesh.NodeID, f *peerFrame) {
	r.expect.extend(from)
	name, epoch, req := string(f.Room), f.Epoch, f.Req
	uses := make([]wal.KeyUse, len(f.Keys))
	valid := epoch != 0
	for i, k := range f.Keys {
		if len(k.Key) == 0 || len(k.Key) > wal.MaxKeyLen || k.Seq == 0 {
			valid = false
		}
		uses[i] = wal.KeyUse{Key: string(k.Key), DedupEntry: wal.DedupEntry{Epoch: epoch, Seq: k.Seq, TS: k.TS}}
	}
	r.spawn(func() {
		code := codeOK
		switch {
		case !valid:
			r.metrics.badPeerFrames.Inc()
			code = codeInternal
		case len(uses) > 0:
			stored := make(chan error, 1)
			err := r.log.IndexKeys(name, uses, func(err error) { stored <- err })
			if err == nil {
				err = r.awaitStored(stored)
			}
			if err != nil {
				r.logger.Warn().Err(err).Str("room", name).Str("peer", string(from)).Msg("handed-over keys not stored")
				code = codeUnavailable
			}
		}
		r.reply(from, name, appendReply(nil, name, epoch, req, code, 0, 0, 0, 0))
	})
}

// handoffMessages keeps the contiguous run of msgs ending at head, then
// its newest messages that fit in handoffMsgBytes.
func handoffMessages(msgs []*Message, head uint64) []*Message {
	msgs = contiguousTail(msgs, head)
	size := 0
	for j := len(msgs) - 1; j >= 0; j-- {
		if size += msgFrameSize(msgs[j]); size > handoffMsgBytes {
			return msgs[j+1:]
		}
	}
	return msgs
}

// handoffKeys keeps the newest keys that fit in handoffKeyBytes.
func handoffKeys(keys []keyUse) []keyUse {
	size := 0
	for j := len(keys) - 1; j >= 0; j-- {
		if size += keyEntrySize(keys[j]); size > handoffKeyBytes {
			return keys[j+1:]
		}
	}
	return keys
}

// serveHandoff takes over a room handed over by its previous home.
func (r *Router) serveHandoff(from mesh.NodeID, f *peerFrame) {
	r.expect.extend(from)
	name, epoch, req := string(f.Room), f.Epoch, f.Req
	head, until := f.Head, f.Until
	msgs := messagesFromEntries(name, epoch, f.Msgs)
	keys := make([]keyUse, len(f.Keys))
	for i, k := range f.Keys {
		keys[i] = keyUse{key: string(k.Key), seq: k.Seq, ts: k.TS}
	}
	r.spawn(func() {
		code := r.adopt(name, epoch, head, until, msgs, keys)
		r.reply(from, name, appendReply(nil, name, epoch, req, code, 0, head, 0, 0))
	})
}

// adopt stores a handed-over room in the wal and serves it from memory;
// it answers once the wal holds it durably.
func (r *Router) adopt(name string, epoch, head uint64, until int64, msgs []*Message, keys []keyUse) peerCode {
	if epoch == 0 || uint64(len(msgs)) > head || !validHandoff(msgs, keys, head) {
		r.metrics.badPeerFrames.Inc()
		return codeInternal
	}
	var lookupUntil time.Time
	if until != 0 {
		lookupUntil = time.UnixMilli(until)
	}
	rm := newRoom(r, name, epoch, head, lookupUntil)
	rm.ring = newRing(r.cfg.RingSize, head-uint64(len(msgs)))
	for _, m := range msgs {
		rm.ring.append(m)
	}
	rm.seq.adopt(keys, r.cfg.Now())
	// More keys than this node's memory holds: index the oldest here.
	rm.mu.Lock()
	if err := rm.indexEvictedLocked(); err != nil {
		r.logger.Warn().Err(err).Str("room", name).Msg("handed-over keys beyond memory not indexed")
	}
	rm.mu.Unlock()

	r.mu.Lock()
	if r.closed.Load() {
		r.mu.Unlock()
		return codeUnavailable
	}
	if cur := r.active[name]; cur != nil && !cur.evicted.Load() {
		// Too late: the room started here meanwhile (its previous home
		// was given up on).
		r.mu.Unlock()
		return codeEpoch
	}
	// Publishes wait on rm.mu until the handed-over records are queued:
	// the wal keeps queue order, so theirs follow.
	rm.mu.Lock()
	delete(r.dormant, name)
	r.active[name] = rm
	r.metrics.rooms.Set(float64(len(r.active)))
	r.mu.Unlock()

	stored := make(chan error, 1)
	last := func(err error) {
		select { // once: a failure may be reported twice
		case stored <- err:
		default:
		}
	}
	failed := func(err error) {
		if err != nil {
			last(err)
		}
	}
	err := r.log.SetEpoch(name, epoch, failed)
	for _, m := range msgs {
		if err != nil {
			break
		}
		rec := &wal.Record{Room: name, Epoch: epoch, Seq: m.Seq, TS: m.TS, From: m.From, Key: m.Key, Data: m.Data}
		err = r.log.Append(rec, nil, failed)
	}
	if err == nil {
		// Last: this node may have handed the room away earlier, and its
		// mark from then must go, but only once the state handed back is
		// durable here too (see markHandedAwayLocked).
		err = r.log.MarkCold(name, last)
	}
	rm.mu.Unlock()
	if err == nil {
		err = r.awaitStored(stored)
	}
	if err != nil {
		r.logger.Error().Err(err).Str("room", name).Uint64("epoch", epoch).Msg("handed-over room not stored")
		return codeUnavailable
	}
	r.logger.Debug().Str("room", name).Uint64("epoch", epoch).Uint64("seq", head).Msg("room taken over")
	return codeOK
}

// validHandoff checks that msgs are contiguous and end at head, and that
// the keys fit the wal and point at most at head.
func validHandoff(msgs []*Message, keys []keyUse, head uint64) bool {
	for i, m := range msgs {
		if m.Seq != head-uint64(len(msgs)-1-i) || len(m.Key) > wal.MaxKeyLen {
			return false
		}
	}
	for _, k := range keys {
		if k.key == "" || len(k.key) > wal.MaxKeyLen || k.seq == 0 || k.seq > head {
			return false
		}
	}
	return true
}

// serveLeaving: from is leaving the mesh and hands its rooms over. From
// now on its rooms are placed without it, and they wait for its handoffs.
func (r *Router) serveLeaving(from mesh.NodeID, f *peerFrame) {
	key, req := string(f.Room), f.Req
	r.spawn(func() {
		r.viewMu.Lock()
		if !r.leaving[from] {
			r.leaving[from] = true
			r.expect.open(from)
			old := r.view.Load()
			ch := r.applyViewLocked(old, newView(old.members, r.self, r.leaving))
			if len(ch.moved) > 0 {
				// Only rooms of the leaving node move; handle any
				// anyway rather than lose them.
				r.spawn(func() { r.handOver(r.ctx, ch.moved) })
			}
		}
		r.viewMu.Unlock()
		r.reply(from, key, appendReply(nil, key, 0, req, codeOK, 0, 0, 0, 0))
	})
}

// notify sends peer a leaving or handedOver frame (typ) and waits for its
// answer, retrying until ctx ends or peer is gone.
func (r *Router) notify(ctx context.Context, peer mesh.NodeID, typ byte) error {
	key := string(r.self)
	for {
		req := r.nextReq.Add(1)
		actx, cancel := context.WithTimeout(ctx, min(r.cfg.PeerTimeout, time.Second))
		res, err := r.call(actx, peer, key, req, appendInterest(nil, typ, key, 0, req))
		cancel()
		switch {
		case err == nil && res.f.Code == codeOK:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, ErrClosed):
			return err
		case !r.isMember(peer):
			return fmt.Errorf("%w: %s left", ErrUnavailable, peer)
		}
		if err := r.waitUntil(ctx, nil, time.Now().Add(retryInterval)); err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// sendHandedOver tells peers that this node handed over every room it
// owed them.
func (r *Router) sendHandedOver(ctx context.Context, peers []mesh.NodeID) {
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Go(func() {
			if err := r.notify(ctx, p, peerHandedOver); err != nil && r.ctx.Err() == nil {
				r.logger.Debug().Err(err).Str("peer", string(p)).Msg("handed-over notice not delivered")
			}
		})
	}
	wg.Wait()
}

// reassertInterest registers again, at from, the interest of every
// replica this node takes from it. A node sends handedOver to each node
// that appears in its view; when this node never saw itself leave from's
// view (memberlist declared it dead for a moment and it refuted, as
// happens under load), from dropped this node's interest meanwhile and
// would push it nothing more. Registering anew is harmless where from
// still holds the interest, and what was published meanwhile is fetched
// from the home (see rehome).
func (r *Router) reassertInterest(from mesh.NodeID) {
	var reps []*replica
	r.mu.RLock()
	for _, rep := range r.replicas {
		if rep.feedID() == from && rep.established() != nil {
			reps = append(reps, rep)
		}
	}
	r.mu.RUnlock()
	for _, rep := range reps {
		r.spawn(func() { r.rehome(rep, from, rep.token.Load()) })
	}
}

// rehome registers rep's interest, with token, at to, its feed after
// moveInterest pointed it there (a planned move of the room, or another
// relay): the replica keeps its room object, so its subscriptions
// continue the same stream; what the old feed did not push is fetched
// from the home. If the room is in another epoch there (the handoff
// failed, the room restarted), or the feed cannot be reached in time, the
// replica ends and its subscribers resume.
func (r *Router) rehome(rep *replica, to mesh.NodeID, token uint64) {
	rm := rep.rm
	deadline := time.Now().Add(2 * r.cfg.PeerTimeout)
	var res callResult
	for {
		var err error
		res, err = r.call(r.ctx, to, rep.name, token, appendInterest(nil, peerInterest, rep.name, rm.epoch, token))
		if err == nil && res.f.Code == codeOK {
			break
		}
		if r.ctx.Err() != nil || rep.token.Load() != token {
			return // closing, or moved again: the newer move decides
		}
		if r.waitUntil(r.ctx, nil, deadline) == nil {
			continue // not answered, or not taken yet: ask again
		}
		if home := rep.homeID(); to != home {
			// The relay does not take it: take the room from its home
			// directly (until the next membership change).
			r.logger.Debug().Err(err).Str("room", rep.name).Str("peer", string(to)).Msg("relay did not take the interest; taking the room from its home")
			r.moveInterest(rep, home, home, token)
			return
		}
		r.logger.Warn().Err(err).Str("room", rep.name).Str("peer", string(to)).Msg("replica not moved to the new home")
		r.restartReplica(rep)
		return
	}
	if res.f.Epoch != rm.epoch {
		r.restartReplica(rep) // the room restarted: subscribers resume, reset
		return
	}
	rep.mu.Lock()
	rep.highest = max(rep.highest, res.f.Seq)
	start := !rep.ended && rep.highest > rm.ring.Head() && !rep.repairing
	if start {
		rep.repairing = true
	}
	rep.mu.Unlock()
	if start {
		r.spawn(func() { r.repair(rep) })
	}
	r.settleFeed(rep, token)
	r.logger.Debug().Str("room", rep.name).Str("peer", string(to)).Uint64("epoch", rm.epoch).Msg("interest moved")
}

// settleFeed: rep took the room from its home after its relay did not
// take the interest (see rehome, registerReplica). Unless something else
// moves the interest first (a membership change, a new token), it asks
// the relay again a PeerTimeout later, so that the region goes back to
// one push per message once the relay's view has caught up.
func (r *Router) settleFeed(rep *replica, token uint64) {
	if _, feed := r.sourceOf(rep.name); feed == rep.feedID() || feed == "" {
		return
	}
	r.spawn(func() {
		t := time.NewTimer(r.cfg.PeerTimeout)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.stop:
			return
		}
		if home, feed := r.sourceOf(rep.name); home != "" && feed != rep.feedID() {
			r.moveInterest(rep, home, feed, token)
		}
	})
}

// expectTable holds, per peer, whether this node still waits for rooms
// that peer may hand over (after the peer appeared, or announced that it
// leaves): rooms it held that are now homed here do not load or start
// until the peer said it handed them over, left, or timeout passed
// without a handoff from it.
type expectTable struct {
	mu      sync.Mutex // guards m, stopped
	m       map[mesh.NodeID]*expectation
	timeout time.Duration
	stopped bool
}

type expectation struct {
	ch    chan struct{} // closed when no longer waited for
	timer *time.Timer
}

func (t *expectTable) init(timeout time.Duration) {
	t.m = make(map[mesh.NodeID]*expectation)
	t.timeout = timeout
}

// expectTimeout bounds the wait for a peer's next handoff.
func (r *Router) expectTimeout() time.Duration { return 6 * r.cfg.PeerTimeout }

// open starts waiting for peer (again).
func (t *expectTable) open(peer mesh.NodeID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	if e := t.m[peer]; e != nil {
		e.timer.Reset(t.timeout)
		return
	}
	e := &expectation{ch: make(chan struct{})}
	e.timer = time.AfterFunc(t.timeout, func() { t.closeIf(peer, e) })
	t.m[peer] = e
}

// extend restarts the timeout of the wait for peer, if there is one: a
// peer that is still handing rooms over is waited for as long as it
// keeps going, however many rooms it has to move.
func (t *expectTable) extend(peer mesh.NodeID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.m[peer]; e != nil {
		e.timer.Reset(t.timeout)
	}
}

// close stops waiting for peer.
func (t *expectTable) close(peer mesh.NodeID) {
	t.mu.Lock()
	e := t.m[peer]
	t.mu.Unlock()
	if e != nil {
		t.closeIf(peer, e)
	}
}

func (t *expectTable) closeIf(peer mesh.NodeID, e *expectation) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[peer] == e {
		delete(t.m, peer)
		e.timer.Stop()
		close(e.ch)
	}
}

// pending returns a channel closed once peer is no longer waited for, or
// nil if it is not.
func (t *expectTable) pending(peer mesh.NodeID) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.m[peer]; e != nil {
		return e.ch
	}
	return nil
}

// stop ends every wait (Close).
func (t *expectTable) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	for id, e := range t.m {
		e.timer.Stop()
		close(e.ch)
		delete(t.m, id)
	}
}
