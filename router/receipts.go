package router

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/arena-mesh/arena/wal"
)

// Receipts. A client's recv (delivered) and read of a room go to the
// room's home, which keeps per user and room the highest delivered and
// read seq of the room's epoch (read is cumulative, and implies
// delivered). Only an advance counts: it is stored in the wal's receipt
// store at the next flush (one synced batch per event interval) and
// becomes a receipt event for the publishers of the messages concerned
// (the message at seq for delivered, the messages after the previous read
// position up to seq for read) and for presence watchers.
//
// Bounded cost: pending receipts are coalesced per reader and kind (a
// reader's later receipt replaces an earlier one within an interval, since
// both are positions), a flush sends at most maxReceiptsPerPublisher
// receipts to any one publisher per room (the rest wait for the next
// interval), and a read scans at most maxReceiptScan messages for their
// publishers.

// Limits of receipt processing.
const (
	// maxReceiptScan bounds the messages a read looks at to find the
	// publishers to tell; the publishers of older unread messages are
	// not told (their messages are read all the same).
	maxReceiptScan = 256
	// maxReceiptsPerPublisher bounds the receipts one flush sends to one
	// publisher of a room.
	maxReceiptsPerPublisher = 64
	// maxReceiptCache bounds the positions kept in memory; past it the
	// stored ones are dropped from memory (they are read back on use).
	maxReceiptCache = 100_000
)

// ReceiptRequest says that User received Room's message Seq, or (Read)
// read everything up to Seq.
type ReceiptRequest struct {
	Room string
	User string
	Seq  uint64
	Read bool
}

// Receipt records a delivered or read receipt at the room's home. It does
// not wait for the position to be stored (that happens within an event
// interval). A seq beyond the room's head, or not beyond the user's
// recorded position, changes nothing.
func (r *Router) Receipt(ctx context.Context, req ReceiptRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.closed.Load() {
		return ErrClosed
	}
	if err := checkUser(req.User); err != nil {
		return err
	}
	if req.Seq == 0 {
		return errors.New("receipt: seq 0")
	}
	if home := r.homeOf(req.Room); home != "" {
		return r.forwardReceipt(ctx, home, req)
	}
	return r.receiptLocal(req)
}

// receiptLocal is Receipt on the room's home.
func (r *Router) receiptLocal(req ReceiptRequest) error {
	rm, err := r.room(req.Room)
	if err != nil {
		return err
	}
	head := rm.ring.Head()
	if req.Seq > head {
		return nil
	}
	e := r.events()
	e.mu.Lock()
	_, cached := e.rec.get(req.User, req.Room)
	var from uint64
	var advanced bool
	if cached {
		from, advanced = e.rec.apply(req.User, req.Room, rm.epoch, req.Seq, req.Read)
	}
	e.mu.Unlock()
	if !cached {
		// A wal read, outside the lock; load keeps a position cached
		// meanwhile, and apply runs in the same critical section so that
		// the cache cannot lose the loaded one in between.
		st, _, err := r.log.Receipt(req.User, req.Room)
		if err != nil {
			return fmt.Errorf("receipt: %w", err)
		}
		e.mu.Lock()
		e.rec.load(st)
		from, advanced = e.rec.apply(req.User, req.Room, rm.epoch, req.Seq, req.Read)
		e.mu.Unlock()
	}
	kind := EventDelivered
	if req.Read {
		kind = EventRead
	}
	if !advanced {
		return nil
	}
	e.m.receipts.Inc()
	to := r.publishers(rm, from, req.Seq, req.User)
	e.mu.Lock()
	e.rec.addPending(req.Room, req.User, kind, req.Seq, to)
	e.mu.Unlock()
	return nil
}

// publishers returns the distinct publishers (but user) of rm's messages
// from..to, looking at the newest maxReceiptScan of them at most.
func (r *Router) publishers(rm *room, from, to uint64, user string) []string {
	if to-from+1 > maxReceiptScan {
		from = to - maxReceiptScan + 1
	}
	var froms []string
	if msgs, ok := rm.ring.readRange(nil, from, to); ok {
		for _, m := range msgs {
			froms = append(froms, m.From)
		}
	} else {
		recs, err := r.log.Read(rm.name, rm.epoch, from, int(to-from+1))
		if err != nil {
			r.logger.Debug().Err(err).Str("room", rm.name).Msg("receipt publishers not read")
		}
		for i := range recs {
			froms = append(froms, recs[i].From)
		}
	}
	slices.Sort(froms)
	froms = slices.Compact(froms)
	return slices.DeleteFunc(froms, func(f string) bool { return f == user || f == "" })
}

// receiptState is a user's positions in a room.
type receiptState struct {
	epoch, delivered, read uint64
}

// receiptSlot names a pending receipt: the reader and the kind.
type receiptSlot struct {
	user string
	kind EventKind
}

// pendingReceipt is a receipt waiting for the next flush.
type pendingReceipt struct {
	seq uint64
	to  []string // sorted
}

// homeReceipts is the receipt state of the rooms homed here: positions
// (a cache of the wal's receipt store, plus the changes not stored yet)
// and the receipts waiting for the next flush. Pure: no I/O, no lock (the
// caller holds events.mu).
type homeReceipts struct {
	states  map[string]map[string]*receiptState // user -> room ->
	cached  int
	dirty   map[presenceKey]struct{}
	pending map[string]map[receiptSlot]*pendingReceipt // room ->
}

func newHomeReceipts() *homeReceipts {
	return &homeReceipts{
		states:  make(map[string]map[string]*receiptState),
		dirty:   make(map[presenceKey]struct{}),
		pending: make(map[string]map[receiptSlot]*pendingReceipt),
	}
}

// get returns the cached positions of user in room.
func (h *homeReceipts) get(user, room string) (*receiptState, bool) {
	st, ok := h.states[user][room]
	return st, ok
}

// load caches a stored position (zero when none was stored), unless one
// is cached already.
func (h *homeReceipts) load(st wal.ReceiptState) {
	rooms := h.states[st.User]
	if rooms == nil {
		rooms = make(map[string]*receiptState)
		h.states[st.User] = rooms
	}
	if _, ok := rooms[st.Room]; ok {
		return
	}
	rooms[st.Room] = &receiptState{epoch: st.Epoch, delivered: st.Delivered, read: st.Read}
	h.cached++
}

// apply advances user's position in room (whose epoch is epoch) to seq;
// the position must be loaded. It reports whether it advanced and the
// first seq the receipt covers.
func (h *homeReceipts) apply(user, room string, epoch, seq uint64, read bool) (from uint64, advanced bool) {
	st, ok := h.get(user, room)
	if !ok {
		h.load(wal.ReceiptState{User: user, Room: room})
		st, _ = h.get(user, room)
	}
	if st.epoch != epoch {
		*st = receiptState{epoch: epoch}
	}
	if read {
		if seq <= st.read {
			return 0, false
		}
		from, st.read = st.read+1, seq
		st.delivered = max(st.delivered, seq)
	} else {
		if seq <= st.delivered {
			return 0, false
		}
		from, st.delivered = seq, seq
	}
	h.dirty[presenceKey{room: room, user: user}] = struct{}{}
	return from, true
}

// addPending queues a receipt of user for room, merging it with the
// pending one of the same kind.
func (h *homeReceipts) addPending(room, user string, kind EventKind, seq uint64, to []string) {
	slots := h.pending[room]
	if slots == nil {
		slots = make(map[receiptSlot]*pendingReceipt)
		h.pending[room] = slots
	}
	slot := receiptSlot{user: user, kind: kind}
	p := slots[slot]
	if p == nil {
		slots[slot] = &pendingReceipt{seq: seq, to: to}
		return
	}
	p.seq = max(p.seq, seq)
	for _, t := range to {
		if i, found := slices.BinarySearch(p.to, t); !found {
			p.to = slices.Insert(p.to, i, t)
		}
	}
}

// pendingRooms appends the rooms with pending receipts.
func (h *homeReceipts) pendingRooms(dst []string) []string {
	for room := range h.pending {
		dst = append(dst, room)
	}
	return dst
}

// flush appends room's pending receipts to evs, up to limit events in
// all and maxReceiptsPerPublisher per publisher; the rest stay pending.
func (h *homeReceipts) flush(room string, evs []Event, limit int) []Event {
	slots := h.pending[room]
	if len(slots) == 0 {
		return evs
	}
	keys := make([]receiptSlot, 0, len(slots))
	for k := range slots {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b receiptSlot) int {
		if c := strings.Compare(a.user, b.user); c != 0 {
			return c
		}
		return int(a.kind) - int(b.kind)
	})
	sent := make(map[string]int)
	for _, k := range keys {
		if len(evs) >= limit {
			break
		}
		p := slots[k]
		if slices.ContainsFunc(p.to, func(t string) bool { return sent[t] >= maxReceiptsPerPublisher }) {
			continue
		}
		for _, t := range p.to {
			sent[t]++
		}
		evs = append(evs, Event{Kind: k.kind, Room: room, User: k.user, Seq: p.seq, To: p.to})
		delete(slots, k)
	}
	if len(slots) == 0 {
		delete(h.pending, room)
	}
	return evs
}

// takeDirty returns the positions changed since the last call, to
// store, and trims the cache when it grew past maxReceiptCache.
func (h *homeReceipts) takeDirty() []wal.ReceiptState {
	var out []wal.ReceiptState
	for k := range h.dirty {
		st, ok := h.get(k.user, k.room)
		if !ok {
			continue
		}
		out = append(out, wal.ReceiptState{User: k.user, Room: k.room, Epoch: st.epoch, Delivered: st.delivered, Read: st.read})
	}
	clear(h.dirty)
	if h.cached > maxReceiptCache {
		// Everything is about to be stored: memory can start over.
		clear(h.states)
		h.cached = 0
	}
	return out
}

// overlayLocked returns stored (one user's stored positions, by room)
// with the cached ones of user put over them, by room name.
func (h *homeReceipts) overlayLocked(user string, stored []wal.ReceiptState) []wal.ReceiptState {
	rooms := h.states[user]
	if len(rooms) == 0 {
		return stored
	}
	for room, st := range rooms {
		if st.epoch == 0 {
			continue // loaded empty, never advanced
		}
		ws := wal.ReceiptState{User: user, Room: room, Epoch: st.epoch, Delivered: st.delivered, Read: st.read}
		i, found := slices.BinarySearchFunc(stored, room, func(s wal.ReceiptState, room string) int { return strings.Compare(s.Room, room) })
		if found {
			stored[i] = ws
		} else {
			stored = slices.Insert(stored, i, ws)
		}
	}
	return stored
}

// dropRoom forgets the pending receipts of room (no longer homed here)
// and its cached positions, except those not stored yet (the next flush
// stores them); stored positions stay in the wal.
func (h *homeReceipts) dropRoom(room string) {
	delete(h.pending, room)
	for user, rooms := range h.states {
		if _, dirty := h.dirty[presenceKey{room: room, user: user}]; dirty {
			continue
		}
		if _, ok := rooms[room]; ok {
			delete(rooms, room)
			h.cached--
			if len(rooms) == 0 {
				delete(h.states, user)
			}
		}
	}
}
