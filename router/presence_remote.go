package router

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/arena-mesh/arena/mesh"
	"github.com/arena-mesh/arena/wal"
)

// The multi-node half of presence and receipts (frames in
// peerframe_presence.go):
//
//   - every node reports its connection counts of a room to the room's
//     home at each flush (only the changed users; every user after a
//     membership change, in case the home changed);
//   - the home sends each flush's events of a room to every node with
//     connections in it, which delivers them to its connections;
//   - recv and read are forwarded to the home;
//   - presence asks the home; a user's rooms asks every node for the
//     positions it stored (a room's positions stay where its home was
//     when they were recorded) and takes the newest per room.
//
// When a node dies, its homes drop its counts at the membership change:
// its users leave once the mesh has detected the failure. A room whose
// home changed starts with the counts the nodes report to the new home,
// which announces the members as joins again.

// presenceCalls holds the queries waiting for their replies.
type presenceCalls struct {
	mu sync.Mutex // guards m
	m  map[uint64]chan *presenceFrame
}

func (c *presenceCalls) add(req uint64) chan *presenceFrame {
	ch := make(chan *presenceFrame, 1)
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[uint64]chan *presenceFrame)
	}
	c.m[req] = ch
	c.mu.Unlock()
	return ch
}

func (c *presenceCalls) remove(req uint64) {
	c.mu.Lock()
	delete(c.m, req)
	c.mu.Unlock()
}

func (c *presenceCalls) deliver(f *presenceFrame) {
	c.mu.Lock()
	ch := c.m[f.Req]
	delete(c.m, f.Req)
	c.mu.Unlock()
	if ch != nil {
		ch <- f
	}
}

// query sends a query frame (key room) to peer and waits for its reply,
// at most PeerTimeout.
func (r *Router) presenceQuery(ctx context.Context, peer mesh.NodeID, typ byte, room string) (*presenceFrame, error) {
	e := r.events()
	req := r.nextReq.Add(1)
	ch := e.calls.add(req)
	defer e.calls.remove(req)
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PeerTimeout)
	defer cancel()
	if err := r.mesh.Send(ctx, peer, room, appendQuery(nil, typ, room, req)); err != nil {
		return nil, fmt.Errorf("%w: send to %s: %w", ErrUnavailable, peer, err)
	}
	select {
	case f := <-ch:
		return f, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: %s did not answer", ErrUnavailable, peer)
		}
		return nil, ctx.Err()
	case <-r.stop:
		return nil, ErrClosed
	}
}

// remoteMembers asks home for room's members.
func (r *Router) remoteMembers(ctx context.Context, home mesh.NodeID, room string) ([]Member, error) {
	f, err := r.presenceQuery(ctx, home, peerMembersQuery, room)
	if err != nil {
		return nil, err
	}
	if err := codeError(home, f.Code); err != nil {
		return nil, err
	}
	ms := make([]Member, len(f.Counts))
	for i, c := range f.Counts {
		ms[i] = Member{User: c.user, Conns: c.conns}
	}
	return ms, nil
}

// remoteUserStates asks every other node for user's stored positions. A
// node that does not answer is left out (its rooms are missing from the
// answer) rather than failing the whole list.
func (r *Router) remoteUserStates(ctx context.Context, user string) []userRoomState {
	var (
		mu  sync.Mutex // guards out
		out []userRoomState
		wg  sync.WaitGroup
	)
	for _, m := range r.view.Load().members {
		if m.ID == r.self {
			continue
		}
		wg.Go(func() {
			f, err := r.presenceQuery(ctx, m.ID, peerUserRoomsQuery, user)
			if err != nil {
				r.logger.Debug().Err(err).Str("peer", string(m.ID)).Msg("user rooms not answered")
				return
			}
			mu.Lock()
			out = append(out, f.States...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// localUserStates returns user's positions stored here, with the ones not
// stored yet put over them.
func (r *Router) localUserStates(user string) ([]userRoomState, error) {
	stored, err := r.log.Receipts(user)
	if err != nil {
		return nil, fmt.Errorf("user rooms: %w", err)
	}
	e := r.events()
	e.mu.Lock()
	stored = e.rec.overlayLocked(user, stored)
	e.mu.Unlock()
	out := make([]userRoomState, len(stored))
	for i, st := range stored {
		out[i] = userRoomState{Room: st.Room, Epoch: st.Epoch, Delivered: st.Delivered, Read: st.Read}
	}
	return out, nil
}

// newestStates keeps, per room, the newest position (highest epoch, then
// read, then delivered), by room name.
func newestStates(states []userRoomState) []userRoomState {
	slices.SortFunc(states, func(a, b userRoomState) int {
		if c := strings.Compare(a.Room, b.Room); c != 0 {
			return c
		}
		for _, d := range [][2]uint64{{b.Epoch, a.Epoch}, {b.Read, a.Read}, {b.Delivered, a.Delivered}} {
			if d[0] != d[1] {
				if d[0] > d[1] {
					return 1
				}
				return -1
			}
		}
		return 0
	})
	return slices.CompactFunc(states, func(a, b userRoomState) bool { return a.Room == b.Room })
}

// forwardReceipt sends a receipt to the room's home, without waiting.
func (r *Router) forwardReceipt(_ context.Context, home mesh.NodeID, req ReceiptRequest) error {
	if !r.enqueue(home, req.Room, appendReceiptFrame(nil, req)) {
		return fmt.Errorf("%w: receipt not queued to %s", ErrUnavailable, home)
	}
	return nil
}

// sendReports sends this node's changed counts to the rooms' homes.
func (e *events) sendReports(reports map[string][]userCount, full map[string][]userCount) {
	for room, counts := range reports {
		if home := e.r.homeOf(room); home != "" {
			e.r.enqueue(home, room, appendPresenceReport(nil, room, false, counts))
		}
	}
	for room, counts := range full {
		if home := e.r.homeOf(room); home != "" {
			e.r.enqueue(home, room, appendPresenceReport(nil, room, true, counts))
		}
	}
}

// sendEvents sends a room's events to node.
func (e *events) sendEvents(node mesh.NodeID, room string, evs []Event) {
	for _, f := range eventFrames(room, evs) {
		e.r.enqueue(node, room, f)
	}
}

// takeFullLocked returns the complete counts of the rooms marked for a
// full report (after a membership change) whose home is elsewhere, and
// applies the others here.
func (e *events) takeFullLocked() map[string][]userCount {
	if len(e.full) == 0 {
		return nil
	}
	// One pass over every local connection, not one per room: after a
	// membership change every room is in full, and a pass per room was
	// rooms × connections (29 ms of a flush with 1,000 rooms of 2).
	byRoom := e.local.countsOf(e.full)
	out := make(map[string][]userCount)
	for room := range e.full {
		counts := byRoom[room]
		if e.r.isHome(room) {
			e.home.replaceNode(room, e.r.self, counts)
			continue
		}
		out[room] = counts
	}
	clear(e.full)
	return out
}

// presenceViewChanged adapts presence to a new member list (called by
// MembersChanged): counts of nodes that are gone are dropped (their users
// leave at the next flush), rooms no longer homed here are forgotten, and
// every room with local connections is reported in full at the next
// flush, to whichever node is its home now.
func (r *Router) presenceViewChanged() {
	e := &r.ev
	if !e.ready.Load() {
		return
	}
	nv := r.view.Load()
	e.mu.Lock()
	defer e.mu.Unlock()
	for n := range e.lastLive {
		if !nv.live[n] && n != r.self {
			e.home.dropNode(n)
		}
	}
	e.lastLive = make(map[mesh.NodeID]bool, len(nv.live))
	for n := range nv.live {
		e.lastLive[n] = true
	}
	for room := range e.home.rooms {
		if !r.isHome(room) {
			e.home.dropRoom(room)
		}
	}
	for _, room := range e.rec.pendingRooms(nil) {
		if !r.isHome(room) {
			e.rec.dropRoom(room)
		}
	}
	for k := range e.local.conns {
		e.full[k.room] = struct{}{}
	}
	e.fullAgain = r.cfg.Now().Add(fullReportRepeat)
}

// presenceReassert reports in full, at the next flush, every room with
// connections here whose home is from: from greeted this node as a node
// that (re)appeared in its view, so it may have dropped this node's
// counts meanwhile (see reassertInterest).
func (r *Router) presenceReassert(from mesh.NodeID) {
	e := &r.ev
	if !e.ready.Load() {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for k := range e.local.conns {
		if r.homeOf(k.room) == from {
			e.full[k.room] = struct{}{}
		}
	}
}

// fullReportRepeat is how long after a membership change every room is
// reported in full a second time (see events.fullAgain): longer than the
// mesh takes to tell every node of a change.
const fullReportRepeat = 2 * time.Second

// handlePresenceFrame handles a presence or receipt frame from a peer
// (dispatched by HandlePeerFrame). It never blocks on the network.
func (r *Router) handlePresenceFrame(from mesh.NodeID, frame []byte) {
	f := new(presenceFrame)
	if err := decodePresenceFrame(frame, f); err != nil {
		r.metrics.badPeerFrames.Inc()
		r.logger.Warn().Err(err).Str("peer", string(from)).Msg("malformed peer frame")
		return
	}
	e := r.events()
	switch f.Type {
	case peerPresenceReport:
		if !r.isHome(f.Room) {
			return // the sender reports again in full once its view agrees
		}
		e.mu.Lock()
		if f.Full {
			e.home.replaceNode(f.Room, from, f.Counts)
		} else {
			for _, c := range f.Counts {
				e.home.set(f.Room, c.user, from, c.conns)
			}
		}
		e.mu.Unlock()
	case peerPresenceEvents:
		e.deliver(f.Room, f.Events)
	case peerReceipt:
		req := ReceiptRequest{Room: f.Room, User: f.User, Seq: f.Seq, Read: f.Read}
		r.spawn(func() {
			if err := r.receiptLocal(req); err != nil && !errors.Is(err, errNotHome) && !errors.Is(err, ErrClosed) {
				r.logger.Debug().Err(err).Str("room", req.Room).Msg("forwarded receipt failed")
			}
		})
	case peerMembersQuery:
		code, ms := codeNotHome, []Member(nil)
		if r.isHome(f.Room) {
			e.mu.Lock()
			code, ms = codeOK, e.home.members(f.Room)
			e.mu.Unlock()
		}
		r.reply(from, f.Room, appendMembersReply(nil, f.Room, f.Req, code, ms))
	case peerUserRoomsQuery:
		r.spawn(func() {
			states, err := r.localUserStates(f.Room)
			if err != nil && !errors.Is(err, wal.ErrInvalid) {
				r.logger.Warn().Err(err).Msg("user rooms query failed")
			}
			r.reply(from, f.Room, appendUserRoomsReply(nil, f.Room, f.Req, states))
		})
	case peerMembersReply, peerUserRoomsReply:
		e.calls.deliver(f)
	}
}
