package mesh

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Lanes is the number of QUIC streams a node sends on to each peer. A frame
// goes on lane hash(key) mod Lanes, so frames with one key stay in order and
// a key whose receiver is slow stalls only its own lane.
const Lanes = 16

// DevClusterKey is the well-known key used when Config.ClusterKey is empty,
// which New allows only when the mesh listens and advertises on loopback.
// It is public, so it keeps out nothing but other machines: any local user
// holding it could join a dev mesh. Never use it on a network.
const DevClusterKey = "arena-dev-mesh-key-not-a-secret!"

// Config configures a Mesh. The zero value of each field is documented;
// New validates the config and fills defaults.
type Config struct {
	// NodeID names this node in the mesh. Required.
	NodeID NodeID
	// Region is this node's region (at most 64 bytes). Zero: "default".
	Region string
	// ClientURL is gossiped so others can point clients here. Zero: none.
	ClientURL string

	// Bind is the mesh address, host:port: gossip on UDP and TCP, QUIC on
	// UDP, all on this one port. Port 0 picks a free port (see Mesh.Addr).
	// Zero: "127.0.0.1:7946".
	Bind string
	// Advertise is the host:port other nodes reach this one at. Zero: the
	// bound address, or a private interface address when Bind is the
	// unspecified address.
	Advertise string
	// Join lists mesh addresses (host:port) of existing nodes. New returns
	// at once; joining is retried in the background until one answers
	// (see Mesh.Joined). Addresses of this node itself are skipped. Zero,
	// or only this node's own addresses: start a new mesh.
	Join []string
	// BootstrapExpect, above 1, holds Joined at the node's first join until
	// it sees this many live members, itself included (see Mesh.Joined):
	// a whole cluster started at once then places its rooms on all its
	// nodes, each room on its usual home, rather than on the first ones up.
	// It applies only while the mesh starts: a node that finds a member
	// which has finished its own first join (a running mesh) joins at once.
	// Zero: no wait.
	BootstrapExpect int

	// ClusterKey (16, 24 or 32 bytes) encrypts gossip (AES-GCM) and is the
	// root of peer authentication: the cluster CA is derived from it, so
	// only holders of the key can join the gossip or open a QUIC
	// connection. Zero: DevClusterKey, allowed only when Bind and Advertise
	// are loopback addresses.
	ClusterKey []byte

	// WAN, when not nil, emulates wide-area links under QUIC and gossip:
	// outgoing packets are delayed and dropped by the (local region,
	// destination region) link. Zero: real network only.
	WAN *WAN

	// Handler receives every frame peers send to this node, on the
	// receiving stream's goroutine: in order per (peer, key), concurrently
	// across lanes and peers. frame is valid only during the call (it
	// points into the stream's read buffer): copy what you keep. A slow
	// Handler stalls that lane of that peer only (QUIC flow control pushes
	// back to the sender). Zero: frames are discarded.
	Handler func(from NodeID, frame []byte)
	// OnChange is called with the full member list (self included, sorted
	// by ID) after membership changes, from one goroutine, never
	// concurrently; bursts of changes are coalesced. It may call Mesh
	// methods but should not block for long. Zero: not called.
	OnChange func([]Member)

	// Logger receives the mesh's logs (memberlist's too). Zero: no logs.
	Logger zerolog.Logger
	// Registerer gets the mesh's metrics, labelled node=NodeID. Zero
	// (nil): metrics are kept but not registered.
	Registerer prometheus.Registerer

	// RejoinInterval is how often the node re-joins known peers and seeds
	// that it does not currently see alive, so a healed partition merges
	// again. Zero: 10s.
	RejoinInterval time.Duration
	// Timing tunes failure detection and gossip. Zero fields: memberlist's
	// LAN defaults. LocalTiming suits loopback tests.
	Timing Timing

	// MaxFrameSize bounds a frame in either direction. Zero:
	// DefaultMaxFrameSize (1 MiB).
	MaxFrameSize int
	// LaneBuffer is how many bytes of frames may wait per lane of a peer
	// before Send blocks (the per-peer, per-lane credit). A frame larger
	// than the credit is still accepted when its lane is empty. Zero:
	// 256 KiB.
	LaneBuffer int
}

// Timing tunes memberlist. Each zero field takes memberlist's LAN default.
type Timing struct {
	ProbeInterval    time.Duration // zero: 1s
	ProbeTimeout     time.Duration // zero: 500ms
	SuspicionMult    int           // zero: 4
	GossipInterval   time.Duration // zero: 200ms
	PushPullInterval time.Duration // zero: 30s
	// StreamTimeout bounds gossip TCP dials and reads and QUIC dials.
	// Zero: 10s.
	StreamTimeout time.Duration
	// GossipToTheDead is how long a dead node still gets gossip, so it can
	// refute. Zero: 30s.
	GossipToTheDead time.Duration
	// DeadPeerGrace is how long the QUIC link and send queues of a node
	// declared dead are kept before they are torn down (a node that left
	// gracefully goes at once). A false positive under load (the node
	// refutes within a few probes) then loses no queued frame (see the
	// package doc on stale connections). The node leaves Members at once
	// either way. Zero: 5s.
	DeadPeerGrace time.Duration
}

// LocalTiming is a fast Timing for meshes on one machine (tests, arena
// dev): failures are detected within a second or two, yet a loaded
// machine (tests under -race) rarely suspects a live node.
func LocalTiming() Timing {
	return Timing{
		ProbeInterval:    250 * time.Millisecond,
		ProbeTimeout:     150 * time.Millisecond,
		SuspicionMult:    2,
		GossipInterval:   25 * time.Millisecond,
		PushPullInterval: 2 * time.Second,
		StreamTimeout:    2 * time.Second,
		GossipToTheDead:  2 * time.Second,
		DeadPeerGrace:    time.Second,
	}
}

// suspicionMaxTimeoutMult is memberlist's default (LAN) bound on how far
// missing confirmations stretch the suspicion timeout.
const suspicionMaxTimeoutMult = 6

// quicTimeouts returns the QUIC idle timeout and keep-alive period for t.
//
// The idle timeout is about the longest memberlist takes to declare a
// silent node dead (a failed probe, then a suspicion that gathers no
// confirmation, in a mesh of up to ten nodes): a connection that heard
// nothing for that long is cut by a partition or points at a dead process,
// and ends about when membership gives up on the peer, instead of
// surviving the partition with its retransmission timer backed off by
// seconds and its peer's end possibly gone. Keep-alives, four per idle
// timeout, keep a healthy but quiet connection from timing out even if a
// few are lost, and hold NAT bindings open.
func quicTimeouts(t Timing) (idle, keepAlive time.Duration) {
	idle = t.ProbeInterval + t.ProbeTimeout + time.Duration(suspicionMaxTimeoutMult*t.SuspicionMult)*t.ProbeInterval
	return idle, idle / 4
}

const (
	defaultBind       = "127.0.0.1:7946"
	defaultRegion     = "default"
	defaultRejoin     = 10 * time.Second
	defaultLaneBuffer = 256 << 10
)

// errNeedKey: the dev key is only for meshes no other machine can reach.
var errNeedKey = errors.New("a cluster key is required unless the mesh binds and advertises loopback only")

// withDefaults validates c and returns it with zero fields filled.
func (c Config) withDefaults() (Config, error) {
	if c.NodeID == "" {
		return c, errors.New("node id is required")
	}
	// memberlist puts the name in every message; keep it small.
	if len(c.NodeID) > 128 {
		return c, fmt.Errorf("node id longer than 128 bytes")
	}
	if c.Region == "" {
		c.Region = defaultRegion
	}
	if len(c.Region) > maxRegionLen {
		return c, fmt.Errorf("region longer than %d bytes", maxRegionLen)
	}
	if len(c.ClientURL) > maxClientURLLen {
		return c, fmt.Errorf("client url longer than %d bytes", maxClientURLLen)
	}
	if c.Bind == "" {
		c.Bind = defaultBind
	}
	switch len(c.ClusterKey) {
	case 0, 16, 24, 32:
	default:
		return c, fmt.Errorf("cluster key is %d bytes, want 16, 24 or 32", len(c.ClusterKey))
	}
	if len(c.ClusterKey) == 0 && (!isLoopbackHostPort(c.Bind) || c.Advertise != "" && !isLoopbackHostPort(c.Advertise)) {
		return c, errNeedKey
	}
	if c.BootstrapExpect < 0 {
		return c, errors.New("negative bootstrap expect")
	}
	if c.RejoinInterval < 0 || c.MaxFrameSize < 0 || c.LaneBuffer < 0 {
		return c, errors.New("negative rejoin interval, frame size or lane buffer")
	}
	if c.RejoinInterval == 0 {
		c.RejoinInterval = defaultRejoin
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	if c.MaxFrameSize > maxFrameSizeLimit {
		return c, fmt.Errorf("max frame size over %d", maxFrameSizeLimit)
	}
	if c.LaneBuffer == 0 {
		c.LaneBuffer = defaultLaneBuffer
	}
	t := &c.Timing
	if t.ProbeInterval < 0 || t.ProbeTimeout < 0 || t.SuspicionMult < 0 || t.GossipInterval < 0 ||
		t.PushPullInterval < 0 || t.StreamTimeout < 0 || t.GossipToTheDead < 0 || t.DeadPeerGrace < 0 {
		return c, errors.New("negative timing")
	}
	setDefault(&t.ProbeInterval, time.Second)
	setDefault(&t.ProbeTimeout, 500*time.Millisecond)
	setDefault(&t.SuspicionMult, 4)
	setDefault(&t.GossipInterval, 200*time.Millisecond)
	setDefault(&t.PushPullInterval, 30*time.Second)
	setDefault(&t.StreamTimeout, 10*time.Second)
	setDefault(&t.GossipToTheDead, 30*time.Second)
	setDefault(&t.DeadPeerGrace, 5*time.Second)
	return c, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}
