package edge

import (
	"sync"

	"github.com/arena-mesh/arena/protocol"
	"github.com/arena-mesh/arena/router"
)

// frameBufs hold decoded frames while their handler runs: a frame struct
// is hundreds of bytes, and a pub would otherwise allocate one.
var frameBufs = sync.Pool{New: func() any { return new(protocol.FrameBuf) }}

// handleFrame decodes and handles one client frame. It runs on the
// reader goroutine. Every failure becomes an error frame; a bad frame
// never closes the connection by itself, but more than abuseLimit of them
// within abuseWindow do (1008).
func (s *session) handleFrame(line []byte) {
	buf := frameBufs.Get().(*protocol.FrameBuf)
	defer frameBufs.Put(buf)
	// f lives in buf until this returns: handlers copy what they keep.
	f, err := buf.Decode(line)
	s.srv.m.frameIn(f.Op)
	if err != nil {
		s.badFrame(f.ID, err)
		return
	}
	if s.principal == nil && f.Op != protocol.OpConnect {
		s.badFrame(f.ID, protocol.Errorf(protocol.CodeBadRequest, "send connect first"))
		return
	}
	switch f.Op {
	case protocol.OpConnect:
		s.handleConnect(f)
	case protocol.OpSub:
		s.handleSub(f)
	case protocol.OpUnsub:
		s.handleUnsub(f)
	case protocol.OpPub:
		s.handlePub(f)
	case protocol.OpHistory:
		s.handleHistory(f)
	case protocol.OpRefresh:
		s.handleRefresh(f)
	case protocol.OpPing:
		if f.ID != nil {
			s.sendJSON(protocol.Pong{Op: protocol.OpPong, ID: f.ID})
		}
	case protocol.OpRecv, protocol.OpRead:
		s.handleReceipt(f)
	case protocol.OpPresence:
		s.handlePresence(f)
	case protocol.OpRooms:
		s.handleRooms(f)
	}
}

// badFrame replies to a malformed frame and counts it towards abuse.
func (s *session) badFrame(id *int64, err error) {
	s.replyErr(id, err)
	if s.abuse.add(s.srv.now(), abuseLimit) {
		s.fail(closePolicy, "too many bad frames", true)
	}
}

func (s *session) handleConnect(f *protocol.Frame) {
	if s.principal != nil {
		s.badFrame(f.ID, protocol.Errorf(protocol.CodeBadRequest, "already connected"))
		return
	}
	p := s.header
	if f.Token != "" || p == nil {
		var err error
		p, err = s.srv.cfg.Auth.Authenticate(f.Token)
		if err != nil {
			s.replyErr(f.ID, err)
			s.fail(closeUnauthorized, "unauthorized", true)
			return
		}
	}
	s.connected(p)
	s.log.Debug().Str("user", p.User).Str("client", truncate(f.Name, 64)).Msg("connected")
	if f.ID != nil {
		s.sendJSON(protocol.Connected{
			Op:      protocol.OpConnected,
			ID:      f.ID,
			Session: s.id,
			User:    p.User,
			Node:    s.srv.cfg.NodeID,
			Region:  s.srv.cfg.Region,
			Expires: unixMilli(p.Expires),
		})
	}
}

func (s *session) handleSub(f *protocol.Frame) {
	if !s.principal.CanSubscribe(f.Room) {
		s.replyErr(f.ID, errForbidden(f.Room))
		return
	}
	var since *router.Position
	if f.Since != nil {
		since = &router.Position{Epoch: f.Since.Epoch, Seq: f.Since.Seq}
	}
	st := &subState{sess: s, room: f.Room}
	res, err := s.srv.cfg.Router.Subscribe(s.ctx, router.SubscribeRequest{Room: f.Room, Since: since, Sink: st})
	if err != nil {
		s.replyErr(f.ID, s.srv.routerError(err))
		return
	}
	st.sub = res.Sub
	// Present before the old subscription of the room (if any) leaves,
	// so that replacing it makes no leave and join.
	st.pres = s.enterRoom(f.Room, f.Presence)
	if old := s.subs.get(f.Room); old != nil {
		// A second sub of the same room replaces the first (for example to
		// resume from another position).
		old.close()
	}
	s.subs.put(st)
	if f.ID != nil {
		reply := protocol.Subscribed{
			Op:   protocol.OpSubscribed,
			ID:   f.ID,
			Room: f.Room,
			Head: protocol.Position{Epoch: res.Head.Epoch, Seq: res.Head.Seq},
		}
		if res.Reset {
			reply.Reset = true
			reply.Oldest = &protocol.Position{Epoch: res.Oldest.Epoch, Seq: res.Oldest.Seq}
		}
		s.sendJSON(reply)
	}
	// Only now may the writer pull: the subscribed reply is queued, and the
	// writer takes queued frames before it pulls (see takeWork).
	s.markReady(st)
}

func (s *session) handleUnsub(f *protocol.Frame) {
	st := s.subs.get(f.Room)
	if st == nil {
		s.replyErr(f.ID, protocol.Errorf(protocol.CodeNotSubscribed, "not subscribed to %s", f.Room))
		return
	}
	s.subs.remove(f.Room)
	st.close()
	if f.ID != nil {
		s.sendJSON(protocol.Unsubscribed{Op: protocol.OpUnsubscribed, ID: f.ID, Room: f.Room})
	}
}

// handlePub checks a publish and hands it to the router inline, on the
// reader: router.PublishAsync returns once the message is sequenced (or
// queued in order to the room's home), so the publishes of one room from
// one session get seqs in the order the client sent them, and the reader
// goes on with the next frame without waiting for durability. The ack
// (or error) is queued by the router's done callback once the message is
// durable; acks of different rooms may come in any order.
//
// Back-pressure: at most MaxInFlight publishes per session wait for
// durability, and a publish starts only when the control queue has room;
// past either the reader waits, which pushes back on the client's socket.
// Each in-flight publish adds at most one frame to the queue, so it holds
// at most SendQueue+MaxInFlight frames.
func (s *session) handlePub(f *protocol.Frame) {
	req := router.PublishRequest{Room: f.Room, From: s.principal.User, Key: f.Key, Data: f.Data}
	if err := s.srv.checkPublish(s.principal, req); err != nil {
		s.srv.m.published(false, err)
		s.replyErr(f.ID, err)
		if protocol.AsError(err).Code == protocol.CodeRateLimited &&
			s.rateAbuse.add(s.srv.now(), rateAbuseLimit) {
			s.fail(closeRateLimited, "rate limited beyond tolerance", true)
		}
		return
	}
	if !s.waitSpace() {
		return
	}
	if s.pubSem == nil {
		s.pubSem = make(chan struct{}, s.srv.cfg.MaxInFlight)
	}
	select {
	case s.pubSem <- struct{}{}:
	case <-s.done:
		return
	}
	id := newReplyID(f.ID) // f.ID lives only until handleFrame returns
	err := s.srv.cfg.Router.PublishAsync(s.ctx, req, func(ack router.Ack, err error) {
		s.published(id, req.Room, ack, err)
	})
	if err != nil {
		<-s.pubSem
		if s.ctx.Err() != nil {
			return // the session is gone; nobody to tell
		}
		err = s.srv.routerError(err)
		s.srv.m.published(false, err)
		s.replyErr(id.ptr(), err)
	}
}

// replyID is a frame's id by value, for a reply sent after the frame's
// FrameBuf is reused.
type replyID struct {
	v   int64
	set bool
}

func newReplyID(id *int64) replyID {
	if id == nil {
		return replyID{}
	}
	return replyID{v: *id, set: true}
}

// ptr returns the id as a frame's ID field: nil if the frame had none.
func (id replyID) ptr() *int64 {
	if !id.set {
		return nil
	}
	p := new(int64)
	*p = id.v
	return p
}

// published is the router's done callback of a publish of s: it queues
// the ack (or the error) without waiting, then frees the publish's
// in-flight slot. It runs on router, wal or mesh goroutines, or on the
// reader for the duplicate of a durable message.
func (s *session) published(id replyID, room string, ack router.Ack, err error) {
	if err != nil {
		err = s.srv.routerError(err)
		s.srv.m.published(false, err)
		e := protocol.ErrorFrame(id.ptr(), err)
		s.srv.m.errorSent(e.Code)
		s.sendMode(e, queueNoWait)
	} else {
		s.srv.m.published(ack.Dup, nil)
		if id.set {
			s.sendAck(id.v, room, ack)
		}
	}
	<-s.pubSem
}

func (s *session) handleHistory(f *protocol.Frame) {
	if !s.principal.CanSubscribe(f.Room) {
		s.replyErr(f.ID, errForbidden(f.Room))
		return
	}
	epoch, msgs, err := s.srv.history(s.ctx, f.Room, f.Before, f.After, f.Limit)
	if err != nil {
		s.replyErr(f.ID, err)
		return
	}
	if f.ID != nil {
		s.sendJSON(protocol.History{Op: protocol.OpHistory, ID: f.ID, Room: f.Room, Epoch: epoch, Msgs: msgs})
	}
}

// handleRefresh replaces the session's token with a fresh one of the same
// user, which moves the expiry (and may change permissions for later
// frames; existing subscriptions stay).
func (s *session) handleRefresh(f *protocol.Frame) {
	p, err := s.srv.cfg.Auth.Authenticate(f.Token)
	if err != nil {
		s.replyErr(f.ID, err)
		return
	}
	if p.User != s.principal.User {
		s.replyErr(f.ID, protocol.Errorf(protocol.CodeUnauthorized, "refresh token is for another user"))
		return
	}
	s.principal = p
	s.setExpiry(p.Expires)
	if f.ID != nil {
		s.sendJSON(protocol.Refreshed{Op: protocol.OpRefreshed, ID: f.ID, Expires: unixMilli(p.Expires)})
	}
}

// replyErr queues an error frame for the frame with the given id.
func (s *session) replyErr(id *int64, err error) {
	e := protocol.ErrorFrame(id, err)
	s.srv.m.errorSent(e.Code)
	s.sendJSON(e)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
