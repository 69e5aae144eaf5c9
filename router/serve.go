package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/arena-mesh/arena/mesh"
)

// maxFetchReplyBytes bounds a fetch reply, well under the mesh's frame
// limit; a requester asks again for the rest.
const maxFetchReplyBytes = mesh.DefaultMaxFrameSize / 2

// servePublish sequences a publish forwarded by an edge and answers once it
// is durable. Sequencing happens here, on the handler's goroutine, so one
// edge's publishes to a room are ordered as sent; the answer goes from
// the wal's durable callback.
func (r *Router) servePublish(from mesh.NodeID, f *peerFrame) {
	room := string(f.Room)
	req := PublishRequest{
		Room: room,
		From: string(f.Msg.From),
		Key:  string(f.Msg.Key),
		Data: bytes.Clone(f.Msg.Data), // the frame is the mesh's buffer
	}
	id := f.Req
	err := r.publishLocal(req, func(ack Ack, err error) { r.replyAck(from, room, id, ack, err) })
	if err != nil {
		r.replyAck(from, room, id, Ack{}, err)
	}
}

// replyAck answers a forwarded publish.
func (r *Router) replyAck(to mesh.NodeID, room string, req uint64, ack Ack, err error) {
	var flags byte
	if ack.Dup {
		flags = flagDup
	}
	code := peerCodeOf(err)
	if code == codeInternal {
		r.logger.Warn().Err(err).Str("room", room).Str("peer", string(to)).Msg("forwarded publish failed")
	}
	r.reply(to, room, appendReply(nil, room, ack.Epoch, req, code, flags, ack.Seq, 0, ack.TS))
}

// serveInterest registers a peer's interest in a room homed here, or
// mirrored here as its region's relay, and answers with the room's
// epoch, head and (on the home) oldest retained seq. Messages written
// after that head are pushed to the peer (some at or before it may be
// pushed too; the peer ignores them).
func (r *Router) serveInterest(from mesh.NodeID, f *peerFrame) {
	room, token := string(f.Room), f.Req
	r.spawn(func() {
		var epoch, head, first uint64
		var err error
		if r.isHome(room) {
			epoch, head, first, err = r.addInterest(room, from, token)
		} else {
			epoch, head, err = r.addRelayInterest(room, from, token)
		}
		r.reply(from, room, appendReply(nil, room, epoch, token, peerCodeOf(err), 0, head, first, 0))
	})
}

// addRelayInterest registers a peer's interest in a room homed elsewhere
// at this node, its region's relay for the room: this node mirrors the
// room (a replica fed by the home, kept while any peer or local client
// uses it) and pushes each message on to the peer. A node that is not the
// relay in its view answers errNotHome (the peer asks again).
func (r *Router) addRelayInterest(name string, peer mesh.NodeID, token uint64) (epoch, head uint64, err error) {
	ctx, cancel := r.peerTimeoutCtx()
	defer cancel()
	for {
		if home, feed := r.sourceOf(name); home == "" || feed != home {
			return 0, 0, errNotHome
		}
		rep, err := r.replicaFor(ctx, name)
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, 0, fmt.Errorf("%w: relay room %q: %w", ErrUnavailable, name, err)
		}
		if err != nil {
			return 0, 0, err
		}
		if rep.feedID() != rep.homeID() {
			return 0, 0, errNotHome // it takes the room from another relay
		}
		rm := rep.rm
		rm.subsMu.Lock()
		if rm.evicted.Load() {
			rm.subsMu.Unlock()
			continue
		}
		if !r.isMember(peer) {
			rm.subsMu.Unlock()
			return 0, 0, errNotMember(peer)
		}
		if rm.interest == nil {
			rm.interest = make(map[mesh.NodeID]uint64)
		}
		rm.interest[peer] = token
		head = rm.ring.Head()
		rm.subsMu.Unlock()
		r.logger.Debug().Str("room", name).Str("peer", string(peer)).Uint64("epoch", rm.epoch).Msg("relay interest added")
		return rm.epoch, head, nil
	}
}

func (r *Router) addInterest(name string, peer mesh.NodeID, token uint64) (epoch, head, first uint64, err error) {
	ctx, cancel := r.peerTimeoutCtx()
	defer cancel()
	for {
		rm, err := r.roomWait(ctx, name)
		if err != nil {
			return 0, 0, 0, err
		}
		if first, err = r.log.First(rm.name, rm.epoch); err != nil {
			return 0, 0, 0, fmt.Errorf("interest in room %q: first retained: %w", name, err)
		}
		rm.subsMu.Lock()
		if rm.evicted.Load() {
			rm.subsMu.Unlock()
			continue
		}
		if !r.isMember(peer) {
			rm.subsMu.Unlock()
			return 0, 0, 0, errNotMember(peer)
		}
		if rm.interest == nil {
			rm.interest = make(map[mesh.NodeID]uint64)
		}
		rm.interest[peer] = token
		head = rm.ring.Head()
		rm.subsMu.Unlock()
		rm.touch()
		r.logger.Debug().Str("room", name).Str("peer", string(peer)).Uint64("epoch", rm.epoch).Msg("interest added")
		return rm.epoch, head, first, nil
	}
}

// errNotMember is the refusal of an interest from a node that is not a
// member in this node's view (it left, or has not been seen joining yet:
// it asks again).
//
// Interest is only taken from members, checked under the room's subsMu:
// a membership change stores its view before it drops the interest of
// the peers that are gone (applyViewLocked, under each room's subsMu), so
// an interest frame that arrives after the change, from a node that has
// left (a relay handing its replica to the home on its way out), is
// refused rather than kept, and pushed to, for ever.
func errNotMember(peer mesh.NodeID) error {
	return fmt.Errorf("%w: %s is not a member", ErrUnavailable, peer)
}

// serveDrop ends a peer's interest, if the token is still the current
// one, in a room homed here or relayed from here (a relay's replica that
// nobody uses any more is dropped).
func (r *Router) serveDrop(from mesh.NodeID, f *peerFrame) {
	r.mu.RLock()
	rm := r.active[string(f.Room)]
	if rm == nil {
		if rep := r.replicas[string(f.Room)]; rep != nil {
			rm = rep.established()
		}
	}
	r.mu.RUnlock()
	if rm == nil {
		return
	}
	emptied := rm.removeInterest(from, f.Req)
	rm.touch()
	if emptied {
		r.dropReplica(rm)
	}
}

// serveFetch answers a range request for a room homed here.
func (r *Router) serveFetch(from mesh.NodeID, f *peerFrame) {
	room, epoch, req := string(f.Room), f.Epoch, f.Req
	mode, seq, limit := f.Mode, f.Seq, int(f.Limit)
	r.spawn(func() {
		ctx, cancel := r.peerTimeoutCtx()
		rm, err := r.roomWait(ctx, room)
		cancel()
		if err != nil {
			r.reply(from, room, fetchFailure(room, 0, req, peerCodeOf(err), 0))
			return
		}
		head := rm.ring.Head()
		if epoch != 0 && epoch != rm.epoch {
			r.reply(from, room, fetchFailure(room, rm.epoch, req, codeEpoch, head))
			return
		}
		first, err := r.log.First(rm.name, rm.epoch)
		var msgs []*Message
		if err == nil && limit > 0 {
			q := HistoryQuery{Limit: limit}
			switch mode {
			case fetchAfter:
				// After 0 is from the oldest retained, which need not be seq 1.
				q.After, q.FromOldest = seq, seq == 0
			case fetchBefore:
				q.Before = seq
			}
			msgs, err = r.historyOf(rm, q, head)
		}
		if err != nil {
			r.reply(from, room, fetchFailure(room, rm.epoch, req, peerCodeOf(err), head))
			return
		}
		if mode != fetchAfter {
			// Keep the newest ones when the frame cannot hold them all.
			for len(msgs) > 1 && fetchSize(msgs) > maxFetchReplyBytes {
				msgs = msgs[1:]
			}
		}
		frame, _ := appendFetchReply(nil, room, rm.epoch, req, codeOK, head, first, msgs, maxFetchReplyBytes)
		r.reply(from, room, frame)
	})
}

// fetchFailure is a fetch reply without messages.
func fetchFailure(room string, epoch, req uint64, code peerCode, head uint64) []byte {
	b, _ := appendFetchReply(nil, room, epoch, req, code, head, 0, nil, 0)
	return b
}

// fetchSize bounds the encoded size of msgs in a fetch reply.
func fetchSize(msgs []*Message) int {
	n := 64
	for _, m := range msgs {
		n += msgFrameSize(m)
	}
	return n
}

// readAfterLocal returns up to limit messages of rm after seq, up to head,
// from the ring or the wal. After 0 means from the oldest retained: the
// ring's seq 1 if it still holds it, else the wal's first message.
func (r *Router) readAfterLocal(rm *room, after, head uint64, limit int) ([]*Message, error) {
	if after >= head {
		return nil, nil
	}
	n := int(min(uint64(limit), head-after))
	if msgs, ok := rm.ring.readRange(make([]*Message, 0, n), after+1, after+uint64(n)); ok {
		return msgs, nil
	}
	recs, err := r.log.Read(rm.name, rm.epoch, after+1, n)
	if err != nil {
		return nil, fmt.Errorf("read room %q after seq %d: %w", rm.name, after, err)
	}
	for len(recs) > 0 && recs[len(recs)-1].Seq > head {
		recs = recs[:len(recs)-1]
	}
	return messagesFromRecords(nil, recs), nil
}
