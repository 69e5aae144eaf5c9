package router

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/mesh"
	"github.com/arena-mesh/arena/wal"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultRingSize    = 1024
	DefaultDedupWindow = 10 * time.Minute
	DefaultDedupMemory = 10_000
	DefaultPeerTimeout = 5 * time.Second
	DefaultPeerQueue   = 4096
	// DefaultPresenceGrace is how long a dropped connection keeps its
	// user present (see Config.PresenceGrace).
	DefaultPresenceGrace = 15 * time.Second
	// DefaultEventInterval is how often presence changes and receipts are
	// flushed (see Config.EventInterval).
	DefaultEventInterval = 100 * time.Millisecond
)

// evictInterval is how often idle rooms are looked for. A room is evicted from
// memory once it has had no subscriber, no in-flight publish and no activity
// for a whole DedupWindow: by then its in-memory idempotency keys have expired
// anyway, so evicting it loses nothing but the ring (which the wal backs).
const evictInterval = time.Minute

// Config configures a Router. New validates it and fills the defaults.
type Config struct {
	// NodeID names this node in logs; "" means "local".
	NodeID string
	// Log is the write-ahead log the router stores messages in (required).
	// The router does not close it: close the router first, then the log.
	Log *wal.Log
	// Logger receives lifecycle logs; the zero value logs nothing.
	Logger zerolog.Logger
	// Registerer receives the router's metrics; nil means not registered.
	Registerer prometheus.Registerer
	// RingSize is how many of the newest messages each room keeps in memory
	// for live fan-out, resume and history; 0 means DefaultRingSize.
	RingSize int
	// DedupWindow is how long an idempotency key is remembered; 0 means
	// DefaultDedupWindow. Give the wal the same value.
	DedupWindow time.Duration
	// HotIdle is how long after its last publish a room stays hot:
	// delivering its messages as soon as the wal applied them, before
	// their fsync (see hot.go). Longer keeps more rooms hot, and so more
	// rooms restart in a new epoch after an unclean stop; shorter makes
	// the first messages after a pause wait for a hot mark's fsync more
	// often. Zero or negative (the default) turns early delivery off:
	// every message waits for its fsync, and no room ever needs a new
	// epoch after an unclean stop, so a position (epoch, seq) stays valid
	// across kill -9 as PROTOCOL.md describes. 10s is a good value where
	// latency matters more than that.
	HotIdle time.Duration
	// DedupMemory bounds the idempotency keys kept in memory per room; older
	// keys still within the window are looked up in the wal. 0 means
	// DefaultDedupMemory.
	DedupMemory int
	// Mesh connects this router to the other nodes. Zero (nil): a single
	// node, home of every room. With a mesh, wire the mesh's Handler and
	// OnChange to the router through MeshHooks (see its doc).
	Mesh *mesh.Mesh
	// Placement gives each room its home region. Zero: every room is homed
	// among all live members.
	Placement Placement
	// PeerTimeout bounds a call to a room's home (forwarded publish, fetch,
	// interest); a call that times out fails with ErrUnavailable. Zero:
	// DefaultPeerTimeout.
	PeerTimeout time.Duration
	// PeerQueue bounds the frames queued per peer for fan-out; a message
	// that finds the queue full is dropped for that peer, which repairs
	// the gap with a fetch. Zero: DefaultPeerQueue.
	PeerQueue int
	// PresenceGrace is how long a connection that dropped without
	// closing keeps its user present in its rooms, so that a quick
	// reconnect makes no leave and join. Zero: DefaultPresenceGrace;
	// negative: no grace.
	PresenceGrace time.Duration
	// EventInterval is how often presence changes and receipts are
	// coalesced and sent (joins and leaves are batched, receipts merged
	// per reader, receipt positions stored); zero: DefaultEventInterval.
	EventInterval time.Duration
	// Now is the clock (message timestamps, epochs, dedup expiry); nil means
	// time.Now.
	Now func() time.Time
}

// Sentinel errors, for errors.Is.
var (
	// ErrClosed is returned by calls on a closed Router, and by Publish when
	// the wal was closed before the message could be stored.
	ErrClosed = errors.New("router: closed")
	// ErrTooSlow is returned by Pull when the subscription's cursor fell out
	// of the wal's retention: messages it has not pulled are gone. The edge
	// closes the connection with code 4010.
	ErrTooSlow = errors.New("router: subscriber too slow, fell out of retention")
	// ErrUnavailable is returned when the room's home cannot be reached
	// now (it is unknown, died, or did not answer within PeerTimeout). The
	// edge maps it to the client code unavailable; a publish may be
	// retried with the same key.
	ErrUnavailable = errors.New("router: room's home unavailable")
	// ErrRoomRestarted is returned by Pull once a subscription has pulled
	// everything of its epoch and the room moved to another home or
	// restarted with a new epoch. It wraps ErrTooSlow, so the edge closes
	// with 4010 and the client resumes, getting a Reset.
	ErrRoomRestarted = fmt.Errorf("%w: room restarted with a new epoch", ErrTooSlow)
	// ErrRoomMoved is returned by Pull once a subscription on this node
	// has pulled everything the room had here and the room was handed
	// over to another home in the same epoch (a planned move: this node
	// leaves, or a joining node won the room). It wraps ErrTooSlow: the
	// client resumes from its position and continues without Reset.
	ErrRoomMoved = fmt.Errorf("%w: room moved to another home", ErrTooSlow)
)

// withDefaults validates cfg and returns it with defaults filled in.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Log == nil {
		return cfg, errors.New("router config: Log is required")
	}
	switch {
	case cfg.RingSize < 0:
		return cfg, fmt.Errorf("router config: RingSize %d is negative", cfg.RingSize)
	case cfg.DedupWindow < 0:
		return cfg, fmt.Errorf("router config: DedupWindow %v is negative", cfg.DedupWindow)
	case cfg.PeerTimeout < 0 || cfg.PeerQueue < 0:
		return cfg, errors.New("router config: PeerTimeout or PeerQueue is negative")
	case cfg.DedupMemory < 0:
		return cfg, fmt.Errorf("router config: DedupMemory %d is negative", cfg.DedupMemory)
	case cfg.EventInterval < 0:
		return cfg, fmt.Errorf("router config: EventInterval %v is negative", cfg.EventInterval)
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "local"
	}
	if cfg.RingSize == 0 {
		cfg.RingSize = DefaultRingSize
	}
	if cfg.DedupWindow == 0 {
		cfg.DedupWindow = DefaultDedupWindow
	}
	if cfg.DedupMemory == 0 {
		cfg.DedupMemory = DefaultDedupMemory
	}
	if cfg.PeerTimeout == 0 {
		cfg.PeerTimeout = DefaultPeerTimeout
	}
	if cfg.PeerQueue == 0 {
		cfg.PeerQueue = DefaultPeerQueue
	}
	switch {
	case cfg.PresenceGrace == 0:
		cfg.PresenceGrace = DefaultPresenceGrace
	case cfg.PresenceGrace < 0:
		cfg.PresenceGrace = 0
	}
	if cfg.EventInterval == 0 {
		cfg.EventInterval = DefaultEventInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg, nil
}
