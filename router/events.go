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

// EventKind says what an Event is.
type EventKind uint8

// Event kinds.
const (
	EventJoin      EventKind = iota + 1 // User joined Room
	EventLeave                          // User left Room
	EventDelivered                      // User received Room up to Seq (a receipt)
	EventRead                           // User read Room up to Seq (a receipt)
)

// Event is a presence change or a receipt of a room. Receipts go to the
// connections of the publishers listed in To and to presence watchers;
// joins and leaves only to presence watchers. Events are shared by every
// connection they are delivered to: never modify them.
type Event struct {
	Kind EventKind
	Room string
	User string
	Seq  uint64   // receipts only
	To   []string // receipts only: the publishers of the messages concerned
}

// EventSink receives the events of a connection's room, in batches of at
// most one event interval. Events runs on the router's event goroutine:
// it must not block nor call the router.
type EventSink interface {
	Events(room string, evs []Event)
}

// EnterRequest makes a connection present in a room.
type EnterRequest struct {
	Room string
	User string
	// Presence asks for the room's joins, leaves and receipts; without
	// it the connection gets only receipts of messages its user published.
	Presence bool
	// Sink receives the events (required).
	Sink EventSink
}

// PresenceConn is one connection's presence in a room (returned by
// Enter): its user stays present until Leave.
type PresenceConn struct {
	e        *events
	key      presenceKey
	presence bool
	sink     EventSink
	left     atomic.Bool
}

// events is the router's presence and receipt machinery: the two
// presence layers (presence.go), the receipt state of rooms homed here
// (receipts.go), and the loop that every Config.EventInterval expires
// grace periods, flushes coalesced changes to the connections, and
// stores receipt positions. It is created on first use.
type events struct {
	once  sync.Once
	r     *Router
	ready atomic.Bool // init ran
	calls presenceCalls

	mu sync.Mutex // guards everything below
	// local counts this node's connections; home holds the member sets of
	// rooms homed here.
	local *localPresence
	home  *homePresence
	// conns lists this node's connections per room, for delivery.
	conns map[string]map[*PresenceConn]struct{}
	// reports lists the keys whose local count changed and must be
	// reported to a home on another node.
	reports map[presenceKey]struct{}
	// full lists the rooms whose local counts are reported in full at
	// the next flush (after a membership change).
	full map[string]struct{}
	// lastLive is the member set presence last adapted to.
	lastLive map[mesh.NodeID]bool
	// fullAgain, when not zero, is when every room is reported in full
	// once more after a membership change: a home whose view lagged this
	// node's ignored the first full report.
	fullAgain time.Time
	rec       *homeReceipts
	m         *eventMetrics
}

// init starts the machinery once.
func (e *events) init(r *Router) *events {
	e.once.Do(func() {
		e.r = r
		e.local = newLocalPresence(r.cfg.PresenceGrace)
		e.home = newHomePresence()
		e.conns = make(map[string]map[*PresenceConn]struct{})
		e.reports = make(map[presenceKey]struct{})
		e.full = make(map[string]struct{})
		e.lastLive = make(map[mesh.NodeID]bool)
		if r.mesh != nil {
			for n := range r.view.Load().live {
				e.lastLive[n] = true
			}
		}
		e.rec = newHomeReceipts()
		m, err := newEventMetrics(r.cfg.Registerer)
		if err != nil {
			r.logger.Warn().Err(err).Msg("presence metrics not registered")
		}
		e.m = m
		e.ready.Store(true)
		r.spawn(e.loop)
	})
	return e
}

// events returns the router's event machinery, starting it if need be.
func (r *Router) events() *events { return r.ev.init(r) }

// loop flushes every EventInterval until the router closes.
func (e *events) loop() {
	t := time.NewTicker(e.r.cfg.EventInterval)
	defer t.Stop()
	for {
		select {
		case <-e.r.stop:
			e.flush(e.r.cfg.Now()) // store the last receipt positions
			return
		case <-t.C:
			e.flush(e.r.cfg.Now())
		}
	}
}

// Enter makes the connection present in req.Room: its user joins the room
// (for everyone watching presence, within an event interval) if it had
// no connection there yet, anywhere in the mesh. Leave ends it.
func (r *Router) Enter(req EnterRequest) (*PresenceConn, error) {
	if r.closed.Load() {
		return nil, ErrClosed
	}
	if req.Sink == nil || req.Room == "" || req.User == "" {
		return nil, errors.New("enter: Room, User and Sink are required")
	}
	e := r.events()
	c := &PresenceConn{e: e, key: presenceKey{room: req.Room, user: req.User}, presence: req.Presence, sink: req.Sink}
	e.mu.Lock()
	defer e.mu.Unlock()
	set := e.conns[req.Room]
	if set == nil {
		set = make(map[*PresenceConn]struct{})
		e.conns[req.Room] = set
	}
	set[c] = struct{}{}
	if e.local.enter(c.key) {
		e.localChangedLocked(c.key)
	}
	return c, nil
}

// Leave ends the connection's presence. Graceful (the client closed or
// unsubscribed) counts it out at once; otherwise (the connection
// dropped) its user stays present for Config.PresenceGrace, unless it
// comes back meanwhile. Idempotent.
func (c *PresenceConn) Leave(graceful bool) {
	if c.left.Swap(true) {
		return
	}
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if set := e.conns[c.key.room]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(e.conns, c.key.room)
		}
	}
	if e.local.exit(c.key, e.r.cfg.Now(), graceful) {
		e.localChangedLocked(c.key)
	}
}

// localChangedLocked takes a change of this node's count of k to k's
// home: at once when that is this node, else at the next flush.
func (e *events) localChangedLocked(k presenceKey) {
	if e.r.isHome(k.room) {
		e.home.set(k.room, k.user, e.r.self, e.local.count(k))
		return
	}
	e.reports[k] = struct{}{}
}

// Presence returns the users present in room, anywhere in the mesh, with
// their connection counts, by user name.
func (r *Router) Presence(ctx context.Context, room string) ([]Member, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if r.closed.Load() {
		return nil, ErrClosed
	}
	if home := r.homeOf(room); home != "" {
		return r.remoteMembers(ctx, home, room)
	}
	e := r.events()
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.home.members(room), nil
}

// maxFlushEvents bounds the events of one room per flush; the rest wait
// for the next interval (coalesced further meanwhile).
const maxFlushEvents = 512

// batch is one room's events of a flush and the nodes they go to.
type batch struct {
	room  string
	evs   []Event
	nodes []mesh.NodeID
}

// flush runs one event interval: grace periods that ended, reports to
// remote homes, the coalesced changes of rooms homed here to every node
// with connections in them, and the receipt positions to the wal.
func (e *events) flush(now time.Time) {
	e.mu.Lock()
	for _, k := range e.local.expire(now, nil) {
		e.localChangedLocked(k)
	}
	if !e.fullAgain.IsZero() && !now.Before(e.fullAgain) {
		e.fullAgain = time.Time{}
		for k := range e.local.conns {
			e.full[k.room] = struct{}{}
		}
	}
	reports := e.takeReportsLocked()
	full := e.takeFullLocked()
	var batches []batch
	rooms := e.home.dirtyRooms(nil)
	rooms = e.rec.pendingRooms(rooms)
	slices.Sort(rooms)
	rooms = slices.Compact(rooms)
	for _, room := range rooms {
		var evs []Event
		changes := e.home.flush(room, maxFlushEvents)
		e.m.changes.Add(float64(len(changes)))
		for _, ch := range changes {
			kind := EventLeave
			if ch.Joined {
				kind = EventJoin
			}
			evs = append(evs, Event{Kind: kind, Room: room, User: ch.User})
		}
		evs = e.rec.flush(room, evs, maxFlushEvents)
		if len(evs) > 0 {
			batches = append(batches, batch{room: room, evs: evs, nodes: e.home.nodes(room, nil)})
		}
	}
	states := e.rec.takeDirty()
	e.mu.Unlock()

	e.sendReports(reports, full)
	for i := range batches {
		b := &batches[i]
		for _, n := range b.nodes {
			if n == e.r.self {
				e.deliver(b.room, b.evs)
			} else {
				e.sendEvents(n, b.room, b.evs)
			}
		}
	}
	if len(states) > 0 {
		if err := e.r.log.PutReceipts(states); err != nil {
			if !errors.Is(err, wal.ErrClosed) {
				e.r.logger.Warn().Err(err).Int("receipts", len(states)).Msg("receipt positions not stored")
			}
		} else {
			e.m.stored.Add(float64(len(states)))
		}
	}
}

// takeReportsLocked returns the counts to report to remote homes, by
// room, and clears them.
func (e *events) takeReportsLocked() map[string][]userCount {
	if len(e.reports) == 0 {
		return nil
	}
	out := make(map[string][]userCount)
	for k := range e.reports {
		if e.r.isHome(k.room) {
			// The room came here meanwhile: apply directly.
			e.home.set(k.room, k.user, e.r.self, e.local.count(k))
			continue
		}
		out[k.room] = append(out[k.room], userCount{user: k.user, conns: e.local.count(k)})
	}
	clear(e.reports)
	return out
}

// deliver hands a room's events to this node's connections in it:
// presence watchers get them all, others the receipts meant for their
// user.
func (e *events) deliver(room string, evs []Event) {
	e.mu.Lock()
	set := e.conns[room]
	conns := make([]*PresenceConn, 0, len(set))
	for c := range set {
		conns = append(conns, c)
	}
	e.mu.Unlock()
	var mine []Event
	n := 0
	defer func() { e.m.deliveries.Add(float64(n)) }()
	for _, c := range conns {
		if c.presence {
			c.sink.Events(room, evs)
			n += len(evs)
			continue
		}
		mine = mine[:0]
		for i := range evs {
			if evs[i].Kind >= EventDelivered && slices.Contains(evs[i].To, c.key.user) {
				mine = append(mine, evs[i])
			}
		}
		if len(mine) > 0 {
			c.sink.Events(room, slices.Clone(mine))
			n += len(mine)
		}
	}
}

// UserRoom is where a user stands in one room: the room's head, the
// user's read position and how many messages are unread.
type UserRoom struct {
	Room      string
	Head      Position
	Read      Position // everything up to Read.Seq of Read.Epoch is read
	Delivered Position // the highest seq delivered to the user
	// Unread counts the messages after Read up to Head (all of Head's
	// epoch when Read is from an older one).
	Unread uint64
}

// UserRooms lists, in room-name order, the rooms user has receipt
// positions in (anywhere in the mesh), with the unread count of each.
// With a mesh, a node that does not answer within PeerTimeout leaves its
// rooms out; a room whose home cannot be reached for its head fails the
// call with ErrUnavailable.
func (r *Router) UserRooms(ctx context.Context, user string) ([]UserRoom, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if r.closed.Load() {
		return nil, ErrClosed
	}
	if err := checkUser(user); err != nil {
		return nil, err
	}
	states, err := r.localUserStates(user)
	if err != nil {
		return nil, err
	}
	if r.mesh != nil {
		states = newestStates(append(states, r.remoteUserStates(ctx, user)...))
	}
	out := make([]UserRoom, 0, len(states))
	for _, st := range states {
		head, err := r.Head(st.Room)
		if err != nil {
			return nil, fmt.Errorf("user rooms: head of %q: %w", st.Room, err)
		}
		out = append(out, userRoom(wal.ReceiptState{User: user, Room: st.Room, Epoch: st.Epoch, Delivered: st.Delivered, Read: st.Read}, head))
	}
	return out, nil
}

// userRoom computes a UserRoom from a stored position and the head.
func userRoom(st wal.ReceiptState, head Position) UserRoom {
	u := UserRoom{
		Room:      st.Room,
		Head:      head,
		Read:      Position{Epoch: st.Epoch, Seq: st.Read},
		Delivered: Position{Epoch: st.Epoch, Seq: st.Delivered},
	}
	switch {
	case st.Epoch != head.Epoch:
		u.Unread = head.Seq
	case st.Read < head.Seq:
		u.Unread = head.Seq - st.Read
	}
	return u
}

// checkUser rejects user ids the receipt store cannot key.
func checkUser(user string) error {
	if user == "" || len(user) > wal.MaxUserLen {
		return fmt.Errorf("router: user id of %d bytes", len(user))
	}
	return nil
}
