package router

import (
	"errors"
	"fmt"
	"time"

	"github.com/arena-mesh/arena/wal"
)

// Early delivery: fan-out before the fsync (opt-in, Config.HotIdle).
//
// A message is delivered (ring, subscribers, interested nodes) as soon as
// the wal has applied it, before its fsync, when its room is hot; its
// publisher is still acked only once it is durable. That takes the fsync
// (0.3 ms and more on a VM disk, with a long tail) off the delivery path,
// as DESIGN.md's flow has it.
//
// The danger is kill -9 between the delivery and the fsync: the message is
// gone after the restart, and its seq would be handed to another message,
// so a subscriber would hold one position with two contents. Hence the hot
// mark: before a room delivers anything early, a mark saying so is durable
// in the wal (wal.MarkHot, queued before the room's next message). The
// first messages after the mark is queued wait for their own fsync, as
// before; once the mark is durable, later ones go out at "written". A room
// that has had no publish for Config.HotIdle is marked cold again
// (wal.MarkCold, queued after every message it delivered, so a surviving
// cold mark implies they all survived), and so is every room when the
// router closes, ends a room, or hands it over.
//
// After an unclean stop, a room still marked hot in its current epoch may
// have delivered messages the wal lost. Its first use restarts it in a new
// epoch (restartHot): every message the wal retained of the old epoch is
// copied into the new one at the same seq, so no acked message leaves the
// history and seqs keep counting from where the durable log ended, and
// subscribers resuming from the old epoch get a reset, as after any
// restart of a room's sequence. Rooms that were quiet for HotIdle before
// the crash keep their epoch.
//
// Per room, deliveries stay in seq order: written and durable callbacks
// both go through the room's gate (gateMu), which delivers a prefix of
// the messages applied so far.

// markHotLocked queues the room's hot mark if it is not hot yet, so that
// the messages sequenced after it may be delivered before their fsync once
// the mark is durable. The caller holds rm.mu (the mark is ordered before
// the room's next append).
func (rm *room) markHotLocked() error {
	if rm.marked || rm.r.cfg.HotIdle <= 0 {
		return nil
	}
	rm.gateMu.Lock()
	rm.hotGen++
	gen := rm.hotGen
	rm.gateMu.Unlock()
	err := rm.r.log.MarkHot(rm.name, rm.epoch, func(err error) {
		if err != nil {
			return // the room stays on durable delivery
		}
		rm.gateMu.Lock()
		defer rm.gateMu.Unlock()
		if rm.hotGen != gen {
			return // marked cold (or hot again) since: not this mark's to open
		}
		rm.fast = true
		// Messages applied after the mark was queued are covered by it.
		rm.deliverLocked(len(rm.undelivered))
	})
	if err != nil {
		return err
	}
	rm.marked = true
	rm.r.metrics.hotRooms.Inc()
	return nil
}

// markColdLocked queues the room's cold mark if it is hot: from now on
// its messages wait for their fsync again. The caller holds rm.mu. The
// mark follows every message the room sequenced, so if it survives a
// crash, they all did.
func (rm *room) markColdLocked() error {
	if !rm.marked {
		return nil
	}
	rm.gateMu.Lock()
	rm.hotGen++
	rm.fast = false
	rm.gateMu.Unlock()
	rm.marked = false
	rm.r.metrics.hotRooms.Dec()
	if err := rm.r.log.MarkCold(rm.name, nil); err != nil {
		// Left hot in the wal: at worst the room restarts in a new
		// epoch after the next unclean stop.
		return fmt.Errorf("mark room %q cold: %w", rm.name, err)
	}
	return nil
}

// markHandedAwayLocked queues the room's hot mark as it is handed over to
// another node, and closes its early delivery; durable runs once the mark
// and every message before it are durable. The mark stays after the room
// ends here (end finds it unmarked and leaves the wal alone): the room
// continues on the new home in the same epoch, so this node's copy in the
// wal becomes stale. If the node later serves the room from that copy
// (it becomes home again and the room is not handed back, e.g. its
// interim home is gone), restartHot starts it in a new epoch instead of
// giving seqs after the copy's head, which name other messages on the
// interim home, to new ones. A handback clears the mark (adopt). The
// caller holds rm.mu.
func (rm *room) markHandedAwayLocked(durable func(error)) error {
	rm.gateMu.Lock()
	rm.hotGen++
	rm.fast = false
	rm.gateMu.Unlock()
	if rm.marked {
		rm.marked = false
		rm.r.metrics.hotRooms.Dec() // no longer this node's to deliver
	}
	return rm.r.log.MarkHot(rm.name, rm.epoch, durable)
}

// applied is the wal's written callback of a message of this room (on the
// wal's committer goroutine, in seq order): it is delivered now if the
// room is hot, else once durable.
func (p *publication) applied() {
	rm := p.rm
	rm.gateMu.Lock()
	rm.undelivered = append(rm.undelivered, p.msg)
	if rm.fast {
		rm.deliverLocked(len(rm.undelivered))
	}
	rm.gateMu.Unlock()
}

// stored is the first part of the durable callback (on the wal's syncer
// goroutine, in seq order): a message that is durable, and every one
// before it, is delivered if it was not yet; a failed one is dropped
// undelivered (unless the room was hot and delivered it already: the
// room's hot mark covers that).
func (p *publication) stored(err error) {
	rm := p.rm
	rm.gateMu.Lock()
	defer rm.gateMu.Unlock()
	if rm.r.cfg.HotIdle <= 0 {
		// Early delivery is off: applied never ran, nothing waits in
		// undelivered, and durable callbacks come in seq order.
		if err == nil {
			rm.written(p.msg)
		}
		return
	}
	n := 0
	for n < len(rm.undelivered) && rm.undelivered[n].Seq <= p.msg.Seq {
		n++
	}
	if err == nil {
		rm.deliverLocked(n)
		return
	}
	// Not durable: nothing at or before it is delivered any more. Those
	// before it failed too (the wal fails every later write once one
	// failed), and their durable callbacks already ran.
	rm.dropUndeliveredLocked(n)
}

// deliverLocked delivers the first n undelivered messages, in order. The
// caller holds gateMu.
func (rm *room) deliverLocked(n int) {
	if n == 0 {
		return
	}
	for _, m := range rm.undelivered[:n] {
		rm.written(m)
	}
	rm.dropUndeliveredLocked(n)
}

// dropUndeliveredLocked removes the first n undelivered messages, keeping
// the array for the next ones unless a burst made it large. The caller
// holds gateMu.
func (rm *room) dropUndeliveredLocked(n int) {
	rest := copy(rm.undelivered, rm.undelivered[n:])
	clear(rm.undelivered[rest:])
	rm.undelivered = rm.undelivered[:rest]
	if rest == 0 && cap(rm.undelivered) > 64 {
		rm.undelivered = nil
	}
}

// coolLoop marks rooms cold once they have been idle for HotIdle, until
// Close.
func (r *Router) coolLoop() {
	r.every(max(r.cfg.HotIdle/2, time.Millisecond), func(now time.Time) { r.coolIdle(now) })
}

// coolIdle marks cold every hot room that has had no publish for HotIdle
// at now, and returns how many it marked.
func (r *Router) coolIdle(now time.Time) int {
	if r.cfg.HotIdle <= 0 {
		return 0 // early delivery is off: no room is ever marked hot
	}
	r.mu.RLock()
	var hot []*room
	for _, rm := range r.active {
		if rm.rep == nil && now.Sub(time.Unix(0, rm.lastActive.Load())) >= r.cfg.HotIdle {
			hot = append(hot, rm)
		}
	}
	r.mu.RUnlock()
	n := 0
	for _, rm := range hot {
		// A busy room is left for the next round: never wait on a
		// publisher holding mu.
		if !rm.mu.TryLock() {
			continue
		}
		if rm.marked && !rm.evicted.Load() && now.Sub(time.Unix(0, rm.lastActive.Load())) >= r.cfg.HotIdle {
			if err := rm.markColdLocked(); err != nil {
				if !errors.Is(err, wal.ErrClosed) {
					r.logger.Warn().Err(err).Msg("room not marked cold")
				}
			} else {
				n++
			}
		}
		rm.mu.Unlock()
	}
	return n
}

// coolAll marks every room cold as the router closes, so that a clean
// stop restarts no room in a new epoch. Publishes are refused by now
// (closed is set), and the marks follow every message in the wal's queue.
func (r *Router) coolAll() {
	r.mu.RLock()
	rooms := make([]*room, 0, len(r.active))
	for _, rm := range r.active {
		if rm.rep == nil {
			rooms = append(rooms, rm)
		}
	}
	r.mu.RUnlock()
	for _, rm := range rooms {
		rm.mu.Lock()
		err := rm.markColdLocked()
		rm.mu.Unlock()
		if err != nil && !errors.Is(err, wal.ErrClosed) {
			r.logger.Warn().Err(err).Msg("room not marked cold")
		}
	}
}

// restartHot brings back a room still marked hot in the wal (d.hot): it
// was delivering early when the node stopped uncleanly, so it may have
// delivered messages after d.head that the wal lost, or it was handed to
// another node that went on with its sequence (markHandedAwayLocked). So
// it continues in a new epoch, into which every retained
// message of the old one is copied at its seq; then it is marked cold. It
// returns the room, or nil if the dormant entry changed meanwhile (the
// caller looks again).
func (r *Router) restartHot(name string, d dormantRoom) (*room, error) {
	// Pebble reads, outside the router's lock.
	first, err := r.log.First(name, d.epoch)
	if err != nil {
		return nil, fmt.Errorf("restart room %q: first retained: %w", name, err)
	}
	recs, err := r.log.ReadBefore(name, d.epoch, d.head+1, r.cfg.RingSize)
	if err != nil {
		return nil, fmt.Errorf("restart room %q: read: %w", name, err)
	}
	recent := contiguousTail(messagesFromRecords(nil, recs), d.head)
	epoch := max(uint64(r.cfg.Now().UnixMicro()), d.epoch+1)
	for _, m := range recent {
		m.Epoch = epoch
	}

	r.mu.Lock()
	if cur, ok := r.dormant[name]; !ok || cur != d || r.active[name] != nil {
		r.mu.Unlock()
		return nil, nil
	}
	rm := newRoom(r, name, epoch, d.head, d.lookupUntil)
	rm.needKeys, rm.copiedEpoch = true, d.epoch
	rm.ring = newRing(r.cfg.RingSize, d.head-uint64(len(recent)))
	for _, m := range recent {
		rm.ring.append(m)
	}
	// Publishes wait on rm.mu until the copies are queued: the wal keeps
	// queue order, so theirs follow.
	rm.mu.Lock()
	delete(r.dormant, name)
	r.active[name] = rm
	r.metrics.rooms.Set(float64(len(r.active)))
	r.mu.Unlock()

	copied, err := r.copyEpoch(name, d.epoch, epoch, first, d.head)
	stored := make(chan error, 1)
	if err == nil {
		// The old epoch's mark: the room is not hot in the new one.
		err = r.log.MarkCold(name, func(err error) { stored <- err })
	}
	rm.mu.Unlock()
	if err == nil {
		// Wait until the copies are durable (they are applied before
		// then), so that whoever uses the room reads them from the wal.
		err = r.awaitStored(stored)
	}
	if err != nil {
		rm.subsMu.Lock()
		rm.evicted.Store(true)
		rm.subsMu.Unlock()
		r.mu.Lock()
		if r.active[name] == rm {
			delete(r.active, name)
			r.metrics.rooms.Set(float64(len(r.active)))
			r.dormant[name] = d // still to be restarted
		}
		r.mu.Unlock()
		if errors.Is(err, wal.ErrClosed) {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("restart room %q in a new epoch: %w", name, err)
	}
	r.metrics.uncleanRestarts.Inc()
	r.logger.Info().Str("room", name).Uint64("old_epoch", d.epoch).Uint64("epoch", epoch).
		Uint64("seq", d.head).Int("copied", copied).Msg("room's sequence may have gone on beyond the wal (early delivery at an unclean stop, or handed away): new epoch")
	return rm, nil
}

// copyPage is how many records restartHot reads at a time.
const copyPage = 1000

// copyEpoch queues SetEpoch(to) and copies of room's messages first..head
// of epoch from into epoch to, at their seqs (with their idempotency
// keys), and returns how many it queued. The caller holds the room's lock.
// first is 0 when the old epoch holds no message.
func (r *Router) copyEpoch(room string, from, to, first, head uint64) (int, error) {
	if err := r.log.SetEpoch(room, to, nil); err != nil {
		return 0, err
	}
	n := 0
	for next := first; first != 0 && next <= head; {
		recs, err := r.log.Read(room, from, next, copyPage)
		if err != nil {
			return n, fmt.Errorf("read epoch %d from seq %d: %w", from, next, err)
		}
		if len(recs) == 0 {
			return n, nil
		}
		// Retention may delete a prefix of the old epoch meanwhile; what
		// is left is still contiguous up to head.
		for i := range recs {
			if recs[i].Seq > head {
				return n, nil
			}
			recs[i].Epoch = to
			if err := r.log.Append(&recs[i], nil, nil); err != nil {
				return n, err
			}
			n++
			next = recs[i].Seq + 1
		}
	}
	return n, nil
}

// contiguousTail returns the run of msgs (in seq order) that ends at head
// with no gap, or nil if the last one is not head.
func contiguousTail(msgs []*Message, head uint64) []*Message {
	if len(msgs) == 0 || msgs[len(msgs)-1].Seq != head {
		return nil
	}
	i := len(msgs) - 1
	for i > 0 && msgs[i-1].Seq == msgs[i].Seq-1 {
		i--
	}
	return msgs[i:]
}
