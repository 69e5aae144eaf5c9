package bench

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/arena-mesh/arena/protocol"
)

// publisher sends one stream of numbered messages to one room on one
// connection, either on a fixed-rate schedule (pace) or as fast as its
// in-flight window allows (flood), and keeps the set of messages the
// target acknowledged: the messages subscribers must receive.
type publisher struct {
	r       *run
	id      uint32 // the payload's stream id
	conn    Conn
	room    string
	durable bool
	// ack, when not nil, records acknowledgement latencies of messages
	// due at or after measureFrom.
	ack         *Latency
	measureFrom *atomic.Int64 // Clock time; shared with the run's other publishers
	sem         chan struct{} // one token per publish in flight

	// positions[n-1] is where the target put message n (for drivers
	// that say), kept when keepPositions is set, to name lost messages.
	keepPositions bool
	positions     []protocol.Position

	ackedN atomic.Uint64
	maxLag atomic.Int64 // the furthest behind its schedule a send started, ns
	mu     sync.Mutex   // guards acked and positions
	acked  SeqSet
}

func newPublisher(r *run, id uint32, conn Conn, room string, measureFrom *atomic.Int64) *publisher {
	return &publisher{r: r, id: id, conn: conn, room: room, measureFrom: measureFrom, sem: make(chan struct{}, r.p.Inflight)}
}

// send publishes message n, due at due. It waits for a slot in the
// in-flight window first; while it waits, the schedule runs late and the
// lateness is part of every later message's latency. It reports false if
// ctx ended while waiting.
func (p *publisher) send(ctx context.Context, n uint64, due int64) bool {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	clock := p.r.clock
	now := clock.Now()
	if due == 0 {
		due = now // flood: no schedule, latency from the actual send
	}
	if lag := now - due; lag > p.maxLag.Load() {
		p.maxLag.Store(lag) // only this publisher's pacing goroutine writes it
	}
	data := AppendPayload(make([]byte, 0, p.r.p.Size+8), Payload{Stream: p.id, N: n, Intended: due, Sent: now}, p.r.p.Size)
	p.r.sent.Add(1)
	p.conn.Publish(ctx, p.room, data, p.durable, func(pos protocol.Position, err error) {
		if err != nil {
			if ctx.Err() != nil {
				// The run gave up on it at the end of the drain: not a
				// refusal, but never acknowledged either.
				p.r.unacked.Add(1)
			} else {
				p.r.pubError(err)
			}
		} else {
			if p.ack != nil && due >= p.measureFrom.Load() {
				p.ack.Record(int(p.id), clock.Now()-due)
			}
			p.mu.Lock()
			p.acked.Add(n)
			if p.keepPositions && n <= maxKeptPositions {
				for uint64(len(p.positions)) < n {
					p.positions = append(p.positions, protocol.Position{})
				}
				p.positions[n-1] = pos
			}
			p.mu.Unlock()
			p.ackedN.Add(1)
			p.r.acked.Add(1)
		}
		<-p.sem
	})
	return true
}

// pace runs the fixed-rate schedule pc, publishing at each tick, with
// publishes bounded by pubCtx and the schedule by paceCtx.
func (p *publisher) pace(paceCtx, pubCtx context.Context, pc Pacer) uint64 {
	return pc.Run(paceCtx, p.r.clock, func(n uint64, due int64) bool {
		return p.send(pubCtx, n, due)
	})
}

// flood publishes as fast as the in-flight window allows until paceCtx
// ends (closed loop: there is no schedule, so latency is measured from the
// actual send).
func (p *publisher) flood(paceCtx, pubCtx context.Context) uint64 {
	var n uint64
	for paceCtx.Err() == nil {
		if !p.send(pubCtx, n+1, 0) {
			break
		}
		n++
	}
	return n
}

// wait returns once every publish in flight has completed, or ctx ended.
func (p *publisher) wait(ctx context.Context) bool {
	for i := 0; i < cap(p.sem); i++ {
		select {
		case p.sem <- struct{}{}:
		case <-ctx.Done():
			for ; i > 0; i-- {
				<-p.sem
			}
			return false
		}
	}
	for i := 0; i < cap(p.sem); i++ {
		<-p.sem
	}
	return true
}

// maxKeptPositions bounds the positions a publisher keeps (16 bytes
// each).
const maxKeptPositions = 1 << 22

// position returns where the target put message n, if known.
func (p *publisher) position(n uint64) (protocol.Position, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n == 0 || n > uint64(len(p.positions)) || p.positions[n-1] == (protocol.Position{}) {
		return protocol.Position{}, false
	}
	return p.positions[n-1], true
}

// ackedSet returns the acknowledged messages; call it once publishing
// has stopped.
func (p *publisher) ackedSet() *SeqSet {
	p.mu.Lock()
	defer p.mu.Unlock()
	return &p.acked
}
