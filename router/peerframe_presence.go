package router

import (
	"encoding/binary"
	"fmt"
)

// Presence and receipt peer frames. They share the header of every peer
// frame (peerframe.go: type:byte room:str epoch:uvarint body; integers are
// uvarints, str is uvarint length then bytes) with epoch always 0, and have
// their own codec here, dispatched by type before decodePeerFrame. Bodies:
//
//	0x20 presenceReport   full:byte n:uvarint n*(user:str conns:uvarint)
//	     node -> room's home: this node's connection counts of users in
//	     room (0: none left). full=1: the complete list, replacing every
//	     count the home had from this node (sent when the room's home
//	     may have changed); full=0: only the users whose count changed.
//	0x21 presenceEvents   n:uvarint n*(kind:byte user:str seq:uvarint
//	                      k:uvarint k*(to:str))
//	     home -> every node with connections in room: a flush's joins,
//	     leaves and receipts (kind = EventKind; seq and the publishers
//	     "to" for receipts only).
//	0x22 receipt          user:str seq:uvarint read:byte
//	     node -> room's home: user received seq (read=0) or read up to
//	     seq (read=1).
//	0x23 membersQuery     req:uvarint
//	     node -> room's home: who is present? Answered by membersReply.
//	0x24 membersReply     req:uvarint code:byte n:uvarint n*(user:str conns:uvarint)
//	0x25 userRoomsQuery   req:uvarint
//	     node -> every other node, room = the user id: the user's stored
//	     receipt positions. Answered by userRoomsReply.
//	0x26 userRoomsReply   req:uvarint n:uvarint n*(room:str epoch:uvarint
//	                      delivered:uvarint read:uvarint)
//	     room = the user id.
//
// e.g. receipt of "ann" read up to 5 in room "a": 22 01 61 00 03 61 6e 6e 05 01.
const (
	peerPresenceReport byte = 0x20
	peerPresenceEvents byte = 0x21
	peerReceipt        byte = 0x22
	peerMembersQuery   byte = 0x23
	peerMembersReply   byte = 0x24
	peerUserRoomsQuery byte = 0x25
	peerUserRoomsReply byte = 0x26
)

// Limits of presence frames.
const (
	maxPeerUser = 1024
	// maxPresenceEntries bounds the entries of one frame; encoders split
	// longer lists over several frames.
	maxPresenceEntries = 4096
	// maxPresenceFrameBytes is the size past which an encoder starts a
	// new frame, well under the mesh's frame limit.
	maxPresenceFrameBytes = 256 << 10
)

// isPresenceFrame reports whether typ is one of this file's frames.
func isPresenceFrame(typ byte) bool { return typ >= peerPresenceReport && typ <= peerUserRoomsReply }

// presenceFrame is a decoded presence frame; strings are copied.
type presenceFrame struct {
	Type   byte
	Room   string
	Req    uint64
	Full   bool
	Code   peerCode
	Counts []userCount // presenceReport, membersReply
	Events []Event     // presenceEvents (Room set on each)
	User   string      // receipt
	Seq    uint64      // receipt
	Read   bool        // receipt
	States []userRoomState
}

// userRoomState is one stored receipt position of a user.
type userRoomState struct {
	Room                   string
	Epoch, Delivered, Read uint64
}

// appendCounts encodes a presenceReport (typ) or, with a req, a
// membersReply.
func appendPresenceReport(b []byte, room string, full bool, counts []userCount) []byte {
	b = appendHeader(b, peerPresenceReport, room, 0)
	b = append(b, boolByte(full))
	return appendCounts(b, counts)
}

func appendCounts(b []byte, counts []userCount) []byte {
	b = binary.AppendUvarint(b, uint64(len(counts)))
	for _, c := range counts {
		b = appendString(b, c.user)
		b = binary.AppendUvarint(b, uint64(c.conns))
	}
	return b
}

// appendMembersReply encodes a membersReply.
func appendMembersReply(b []byte, room string, req uint64, code peerCode, ms []Member) []byte {
	b = appendHeader(b, peerMembersReply, room, 0)
	b = binary.AppendUvarint(b, req)
	b = append(b, byte(code))
	counts := make([]userCount, len(ms))
	for i, m := range ms {
		counts[i] = userCount{user: m.User, conns: m.Conns}
	}
	return appendCounts(b, counts)
}

// appendPresenceEvents encodes evs (of room) as a presenceEvents frame.
func appendPresenceEvents(b []byte, room string, evs []Event) []byte {
	b = appendHeader(b, peerPresenceEvents, room, 0)
	b = binary.AppendUvarint(b, uint64(len(evs)))
	for i := range evs {
		ev := &evs[i]
		b = append(b, byte(ev.Kind))
		b = appendString(b, ev.User)
		b = binary.AppendUvarint(b, ev.Seq)
		b = binary.AppendUvarint(b, uint64(len(ev.To)))
		for _, t := range ev.To {
			b = appendString(b, t)
		}
	}
	return b
}

// eventFrames splits evs of room into presenceEvents frames of at most
// about maxPresenceFrameBytes and maxPresenceEntries events each.
func eventFrames(room string, evs []Event) [][]byte {
	var frames [][]byte
	start, size := 0, 0
	for i := range evs {
		n := 32 + len(evs[i].User)
		for _, t := range evs[i].To {
			n += 8 + len(t)
		}
		if i > start && (size+n > maxPresenceFrameBytes || i-start >= maxPresenceEntries) {
			frames = append(frames, appendPresenceEvents(nil, room, evs[start:i]))
			start, size = i, 0
		}
		size += n
	}
	if start < len(evs) {
		frames = append(frames, appendPresenceEvents(nil, room, evs[start:]))
	}
	return frames
}

// appendReceiptFrame encodes a receipt frame.
func appendReceiptFrame(b []byte, req ReceiptRequest) []byte {
	b = appendHeader(b, peerReceipt, req.Room, 0)
	b = appendString(b, req.User)
	b = binary.AppendUvarint(b, req.Seq)
	return append(b, boolByte(req.Read))
}

// appendQuery encodes a membersQuery or userRoomsQuery (typ).
func appendQuery(b []byte, typ byte, room string, req uint64) []byte {
	b = appendHeader(b, typ, room, 0)
	return binary.AppendUvarint(b, req)
}

// appendUserRoomsReply encodes a userRoomsReply for user.
func appendUserRoomsReply(b []byte, user string, req uint64, states []userRoomState) []byte {
	b = appendHeader(b, peerUserRoomsReply, user, 0)
	b = binary.AppendUvarint(b, req)
	b = binary.AppendUvarint(b, uint64(len(states)))
	for _, st := range states {
		b = appendString(b, st.Room)
		b = binary.AppendUvarint(b, st.Epoch)
		b = binary.AppendUvarint(b, st.Delivered)
		b = binary.AppendUvarint(b, st.Read)
	}
	return b
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// flag reads a 0/1 byte.
func (r *peerReader) flag() bool {
	c := r.byte()
	if r.err == nil && c > 1 {
		r.err = errPeerField
	}
	return c == 1
}

// count reads an entry count, bounded by maxPresenceEntries and by the
// bytes left (every entry takes at least one).
func (r *peerReader) count() int {
	n := r.uvarint()
	if r.err == nil && (n > maxPresenceEntries || n > uint64(len(r.b))) {
		r.err = errPeerField
	}
	if r.err != nil {
		return 0
	}
	return int(n)
}

func (r *peerReader) counts() []userCount {
	n := r.count()
	var out []userCount
	for i := 0; i < n && r.err == nil; i++ {
		user := r.str(maxPeerUser)
		conns := r.uvarint()
		if r.err == nil && (len(user) == 0 || conns > 1<<31) {
			r.err = errPeerField
		}
		out = append(out, userCount{user: string(user), conns: int(conns)})
	}
	return out
}

// decodePresenceFrame parses one of this file's frames. Every failure
// wraps ErrBadPeerFrame; it never panics.
func decodePresenceFrame(b []byte, f *presenceFrame) error {
	*f = presenceFrame{}
	r := peerReader{b: b}
	f.Type = r.byte()
	room := r.str(maxPeerRoom)
	epoch := r.uvarint()
	if r.err == nil && (len(room) == 0 || epoch != 0) {
		return errPeerField
	}
	f.Room = string(room)
	switch f.Type {
	case peerPresenceReport:
		f.Full = r.flag()
		f.Counts = r.counts()
	case peerPresenceEvents:
		n := r.count()
		for i := 0; i < n && r.err == nil; i++ {
			ev := Event{Kind: EventKind(r.byte()), Room: f.Room}
			ev.User = string(r.str(maxPeerUser))
			ev.Seq = r.uvarint()
			k := r.count()
			for j := 0; j < k && r.err == nil; j++ {
				ev.To = append(ev.To, string(r.str(maxPeerUser)))
			}
			if r.err == nil && (ev.Kind < EventJoin || ev.Kind > EventRead || ev.User == "") {
				r.err = errPeerField
			}
			f.Events = append(f.Events, ev)
		}
	case peerReceipt:
		f.User = string(r.str(maxPeerUser))
		f.Seq = r.uvarint()
		f.Read = r.flag()
		if r.err == nil && (f.User == "" || f.Seq == 0) {
			return errPeerField
		}
	case peerMembersQuery, peerUserRoomsQuery:
		f.Req = r.uvarint()
	case peerMembersReply:
		f.Req = r.uvarint()
		f.Code = peerCode(r.byte())
		if r.err == nil && f.Code > maxPeerCode {
			return errPeerField
		}
		f.Counts = r.counts()
	case peerUserRoomsReply:
		f.Req = r.uvarint()
		n := r.count()
		for i := 0; i < n && r.err == nil; i++ {
			st := userRoomState{Room: string(r.str(maxPeerRoom))}
			st.Epoch, st.Delivered, st.Read = r.uvarint(), r.uvarint(), r.uvarint()
			if r.err == nil && st.Room == "" {
				r.err = errPeerField
			}
			f.States = append(f.States, st)
		}
	default:
		if r.err == nil {
			return fmt.Errorf("%w (0x%02x)", errPeerType, f.Type)
		}
	}
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return errPeerTrailing
	}
	return nil
}

// encodePresenceFrame is the inverse of decodePresenceFrame (for tests and
// the fuzz target's round trip).
func encodePresenceFrame(f *presenceFrame) []byte {
	switch f.Type {
	case peerPresenceReport:
		return appendPresenceReport(nil, f.Room, f.Full, f.Counts)
	case peerPresenceEvents:
		return appendPresenceEvents(nil, f.Room, f.Events)
	case peerReceipt:
		return appendReceiptFrame(nil, ReceiptRequest{Room: f.Room, User: f.User, Seq: f.Seq, Read: f.Read})
	case peerMembersQuery, peerUserRoomsQuery:
		return appendQuery(nil, f.Type, f.Room, f.Req)
	case peerMembersReply:
		ms := make([]Member, len(f.Counts))
		for i, c := range f.Counts {
			ms[i] = Member{User: c.user, Conns: c.conns}
		}
		return appendMembersReply(nil, f.Room, f.Req, f.Code, ms)
	case peerUserRoomsReply:
		return appendUserRoomsReply(nil, f.Room, f.Req, f.States)
	}
	return nil
}
