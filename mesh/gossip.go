package mesh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/quic-go/quic-go"
	"github.com/rs/zerolog"
)

// gossipTransport is memberlist's transport on the mesh port. Its packet
// path shares the node's one UDP socket with QUIC: quic-go's Transport
// owns the socket and hands over every datagram whose first byte has both
// 0x80 and 0x40 clear (not a QUIC long or short header), which covers all
// memberlist packets: they start with a message type (0..13) or, when
// encrypted as here, with the encryption version (0 or 1). Memberlist
// labels must stay off: their marker byte 0xF4 would read as QUIC. Its
// stream path is plain TCP on the same port number.
type gossipTransport struct {
	qt        *quic.Transport
	tcp       *net.TCPListener
	advertise netip.AddrPort
	// reachable says whether a gossip TCP dial to addr may go out; false
	// when the emulated WAN has the link cut (Link.Drop >= 1).
	reachable func(netip.AddrPort) bool
	log       zerolog.Logger

	packetCh chan *memberlist.Packet
	streamCh chan net.Conn

	ctx      context.Context // canceled by Shutdown; closes dialed streams
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	shutOnce sync.Once
}

var _ memberlist.NodeAwareTransport = (*gossipTransport)(nil)

// udpBufSize fits any datagram; memberlist itself sends at most 1400 bytes.
const udpBufSize = 64 << 10

func newGossipTransport(parent context.Context, qt *quic.Transport, tcp *net.TCPListener, advertise netip.AddrPort, reachable func(netip.AddrPort) bool, log zerolog.Logger) *gossipTransport {
	ctx, cancel := context.WithCancel(parent)
	t := &gossipTransport{
		qt:        qt,
		tcp:       tcp,
		advertise: advertise,
		reachable: reachable,
		log:       log,
		packetCh:  make(chan *memberlist.Packet, 64),
		streamCh:  make(chan net.Conn),
		ctx:       ctx,
		cancel:    cancel,
	}
	// Start reading before memberlist exists: quic-go drops non-QUIC
	// packets that arrive before the first ReadNonQUICPacket call.
	t.wg.Add(2)
	go t.readPackets()
	go t.acceptStreams()
	return t
}

// readPackets is the only caller of ReadNonQUICPacket (quic-go sets up its
// queue on the first call, which must not race with a second).
func (t *gossipTransport) readPackets() {
	defer t.wg.Done()
	buf := make([]byte, udpBufSize)
	for {
		n, from, err := t.qt.ReadNonQUICPacket(t.ctx, buf)
		if err != nil {
			if t.ctx.Err() == nil {
				t.log.Warn().Err(err).Msg("gossip packet read stopped")
			}
			return
		}
		now := time.Now()
		if n == 0 {
			continue
		}
		p := &memberlist.Packet{Buf: append([]byte(nil), buf[:n]...), From: from, Timestamp: now}
		select {
		case t.packetCh <- p:
		case <-t.ctx.Done():
			return
		}
	}
}

func (t *gossipTransport) acceptStreams() {
	defer t.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		c, err := t.tcp.Accept()
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			t.log.Warn().Err(err).Msg("gossip accept failed")
			if !sleepCtx(t.ctx, backoff) {
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		select {
		case t.streamCh <- c:
		case <-t.ctx.Done():
			_ = c.Close()
			return
		}
	}
}

// FinalAdvertiseAddr returns the address New resolved; memberlist passes
// back what New configured.
func (t *gossipTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.advertise.Addr().AsSlice(), int(t.advertise.Port()), nil
}

// WriteTo sends a gossip packet.
func (t *gossipTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends a gossip packet through the shared socket.
func (t *gossipTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if len(b) == 0 || b[0]&0xc0 != 0 {
		// The receiver's quic-go would take it for QUIC and drop it.
		return time.Time{}, fmt.Errorf("gossip packet starts with %#x, which reads as QUIC", b[0:min(1, len(b))])
	}
	ua, err := resolveUDP(a.Addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.qt.WriteTo(b, ua)
	return time.Now(), err
}

// PacketCh returns incoming gossip packets.
func (t *gossipTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout opens a gossip stream.
func (t *gossipTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout opens a gossip stream over TCP. The connection is
// closed when the transport shuts down, so a join or push/pull in flight
// never holds up Close.
func (t *gossipTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if ap, err := netip.ParseAddrPort(a.Addr); err == nil && !t.reachable(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())) {
		return nil, fmt.Errorf("dial %s: link cut by wan emulation", a.Addr)
	}
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(t.ctx, "tcp", a.Addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(t.ctx, func() { _ = c.Close() })
	return &dialedConn{Conn: c, stop: stop}, nil
}

// StreamCh returns incoming gossip streams.
func (t *gossipTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown stops the gossip listeners. The UDP socket and QUIC transport
// belong to the Mesh and stay open.
func (t *gossipTransport) Shutdown() error {
	t.shutOnce.Do(func() {
		t.cancel()
		_ = t.tcp.Close()
		t.wg.Wait()
	})
	return nil
}

// dialedConn is a gossip stream closed early if the transport shuts down.
type dialedConn struct {
	net.Conn
	stop func() bool
}

func (c *dialedConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

func resolveUDP(addr string) (*net.UDPAddr, error) {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return net.UDPAddrFromAddrPort(ap), nil
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("resolve %q: %w", addr, err)
	}
	return ua, nil
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
