package router

import (
	"context"
	"errors"
	"fmt"

	"github.com/arena-mesh/arena/wal"
)

// PublishRequest is one message to publish.
type PublishRequest struct {
	Room string
	From string // publisher's user id or API key name
	Key  string // idempotency key; "" for none
	// Data is the JSON value, stored and delivered verbatim. The router
	// keeps it: don't modify it after calling Publish.
	Data []byte
}

// Ack says where a published message is, once it is durable.
type Ack struct {
	Epoch, Seq uint64
	TS         int64 // ms since the Unix epoch
	Dup        bool  // the key was already used: this is the original's position, nothing was published
}

// errEvicted: the room left memory under the caller; look it up again.
var errEvicted = errors.New("room evicted")

// publication is one message on its way through the wal. Its methods are
// the wal callbacks.
type publication struct {
	rm   *room
	msg  *Message
	rec  wal.Record
	done chan struct{} // closed once durable (or failed)
	err  error         // why it failed; written before done is closed
}

// written is the wal's written callback: fan out.
func (p *publication) written() { p.rm.written(p.msg) }

// durable is the wal's durable callback: release the publisher and any
// duplicate waiting on the same key.
func (p *publication) durable(err error) {
	rm := p.rm
	p.err = err
	if key := p.msg.Key; key != "" && err == nil {
		// A failed publication stays pending so that the next publish
		// with its key (under the room lock) forgets it and publishes anew.
		rm.pendMu.Lock()
		if rm.pending[key] == p {
			delete(rm.pending, key)
		}
		rm.pendMu.Unlock()
	}
	close(p.done)
	rm.inflight.Add(-1)
}

// ack is the publisher's answer once done is closed.
func (p *publication) ack(dup bool) Ack {
	return Ack{Epoch: p.msg.Epoch, Seq: p.msg.Seq, TS: p.msg.TS, Dup: dup}
}

// Publish sequences, stores and fans out the message and returns once it is
// durable (fsynced). If ctx ends first it returns ctx.Err(): the message may
// still be published, and a retry with the same key is safe. A key already
// used in the room within the DedupWindow returns the original's position
// with Dup set and publishes nothing; if the original is still in flight,
// Publish waits for it to be durable.
func (r *Router) Publish(ctx context.Context, req PublishRequest) (Ack, error) {
	if err := ctx.Err(); err != nil {
		return Ack{}, err
	}
	if home := r.homeOf(req.Room); home != "" {
		return r.forwardPublish(ctx, home, req)
	}
	p, dup, ack, err := r.publishLocal(req)
	if err != nil || p == nil {
		return ack, err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return Ack{}, ctx.Err()
	}
	return p.result(dup)
}

// publishLocal is the part of Publish on the room's home that does not
// wait for durability: it returns the publication to wait for (dup: it is
// the in-flight original of req.Key), or with p nil the ack of a durable
// duplicate.
func (r *Router) publishLocal(req PublishRequest) (p *publication, dup bool, ack Ack, err error) {
	for {
		rm, err := r.room(req.Room)
		if err != nil {
			return nil, false, Ack{}, err
		}
		p, dup, ack, err := rm.publish(req)
		if errors.Is(err, errEvicted) {
			continue
		}
		return p, dup, ack, err
	}
}

// result is the publisher's answer once p.done is closed.
func (p *publication) result(dup bool) (Ack, error) {
	if p.err != nil {
		if errors.Is(p.err, wal.ErrClosed) {
			return Ack{}, ErrClosed
		}
		return Ack{}, fmt.Errorf("store room %q seq %d: %w", p.msg.Room, p.msg.Seq, p.err)
	}
	return p.ack(dup), nil
}

// publish runs the room's part of Publish under its lock. It returns the
// publication to wait for (dup: it is the in-flight original of req.Key), or
// with p nil the ack of a durable duplicate.
func (rm *room) publish(req PublishRequest) (p *publication, dup bool, ack Ack, err error) {
	r := rm.r
	rm.mu.Lock()
	defer rm.mu.Unlock()
	if rm.evicted.Load() {
		return nil, false, Ack{}, errEvicted
	}
	if r.closed.Load() {
		return nil, false, Ack{}, ErrClosed
	}
	now := r.cfg.Now()
	rm.lastActive.Store(now.UnixNano())

	if req.Key != "" {
		if p := rm.pendingLocked(req.Key); p != nil {
			r.metrics.duplicates.Inc()
			return p, true, Ack{}, nil
		}
		o, st := rm.seq.check(req.Key, now)
		if st == keyUnknown {
			e, found, err := r.log.LookupKey(rm.name, req.Key)
			if err != nil {
				return nil, false, Ack{}, fmt.Errorf("look up key in room %q: %w", rm.name, err)
			}
			if found {
				o, st = origin{Epoch: e.Epoch, Seq: e.Seq, TS: e.TS}, keyDup
			}
		}
		if st == keyDup {
			r.metrics.duplicates.Inc()
			return nil, false, Ack{Epoch: o.Epoch, Seq: o.Seq, TS: o.TS, Dup: true}, nil
		}
	}

	o := rm.seq.next(req.Key, now)
	p = &publication{
		rm: rm,
		msg: &Message{
			Room: rm.name, Epoch: o.Epoch, Seq: o.Seq, TS: o.TS,
			From: req.From, Key: req.Key, Data: req.Data,
		},
		rec: wal.Record{
			Room: rm.name, Epoch: o.Epoch, Seq: o.Seq, TS: o.TS,
			From: req.From, Key: req.Key, Data: req.Data,
		},
		done: make(chan struct{}),
	}
	if req.Key != "" {
		rm.pendMu.Lock()
		if rm.pending == nil {
			rm.pending = make(map[string]*publication)
		}
		rm.pending[req.Key] = p
		rm.pendMu.Unlock()
	}
	rm.inflight.Add(1)
	// Under the room lock, so the wal's queue order is seq order.
	if err := r.log.Append(&p.rec, p.written, p.durable); err != nil {
		rm.inflight.Add(-1)
		rm.seq.undo(o.Seq, req.Key)
		if req.Key != "" {
			rm.pendMu.Lock()
			delete(rm.pending, req.Key)
			rm.pendMu.Unlock()
		}
		if errors.Is(err, wal.ErrClosed) {
			return nil, false, Ack{}, ErrClosed
		}
		return nil, false, Ack{}, fmt.Errorf("append room %q seq %d: %w", rm.name, o.Seq, err)
	}
	r.metrics.publishes.Inc()
	return p, false, Ack{}, nil
}

// pendingLocked returns the in-flight publication of key, if any. A failed
// one is dropped (with its key) so that the caller publishes anew.
func (rm *room) pendingLocked(key string) *publication {
	rm.pendMu.Lock()
	defer rm.pendMu.Unlock()
	p := rm.pending[key]
	if p == nil {
		return nil
	}
	select {
	case <-p.done:
		if p.err == nil {
			return p // durable; durable() is about to drop it
		}
		delete(rm.pending, key)
		rm.seq.forget(key, p.msg.Seq)
		return nil
	default:
		return p
	}
}
