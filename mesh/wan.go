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

	wake      chan struct{} // cap 1: the queue's head changed
	done      chan struct{} // closed by Close
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

func newWANConn(pc net.PacketConn, wan *WAN, local string, regionOf func(netip.AddrPort) (string, bool), dropped func()) *wanConn {
	c := &wanConn{
		PacketConn: pc,
		wan:        wan,
		local:      local,
		regionOf:   regionOf,
		dropped:    dropped,
		dests:      make(map[netip.AddrPort]*destState),
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
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
	p := &delayed{due: due, seq: c.seq, buf: append([]byte(nil), b...), addr: addr, dest: dest}
	heap.Push(&c.queue, p)
	head := c.queue[0] == p
	c.mu.Unlock()
	if head {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
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

// maxTimerLead bounds how early the scheduler arms its timer.
const maxTimerLead = 2 * time.Millisecond

// run writes queued packets when they are due.
//
// A Go timer fires late: on this kind of VM by 0.3 to 0.5 ms, and more
// when the process is busy. Left alone, every emulated hop would be that
// much longer than its link's delay, and the mesh would be charged for
// the emulator's error. So run measures how late its timer fires (an
// exponentially weighted mean, lead) and arms it that much early, and it
// writes a packet once it is due within lead. Packets then leave close to
// their due time on average, some a little early, some a little late;
// BenchmarkWANDelayAccuracy measures how close.
func (c *wanConn) run() {
	defer close(c.stopped)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var (
		due      []*delayed
		lead     time.Duration // how late the timer fires, on average
		armedFor time.Time     // when the armed timer should fire
	)
	for {
		c.mu.Lock()
		now := time.Now()
		for c.queue.Len() > 0 && c.queue[0].due.Sub(now) <= lead {
			due = append(due, heap.Pop(&c.queue).(*delayed))
		}
		next := time.Duration(-1)
		if c.queue.Len() > 0 {
			next = c.queue[0].due.Sub(now) - lead
		}
		c.mu.Unlock()

		if len(due) > 0 {
			for _, p := range due {
				// Errors are a lost datagram, as on a real network.
				_, _ = c.PacketConn.WriteTo(p.buf, p.addr)
			}
			c.mu.Lock()
			for _, p := range due {
				c.dests[p.dest].pending--
			}
			c.mu.Unlock()
			clear(due)
			due = due[:0]
			continue // more may be due by now
		}
		if next >= 0 {
			armedFor = now.Add(next)
			timer.Reset(next)
		}
		select {
		case <-timer.C:
			late := min(max(time.Since(armedFor), 0), maxTimerLead)
			lead += (late - lead) / 8
		case <-c.wake:
		case <-c.done:
			return
		}
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
	c.closeOnce.Do(func() { close(c.done) })
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
