package router

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
)

// Sink is how a subscriber (an edge connection) is told that a subscription
// has messages ready to Pull. Notify must not block and must be cheap: it is
// called on the publish path (the wal's goroutine), once per message at most
// and only when the subscription has no notification pending (the pending
// state is cleared by Pull). Notify may run with router locks held: it must
// not call back into the router (Pull, Close, Subscribe); it should only
// wake the goroutine that pulls.
type Sink interface{ Notify(sub *Subscription) }

// SubscribeRequest asks for a cursor in a room.
type SubscribeRequest struct {
	Room  string
	Since *Position // resume after this position; nil = live from the current head
	Sink  Sink      // required
}

// SubscribeResult is the answer to Subscribe.
type SubscribeResult struct {
	Sub  *Subscription
	Head Position // the room's head (newest written message) when subscribed
	// Reset is set when Since was from another epoch, older than what the
	// wal retains, or beyond the head: delivery then starts at Oldest.
	Reset bool
	// Oldest (with Reset) is the first position delivered: the oldest
	// retained message, or (epoch, head+1) when nothing is retained (the
	// next message published; (epoch, 1) in an empty room).
	Oldest Position
}

// Subscription is one subscriber's cursor in one room. The router keeps no
// queue per subscriber: messages stay in the room's ring (and the wal), and
// the subscription only remembers the last one pulled. A slow subscriber
// therefore costs no memory and delays nobody.
//
// Pull is called by one goroutine only (the connection's writer); Room,
// Position and Close from any.
type Subscription struct {
	rm    *room
	epoch uint64
	sink  Sink

	cursor   atomic.Uint64 // seq of the last message pulled
	notified atomic.Bool   // a Notify is pending: set before Notify, cleared by Pull
	closed   atomic.Bool
	tooSlow  bool // owned by the Pull goroutine: the cursor fell out of retention
	idx      int  // position in rm.subs, -1 when not there; guarded by rm.subsMu
}

// Subscribe registers a cursor in the room. Messages after Since (after Head
// when Since is nil; after Oldest-1 with Reset) are then available through
// Pull, with no gap and no duplicate, and Sink.Notify is called when new ones
// arrive. If there are messages to pull already, Notify is called once
// before Subscribe returns.
//
// Since resumes exactly when it is in the room's epoch and Since.Seq is
// within [oldest retained - 1, head]; otherwise the result has Reset.
func (r *Router) Subscribe(ctx context.Context, req SubscribeRequest) (SubscribeResult, error) {
	if err := ctx.Err(); err != nil {
		return SubscribeResult{}, err
	}
	if req.Sink == nil {
		return SubscribeResult{}, errors.New("subscribe: nil Sink")
	}
	if r.homeOf(req.Room) != "" {
		res, err := r.subscribeRemote(ctx, req)
		if !errors.Is(err, errNotHome) {
			return res, err
		}
		// The room moved here meanwhile.
	}
	for {
		rm, err := r.roomWait(ctx, req.Room)
		if err != nil {
			return SubscribeResult{}, err
		}
		var first uint64 // oldest seq the wal retains; 0: none
		if req.Since != nil {
			// A Pebble read, so outside the locks; retention moving it
			// meanwhile only makes a later Pull report ErrTooSlow.
			if first, err = r.log.First(rm.name, rm.epoch); err != nil {
				return SubscribeResult{}, fmt.Errorf("subscribe room %q: first retained: %w", rm.name, err)
			}
		}
		if res, ok := r.attach(rm, req, first); ok {
			return res, nil
		}
		// Evicted under us: look the room up again.
	}
}

// attach registers a subscription to rm for req, first being the oldest
// seq retained (0: none). It reports false if rm was evicted meanwhile.
func (r *Router) attach(rm *room, req SubscribeRequest, first uint64) (SubscribeResult, bool) {
	s := &Subscription{rm: rm, epoch: rm.epoch, sink: req.Sink, idx: -1}
	res := SubscribeResult{Sub: s}
	head, ok := rm.addSubscriber(s, func(head, ringOldest uint64) uint64 {
		if req.Since == nil {
			return head
		}
		// The oldest message still readable: the wal's first, or
		// the ring's when the wal holds none of the ring (a write
		// raced the First read, or retention outran the ring).
		lo := first
		if lo == 0 || lo > ringOldest {
			lo = ringOldest
		}
		if since := *req.Since; since.Epoch == rm.epoch && since.Seq >= lo-1 && since.Seq <= head {
			return since.Seq
		}
		res.Reset, res.Oldest = true, Position{Epoch: rm.epoch, Seq: lo}
		return lo - 1
	})
	if !ok {
		return SubscribeResult{}, false
	}
	res.Head = Position{Epoch: rm.epoch, Seq: head}
	if s.cursor.Load() < head {
		s.notify()
	}
	return res, true
}

// Room returns the subscription's room name.
func (s *Subscription) Room() string { return s.rm.name }

// Position returns the cursor: the position of the last message pulled (or
// the starting point before any Pull).
func (s *Subscription) Position() Position {
	return Position{Epoch: s.epoch, Seq: s.cursor.Load()}
}

// Close unsubscribes; Pull then returns nothing. Idempotent.
func (s *Subscription) Close() {
	if s.closed.CompareAndSwap(false, true) && s.rm.removeSubscriber(s) {
		s.rm.r.dropReplica(s.rm)
	}
}

// notify tells the sink, unless a notification is already pending. It
// reports whether Notify was called.
func (s *Subscription) notify() bool {
	if s.notified.Load() || !s.notified.CompareAndSwap(false, true) {
		return false
	}
	s.sink.Notify(s)
	return true
}

// Pull appends up to max messages after the cursor to buf, advances the
// cursor and returns buf. It reads the room's ring, or the wal when the
// cursor fell behind the ring (a catch-up, counted in
// arena_router_catchups_total), or for a room homed on another node
// fetches them from the home (waiting up to PeerTimeout); it never waits
// for other subscribers or publishers. It returns ErrTooSlow (from then on) if the messages after the
// cursor left the wal's retention, and ErrRoomRestarted once it pulled
// everything of a room that moved or restarted (see MembersChanged). If messages remain after the ones
// returned, Notify is called again before Pull returns, so pulling once per
// notification is enough. On a closed subscription Pull returns buf unchanged.
//
// The messages are shared with other subscribers: never modify them.
func (s *Subscription) Pull(buf []*Message, max int) ([]*Message, error) {
	if max <= 0 || s.closed.Load() {
		return buf, nil
	}
	if s.tooSlow {
		return buf, ErrTooSlow
	}
	// Clear before reading, so a message written from now on notifies again.
	s.notified.Store(false)
	cur := s.cursor.Load()
	n0 := len(buf)
	buf, head, ok := s.rm.ring.readAfter(buf, cur, max)
	if !ok {
		var err error
		if buf, err = s.catchUp(buf, cur, int(min(uint64(max), head-cur))); err != nil {
			return buf, err
		}
	}
	if len(buf) > n0 {
		cur = buf[len(buf)-1].Seq
		s.cursor.Store(cur)
	} else if s.rm.ended.Load() {
		if s.rm.moved.Load() {
			return buf, ErrRoomMoved
		}
		return buf, ErrRoomRestarted
	}
	if cur < head {
		s.notify()
	}
	return buf, nil
}

// catchUp appends the n messages after cur from the wal.
func (s *Subscription) catchUp(buf []*Message, cur uint64, n int) ([]*Message, error) {
	rm := s.rm
	if rm.rep != nil {
		return s.catchUpRemote(buf, cur, n)
	}
	recs, err := rm.r.log.Read(rm.name, s.epoch, cur+1, n)
	if err != nil {
		return buf, fmt.Errorf("catch up room %q from seq %d: %w", rm.name, cur+1, err)
	}
	if len(recs) == 0 || recs[0].Seq != cur+1 {
		s.tooSlow = true
		return buf, ErrTooSlow
	}
	rm.r.metrics.catchups.Inc()
	return messagesFromRecords(buf, recs), nil
}

// catchUpRemote appends the (up to) n messages after cur of a replica's
// room, fetched from its home. A home that cannot serve them (gone,
// another epoch, retention) ends the subscription with an error wrapping
// ErrTooSlow: the client resumes, and is reset if need be.
func (s *Subscription) catchUpRemote(buf []*Message, cur uint64, n int) ([]*Message, error) {
	rm := s.rm
	r := rm.r
	res, err := r.fetch(r.ctx, rm.rep.homeID(), rm.name, s.epoch, fetchAfter, cur, min(n, maxFetchMsgs))
	switch {
	case err != nil:
		return buf, fmt.Errorf("%w: catch up room %q from its home: %w", ErrTooSlow, rm.name, err)
	case res.f.Code == codeEpoch:
		return buf, ErrRoomRestarted
	case len(res.msgs) == 0 || res.msgs[0].Seq != cur+1:
		s.tooSlow = true
		return buf, ErrTooSlow
	}
	r.metrics.catchups.Inc()
	return append(buf, res.msgs...), nil
}
