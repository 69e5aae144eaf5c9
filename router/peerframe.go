package router

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Peer frames are what routers say to each other over the mesh (one frame
// per mesh.Send, key = room, so each room's frames stay in order). The
// mesh moves them as opaque bytes; this file is their only codec.
//
// Every integer is a LEB128 uvarint (encoding/binary.AppendUvarint) unless
// marked varint (zig-zag, binary.AppendVarint); str is uvarint length then
// the bytes. Every frame starts with the same header:
//
//	frame  = type:byte room:str epoch:uvarint body
//
// room is 1..maxPeerRoom bytes. epoch is the sender's view of the room's
// epoch (0: unknown), so a receiver refuses frames from an epoch it has
// moved past. Bodies, by type:
//
//	0x01 publish     req:uvarint from:str key:str data:str
//	     edge -> home: publish this message; answered by a reply.
//	0x02 reply       req:uvarint code:byte flags:byte seq:uvarint aux:uvarint ts:varint
//	     home -> edge: answer to publish (seq, ts, flags&1 = dup; aux 0)
//	     or interest (seq = head, aux = oldest retained seq, ts 0);
//	     header epoch = the home's epoch. code is a peerCode.
//	0x03 interest    req:uvarint
//	     edge -> home: push me this room's messages; req is the
//	     interest's token and is answered by a reply.
//	0x04 drop        req:uvarint
//	     edge -> home: stop the interest whose token is req (a drop
//	     for an older token is ignored, so add/drop races are harmless).
//	0x05 msg         seq:uvarint ts:varint from:str key:str data:str
//	     home -> interested edge: a written message of epoch.
//	0x06 fetch       req:uvarint mode:byte seq:uvarint limit:uvarint
//	     edge -> home: messages of epoch (0: current) after seq
//	     (mode 0; seq 0: from the oldest retained, which retention
//	     may have moved past seq 1), the newest limit before seq
//	     (mode 1) or the newest limit (mode 2); limit 0 asks only for
//	     head and oldest.
//	0x07 fetchReply  req:uvarint code:byte head:uvarint first:uvarint
//	                 n:uvarint n*(seq:uvarint ts:varint from:str key:str data:str)
//	     home -> edge: header epoch = the home's epoch; messages
//	     ascending; fewer than asked when the frame would be too large.
//	0x08 handoff     req:uvarint head:uvarint first:uvarint until:varint
//	                 n:uvarint n*(seq:uvarint ts:varint from:str key:str data:str)
//	                 k:uvarint k*(key:str seq:uvarint ts:varint)
//	     old home -> new home (planned move): the room's state in epoch:
//	     head, the oldest seq the old home retains (first), until (ms
//	     since the Unix epoch, 0 none: until then a key missing from
//	     memory may be in the log, see sequencer.lookupUntil), the newest
//	     messages (ascending, ending at head) and the idempotency keys
//	     still in the window (oldest first). Answered by a reply once
//	     stored durably (codeOK), or codeEpoch: refused, the receiver
//	     holds the room already.
//	0x09 leaving     req:uvarint
//	     leaving node -> every peer, room = the sender's node ID: place
//	     rooms as if I were gone, and wait for my rooms' handoffs;
//	     answered by a reply once the receiver does.
//	0x0a handedOver  req:uvarint
//	     old home -> peer, room = the sender's node ID: every room I owe
//	     you after the last membership change was handed over (or
//	     cannot be); answered by a reply.
//	0x0b ended       req:uvarint
//	     relay -> interested edge: the interest whose token is req
//	     ended here (the relay's mirror of the room ended: its epoch
//	     is over, or it could not be made whole); register again.
//	0x0c handoffKeys req:uvarint k:uvarint k*(key:str seq:uvarint ts:varint)
//	     old home -> new home (planned move), before the handoff frame:
//	     idempotency keys of epoch still in the window that the old
//	     home's memory no longer holds (its wal's key index), in as
//	     many frames as they need. The receiver indexes them in its
//	     wal, where the handed-over room looks its misses up until the
//	     handoff's until; answered by a reply once stored durably.
//
// interest, drop and msg also go between the edges of a region and their
// relay (see Router.sourceOf): an edge registers at its region's relay,
// which mirrors the room and pushes each msg it gets from the home on.
//
// e.g. drop of token 5 for room "a" in epoch 7: 04 01 61 07 05.
const (
	peerPublish     byte = 0x01
	peerReply       byte = 0x02
	peerInterest    byte = 0x03
	peerDrop        byte = 0x04
	peerMsg         byte = 0x05
	peerFetch       byte = 0x06
	peerFetchReply  byte = 0x07
	peerHandoff     byte = 0x08
	peerLeaving     byte = 0x09
	peerHandedOver  byte = 0x0a
	peerEnded       byte = 0x0b
	peerHandoffKeys byte = 0x0c
)

// Limits of peer frame fields.
const (
	maxPeerRoom  = 1024
	maxPeerFrom  = 1024
	maxPeerKey   = 1024
	maxFetchMsgs = MaxHistoryLimit
)

// peerCode is a reply's outcome.
type peerCode byte

const (
	codeOK          peerCode = 0
	codeNotHome     peerCode = 1 // the receiver is not the room's home in its view
	codeUnavailable peerCode = 2 // the home is closing or its wal failed
	codeInternal    peerCode = 3
	codeEpoch       peerCode = 4 // fetch for an epoch the home no longer has; handoff refused
	codeRetry       peerCode = 5 // the room is moving between homes: send again shortly
	maxPeerCode              = codeRetry
)

// Fetch modes.
const (
	fetchAfter  byte = 0
	fetchBefore byte = 1
	fetchTail   byte = 2
)

// flagDup marks a reply to a duplicate publish.
const flagDup byte = 1

// ErrBadPeerFrame is wrapped by every peer frame decoding failure.
var ErrBadPeerFrame = errors.New("router: malformed peer frame")

var (
	errPeerTruncated = fmt.Errorf("%w: truncated", ErrBadPeerFrame)
	errPeerType      = fmt.Errorf("%w: unknown type", ErrBadPeerFrame)
	errPeerTrailing  = fmt.Errorf("%w: trailing bytes", ErrBadPeerFrame)
	errPeerField     = fmt.Errorf("%w: field out of range", ErrBadPeerFrame)
)

// peerMsgEntry is one message inside a msg or fetchReply frame; its byte
// slices point into the decoded buffer.
type peerMsgEntry struct {
	Seq       uint64
	TS        int64
	From, Key []byte
	Data      []byte
}

// peerFrame is a decoded peer frame. Byte slices point into the decoded
// buffer: copy what outlives it. Fields unused by Type are zero.
type peerFrame struct {
	Type  byte
	Room  []byte
	Epoch uint64
	Req   uint64

	// publish, msg (Msgs[0] is not used for these: see Msg).
	Msg peerMsgEntry

	// reply, fetchReply.
	Code  peerCode
	Flags byte
	Seq   uint64 // reply: seq or head; fetch: from/before seq
	Aux   uint64 // reply: oldest retained (interest)
	TS    int64

	// fetch.
	Mode  byte
	Limit uint64

	// fetchReply, handoff.
	Head, First uint64
	Msgs        []peerMsgEntry

	// handoff (Until, Keys), handoffKeys (Keys).
	Until int64
	Keys  []peerKeyEntry
}

// peerKeyEntry is one idempotency key of a handoff frame; Key points into
// the decoded buffer.
type peerKeyEntry struct {
	Key []byte
	Seq uint64
	TS  int64
}

// appendHeader appends the common frame header.
func appendHeader(b []byte, typ byte, room string, epoch uint64) []byte {
	b = append(b, typ)
	b = binary.AppendUvarint(b, uint64(len(room)))
	b = append(b, room...)
	return binary.AppendUvarint(b, epoch)
}

func appendStr(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendPublish encodes a publish frame.
func appendPublish(b []byte, room string, epoch, req uint64, from, key string, data []byte) []byte {
	b = appendHeader(b, peerPublish, room, epoch)
	b = binary.AppendUvarint(b, req)
	b = appendString(b, from)
	b = appendString(b, key)
	return appendStr(b, data)
}

// appendReply encodes a reply frame.
func appendReply(b []byte, room string, epoch, req uint64, code peerCode, flags byte, seq, aux uint64, ts int64) []byte {
	b = appendHeader(b, peerReply, room, epoch)
	b = binary.AppendUvarint(b, req)
	b = append(b, byte(code), flags)
	b = binary.AppendUvarint(b, seq)
	b = binary.AppendUvarint(b, aux)
	return binary.AppendVarint(b, ts)
}

// appendInterest encodes an interest (add) or drop frame (typ).
func appendInterest(b []byte, typ byte, room string, epoch, req uint64) []byte {
	b = appendHeader(b, typ, room, epoch)
	return binary.AppendUvarint(b, req)
}

// appendMsgBody appends one message entry (the body of a msg frame).
func appendMsgBody(b []byte, m *Message) []byte {
	b = binary.AppendUvarint(b, m.Seq)
	b = binary.AppendVarint(b, m.TS)
	b = appendString(b, m.From)
	b = appendString(b, m.Key)
	return appendStr(b, m.Data)
}

// appendMsg encodes a msg frame carrying m.
func appendMsg(b []byte, m *Message) []byte {
	b = appendHeader(b, peerMsg, m.Room, m.Epoch)
	return appendMsgBody(b, m)
}

// msgFrameSize bounds len(appendMsg(nil, m)), to size buffers.
func msgFrameSize(m *Message) int {
	return 1 + 3*binary.MaxVarintLen64 + len(m.Room) + len(m.From) + len(m.Key) + len(m.Data) + 4*binary.MaxVarintLen64
}

// appendFetch encodes a fetch frame.
func appendFetch(b []byte, room string, epoch, req uint64, mode byte, seq, limit uint64) []byte {
	b = appendHeader(b, peerFetch, room, epoch)
	b = binary.AppendUvarint(b, req)
	b = append(b, mode)
	b = binary.AppendUvarint(b, seq)
	return binary.AppendUvarint(b, limit)
}

// appendFetchReply encodes a fetchReply frame with msgs, keeping at most as
// many leading messages as fit in maxSize bytes (at least one, so that a
// requester always makes progress). It returns
// the frame and how many messages it holds.
func appendFetchReply(b []byte, room string, epoch, req uint64, code peerCode, head, first uint64, msgs []*Message, maxSize int) ([]byte, int) {
	n, size := 0, 64+len(room)
	for _, m := range msgs {
		size += msgFrameSize(m)
		if size > maxSize && n > 0 {
			break
		}
		n++
	}
	b = appendHeader(b, peerFetchReply, room, epoch)
	b = binary.AppendUvarint(b, req)
	b = append(b, byte(code))
	b = binary.AppendUvarint(b, head)
	b = binary.AppendUvarint(b, first)
	b = binary.AppendUvarint(b, uint64(n))
	for _, m := range msgs[:n] {
		b = appendMsgBody(b, m)
	}
	return b, n
}

// appendHandoff encodes a handoff frame of room in epoch.
func appendHandoff(b []byte, room string, epoch, req, head, first uint64, until int64, msgs []*Message, keys []keyUse) []byte {
	b = appendHeader(b, peerHandoff, room, epoch)
	b = binary.AppendUvarint(b, req)
	b = binary.AppendUvarint(b, head)
	b = binary.AppendUvarint(b, first)
	b = binary.AppendVarint(b, until)
	b = binary.AppendUvarint(b, uint64(len(msgs)))
	for _, m := range msgs {
		b = appendMsgBody(b, m)
	}
	return appendKeys(b, keys)
}

// appendHandoffKeys encodes a handoffKeys frame of room in epoch.
func appendHandoffKeys(b []byte, room string, epoch, req uint64, keys []keyUse) []byte {
	b = appendHeader(b, peerHandoffKeys, room, epoch)
	b = binary.AppendUvarint(b, req)
	return appendKeys(b, keys)
}

// appendKeys appends a list of idempotency keys (handoff, handoffKeys).
func appendKeys(b []byte, keys []keyUse) []byte {
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendString(b, k.key)
		b = binary.AppendUvarint(b, k.seq)
		b = binary.AppendVarint(b, k.ts)
	}
	return b
}

// keyEntrySize bounds the encoded size of k in a key list.
func keyEntrySize(k keyUse) int { return len(k.key) + 3*binary.MaxVarintLen64 }

// peerReader consumes a frame, remembering the first error.
type peerReader struct {
	b   []byte
	err error
}

func (r *peerReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errPeerTruncated
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *peerReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errPeerTruncated
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *peerReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = errPeerTruncated
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// str reads a length-prefixed field of at most max bytes.
func (r *peerReader) str(max int) []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(max) {
		r.err = errPeerField
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errPeerTruncated
		return nil
	}
	s := r.b[:n:n]
	r.b = r.b[n:]
	return s
}

func (r *peerReader) msg() peerMsgEntry {
	return peerMsgEntry{
		Seq:  r.uvarint(),
		TS:   r.varint(),
		From: r.str(maxPeerFrom),
		Key:  r.str(maxPeerKey),
		Data: r.str(len(r.b)),
	}
}

// keys reads a key list into f.Keys; false: its count cannot be right.
func (r *peerReader) keys(f *peerFrame) bool {
	k := r.uvarint()
	if r.err == nil && k > uint64(len(r.b)) {
		return false
	}
	for i := uint64(0); i < k && r.err == nil; i++ {
		f.Keys = append(f.Keys, peerKeyEntry{Key: r.str(maxPeerKey), Seq: r.uvarint(), TS: r.varint()})
	}
	return true
}

// decodePeerFrame parses b into f (reusing f.Msgs' storage). Every failure
// wraps ErrBadPeerFrame; it never panics. f's byte slices point into b.
func decodePeerFrame(b []byte, f *peerFrame) error {
	msgs := f.Msgs[:0]
	*f = peerFrame{}
	r := peerReader{b: b}
	f.Type = r.byte()
	f.Room = r.str(maxPeerRoom)
	f.Epoch = r.uvarint()
	if r.err == nil && len(f.Room) == 0 {
		return errPeerField
	}
	switch f.Type {
	case peerPublish:
		f.Req = r.uvarint()
		f.Msg.From = r.str(maxPeerFrom)
		f.Msg.Key = r.str(maxPeerKey)
		f.Msg.Data = r.str(len(r.b))
	case peerReply:
		f.Req = r.uvarint()
		f.Code = peerCode(r.byte())
		f.Flags = r.byte()
		f.Seq = r.uvarint()
		f.Aux = r.uvarint()
		f.TS = r.varint()
		if r.err == nil && (f.Code > maxPeerCode || f.Flags&^flagDup != 0) {
			return errPeerField
		}
	case peerInterest, peerDrop, peerEnded:
		f.Req = r.uvarint()
	case peerMsg:
		f.Msg = r.msg()
	case peerFetch:
		f.Req = r.uvarint()
		f.Mode = r.byte()
		f.Seq = r.uvarint()
		f.Limit = r.uvarint()
		if r.err == nil && (f.Mode > fetchTail || f.Limit > maxFetchMsgs) {
			return errPeerField
		}
	case peerFetchReply:
		f.Req = r.uvarint()
		f.Code = peerCode(r.byte())
		f.Head = r.uvarint()
		f.First = r.uvarint()
		n := r.uvarint()
		if r.err == nil && (f.Code > maxPeerCode || n > maxFetchMsgs || n > uint64(len(r.b))) {
			return errPeerField
		}
		for i := uint64(0); i < n && r.err == nil; i++ {
			msgs = append(msgs, r.msg())
		}
		f.Msgs = msgs
	case peerHandoff:
		f.Req = r.uvarint()
		f.Head = r.uvarint()
		f.First = r.uvarint()
		f.Until = r.varint()
		n := r.uvarint()
		if r.err == nil && n > uint64(len(r.b)) {
			return errPeerField
		}
		for i := uint64(0); i < n && r.err == nil; i++ {
			msgs = append(msgs, r.msg())
		}
		f.Msgs = msgs
		if !r.keys(f) {
			return errPeerField
		}
	case peerHandoffKeys:
		f.Req = r.uvarint()
		if !r.keys(f) {
			return errPeerField
		}
	case peerLeaving, peerHandedOver:
		f.Req = r.uvarint()
	default:
		if r.err == nil {
			return errPeerType
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
