package client

import (
	"bytes"
	"context"
	"errors"
	"sync"

	"github.com/arena-mesh/arena/protocol"
)

// EventKind says what an Event carries.
type EventKind uint8

// The kinds of events a subscription delivers.
const (
	// EventMsg: Msg is the next message of the room.
	EventMsg EventKind = iota + 1
	// EventReset: the subscription's position was lost (it fell out of the
	// room's retained history, or the room restarted with a new epoch).
	// Notice.From is the last position delivered, Notice.To the first one
	// delivered next: the messages between are gone.
	EventReset
	// EventJoin and EventLeave: Notice.User joined or left the room (only
	// with SubscribeOptions.Presence).
	EventJoin
	EventLeave
	// EventReceipt: Notice.User got (Status "delivered") or read (Status
	// "read") the message Notice.Seq.
	EventReceipt
	// EventNoticesLost: the subscription lagged so far behind that
	// Notice.Lost joins, leaves or receipts were dropped (messages never
	// are: they are fetched again). Presence shown from the events is then
	// stale: call Client.Presence for the current members.
	EventNoticesLost
)

var kindNames = [...]string{"", "msg", "reset", "join", "leave", "receipt", "notices-lost"}

func (k EventKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Event is what a subscription delivers: a message, or a notice about the
// room. It is small so that channels of them are cheap.
type Event struct {
	Kind   EventKind
	Msg    *protocol.Msg // EventMsg
	Notice *Notice       // every other kind
}

// Notice details an event that is not a message.
type Notice struct {
	Room     string
	User     string            // join, leave, receipt
	Seq      uint64            // receipt
	Status   string            // receipt: "delivered" or "read"
	From, To protocol.Position // reset
	Lost     int               // notices-lost: how many notices were dropped
}

// SubscribeOptions configure a subscription.
type SubscribeOptions struct {
	// Since resumes after this position: every message after it is
	// delivered first, in order, then the live stream. nil means live from
	// the room's current head.
	Since *protocol.Position
	// Presence also delivers joins, leaves and receipts of the room.
	Presence bool
	// Buffer is the capacity of the channel of events; 0 means 256. When
	// it is full the client stops taking the room's messages (the other
	// rooms and calls go on), and once the reader catches up it fetches
	// the missed ones again from the server, so a slow reader loses
	// nothing as long as the room still retains them.
	Buffer int
}

// Subscription is the client's subscription to one room. Its events
// arrive on C in order, each message once, across reconnections.
type Subscription struct {
	c        *Client
	room     string
	presence bool
	ch       chan Event
	ready    chan struct{} // closed on the first successful subscribed reply
	done     chan struct{} // closed when the subscription ends

	mu        sync.Mutex // guards the fields below, and sends on ch
	state     subState
	pos       protocol.Position // the last message delivered (or queued for delivery)
	hasPos    bool              // pos is known: given Since, or learnt from a reply or a message
	sess      *session          // the connection the subscription was last requested on
	reqID     int64             // the sub request in flight on sess; 0 if none
	isReady   bool              // ready is closed
	pending   []Event           // events the helper must deliver before anything else
	lost      int               // notices dropped since pending was full
	helper    chan struct{}     // closed when the delivering helper returns; nil if none runs
	err       error             // why the subscription ended
	closeOnce sync.Once
}

// subState is where a subscription is in its life.
type subState uint8

const (
	// subResync: the server-side subscription must be (re)made with since
	// = pos, or is being made (reqID != 0). Messages that follow pos
	// directly are taken meanwhile; the others wait for the replay.
	subResync subState = iota
	// subLive: subscribed on the current connection.
	subLive
	// subLagging: C was full; a helper goroutine delivers the pending
	// events, messages meanwhile are dropped and fetched again later.
	subLagging
	// subClosed: unsubscribed, failed, or the client closed.
	subClosed
)

// C returns the channel of the subscription's events. It is closed when
// the subscription ends: after Unsubscribe, when the client closes, or
// when the server refuses it on a reconnection (see Err).
func (s *Subscription) C() <-chan Event { return s.ch }

// Room returns the subscription's room.
func (s *Subscription) Room() string { return s.room }

// Position returns the position of the last message delivered on C (or
// about to be), the point a later resume starts after; the zero Position
// until one is known.
func (s *Subscription) Position() protocol.Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pos
}

// Err returns why the subscription ended: nil while it runs and after
// Unsubscribe or Close, the server's error if it refused it.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Subscribe subscribes to room and waits for the server to confirm.
// Messages then arrive on the subscription's channel in order; when the
// connection is lost the client subscribes again from the last position,
// so none is missed or repeated. Errors from the server are
// *protocol.Error (CodeForbidden when the token lacks the permission).
func (c *Client) Subscribe(ctx context.Context, room string, opts SubscribeOptions) (*Subscription, error) {
	if err := protocol.CheckRoom(room); err != nil {
		return nil, err
	}
	if opts.Since != nil && opts.Since.Epoch == 0 {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "since needs an epoch")
	}
	if opts.Buffer <= 0 {
		opts.Buffer = defaultSubBuffer
	}
	sub := &Subscription{
		c:        c,
		room:     room,
		presence: opts.Presence,
		ch:       make(chan Event, opts.Buffer),
		ready:    make(chan struct{}),
		done:     make(chan struct{}),
	}
	if opts.Since != nil {
		sub.pos, sub.hasPos = *opts.Since, true
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, c.closedErr()
	}
	c.subsMu.Lock()
	if c.subs[room] != nil {
		c.subsMu.Unlock()
		return nil, ErrAlreadySubscribed
	}
	c.subs[room] = sub
	c.subsMu.Unlock()

	if s := c.currentSession(); s != nil {
		s.resync(sub)
	} // else the next connection subscribes it
	select {
	case <-sub.ready:
		return sub, nil
	case <-sub.done:
		if err := sub.Err(); err != nil {
			return nil, err
		}
		return nil, c.closedErr()
	case <-ctx.Done():
		if sess := c.dropSub(sub); sess != nil {
			// The server may have subscribed it meanwhile: undo that.
			sess.sendAbsorbed(func(b []byte, id int64) []byte {
				return appendFrame(b, &protocol.Frame{Op: protocol.OpUnsub, ID: &id, Room: room})
			})
		}
		return nil, ctx.Err()
	case <-c.ctx.Done():
		return nil, c.closedErr()
	}
}

// Unsubscribe ends the subscription: its channel is closed at once and
// the server is told, waiting for its answer until ctx ends. Unsubscribe
// is idempotent.
func (s *Subscription) Unsubscribe(ctx context.Context) error {
	sess := s.c.dropSub(s)
	if sess == nil {
		return nil
	}
	err := s.c.roundTrip(ctx, sess, func(b []byte, id int64) []byte {
		return appendFrame(b, &protocol.Frame{Op: protocol.OpUnsub, ID: &id, Room: s.room})
	})
	if errors.Is(err, errConnLost) || Code(err) == protocol.CodeNotSubscribed || errorsIsClosed(err) {
		return nil // the server-side subscription is gone with the connection
	}
	return err
}

// dropSub ends sub locally and returns the connection on which the
// server may still hold it (nil if none).
func (c *Client) dropSub(sub *Subscription) *session {
	c.subsMu.Lock()
	if c.subs[sub.room] == sub {
		delete(c.subs, sub.room)
	}
	c.subsMu.Unlock()
	sub.mu.Lock()
	sess := sub.sess
	wasOpen := sub.state != subClosed
	sub.mu.Unlock()
	sub.close(nil)
	if cur := c.currentSession(); wasOpen && sess != nil && sess == cur {
		return sess
	}
	return nil
}

// subscriptions returns the client's subscriptions.
func (c *Client) subscriptions() []*Subscription {
	c.subsMu.RLock()
	defer c.subsMu.RUnlock()
	subs := make([]*Subscription, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	return subs
}

func (c *Client) lookupSub(room string) *Subscription {
	c.subsMu.RLock()
	defer c.subsMu.RUnlock()
	return c.subs[room]
}

// close ends the subscription with err (nil for a normal end) and closes
// its channel once no goroutine can send on it any more.
func (s *Subscription) close(err error) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.state = subClosed
		s.err = err
		s.pending = nil
		helper := s.helper
		s.mu.Unlock()
		close(s.done)
		if helper != nil {
			<-helper
		}
		s.mu.Lock()
		close(s.ch)
		s.mu.Unlock()
	})
}

// fail ends a subscription the server refused.
func (c *Client) failSub(sub *Subscription, err error) {
	c.subsMu.Lock()
	if c.subs[sub.room] == sub {
		delete(c.subs, sub.room)
	}
	c.subsMu.Unlock()
	c.log.Warn().Err(err).Str("room", sub.room).Msg("subscription refused")
	sub.close(err)
}

// onMsg takes a message of the subscription's room. It delivers it if it
// is the one after pos, drops it if it was delivered already, and asks
// for a replay when messages are missing. It reports whether the caller
// must resubscribe (a gap on a live subscription).
func (s *Subscription) onMsg(m *protocol.Msg) (resync bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == subLagging || s.state == subClosed {
		return false
	}
	p := m.Position()
	if s.hasPos {
		switch {
		case p.Epoch < s.pos.Epoch:
			return false // from a sequence the room has left
		case p.Epoch == s.pos.Epoch && p.Seq <= s.pos.Seq:
			return false // delivered already
		case p.Epoch == s.pos.Epoch && p.Seq > s.pos.Seq+1:
			// Missing messages: while resubscribing these are leftovers of
			// the previous server-side subscription and the replay will
			// bring the missing ones; on a live subscription the server
			// skipped some, so ask for them.
			if s.state == subLive {
				s.state = subResync
				s.reqID = 0
				return true
			}
			return false
		case p.Epoch > s.pos.Epoch:
			s.pushLocked(Event{Kind: EventReset, Notice: &Notice{Room: s.room, From: s.pos, To: p}})
		}
	}
	s.pos, s.hasPos = p, true
	s.pushLocked(Event{Kind: EventMsg, Msg: m})
	return false
}

// onNotice delivers a join, leave or receipt. Notices cannot be fetched
// again, so while C is full they queue behind the helper.
func (s *Subscription) onNotice(ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == subClosed {
		return
	}
	s.pushLocked(ev)
}

// maxPendingNotices bounds the notices queued while a subscription lags.
const maxPendingNotices = 4096

// pushLocked hands ev to C without blocking. When C is full the
// subscription starts lagging: a helper goroutine delivers ev (and the
// notices queued after it) as the reader makes room, then has the missed
// messages replayed.
func (s *Subscription) pushLocked(ev Event) {
	if s.state == subLagging {
		if len(s.pending) < maxPendingNotices {
			s.pending = append(s.pending, ev)
		} else {
			s.lost++
		}
		return
	}
	select {
	case s.ch <- ev:
		return
	default:
	}
	s.state = subLagging
	s.pending = append(s.pending[:0], ev)
	s.helper = make(chan struct{})
	s.c.wg.Add(1)
	go s.deliverPending(s.helper)
}

// deliverPending is the helper of a lagging subscription.
func (s *Subscription) deliverPending(done chan struct{}) {
	defer s.c.wg.Done()
	defer close(done)
	for {
		s.mu.Lock()
		if s.state != subLagging {
			s.mu.Unlock()
			return
		}
		if len(s.pending) == 0 && s.lost > 0 {
			// Said after the notices that were kept, so that it comes
			// last, where presence went stale.
			s.pending = append(s.pending, Event{Kind: EventNoticesLost, Notice: &Notice{Room: s.room, Lost: s.lost}})
			s.lost = 0
		}
		if len(s.pending) == 0 {
			s.state = subResync
			s.reqID = 0
			s.helper = nil
			s.mu.Unlock()
			break
		}
		ev := s.pending[0]
		s.pending = s.pending[1:]
		s.mu.Unlock()
		select {
		case s.ch <- ev:
		case <-s.done:
			return
		case <-s.c.ctx.Done():
			return
		}
	}
	if sess := s.c.currentSession(); sess != nil {
		sess.resync(s)
	}
}

// resync (re)subscribes sub on this connection with since = its position,
// unless it is already subscribed or being subscribed here. If the server
// still holds an older subscription of the room on this connection (after
// a lag or a gap), it unsubscribes that first.
func (s *session) resync(sub *Subscription) {
	sub.mu.Lock()
	if sub.state == subClosed || sub.state == subLagging ||
		(sub.sess == s && (sub.state == subLive || sub.reqID != 0)) {
		sub.mu.Unlock()
		return
	}
	heldHere := sub.sess == s
	id := s.c.newID()
	sub.state = subResync
	sub.sess = s
	sub.reqID = id
	var since *protocol.Position
	if sub.hasPos && sub.pos.Epoch != 0 {
		p := sub.pos
		since = &p
	}
	room, presence := sub.room, sub.presence
	sub.mu.Unlock()

	if !s.addPending(id, func(f *protocol.Frame, err error) { s.onSubscribed(sub, id, f, err) }) {
		sub.lostRequest(id)
		return
	}
	sendSub := func() {
		err := s.send(s.ctx, false, func(b []byte) []byte {
			return appendFrame(b, &protocol.Frame{Op: protocol.OpSub, ID: &id, Room: room, Since: since, Presence: presence})
		})
		if err != nil && s.takePending(id) != nil {
			sub.lostRequest(id)
		}
	}
	if !heldHere {
		sendSub()
		return
	}
	uid := s.c.newID()
	if !s.addPending(uid, func(_ *protocol.Frame, err error) {
		if err == nil { // any answer, not_subscribed included, means it is gone
			sendSub()
		}
	}) {
		return // the session ended: failPending resets the sub request
	}
	if err := s.send(s.ctx, false, func(b []byte) []byte {
		return appendFrame(b, &protocol.Frame{Op: protocol.OpUnsub, ID: &uid, Room: room})
	}); err != nil && s.takePending(uid) != nil && s.takePending(id) != nil {
		sub.lostRequest(id)
	}
}

// lostRequest marks the sub request id as never answered, so that the
// next connection sends it again.
func (sub *Subscription) lostRequest(id int64) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.reqID == id && sub.state == subResync {
		sub.reqID = 0
	}
}

// onSubscribed handles the reply to sub request id.
func (s *session) onSubscribed(sub *Subscription, id int64, f *protocol.Frame, err error) {
	sub.mu.Lock()
	if sub.reqID != id || sub.state == subClosed {
		sub.mu.Unlock()
		return
	}
	sub.reqID = 0
	if err != nil { // the connection ended; the next one subscribes again
		if sub.state == subLive {
			sub.state = subResync
		}
		sub.mu.Unlock()
		return
	}
	if f.Op != protocol.OpSubscribed {
		e := frameError(f)
		if f.Op != protocol.OpError {
			e = protocol.Errorf(protocol.CodeInternal, "unexpected %q reply to sub", f.Op)
		}
		sub.mu.Unlock()
		if retryable(e) || e.Code == protocol.CodeInternal || e.Code == protocol.CodeRateLimited {
			s.log.Debug().Err(e).Str("room", sub.room).Msg("subscribe failed, retrying")
			s.c.afterFunc(s.c.backoff(1), func() {
				if cur := s.c.currentSession(); cur != nil {
					cur.resync(sub)
				}
			})
			return
		}
		s.c.failSub(sub, e)
		return
	}
	switch {
	case f.Reset && f.Oldest != nil && f.Oldest.Epoch != 0:
		o := *f.Oldest
		// Nothing is lost if what was delivered already reaches the oldest
		// retained message (say the replay began before this reply).
		if !(sub.hasPos && sub.pos.Epoch == o.Epoch && sub.pos.Seq+1 >= o.Seq) {
			from := sub.pos
			sub.pos, sub.hasPos = protocol.Position{Epoch: o.Epoch, Seq: max(o.Seq, 1) - 1}, true
			sub.pushLocked(Event{Kind: EventReset, Notice: &Notice{Room: sub.room, From: from, To: o}})
		}
	case !sub.hasPos && f.Head != nil && f.Head.Epoch != 0:
		sub.pos, sub.hasPos = *f.Head, true
	}
	if sub.state == subResync {
		sub.state = subLive
	}
	if !sub.isReady {
		sub.isReady = true
		close(sub.ready)
	}
	sub.mu.Unlock()
}

// deliverMsg routes a msg frame decoded by encoding/json to its room's
// subscription.
func (c *Client) deliverMsg(s *session, f *protocol.Frame) {
	sub := c.lookupSub(f.Room)
	if sub == nil || f.Epoch == 0 || f.Seq == 0 {
		return // unsubscribed meanwhile, or not a real position
	}
	s.deliver(sub, &protocol.Msg{Room: sub.room, Epoch: f.Epoch, Seq: f.Seq, TS: f.TS, From: f.From, Key: f.Key, Data: f.Data})
}

// deliverRaw routes a msg frame parsed by decodeMsg (whose fields alias
// the read buffer) to its room's subscription.
func (c *Client) deliverRaw(s *session, r *rawMsg) {
	c.subsMu.RLock()
	sub := c.subs[string(r.room)]
	c.subsMu.RUnlock()
	if sub == nil || r.epoch == 0 || r.seq == 0 {
		return
	}
	if string(r.from) != s.lastFrom {
		s.lastFrom = string(r.from)
	}
	m := &protocol.Msg{Room: sub.room, Epoch: r.epoch, Seq: r.seq, TS: r.ts, From: s.lastFrom, Data: bytes.Clone(r.data)}
	if len(r.key) > 0 {
		m.Key = string(r.key)
	}
	s.deliver(sub, m)
}

// deliver hands m to sub, and resubscribes sub if m revealed a gap.
func (s *session) deliver(sub *Subscription, m *protocol.Msg) {
	if sub.onMsg(m) {
		s.log.Warn().Str("room", sub.room).Uint64("epoch", m.Epoch).Uint64("seq", m.Seq).Msg("gap in a room's messages, resubscribing")
		s.resync(sub)
	}
}

// deliverNotice routes a join, leave or receipt to its room's
// subscription, or to Options.OnEvent when there is none.
func (c *Client) deliverNotice(f *protocol.Frame) {
	ev := Event{Notice: &Notice{Room: f.Room, User: f.User, Seq: f.Seq, Status: f.Status}}
	switch f.Op {
	case protocol.OpJoin:
		ev.Kind = EventJoin
	case protocol.OpLeave:
		ev.Kind = EventLeave
	default:
		ev.Kind = EventReceipt
	}
	if sub := c.lookupSub(f.Room); sub != nil {
		sub.onNotice(ev)
	} else if c.opts.OnEvent != nil {
		c.opts.OnEvent(ev)
	}
}
