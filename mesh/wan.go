package mesh

import (
	"container/heap"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Link is the emulated one-way path from one region to another.
type Link struct {
	// Delay is added to every packet on the link. Zero: none.
	Delay time.Duration
	// Drop is the fraction of packets lost, 0 to 1. At 1 the link is cut:
	// every packet is dropped and gossip TCP dials across it are refused,
	// which is how tests partition a mesh. Zero: no loss.
	Drop float64
}

// WAN is an emulated wide-area network: a matrix of one-way links between
// regions, shared by the nodes that use it (Config.WAN) and changeable
// while they run, e.g. to partition and heal. Traffic between two regions
// not set in the matrix, and within a region, is not touched. Drops are
// pseudo-random but deterministic: for a given seed, each destination sees
// the same drop pattern for the same sequence of packets.
//
// A WAN is safe for concurrent use.
type WAN struct {
	seed uint64

	mu    sync.RWMutex
	links map[[2]string]Link // guarded by mu: (from, to) region → link
}

// NewWAN returns an empty matrix whose drops are seeded with seed.
func NewWAN(seed uint64) *WAN {
	return &WAN{seed: seed, links: make(map[[2]string]Link)}
}

// Set sets the link from region from to region to; packets sent after it
// returns use it.
func (w *WAN) Set(from, to string, l Link) {
	w.mu.Lock()
	w.links[[2]string{from, to}] = l
	w.mu.Unlock()
}

// SetBoth sets the links a→b and b→a to l.
func (w *WAN) SetBoth(a, b string, l Link) {
	w.mu.Lock()
	w.links[[2]string{a, b}] = l
	w.links[[2]string{b, a}] = l
	w.mu.Unlock()
}

// Link returns the link from region from to region to (zero if not set).
func (w *WAN) Link(from, to string) Link {
	w.mu.RLock()
	l := w.links[[2]string{from, to}]
	w.mu.RUnlock()
	return l
}

// maxDelayedPackets bounds the packets waiting in one node's delay queue;
// beyond it packets are dropped, as a router's buffer would.
const maxDelayedPackets = 1 << 16

// wanConn wraps the node's UDP socket under quic-go (and so under gossip
// packets too) and applies the WAN to outgoing packets by destination
// region. Reads pass through. Delayed packets wait in one timer queue (a
// heap ordered by due time, one goroutine, one timer) rather than a
// goroutine per packet; a packet is never due before an earlier packet to
// the same destination, so per-destination order is kept even when a
// link's delay shrinks.
type wanConn struct {
	net.PacketConn
	wan      *WAN
	local    string                              // this node's region
	regionOf func(netip.AddrPort) (string, bool) // destination region, from membership
	dropped  func()                              // counts a dropped packet

	mu    sync.Mutex
	queue delayQueue                    // guarded by mu
	dests map[netip.AddrPort]*destState // guarded by mu
	seq   uint64                        // guarded by mu: tie-break for equal due times

	timer     wakeTimer     // armed for the queue head's due time, under mu
	lead      time.Duration // guarded by mu: how late the timer wakes run, on average
	armedFor  time.Time     // guarded by mu: when the armed timer should wake run
	stopped   chan struct{} // closed when the scheduler returns
	closeOnce sync.Once
}

// destState is per-destination emulation state.
type destState struct {
	last    time.Time  // due time of the latest packet queued to it
	pending int        // packets queued or being written to it
	rng     *rand.Rand // its drop decisions
}

type delayed struct {
	due  time.Time
	seq  uint64
	buf  []byte
	addr net.Addr
	dest netip.AddrPort
}

// delayedPackets recycles delayed packets and their buffers: the emulator
// runs inside the nodes it slows down, and a copy of every packet in
// flight was a sixth of what a node of arena dev allocated, which its
// collections (in the latency being measured) then paid for.
var delayedPackets = sync.Pool{New: func() any { return new(delayed) }}

// newWANConn wraps pc; the scheduler sleeps on timer, which the wanConn
// closes.
func newWANConn(pc net.PacketConn, wan *WAN, local string, regionOf func(netip.AddrPort) (string, bool), dropped func(), timer wakeTimer) *wanConn {
	c := &wanConn{
		PacketConn: pc,
		wan:        wan,
		local:      local,
		regionOf:   regionOf,
		dropped:    dropped,
		dests:      make(map[netip.AddrPort]*destState),
		timer:      timer,
		stopped:    make(chan struct{}),
	}
	go c.run()
	return c
}

// WriteTo sends b to addr now, later, or never, as the link says. It
// copies b when it delays it, as the caller reuses its buffer.
func (c *wanConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	dest, ok := addrPortOf(addr)
	if !ok {
		return c.PacketConn.WriteTo(b, addr)
	}
	region, ok := c.regionOf(dest)
	if !ok {
		return c.PacketConn.WriteTo(b, addr)
	}
	link := c.wan.Link(c.local, region)
	if link == (Link{}) {
		// Fast path, but only when nothing to this destination is still
		// queued (the link may just have been cleared): order first.
		c.mu.Lock()
		d := c.dests[dest]
		idle := d == nil || d.pending == 0
		c.mu.Unlock()
		if idle {
			return c.PacketConn.WriteTo(b, addr)
		}
	}

	c.mu.Lock()
	d := c.destLocked(dest)
	if link.Drop > 0 && d.rng.Float64() < link.Drop {
		c.mu.Unlock()
		c.dropped()
		return len(b), nil
	}
	if link.Delay <= 0 && d.pending == 0 {
		c.mu.Unlock()
		return c.PacketConn.WriteTo(b, addr)
	}
	if c.queue.Len() >= maxDelayedPackets {
		c.mu.Unlock()
		c.dropped()
		return len(b), nil
	}
	due := time.Now().Add(link.Delay)
	if due.Before(d.last) {
		due = d.last
	}
	d.last = due
	d.pending++
	c.seq++
	p := delayedPackets.Get().(*delayed)
	p.due, p.seq, p.buf, p.addr, p.dest = due, c.seq, append(p.buf[:0], b...), addr, dest
	heap.Push(&c.queue, p)
	if c.queue[0] == p {
		c.armLocked(due, time.Now())
	}
	c.mu.Unlock()
	return len(b), nil
}

// destLocked returns the state of dest, creating it. Its drop stream is
// seeded by the WAN seed and the destination, so it is reproducible.
func (c *wanConn) destLocked(dest netip.AddrPort) *destState {
	d := c.dests[dest]
	if d == nil {
		h := fnv.New64a()
		b, _ := dest.MarshalBinary()
		h.Write(b)
		d = &destState{rng: rand.New(rand.NewPCG(c.wan.seed, h.Sum64()))}
		c.dests[dest] = d
	}
	return d
}

// maxWakeLead bounds how early the timer is armed.
const maxWakeLead = 500 * time.Microsecond

// armLocked arms the timer for a packet due at due: early by the timer's
// average lateness (lead), so that packets leave around their due time
// rather than always after it.
func (c *wanConn) armLocked(due, now time.Time) {
	c.armedFor = due.Add(-c.lead)
	c.timer.arm(c.armedFor.Sub(now))
}

// run writes queued packets when they are due: it sleeps on the wake
// timer, armed for the head of the queue (by WriteTo when a packet
// becomes the head, by run itself after writing), and writes every packet
// that is due within lead when it wakes. Even the precise timer wakes run
// some tens of microseconds late (the poller and the scheduler), so run
// learns that lateness (an exponentially weighted mean) and arms that much
// early. BenchmarkWANDelayAccuracy measures how close to their due time
// packets leave.
func (c *wanConn) run() {
	defer close(c.stopped)
	var due []*delayed
	for {
		c.mu.Lock()
		now := time.Now()
		for c.queue.Len() > 0 && c.queue[0].due.Sub(now) <= c.lead {
			due = append(due, heap.Pop(&c.queue).(*delayed))
		}
		if len(due) == 0 {
			if c.queue.Len() > 0 {
				c.armLocked(c.queue[0].due, now)
			}
			c.mu.Unlock()
			if !c.timer.wait() {
				return
			}
			c.mu.Lock()
			if !c.armedFor.IsZero() {
				late := min(max(time.Since(c.armedFor), 0), maxWakeLead)
				c.lead += (late - c.lead) / 8
			}
			c.mu.Unlock()
			continue
		}
		c.mu.Unlock()
		for _, p := range due {
			// Errors are a lost datagram, as on a real network.
			_, _ = c.PacketConn.WriteTo(p.buf, p.addr)
		}
		c.mu.Lock()
		for _, p := range due {
			c.dests[p.dest].pending--
		}
		c.mu.Unlock()
		for _, p := range due {
			p.addr = nil
			delayedPackets.Put(p)
		}
		clear(due)
		due = due[:0]
	}
}

// SetReadBuffer and SetWriteBuffer let quic-go size the socket's buffers
// through the wrapper.
func (c *wanConn) SetReadBuffer(n int) error {
	if s, ok := c.PacketConn.(interface{ SetReadBuffer(int) error }); ok {
		return s.SetReadBuffer(n)
	}
	return errors.ErrUnsupported
}

// SetWriteBuffer: see SetReadBuffer.
func (c *wanConn) SetWriteBuffer(n int) error {
	if s, ok := c.PacketConn.(interface{ SetWriteBuffer(int) error }); ok {
		return s.SetWriteBuffer(n)
	}
	return errors.ErrUnsupported
}

// Close stops the scheduler, discarding queued packets, and closes the
// socket.
func (c *wanConn) Close() error {
	c.closeOnce.Do(c.timer.close)
	<-c.stopped
	return c.PacketConn.Close()
}

// addrPortOf returns a UDP address as an unmapped netip.AddrPort, the form
// membership keys addresses by.
func addrPortOf(a net.Addr) (netip.AddrPort, bool) {
	u, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap := u.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), ap.IsValid()
}

// delayQueue is a min-heap of delayed packets by (due, seq).
type delayQueue []*delayed

func (q delayQueue) Len() int { return len(q) }
func (q delayQueue) Less(i, j int) bool {
	if q[i].due.Equal(q[j].due) {
		return q[i].seq < q[j].seq
	}
	return q[i].due.Before(q[j].due)
}
func (q delayQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *delayQueue) Push(x any)   { *q = append(*q, x.(*delayed)) }
func (q *delayQueue) Pop() any {
	old := *q
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return p
}
