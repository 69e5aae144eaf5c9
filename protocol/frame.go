package protocol

import "encoding/json"

// Subprotocol is the WebSocket subprotocol a client must offer.
const Subprotocol = "arena.v1.json"

// Client operations (the "op" of a client frame).
const (
	OpConnect  = "connect"
	OpSub      = "sub"
	OpUnsub    = "unsub"
	OpPub      = "pub"
	OpRecv     = "recv"
	OpRead     = "read"
	OpHistory  = "history"
	OpPresence = "presence"
	OpRefresh  = "refresh"
	OpPing     = "ping"
	// OpRooms asks for the connection's user's rooms with unread counts
	// (an Arena addition to PROTOCOL.md; the reply reuses the op).
	OpRooms = "rooms"
)

// Server operations (the "op" of a server frame). History, presence and
// rooms replies reuse OpHistory, OpPresence and OpRooms.
const (
	OpConnected    = "connected"
	OpSubscribed   = "subscribed"
	OpUnsubscribed = "unsubscribed"
	OpAck          = "ack"
	OpRefreshed    = "refreshed"
	OpPong         = "pong"
	OpMsg          = "msg"
	OpReceipt      = "receipt"
	OpJoin         = "join"
	OpLeave        = "leave"
	OpError        = "error"
	OpReconnect    = "reconnect"
)

// WebSocket close codes of PROTOCOL.md.
const (
	CloseGoingAway    = 1001 // node going away, sent after a reconnect frame
	ClosePolicy       = 1008 // origin not allowed, connect timeout
	CloseTooLarge     = 1009 // a WebSocket message exceeded the read limit
	CloseUnauthorized = 4001 // bad or expired token
	CloseRateLimited  = 4008 // rate limited beyond tolerance
	CloseTooSlow      = 4010 // send queue overflowed; resume from the last seq seen
)

// Limits fixed by the protocol. The data size limit is configurable and
// lives in the server's configuration, not here.
const (
	MaxRoomLen      = 200
	MaxKeyLen       = 64
	DefaultLimit    = 50
	MaxLimit        = 1000
	DefaultMaxData  = 64 << 10
	ConnectTimeoutS = 10
)

// Position is where a message sits in its room's order. Seq counts from 1
// within an epoch with no gaps; a room whose sequence restarted has a new
// epoch. A room with no message yet has Seq 0.
type Position struct {
	Epoch uint64 `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

// Frame is the union of every field any frame may carry, in either
// direction. Servers decode client frames into it (see DecodeClient);
// clients decode server frames into it and encode their own frames from it.
// Fields a frame does not use stay at their zero value and are omitted.
type Frame struct {
	Op string `json:"op"`
	// ID is echoed on the reply; nil means the client wants no reply.
	ID *int64 `json:"id,omitempty"`

	// connect, refresh
	Token string `json:"token,omitempty"`
	Name  string `json:"name,omitempty"`

	// room operations
	Room     string          `json:"room,omitempty"`
	Since    *Position       `json:"since,omitempty"`
	Presence bool            `json:"presence,omitempty"`
	Data     json.RawMessage `json:"data,omitempty"`
	Key      string          `json:"key,omitempty"`
	Seq      uint64          `json:"seq,omitempty"`
	Before   *uint64         `json:"before,omitempty"`
	After    *uint64         `json:"after,omitempty"`
	Limit    int             `json:"limit,omitempty"`

	// server frames
	Session string     `json:"session,omitempty"`
	User    string     `json:"user,omitempty"`
	Node    string     `json:"node,omitempty"`
	Region  string     `json:"region,omitempty"`
	Expires int64      `json:"expires,omitempty"`
	Head    *Position  `json:"head,omitempty"`
	Reset   bool       `json:"reset,omitempty"`
	Oldest  *Position  `json:"oldest,omitempty"`
	Epoch   uint64     `json:"epoch,omitempty"`
	TS      int64      `json:"ts,omitempty"`
	From    string     `json:"from,omitempty"`
	Dup     bool       `json:"dup,omitempty"`
	Msgs    []Msg      `json:"msgs,omitempty"`
	Members []Member   `json:"members,omitempty"`
	Rooms   []UserRoom `json:"rooms,omitempty"`
	Status  string     `json:"status,omitempty"`
	Code    Code       `json:"code,omitempty"`
	Message string     `json:"message,omitempty"`
	RetryMS int64      `json:"retry_ms,omitempty"`
	Reason  string     `json:"reason,omitempty"`
	Edges   []string   `json:"edges,omitempty"`
}

// Msg is one message of a room: the body of a live msg frame, and an
// element of a history reply (where it has no op).
type Msg struct {
	Room  string          `json:"room"`
	Epoch uint64          `json:"epoch"`
	Seq   uint64          `json:"seq"`
	TS    int64           `json:"ts"`
	From  string          `json:"from"`
	Key   string          `json:"key,omitempty"`
	Data  json.RawMessage `json:"data"`
}

// Position returns where m sits in its room.
func (m *Msg) Position() Position { return Position{Epoch: m.Epoch, Seq: m.Seq} }

// Member is one user present in a room with the number of their
// connections.
type Member struct {
	User  string `json:"user"`
	Conns int    `json:"conns"`
}

// UserRoom is where a user stands in one room (an element of a rooms
// reply and of GET /v1/users/{user}/rooms): the room's head, the user's
// read position (everything up to it is read) and the number of messages
// after it up to the head. A read position from an older epoch counts
// every message of the head's epoch as unread.
type UserRoom struct {
	Room   string   `json:"room"`
	Head   Position `json:"head"`
	Read   Position `json:"read"`
	Unread uint64   `json:"unread"`
}

// Server reply frames. Each has exactly the fields PROTOCOL.md lists, with
// required ones never omitted.

// Connected answers connect.
type Connected struct {
	Op      string `json:"op"`
	ID      *int64 `json:"id,omitempty"`
	Session string `json:"session"`
	User    string `json:"user"`
	Node    string `json:"node"`
	Region  string `json:"region"`
	Expires int64  `json:"expires"` // ms since the Unix epoch
}

// Subscribed answers sub. With Reset, delivery starts at Oldest (inclusive)
// because the requested position is gone or from another epoch.
type Subscribed struct {
	Op     string    `json:"op"`
	ID     *int64    `json:"id,omitempty"`
	Room   string    `json:"room"`
	Head   Position  `json:"head"`
	Reset  bool      `json:"reset,omitempty"`
	Oldest *Position `json:"oldest,omitempty"`
}

// Unsubscribed answers unsub.
type Unsubscribed struct {
	Op   string `json:"op"`
	ID   *int64 `json:"id,omitempty"`
	Room string `json:"room"`
}

// Ack answers pub once the message is durable.
type Ack struct {
	Op    string `json:"op"`
	ID    *int64 `json:"id,omitempty"`
	Room  string `json:"room"`
	Epoch uint64 `json:"epoch"`
	Seq   uint64 `json:"seq"`
	TS    int64  `json:"ts"`
	Dup   bool   `json:"dup,omitempty"`
}

// History answers history; Msgs is oldest first and never null.
type History struct {
	Op    string `json:"op"`
	ID    *int64 `json:"id,omitempty"`
	Room  string `json:"room"`
	Epoch uint64 `json:"epoch"`
	Msgs  []Msg  `json:"msgs"`
}

// PresenceReply answers presence; Members is never null.
type PresenceReply struct {
	Op      string   `json:"op"`
	ID      *int64   `json:"id,omitempty"`
	Room    string   `json:"room"`
	Members []Member `json:"members"`
}

// RoomsReply answers rooms; Rooms is in room-name order and never null.
type RoomsReply struct {
	Op    string     `json:"op"`
	ID    *int64     `json:"id,omitempty"`
	Rooms []UserRoom `json:"rooms"`
}

// Refreshed answers refresh.
type Refreshed struct {
	Op      string `json:"op"`
	ID      *int64 `json:"id,omitempty"`
	Expires int64  `json:"expires"` // ms since the Unix epoch
}

// Pong answers ping.
type Pong struct {
	Op string `json:"op"`
	ID *int64 `json:"id,omitempty"`
}

// Receipt tells a publisher (and presence subscribers) that a user got or
// read a message.
type Receipt struct {
	Op     string `json:"op"`
	Room   string `json:"room"`
	Seq    uint64 `json:"seq"`
	User   string `json:"user"`
	Status string `json:"status"` // "delivered" or "read"
}

// Presence change (join or leave) sent to presence subscribers.
type PresenceChange struct {
	Op   string `json:"op"` // OpJoin or OpLeave
	Room string `json:"room"`
	User string `json:"user"`
}

// ErrorReply reports a failed frame, or a problem with the connection.
type ErrorReply struct {
	Op      string `json:"op"`
	ID      *int64 `json:"id,omitempty"`
	Code    Code   `json:"code"`
	Message string `json:"message"`
	RetryMS int64  `json:"retry_ms,omitempty"`
}

// Reconnect asks the client to move to another edge, best first, before
// the node drains or cuts a slow client.
type Reconnect struct {
	Op     string   `json:"op"`
	Reason string   `json:"reason"`
	Edges  []string `json:"edges"`
}
