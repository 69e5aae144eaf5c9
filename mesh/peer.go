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

	mu      sync.Mutex
	member  bool           // guarded by mu: membership lists the peer
	dead    time.Time      // guarded by mu: when membership stopped listing it (grace period), or zero
	addr    netip.AddrPort // guarded by mu: where to dial it
	conn    *quic.Conn     // guarded by mu: the connection in use, or nil
	changed chan struct{}  // guarded by mu: closed and replaced when conn or addr change
	removed bool           // guarded by mu
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

// setMember records what membership says about the peer.
func (p *peer) setMember(addr netip.AddrPort) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.member = true
	p.dead = time.Time{}
	if p.addr != addr {
		p.addr = addr
		p.signalLocked()
	}
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
// the connection to end, redial with jittered exponential backoff.
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
			case <-p.ctx.Done():
				return
			}
			continue
		case !addr.IsValid():
			select {
			case <-changed:
			case <-p.ctx.Done():
				return
			}
			continue
		}
		conn, err := p.m.dial(p.ctx, p.id, addr)
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			p.m.metrics.dials.WithLabelValues("error").Inc()
			p.m.log.Debug().Err(err).Str("peer", string(p.id)).Str("remote", addr.String()).Dur("backoff", backoff).Msg("dial failed")
			wait := backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, dialBackoffMax)
			if !sleepCtx(p.ctx, wait) {
				return
			}
			continue
		}
		p.m.metrics.dials.WithLabelValues("ok").Inc()
		backoff = dialBackoffMin
		p.setConn(conn)
	}
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
