package mesh

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// QUIC error codes the mesh uses.
const (
	codeClosing      quic.ApplicationErrorCode = 0 // node closing or peer removed
	codeReplaced     quic.ApplicationErrorCode = 1 // a newer connection to the same peer took over
	codeRejected     quic.ApplicationErrorCode = 2 // the peer's identity is unacceptable
	codeStreamClosed quic.StreamErrorCode      = 0 // the writer gave up on the stream
	codeBadFrame     quic.StreamErrorCode      = 1 // malformed stream envelope
)

// Dial backoff bounds. Jitter spreads redials after a mass failure.
const (
	dialBackoffMin = 50 * time.Millisecond
	dialBackoffMax = 5 * time.Second
)

// peer is another node this node talks to over QUIC. There is one long-
// lived connection per pair of nodes, and only the node with the lower ID
// dials it, so simultaneous dials cannot happen and no tie-break is
// needed; the other side waits for it. Whoever holds a newer connection
// for the same peer closes the older one (codeReplaced), which covers a
// redial after a failure the acceptor has not noticed yet.
type peer struct {
	m      *Mesh
	id     NodeID
	dialer bool // this node dials: its ID is lower than the peer's

	ctx    context.Context // canceled when the peer is removed or the mesh closes
	cancel context.CancelFunc

	lanes [Lanes]atomic.Pointer[lane] // set once each, under mu

	mu     sync.Mutex
	member bool           // guarded by mu: membership lists the peer
	dead   time.Time      // guarded by mu: when membership stopped listing it (grace period), or zero
	addr   netip.AddrPort // guarded by mu: where to dial it
	conn   *quic.Conn     // guarded by mu: the connection in use, or nil
	// deadConn and deadRecv snapshot conn, and the packets it had received,
	// when membership declared the peer dead: if the peer comes back and
	// that connection has heard nothing since, it is stale (see setMember).
	deadConn *quic.Conn    // guarded by mu
	deadRecv uint64        // guarded by mu
	changed  chan struct{} // guarded by mu: closed and replaced when conn or addr change, or the peer revives
	removed  bool          // guarded by mu
}

func newPeer(m *Mesh, id NodeID) *peer {
	ctx, cancel := context.WithCancel(m.ctx)
	return &peer{m: m, id: id, dialer: m.id < id, ctx: ctx, cancel: cancel, changed: make(chan struct{})}
}

func (p *peer) signalLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// lane returns lane i, starting its writer on first use; nil once the
// peer is removed.
func (p *peer) lane(i int) *lane {
	if l := p.lanes[i].Load(); l != nil {
		return l
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.removed {
		return nil
	}
	if l := p.lanes[i].Load(); l != nil {
		return l
	}
	l := newLane(p, i, p.m.cfg.LaneBuffer)
	p.lanes[i].Store(l)
	p.m.wg.Add(1)
	go l.run()
	return l
}

// setMember records that membership lists the peer as alive at addr.
//
// A peer that comes back after membership declared it dead (a healed
// partition, a rejoin) may still hold the connection from before: neither
// end's idle timeout fired, yet the peer may have torn its end down during
// the grace period (its CONNECTION_CLOSE lost in the partition), and even
// if not, this end's retransmission timer backed off while every packet
// was lost. Frames written to it would be lost, or wait seconds for the
// next probe. So a connection that has received nothing since the peer
// was declared dead is dropped here, before Members lists the peer again,
// so no frame Sent after the revival is written to it; the dialer dials
// afresh at once (backoff reset) and the other end waits for that dial.
// A connection that did hear from the peer since (a false positive the
// peer refuted, or a link that recovered on its own) is kept.
func (p *peer) setMember(addr netip.AddrPort) {
	p.mu.Lock()
	defer p.mu.Unlock()
	revived := !p.dead.IsZero()
	p.member = true
	p.dead = time.Time{}
	var stale *quic.Conn
	if revived && p.conn != nil && p.conn == p.deadConn && p.conn.ConnectionStats().PacketsReceived == p.deadRecv {
		stale, p.conn = p.conn, nil
	}
	p.deadConn, p.deadRecv = nil, 0
	if revived || p.addr != addr {
		p.addr = addr
		p.signalLocked() // wakes the dialer (and its backoff) and waiting lanes
	}
	if stale != nil && !p.removed {
		p.m.metrics.staleConns.Inc()
		p.m.log.Debug().Str("peer", string(p.id)).Str("remote", stale.RemoteAddr().String()).Msg("dropping stale peer connection")
		// Closing waits for quic-go's connection loop; memberlist's locks
		// are held here.
		p.m.wg.Add(1)
		go func() {
			defer p.m.wg.Done()
			_ = stale.CloseWithError(codeReplaced, "stale after the peer was declared dead")
		}()
	}
}

// markDeadLocked records that membership no longer lists the peer, once:
// the time (for DeadPeerGrace) and the connection's state (for setMember).
// Peers that connected before membership listed them are not tracked.
func (p *peer) markDeadLocked(now time.Time) {
	if !p.member || !p.dead.IsZero() {
		return
	}
	p.dead = now
	p.deadConn = p.conn
	if p.conn != nil {
		p.deadRecv = p.conn.ConnectionStats().PacketsReceived
	}
}

// markDead: see markDeadLocked.
func (p *peer) markDead(now time.Time) {
	p.mu.Lock()
	p.markDeadLocked(now)
	p.mu.Unlock()
}

// waitConn returns the live connection, waiting while there is none; nil
// when the peer is removed.
func (p *peer) waitConn() *quic.Conn {
	for {
		p.mu.Lock()
		c, changed := p.conn, p.changed
		p.mu.Unlock()
		if c != nil && c.Context().Err() == nil {
			return c
		}
		select {
		case <-changed:
		case <-p.ctx.Done():
			return nil
		}
	}
}

// setConn makes c the peer's connection and starts serving it.
func (p *peer) setConn(c *quic.Conn) {
	p.mu.Lock()
	if p.removed {
		p.mu.Unlock()
		_ = c.CloseWithError(codeClosing, "peer removed")
		return
	}
	old := p.conn
	p.conn = c
	p.signalLocked()
	p.m.wg.Add(1)
	p.mu.Unlock()
	go p.serveConn(c)
	if old != nil && old != c {
		_ = old.CloseWithError(codeReplaced, "replaced by a newer connection")
	}
	p.m.log.Debug().Str("peer", string(p.id)).Str("remote", c.RemoteAddr().String()).Msg("peer connected")
}

// serveConn accepts the peer's streams on c until c ends.
func (p *peer) serveConn(c *quic.Conn) {
	defer p.m.wg.Done()
	for {
		s, err := c.AcceptUniStream(c.Context())
		if err != nil {
			break
		}
		p.m.wg.Add(1)
		go p.m.readStream(p, s)
	}
	p.mu.Lock()
	if p.conn == c {
		p.conn = nil
		p.signalLocked()
	}
	orphan := !p.member && p.conn == nil && !p.removed
	p.mu.Unlock()
	p.m.log.Debug().Str("peer", string(p.id)).Err(context.Cause(c.Context())).Msg("peer connection closed")
	if orphan {
		// It connected before membership listed it and is gone again.
		p.m.removePeer(p)
	}
}

// remove stops everything of the peer: its dialer, connection and lanes.
func (p *peer) remove() {
	p.mu.Lock()
	if p.removed {
		p.mu.Unlock()
		return
	}
	p.removed = true
	p.member = false
	c := p.conn
	p.mu.Unlock()
	p.cancel()
	if c != nil {
		_ = c.CloseWithError(codeClosing, "peer removed")
	}
	for i := range p.lanes {
		if l := p.lanes[i].Load(); l != nil {
			l.close()
		}
	}
}

// connected reports whether the peer has a live connection.
func (p *peer) connected() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conn != nil && p.conn.Context().Err() == nil
}

// dialLoop keeps a connection to the peer while it exists: dial, wait for
// the connection to end, redial with jittered exponential backoff. A
// change (new address, the peer revived after being declared dead) cuts
// the backoff and restarts a dial under way, whose handshake may be stuck
// in retransmission backoff after a partition.
func (p *peer) dialLoop() {
	defer p.m.wg.Done()
	backoff := dialBackoffMin
	for {
		p.mu.Lock()
		c, addr, changed := p.conn, p.addr, p.changed
		p.mu.Unlock()
		switch {
		case c != nil && c.Context().Err() == nil:
			select {
			case <-c.Context().Done():
			case <-changed:
			case <-p.ctx.Done():
				return
			}
			continue
		case c != nil || !addr.IsValid():
			// A connection that just ended is cleared by its serveConn,
			// which signals changed; dialing before that would be
			// cancelled by the signal.
			select {
			case <-changed:
			case <-p.ctx.Done():
				return
			}
			continue
		}
		conn, err := p.dialUntil(addr, changed)
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			select {
			case <-changed: // cancelled by a change: redial at once
				backoff = dialBackoffMin
				continue
			default:
			}
			p.m.metrics.dials.WithLabelValues("error").Inc()
			p.m.log.Debug().Err(err).Str("peer", string(p.id)).Str("remote", addr.String()).Dur("backoff", backoff).Msg("dial failed")
			wait := backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, dialBackoffMax)
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-changed:
				backoff = dialBackoffMin
			case <-p.ctx.Done():
				t.Stop()
				return
			}
			t.Stop()
			continue
		}
		p.m.metrics.dials.WithLabelValues("ok").Inc()
		backoff = dialBackoffMin
		p.setConn(conn)
	}
}

// dialUntil dials the peer at addr, giving up when changed is closed.
func (p *peer) dialUntil(addr netip.AddrPort, changed <-chan struct{}) (*quic.Conn, error) {
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-changed:
			cancel()
		case <-done:
		}
	}()
	return p.m.dial(ctx, p.id, addr)
}

// dial opens a QUIC connection to node id at addr.
func (m *Mesh) dial(ctx context.Context, id NodeID, addr netip.AddrPort) (*quic.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timing.StreamTimeout)
	defer cancel()
	return m.qt.Dial(ctx, net.UDPAddrFromAddrPort(addr), m.clientTLS(id), m.quicConf)
}

// acceptLoop takes the connections peers dial to this node.
func (m *Mesh) acceptLoop() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept(m.ctx)
		if err != nil {
			if m.ctx.Err() == nil && !errors.Is(err, quic.ErrServerClosed) {
				m.log.Warn().Err(err).Msg("quic accept stopped")
			}
			return
		}
		// The handshake verified the certificate against the cluster CA.
		certs := c.ConnectionState().TLS.PeerCertificates
		if len(certs) == 0 || NodeID(certs[0].Subject.CommonName) == m.id {
			_ = c.CloseWithError(codeRejected, "bad peer identity")
			continue
		}
		p := m.peerFor(NodeID(certs[0].Subject.CommonName))
		if p == nil {
			_ = c.CloseWithError(codeClosing, "closing")
			continue
		}
		p.setConn(c)
	}
}

// peerFor returns the peer named id, creating it; nil once the mesh is
// closed.
func (m *Mesh) peerFor(id NodeID) *peer {
	if p := (*m.peers.Load())[id]; p != nil {
		return p
	}
	m.peersMu.Lock()
	defer m.peersMu.Unlock()
	old := *m.peers.Load()
	if p := old[id]; p != nil {
		return p
	}
	if m.ctx.Err() != nil {
		return nil
	}
	p := newPeer(m, id)
	next := make(map[NodeID]*peer, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[id] = p
	m.peers.Store(&next)
	if p.dialer {
		m.wg.Add(1)
		go p.dialLoop()
	}
	return p
}

// removePeer drops p from the peer table and stops it.
func (m *Mesh) removePeer(p *peer) {
	m.unlinkPeer(p)
	p.remove()
}

// unlinkPeer drops p from the peer table, if it is still there.
func (m *Mesh) unlinkPeer(p *peer) {
	m.peersMu.Lock()
	defer m.peersMu.Unlock()
	old := *m.peers.Load()
	if old[p.id] != p {
		return
	}
	next := make(map[NodeID]*peer, len(old))
	for k, v := range old {
		if k != p.id {
			next[k] = v
		}
	}
	m.peers.Store(&next)
}
