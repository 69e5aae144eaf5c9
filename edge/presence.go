package edge

import (
	"context"
	"net/http"

	"github.com/arena-mesh/arena/edge/auth"
	"github.com/arena-mesh/arena/protocol"
	"github.com/arena-mesh/arena/router"
)

// Presence, receipts and unread state.
//
// Every WebSocket subscription makes its user present in the room (the
// router counts the user's connections over the mesh); a sub with
// "presence": true also receives the room's join, leave and receipt
// frames. The presence of a connection that drops (no close frame from the
// client: a network failure, a drain, a cut for slowness) ends after the
// router's grace period, so a client that reconnects in time makes no
// leave and join; unsub and a client's own close end it at once.
//
// recv and read go to the room's home; receipt frames reach the
// publisher's subscribed connections and presence watchers. rooms (and
// GET /v1/users/{user}/rooms) list the user's read positions and unread
// counts.

// enterRoom makes the session's user present in room; nil if the router
// refused (the subscription works all the same).
func (s *session) enterRoom(room string, presence bool) *router.PresenceConn {
	pc, err := s.srv.cfg.Router.Enter(router.EnterRequest{
		Room: room, User: s.principal.User, Presence: presence, Sink: s,
	})
	if err != nil {
		s.log.Debug().Err(err).Str("room", room).Msg("presence not entered")
		return nil
	}
	return pc
}

// Events implements router.EventSink: it queues the frames of a batch of
// join, leave and receipt events without waiting (it runs on the router's
// event goroutine). Events are coalesced per interval by the router, so
// encoding them with encoding/json costs little.
func (s *session) Events(room string, evs []router.Event) {
	for i := range evs {
		if b := encodeEvent(&evs[i]); b != nil {
			s.enqueue(b, queueEvent)
		}
	}
}

// encodeEvent returns the frame of ev (nil for an unknown kind).
func encodeEvent(ev *router.Event) []byte {
	var v any
	switch ev.Kind {
	case router.EventJoin:
		v = protocol.PresenceChange{Op: protocol.OpJoin, Room: ev.Room, User: ev.User}
	case router.EventLeave:
		v = protocol.PresenceChange{Op: protocol.OpLeave, Room: ev.Room, User: ev.User}
	case router.EventDelivered:
		v = protocol.Receipt{Op: protocol.OpReceipt, Room: ev.Room, Seq: ev.Seq, User: ev.User, Status: "delivered"}
	case router.EventRead:
		v = protocol.Receipt{Op: protocol.OpReceipt, Room: ev.Room, Seq: ev.Seq, User: ev.User, Status: "read"}
	default:
		return nil
	}
	b, err := protocol.Encode(v)
	if err != nil {
		return nil
	}
	return b
}

// handleReceipt handles recv and read: the position goes to the room's
// home; there is no reply unless it fails.
func (s *session) handleReceipt(f *protocol.Frame) {
	if !s.principal.CanSubscribe(f.Room) {
		s.replyErr(f.ID, errForbidden(f.Room))
		return
	}
	err := s.srv.cfg.Router.Receipt(s.ctx, router.ReceiptRequest{
		Room: f.Room, User: s.principal.User, Seq: f.Seq, Read: f.Op == protocol.OpRead,
	})
	if err != nil {
		s.replyErr(f.ID, s.srv.routerError(err))
	}
}

// handlePresence answers presence with the room's members.
func (s *session) handlePresence(f *protocol.Frame) {
	members, err := s.srv.presence(s.ctx, s.principal, f.Room)
	if err != nil {
		s.replyErr(f.ID, err)
		return
	}
	if f.ID != nil {
		s.sendJSON(protocol.PresenceReply{Op: protocol.OpPresence, ID: f.ID, Room: f.Room, Members: members})
	}
}

// handleRooms answers rooms with the user's rooms and unread counts.
func (s *session) handleRooms(f *protocol.Frame) {
	rooms, err := s.srv.userRooms(s.ctx, s.principal, s.principal.User)
	if err != nil {
		s.replyErr(f.ID, err)
		return
	}
	if f.ID != nil {
		s.sendJSON(protocol.RoomsReply{Op: protocol.OpRooms, ID: f.ID, Rooms: rooms})
	}
}

// presence returns room's members for p (who needs sub permission).
func (s *Server) presence(ctx context.Context, p *auth.Principal, room string) ([]protocol.Member, error) {
	if !p.CanSubscribe(room) {
		return nil, errForbidden(room)
	}
	ms, err := s.cfg.Router.Presence(ctx, room)
	if err != nil {
		return nil, s.routerError(err)
	}
	out := make([]protocol.Member, len(ms))
	for i, m := range ms {
		out[i] = protocol.Member{User: m.User, Conns: m.Conns}
	}
	return out, nil
}

// userRooms returns user's rooms for p: p must be that user or an admin
// API key; a user sees only the rooms it may still subscribe to.
func (s *Server) userRooms(ctx context.Context, p *auth.Principal, user string) ([]protocol.UserRoom, error) {
	if p.User != user && !p.Admin {
		return nil, protocol.Errorf(protocol.CodeForbidden, "only the user itself (or an admin key) may list its rooms")
	}
	rooms, err := s.cfg.Router.UserRooms(ctx, user)
	if err != nil {
		return nil, s.routerError(err)
	}
	out := make([]protocol.UserRoom, 0, len(rooms))
	for _, r := range rooms {
		if !p.Admin && !p.CanSubscribe(r.Room) {
			continue
		}
		out = append(out, protocol.UserRoom{
			Room:   r.Room,
			Head:   protocol.Position{Epoch: r.Head.Epoch, Seq: r.Head.Seq},
			Read:   protocol.Position{Epoch: r.Read.Epoch, Seq: r.Read.Seq},
			Unread: r.Unread,
		})
	}
	return out, nil
}

// servePresenceHTTP handles GET /v1/rooms/{room}/presence.
func (s *Server) servePresenceHTTP(w http.ResponseWriter, r *http.Request, room string) {
	p, err := s.authHTTP(r, false)
	if err != nil {
		s.httpError(w, err)
		return
	}
	members, err := s.presence(r.Context(), p, room)
	if err != nil {
		s.httpError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]protocol.Member{"members": members})
}

// serveUserRooms handles GET /v1/users/{user}/rooms.
func (s *Server) serveUserRooms(w http.ResponseWriter, r *http.Request) {
	p, err := s.authHTTP(r, false)
	if err != nil {
		s.httpError(w, err)
		return
	}
	rooms, err := s.userRooms(r.Context(), p, r.PathValue("user"))
	if err != nil {
		s.httpError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]protocol.UserRoom{"rooms": rooms})
}
