package router

import "sync"

// ringInitial is the first buffer length of a ring: rooms with little
// traffic never pay for a full RingSize of pointers.
const ringInitial = 16

// ring holds a room's newest written messages, up to a fixed size, for live
// fan-out, resume and history without touching the wal.
//
// It has its own lock, separate from the room's sequencing lock: the wal's
// committer goroutine appends to it (through the written callback) while a
// publisher may hold the room lock, blocked in wal.Append waiting for queue
// space. Taking the room lock here would deadlock.
type ring struct {
	mu    sync.RWMutex // guards buf, head, count
	size  int          // messages held at most (RingSize)
	buf   []*Message   // message seq s is at buf[s%len(buf)]; grows up to size
	head  uint64       // newest written seq of the epoch; 0 before the first
	count int          // messages held: seqs head-count+1 .. head
}

// newRing returns an empty ring of at most size messages whose head (newest
// written seq, possibly not held) is head.
func newRing(size int, head uint64) *ring {
	return &ring{size: max(size, 1), head: head}
}

// append adds m, the next message written (m.Seq == head+1), dropping the
// oldest when full.
func (g *ring) append(m *Message) {
	g.mu.Lock()
	g.appendLocked(m)
	g.mu.Unlock()
}

func (g *ring) appendLocked(m *Message) {
	if m.Seq != g.head+1 {
		// A gap: only when the wal failed to write a message. Keep the
		// ring contiguous; readers of the missing range go to the wal,
		// which reports what it really has.
		g.count = 0
	}
	if g.count == len(g.buf) && len(g.buf) < g.size {
		g.growLocked()
	}
	g.buf[m.Seq%uint64(len(g.buf))] = m
	g.head = m.Seq
	if g.count < len(g.buf) {
		g.count++
	}
}

// growLocked doubles the buffer (up to size), re-placing the held messages.
func (g *ring) growLocked() {
	n := min(max(2*len(g.buf), ringInitial), g.size)
	buf := make([]*Message, n)
	for s := g.oldestLocked(); s <= g.head && g.count > 0; s++ {
		buf[s%uint64(n)] = g.buf[s%uint64(len(g.buf))]
	}
	g.buf = buf
}

// oldestLocked is the oldest seq held; head+1 when the ring is empty.
func (g *ring) oldestLocked() uint64 {
	return g.head - uint64(g.count) + 1
}

// atLocked returns message seq, which the caller knows is held.
func (g *ring) atLocked(seq uint64) *Message {
	return g.buf[seq%uint64(len(g.buf))]
}

// Head returns the newest written seq.
func (g *ring) Head() uint64 {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.head
}

// bounds returns the head and the oldest seq held (head+1 when empty).
func (g *ring) bounds() (head, oldest uint64) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.head, g.oldestLocked()
}

// readAfter appends to dst up to n messages with seq > after, ascending, and
// reports the head. ok is false when the ring does not hold seq after+1 (the
// caller then reads the wal); it is true with nothing appended when after >= head.
func (g *ring) readAfter(dst []*Message, after uint64, n int) (_ []*Message, head uint64, ok bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if after >= g.head {
		return dst, g.head, true
	}
	if after+1 < g.oldestLocked() {
		return dst, g.head, false
	}
	n = int(min(uint64(max(n, 0)), g.head-after))
	for s := after + 1; s <= after+uint64(n); s++ {
		dst = append(dst, g.atLocked(s))
	}
	return dst, g.head, true
}

// readRange appends to dst the messages from..to (inclusive, ascending) if
// the ring holds all of them; ok is false otherwise and dst is unchanged.
func (g *ring) readRange(dst []*Message, from, to uint64) (_ []*Message, ok bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if from > to || from < g.oldestLocked() || to > g.head {
		return dst, from > to
	}
	for s := from; s <= to; s++ {
		dst = append(dst, g.atLocked(s))
	}
	return dst, true
}
