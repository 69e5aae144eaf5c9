package mesh

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/quic-go/quic-go"
	"github.com/rs/zerolog"
)

// Mesh is this node's membership in the mesh and its QUIC links to the
// other nodes. All methods are safe for concurrent use.
type Mesh struct {
	cfg     Config
	id      NodeID
	log     zerolog.Logger
	metrics *metrics

	ctx    context.Context // canceled by Close: peers, accept loop, watcher
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine but the two below

	gossipCtx    context.Context // canceled by Leave or Close
	gossipCancel context.CancelFunc
	ctlWG        sync.WaitGroup // joinLoop and updateLoop, which call into memberlist

	udp       *net.UDPConn
	gossipTCP *net.TCPListener
	pconn     net.PacketConn // udp, or the WAN emulation wrapping it
	qt        *quic.Transport
	ln        *quic.Listener
	quicConf  *quic.Config
	clientTLS func(NodeID) *tls.Config
	gossip    *gossipTransport
	list      *memberlist.Memberlist
	bound     netip.AddrPort
	advertise netip.AddrPort

	load      atomic.Uint32
	metaDirty chan struct{} // cap 1: SetLoad or the first join changed the metadata
	changed   chan struct{} // cap 1: membership changed
	joined    chan struct{} // closed once a seed answered (or there are none) and BootstrapExpect members are up
	seeds     []string      // Config.Join less this node's own addresses: set and read by joinLoop only

	peersMu sync.Mutex                       // serializes writers of peers
	peers   atomic.Pointer[map[NodeID]*peer] // copy on write: Send reads it lock-free

	tableMu sync.Mutex
	nodes   map[NodeID]nodeEntry                      // guarded by tableMu: live members, self included
	known   map[netip.AddrPort]*knownAddr             // guarded by tableMu
	regions atomic.Pointer[map[netip.AddrPort]string] // rebuilt from known under tableMu

	logMu    sync.RWMutex // held for reading while memberlist logs
	logMuted bool         // guarded by logMu: set by shutdown

	lifeMu sync.Mutex // serializes Leave and Close
	left   bool       // guarded by lifeMu
	closed bool       // guarded by lifeMu
}

// QUIC connection settings (the idle timeout and keep-alive period derive
// from Config.Timing: see quicTimeouts).
const (
	leaveTimeout = 5 * time.Second
	// streamWindow bounds a lane's unread bytes at the receiver (QUIC
	// stream flow control): 512 KiB per RTT is 5 MB/s per lane at 100 ms.
	streamWindow = 512 << 10
)

// New binds the mesh port, starts gossip and the QUIC listener, and starts
// joining Config.Join in the background (see Joined). ctx bounds startup
// only; the mesh runs until Close.
func New(ctx context.Context, cfg Config) (*Mesh, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("mesh config: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := &Mesh{
		cfg:       cfg,
		id:        cfg.NodeID,
		log:       cfg.Logger.With().Str("component", "mesh").Logger(),
		metaDirty: make(chan struct{}, 1),
		changed:   make(chan struct{}, 1),
		joined:    make(chan struct{}),
		nodes:     make(map[NodeID]nodeEntry),
		known:     make(map[netip.AddrPort]*knownAddr),
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.gossipCtx, m.gossipCancel = context.WithCancel(m.ctx)
	m.peers.Store(&map[NodeID]*peer{})
	m.regions.Store(&map[netip.AddrPort]string{})
	m.metrics = newMetrics(cfg.NodeID, m.liveMembers, m.connectedPeers)

	if err := m.metrics.register(cfg.Registerer); err != nil {
		return nil, err
	}
	if err := m.start(); err != nil {
		m.shutdown()
		return nil, err
	}
	m.log.Info().Str("bind", m.bound.String()).Str("advertise", m.advertise.String()).Str("region", cfg.Region).Msg("mesh started")
	return m, nil
}

// start does the fallible part of New; shutdown undoes whatever it did.
func (m *Mesh) start() error {
	cfg := m.cfg
	var err error
	m.udp, m.gossipTCP, err = bind(cfg.Bind)
	if err != nil {
		return fmt.Errorf("bind mesh port %s: %w", cfg.Bind, err)
	}
	m.bound = m.udp.LocalAddr().(*net.UDPAddr).AddrPort()
	m.bound = netip.AddrPortFrom(m.bound.Addr().Unmap(), m.bound.Port())
	if m.advertise, err = advertiseAddr(cfg.Advertise, m.bound); err != nil {
		return fmt.Errorf("advertise address: %w", err)
	}
	key := cfg.ClusterKey
	if len(key) == 0 {
		if !m.advertise.Addr().IsLoopback() { // e.g. "localhost" resolved elsewhere
			return errNeedKey
		}
		key = []byte(DevClusterKey)
	}

	ca, err := deriveCA(key)
	if err != nil {
		return err
	}
	leaf, err := ca.issue(m.id, time.Now())
	if err != nil {
		return err
	}
	var serverTLS *tls.Config
	serverTLS, m.clientTLS = tlsConfigs(ca, leaf, func(side string) {
		m.metrics.handshakeFailures.WithLabelValues(side).Inc()
	})
	resetKey, err := statelessResetKey(key, m.id)
	if err != nil {
		return err
	}

	m.pconn = m.udp
	if cfg.WAN != nil {
		timer, err := newPreciseTimer()
		if err != nil {
			return fmt.Errorf("wan emulator: %w", err)
		}
		m.pconn = newWANConn(m.udp, cfg.WAN, cfg.Region, m.regionOf, m.metrics.wanDropped.Inc, timer)
	}
	m.qt = &quic.Transport{Conn: m.pconn, StatelessResetKey: (*quic.StatelessResetKey)(resetKey)}
	idle, keepAlive := quicTimeouts(cfg.Timing)
	m.quicConf = &quic.Config{
		HandshakeIdleTimeout:       cfg.Timing.StreamTimeout,
		MaxIdleTimeout:             idle,
		KeepAlivePeriod:            keepAlive,
		MaxIncomingStreams:         -1, // lanes are unidirectional
		MaxIncomingUniStreams:      4 * Lanes,
		InitialStreamReceiveWindow: streamWindow / 4,
		MaxStreamReceiveWindow:     streamWindow,
		// Unread bytes of a stalled lane hold connection credit too: the
		// connection window must outlast every lane's stream window, or
		// one slow key would stall the others after all.
		InitialConnectionReceiveWindow: (Lanes + 1) * streamWindow,
		MaxConnectionReceiveWindow:     (Lanes + 1) * streamWindow,
	}
	if m.ln, err = m.qt.Listen(serverTLS, m.quicConf); err != nil {
		return fmt.Errorf("quic listen: %w", err)
	}

	reachable := func(a netip.AddrPort) bool {
		if cfg.WAN == nil {
			return true
		}
		r, ok := m.regionOf(a)
		return !ok || cfg.WAN.Link(cfg.Region, r).Drop < 1
	}
	m.gossip = newGossipTransport(m.gossipCtx, m.qt, m.gossipTCP, m.advertise, reachable, m.log)

	mc := memberlist.DefaultLANConfig()
	mc.Name = string(m.id)
	mc.Transport = m.gossip
	mc.BindAddr = m.bound.Addr().String()
	mc.BindPort = int(m.bound.Port())
	mc.AdvertiseAddr = m.advertise.Addr().String()
	mc.AdvertisePort = int(m.advertise.Port())
	mc.SecretKey = key
	// No LZW: memberlist makes a 72 KB compressor for every message it
	// compresses (each probe, each push-pull), which under arena dev's
	// timing was half of everything a node allocated while carrying
	// 1,000 msg/s, and so half of its garbage collections. Gossip
	// messages are a few hundred bytes; receivers still take compressed
	// ones from nodes that send them.
	mc.EnableCompression = false
	mc.Delegate = delegate{m}
	mc.Events = delegate{m}
	mc.Logger = log.New(memberlistLog{m}, "", 0)
	t := cfg.Timing
	mc.ProbeInterval, mc.ProbeTimeout, mc.SuspicionMult = t.ProbeInterval, t.ProbeTimeout, t.SuspicionMult
	mc.GossipInterval, mc.PushPullInterval, mc.TCPTimeout = t.GossipInterval, t.PushPullInterval, t.StreamTimeout
	mc.GossipToTheDeadTime = t.GossipToTheDead
	// A node restarted at a new address may take its name back once its
	// old incarnation has been dead this long.
	mc.DeadNodeReclaimTime = t.GossipToTheDead
	if len(cfg.Join) == 0 && cfg.BootstrapExpect <= 1 {
		// Before memberlist asks for the metadata: not waiting.
		close(m.joined)
	}
	if m.list, err = memberlist.Create(mc); err != nil {
		return fmt.Errorf("start gossip: %w", err)
	}

	m.wg.Add(2)
	go m.acceptLoop()
	go m.watch()
	m.ctlWG.Add(2)
	go m.joinLoop()
	go m.updateLoop()
	return nil
}

// LocalID returns this node's ID.
func (m *Mesh) LocalID() NodeID { return m.id }

// Addr returns the bound mesh address, with the port resolved when Bind
// asked for port 0. Other nodes join with it (or Config.Advertise).
func (m *Mesh) Addr() string { return m.bound.String() }

// Joined is closed once the node has reached a seed from Config.Join, or
// a node that joined it first, and merged that node's member list (at
// once when there are no seeds), and then sees Config.BootstrapExpect
// live members: Members called after it lists every member that node
// knew of. Readiness waits for it, and so does a router before it places
// rooms.
func (m *Mesh) Joined() <-chan struct{} { return m.joined }

// HasJoined reports, without waiting, whether Joined is closed.
func (m *Mesh) HasJoined() bool {
	select {
	case <-m.joined:
		return true
	default:
		return false
	}
}

// Send queues frame for node to, on the lane chosen by key. Frames with
// the same (to, key) reach to's Handler in the order of their Send calls
// (calls that do not overlap in time); frames with different keys are not
// ordered. Send returns once the frame is queued, waiting while the lane's
// credit is used up (the peer is slow or unreachable) until ctx ends.
//
// Delivery is at most once: frames queued or in flight when the
// connection fails, or when the peer leaves or dies, are dropped and
// counted, never duplicated. The mesh keeps a reference to frame until it
// is written, so the caller must not modify it after Send; sharing one
// frame between Sends to many peers is fine and is how fan-out avoids
// copies.
//
// Errors: ErrFrameTooLarge, ErrUnknownPeer (to is not a member, or is this
// node), ErrClosed, or ctx's error.
func (m *Mesh) Send(ctx context.Context, to NodeID, key string, frame []byte) error {
	if len(frame) > m.cfg.MaxFrameSize {
		return ErrFrameTooLarge
	}
	if m.ctx.Err() != nil {
		return ErrClosed
	}
	p := (*m.peers.Load())[to]
	if p == nil {
		return ErrUnknownPeer
	}
	l := p.lane(laneOf(key))
	if l == nil {
		return ErrUnknownPeer
	}
	err := l.enqueue(ctx, frame)
	if errors.Is(err, ErrUnknownPeer) && m.ctx.Err() != nil {
		return ErrClosed
	}
	return err
}

// SetLoad sets the load this node gossips in its metadata. It does not
// wait: the update is broadcast in the background, and bursts coalesce.
func (m *Mesh) SetLoad(load uint32) {
	if m.load.Swap(load) == load {
		return
	}
	m.metaChanged()
}

// metaChanged has updateLoop gossip this node's metadata again.
func (m *Mesh) metaChanged() {
	select {
	case m.metaDirty <- struct{}{}:
	default:
	}
}

// Leave tells the mesh this node is going (a broadcast the others act on
// at once, without waiting for failure detection) and stops gossip. The
// QUIC links stay up until Close, so in-flight frames can still drain.
// ctx's deadline bounds the wait for the broadcast (default 5s).
func (m *Mesh) Leave(ctx context.Context) error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if m.left {
		return nil
	}
	m.left = true
	m.gossipCancel()
	m.ctlWG.Wait()
	timeout := leaveTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	err := m.list.Leave(timeout)
	_ = m.list.Shutdown()
	if err != nil {
		return fmt.Errorf("leave gossip: %w", err)
	}
	m.log.Info().Msg("left mesh")
	return nil
}

// Close stops everything: gossip (without a leave broadcast, unless Leave
// was called; the others then detect the failure), every QUIC connection
// and goroutine, and the mesh port. Queued frames are dropped. Close is
// idempotent; it unregisters the metrics.
func (m *Mesh) Close() error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.shutdown()
	m.log.Info().Msg("mesh closed")
	return nil
}

// shutdown stops whatever start got to start, in order: the goroutines
// that call into memberlist, gossip, the peers, QUIC and the socket, and
// then waits for every goroutine.
func (m *Mesh) shutdown() {
	m.gossipCancel()
	m.ctlWG.Wait()
	m.cancel()
	switch {
	case m.list != nil:
		_ = m.list.Shutdown() // shuts the gossip transport down too
	case m.gossip != nil:
		_ = m.gossip.Shutdown()
	case m.gossipTCP != nil:
		_ = m.gossipTCP.Close()
	}
	m.logMu.Lock()
	m.logMuted = true
	m.logMu.Unlock()

	m.peersMu.Lock()
	peers := *m.peers.Load()
	m.peers.Store(&map[NodeID]*peer{})
	m.peersMu.Unlock()
	for _, p := range peers {
		p.remove()
	}
	if m.ln != nil {
		_ = m.ln.Close()
	}
	if m.qt != nil {
		_ = m.qt.Close()
	}
	switch {
	case m.pconn != nil:
		_ = m.pconn.Close()
	case m.udp != nil:
		_ = m.udp.Close()
	}
	m.wg.Wait()
	m.metrics.unregister(m.cfg.Registerer)
}

func (m *Mesh) liveMembers() float64 {
	m.tableMu.Lock()
	defer m.tableMu.Unlock()
	return float64(len(m.nodes))
}

func (m *Mesh) connectedPeers() float64 {
	n := 0
	for _, p := range *m.peers.Load() {
		if p.connected() {
			n++
		}
	}
	return float64(n)
}
