package edge

import (
	"github.com/arena-mesh/arena/protocol"
	"github.com/arena-mesh/arena/router"
)

// handleFrame decodes and handles one client frame. It runs on the
// reader goroutine. Every failure becomes an error frame; a bad frame
// never closes the connection by itself, but more than abuseLimit of them
// within abuseWindow do (1008).
func (s *session) handleFrame(line []byte) {
	f, err := protocol.DecodeClient(line)
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
		// Receipts come with a later version of the router; the frame is
		// valid, so it is accepted without a reply.
		if !s.principal.CanSubscribe(f.Room) {
			s.replyErr(f.ID, errForbidden(f.Room))
		}
	case protocol.OpPresence:
		s.replyErr(f.ID, protocol.Errorf(protocol.CodeUnavailable, "presence is not available on this node yet"))
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
	if old := s.subs[f.Room]; old != nil {
		// A second sub of the same room replaces the first (for example to
		// resume from another position).
		old.close()
	}
	s.subs[f.Room] = st
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
	st := s.subs[f.Room]
	if st == nil {
		s.replyErr(f.ID, protocol.Errorf(protocol.CodeNotSubscribed, "not subscribed to %s", f.Room))
		return
	}
	delete(s.subs, f.Room)
	st.close()
	if f.ID != nil {
		s.sendJSON(protocol.Unsubscribed{Op: protocol.OpUnsubscribed, ID: f.ID, Room: f.Room})
	}
}

// handlePub checks a publish and hands it to the router without blocking
// the reader: the router call runs in its own goroutine, at most
// MaxInFlight per session; past that the reader waits (back-pressure on
// the client's socket).
//
// Publishes of one room from one session reach the room in the order the
// client sent them: each waits for the previous one of its room (see
// pubChain). Publishes to different rooms run in parallel.
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
	select {
	case s.pubSem <- struct{}{}:
	case <-s.done:
		return
	}
	prev, next := s.chain.link(f.Room)
	id := f.ID
	s.pubWG.Add(1)
	go func() {
		defer s.pubWG.Done()
		defer func() { <-s.pubSem }()
		defer close(next)
		if prev != nil {
			select {
			case <-prev:
			case <-s.ctx.Done():
				return
			}
		}
		ack, err := s.srv.cfg.Router.Publish(s.ctx, req)
		if err != nil && s.ctx.Err() != nil {
			return // the session is gone; nobody to tell
		}
		if err != nil {
			err = s.srv.routerError(err)
			s.srv.m.published(false, err)
			s.replyErr(id, err)
			return
		}
		s.srv.m.published(ack.Dup, nil)
		if id != nil {
			s.sendAck(id, req.Room, ack)
		}
	}()
}

// pubChain orders a session's publishes per room: link returns the done
// channel of the room's previous publish (nil if none is pending) and the
// channel the new one closes when done. It is reader-owned.
//
// The router's Publish returns only once the message is durable, and
// offers no signal when it has been sequenced, so a publish waits for the
// previous one of its room to be durable. Group commit still batches
// across connections and rooms.
type pubChain map[string]chan struct{}

func (c *pubChain) link(room string) (prev, next chan struct{}) {
	if *c == nil {
		*c = make(pubChain)
	}
	m := *c
	if len(m) >= 1024 {
		m.prune()
	}
	prev = m[room]
	if prev != nil && isClosed(prev) {
		prev = nil
	}
	next = make(chan struct{})
	m[room] = next
	return prev, next
}

// prune drops the rooms whose last publish is done.
func (c pubChain) prune() {
	for room, ch := range c {
		if isClosed(ch) {
			delete(c, room)
		}
	}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
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
