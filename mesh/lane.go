package mesh

import (
	"bufio"
	"context"
	"encoding/binary"
	"sync"

	"github.com/quic-go/quic-go"
)

// writeBufSize is the writer's buffer: frames of a batch are copied into
// it and written to the QUIC stream in as few calls as possible (a write
// costs microseconds; a frame copy nanoseconds).
const writeBufSize = 32 << 10

// laneOf maps a key to a lane (FNV-1a, inline so Send does not allocate).
func laneOf(key string) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % Lanes)
}

// lane is one of a peer's send lanes: a queue of frames bounded by a byte
// credit, and the writer goroutine that drains it in batches onto one
// QUIC stream of the peer's current connection.
type lane struct {
	p     *peer
	index int
	limit int // credit: queued bytes above which Send waits

	mu     sync.Mutex
	q      [][]byte      // guarded by mu: frames accepted, not yet taken by the writer
	spare  [][]byte      // guarded by mu: the writer's last batch, reused as the next q
	queued int           // guarded by mu: bytes in q plus the writer's batch
	closed bool          // guarded by mu: the peer is gone
	space  chan struct{} // guarded by mu: closed when credit frees up; nil while no Send waits

	ready chan struct{} // cap 1: q became non-empty

	// Writer state, owned by run.
	stream     *quic.SendStream
	streamConn *quic.Conn
	bw         *bufio.Writer
}

func newLane(p *peer, index, limit int) *lane {
	return &lane{p: p, index: index, limit: limit, ready: make(chan struct{}, 1)}
}

// enqueue accepts frame or waits for credit until ctx ends. A frame larger
// than the whole credit is accepted when the lane is empty, so it cannot
// wait forever.
func (l *lane) enqueue(ctx context.Context, frame []byte) error {
	waited := false
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return ErrUnknownPeer
		}
		if l.queued == 0 || l.queued+len(frame) <= l.limit {
			l.q = append(l.q, frame)
			l.queued += len(frame)
			first := len(l.q) == 1
			l.mu.Unlock()
			if first {
				select {
				case l.ready <- struct{}{}:
				default:
				}
			}
			return nil
		}
		if l.space == nil {
			l.space = make(chan struct{})
		}
		space := l.space
		l.mu.Unlock()
		if !waited {
			waited = true
			l.p.m.metrics.sendBlocked.Inc()
		}
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// take hands the queued frames to the writer.
func (l *lane) take() [][]byte {
	l.mu.Lock()
	batch := l.q
	l.q = l.spare[:0]
	l.spare = nil
	l.mu.Unlock()
	return batch
}

// release returns a written (or dropped) batch's credit and wakes waiting
// Sends.
func (l *lane) release(batch [][]byte) {
	n := 0
	for _, f := range batch {
		n += len(f)
	}
	clear(batch) // drop references to the callers' frames
	l.mu.Lock()
	l.queued -= n
	l.spare = batch[:0]
	if l.space != nil {
		close(l.space)
		l.space = nil
	}
	l.mu.Unlock()
}

// close fails waiting and future Sends and discards queued frames; called
// when the peer is removed. The writer exits on the peer's context.
func (l *lane) close() {
	l.mu.Lock()
	l.closed = true
	dropped := len(l.q)
	clear(l.q)
	l.q = l.q[:0]
	if l.space != nil {
		close(l.space)
		l.space = nil
	}
	l.mu.Unlock()
	if dropped > 0 {
		l.p.m.metrics.framesDropped.WithLabelValues(dropPeerGone).Add(float64(dropped))
	}
}

// run is the lane's writer: it owns the lane's stream and writes each
// batch with one buffered flush.
func (l *lane) run() {
	defer l.p.m.wg.Done()
	l.bw = bufio.NewWriterSize(nil, writeBufSize)
	done := l.p.ctx.Done()
	for {
		select {
		case <-l.ready:
		case <-done:
			return
		}
		batch := l.take()
		if len(batch) > 0 {
			l.write(batch)
			l.release(batch)
		}
	}
}

// write sends one batch on the current connection, waiting for one while
// the peer is disconnected. Frames of a failed write are dropped: the
// stream is gone and what the peer got of it is unknown.
func (l *lane) write(batch [][]byte) {
	m := l.p.m
	for {
		conn := l.p.waitConn()
		if conn == nil {
			m.metrics.framesDropped.WithLabelValues(dropPeerGone).Add(float64(len(batch)))
			return
		}
		if l.stream == nil || l.streamConn != conn {
			s, err := conn.OpenUniStreamSync(conn.Context())
			if err != nil {
				continue // the connection died; wait for the next one
			}
			l.stream, l.streamConn = s, conn
			l.bw.Reset(s)
			_, _ = l.bw.Write([]byte{streamVersion, byte(l.index)})
		}
		var hdr [binary.MaxVarintLen64]byte
		bytes := 0
		for _, f := range batch {
			n := binary.PutUvarint(hdr[:], uint64(len(f)))
			_, _ = l.bw.Write(hdr[:n])
			_, _ = l.bw.Write(f)
			bytes += len(f)
		}
		if err := l.bw.Flush(); err != nil {
			m.log.Debug().Err(err).Str("peer", string(l.p.id)).Int("lane", l.index).Msg("lane write failed")
			m.metrics.framesDropped.WithLabelValues(dropConnLost).Add(float64(len(batch)))
			l.stream.CancelWrite(codeStreamClosed)
			l.stream, l.streamConn = nil, nil
			return
		}
		m.metrics.framesSent.Add(float64(len(batch)))
		m.metrics.bytesSent.Add(float64(bytes))
		return
	}
}
