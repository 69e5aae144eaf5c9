package router

import (
	"context"
	"errors"
	"fmt"
	"time"

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

// DoneFunc receives the outcome of a PublishAsync: the Ack once the message
// is durable, or why it failed. It runs on a router, wal or mesh goroutine
// (or on the caller's, before PublishAsync returns, for the duplicate of a
// durable message); it must not block and must not call the Router.
type DoneFunc func(Ack, error)

// errEvicted: the room left memory under the caller; look it up again.
var errEvicted = errors.New("room evicted")

// publication is one message on its way through the wal. Its methods are
// the wal callbacks.
type publication struct {
	rm   *room
	msg  *Message
	rec  wal.Record
	done DoneFunc // the publisher's; called once durable (or failed)

	// Guarded by rm.pendMu, and only used for keyed publications (only
	// those can have duplicates waiting).
	finished bool       // durable ran; err is set
	waiters  []DoneFunc // duplicates of the key waiting for durable
	err      error      // why it failed; set before finished (and before done runs)
}

// durable is the wal's durable callback: fan the message out if the
// applied callback did not already (the room was not hot, see hot.go),
// then release the publisher and any duplicate waiting on the same key.
// Durable callbacks run in append order, so the ring grows in seq order.
func (p *publication) durable(err error) {
	rm := p.rm
	p.stored(err)
	var waiters []DoneFunc
	if key := p.msg.Key; key != "" {
		rm.pendMu.Lock()
		p.err, p.finished = err, true
		// A failed publication stays pending so that the next publish
		// with its key (under the room lock) forgets it and publishes anew.
		if err == nil && rm.pending[key] == p {
			delete(rm.pending, key)
		}
		waiters, p.waiters = p.waiters, nil
		rm.pendMu.Unlock()
	} else {
		p.err = err
	}
	rm.inflight.Add(-1)
	ack, err := p.result(false)
	p.done(ack, err)
	if len(waiters) > 0 {
		ack.Dup = err == nil
		for _, w := range waiters {
			w(ack, err)
		}
	}
}

// result is the publisher's answer once durable has run.
func (p *publication) result(dup bool) (Ack, error) {
	if p.err != nil {
		if errors.Is(p.err, wal.ErrClosed) {
			return Ack{}, ErrClosed
		}
		return Ack{}, fmt.Errorf("store room %q seq %d: %w", p.msg.Room, p.msg.Seq, p.err)
	}
	return Ack{Epoch: p.msg.Epoch, Seq: p.msg.Seq, TS: p.msg.TS, Dup: dup}, nil
}

// Publish sequences, stores and fans out the message and returns once it is
// durable (fsynced). If ctx ends first it returns ctx.Err(): the message may
// still be published, and a retry with the same key is safe. A key already
// used in the room within the DedupWindow returns the original's position
// with Dup set and publishes nothing; if the original is still in flight,
// Publish waits for it to be durable. It is PublishAsync waiting for done.
func (r *Router) Publish(ctx context.Context, req PublishRequest) (Ack, error) {
	type result struct {
		ack Ack
		err error
	}
	ch := make(chan result, 1)
	err := r.PublishAsync(ctx, req, func(ack Ack, err error) { ch <- result{ack, err} })
	if err != nil {
		return Ack{}, err
	}
	select {
	case res := <-ch:
		return res.ack, res.err
	case <-ctx.Done():
		return Ack{}, ctx.Err()
	}
}

// PublishAsync is Publish without the wait for durability: it returns once
// the message has its place in the room's order, and done receives the
// outcome later. Messages published by one goroutine to one room, one
// PublishAsync after the other, get increasing seqs in call order, so a
// connection may pipeline its publishes and still keep their order.
//
//   - On the room's home, PublishAsync returns once the message is
//     sequenced and queued to the wal (waiting only while the wal's queue
//     is full); done runs when it is fsynced.
//   - For a room homed on another node, it returns once the forward
//     frame is queued to the home (waiting while the link's credit is
//     used up, at most PeerTimeout and until ctx ends); the home
//     sequences forwarded frames in arrival order, which is send order.
//     done gets the home's ack, or ErrUnavailable if none comes within
//     PeerTimeout.
//
// If PublishAsync returns an error, done is never called (the message was
// not published, except after a context error on a forward, where the
// home may still get it: a retry with the same key is safe). Otherwise
// done is called exactly once: with the Ack (Dup set for a key already
// used in the DedupWindow; for an original still in flight, once it is
// durable), or with the error that prevented durability (ErrClosed,
// ErrUnavailable, or a wal failure). ctx bounds only the call itself, not
// the wait for done. See DoneFunc for what done may do.
//
// While the room moves between homes (a planned handoff), the publish
// waits for the move to end, at most PeerTimeout and until ctx ends, and
// then goes to the new home; past that it fails with ErrUnavailable.
func (r *Router) PublishAsync(ctx context.Context, req PublishRequest, done DoneFunc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return r.route(ctx, req, done, time.Now().Add(r.cfg.PeerTimeout))
}

// retryInterval is how long a publish that found its room between homes
// waits before it is routed again (when there is nothing to wait on).
const retryInterval = 20 * time.Millisecond

// route sends req to the room's home (here, or forwarded), waiting until
// deadline while the room moves. It returns an error only if done will not
// be called.
func (r *Router) route(ctx context.Context, req PublishRequest, done DoneFunc, deadline time.Time) error {
	for {
		if home := r.homeOf(req.Room); home != "" {
			return r.forwardPublish(ctx, home, req, done, deadline)
		}
		err := r.publishLocal(req, done)
		var w *waitError
		var ch <-chan struct{}
		switch {
		case errors.As(err, &w):
			ch = w.ch
		case errors.Is(err, errNotHome):
			// The view changed under us: route again.
		default:
			return err
		}
		if err := r.waitUntil(ctx, ch, deadline); err != nil {
			return fmt.Errorf("%w: room %q is moving between homes: %w", ErrUnavailable, req.Room, err)
		}
	}
}

// waitUntil waits for ch to close (or retryInterval when ch is nil), and
// fails once deadline passed or ctx ended.
func (r *Router) waitUntil(ctx context.Context, ch <-chan struct{}, deadline time.Time) error {
	d := time.Until(deadline)
	if d <= 0 {
		return context.DeadlineExceeded
	}
	if ch == nil {
		d = min(d, retryInterval)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return nil
	case <-t.C:
		if ch == nil && time.Now().Before(deadline) {
			return nil
		}
		return context.DeadlineExceeded
	case <-ctx.Done():
		return ctx.Err()
	case <-r.stop:
		return ErrClosed
	}
}

// waitError says a room cannot take the request now because it is moving
// between homes; ch closes when the move has ended (or given up).
type waitError struct{ ch <-chan struct{} }

func (*waitError) Error() string { return "room is moving between homes" }

// publishLocal is PublishAsync on the room's home.
func (r *Router) publishLocal(req PublishRequest, done DoneFunc) error {
	for {
		rm, err := r.room(req.Room)
		if err != nil {
			return err
		}
		ack, now, err := rm.publish(req, done)
		if errors.Is(err, errEvicted) {
			continue
		}
		if err == nil && now {
			done(ack, nil) // outside the room's locks
		}
		return err
	}
}

// publish runs the room's part of a publish under its lock. On success
// done is registered to run once the message (or the in-flight original of
// its key) is durable, unless now is set: then req is the duplicate of a
// durable message whose Ack is ack, and the caller calls done itself.
func (rm *room) publish(req PublishRequest, done DoneFunc) (ack Ack, now bool, err error) {
	r := rm.r
	rm.mu.Lock()
	defer rm.mu.Unlock()
	if rm.evicted.Load() {
		return Ack{}, false, errEvicted
	}
	if r.closed.Load() {
		return Ack{}, false, ErrClosed
	}
	if rm.moving != nil {
		return Ack{}, false, &waitError{ch: rm.moving}
	}
	t := r.cfg.Now()
	rm.lastActive.Store(t.UnixNano())

	if req.Key != "" {
		if err := rm.loadKeysLocked(t); err != nil {
			return Ack{}, false, err
		}
		if rm.waitPending(req.Key, done) {
			r.metrics.duplicates.Inc()
			return Ack{}, false, nil
		}
		o, st := rm.seq.check(req.Key, t)
		if st == keyUnknown {
			lo, found, err := rm.lookupKeyLocked(req.Key)
			if err != nil {
				return Ack{}, false, fmt.Errorf("look up key in room %q: %w", rm.name, err)
			}
			if found {
				o, st = lo, keyDup
			}
		}
		if st == keyDup {
			r.metrics.duplicates.Inc()
			return Ack{Epoch: o.Epoch, Seq: o.Seq, TS: o.TS, Dup: true}, true, nil
		}
	}

	o := rm.seq.next(req.Key, t)
	p := &publication{
		rm: rm,
		msg: &Message{
			Room: rm.name, Epoch: o.Epoch, Seq: o.Seq, TS: o.TS,
			From: req.From, Key: req.Key, Data: req.Data,
		},
		rec: wal.Record{
			Room: rm.name, Epoch: o.Epoch, Seq: o.Seq, TS: o.TS,
			From: req.From, Key: req.Key, Data: req.Data,
		},
		done: done,
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
	// Under the room lock, so the wal's queue order is seq order, and the
	// hot mark (if this message opens a hot period) comes first.
	err = rm.markHotLocked()
	if err == nil {
		// Before the append: see dedup.go.
		err = rm.indexEvictedLocked()
	}
	if err == nil {
		var written func()
		if r.cfg.HotIdle > 0 {
			written = p.applied // early delivery may deliver it there
		}
		err = r.log.Append(&p.rec, written, p.durable)
	}
	if err != nil {
		rm.inflight.Add(-1)
		rm.seq.undo(o.Seq, req.Key)
		if req.Key != "" {
			rm.pendMu.Lock()
			delete(rm.pending, req.Key)
			rm.pendMu.Unlock()
		}
		if errors.Is(err, wal.ErrClosed) {
			return Ack{}, false, ErrClosed
		}
		return Ack{}, false, fmt.Errorf("append room %q seq %d: %w", rm.name, o.Seq, err)
	}
	r.metrics.publishes.Inc()
	return Ack{}, false, nil
}

// waitPending registers done as a waiter on the in-flight publication of
// key and reports true, if there is one. A publication that is durable
// already is not waited for (false: the sequencer's window answers); a
// failed one is dropped (with its key) so that the caller publishes anew.
// The caller holds rm.mu.
func (rm *room) waitPending(key string, done DoneFunc) bool {
	rm.pendMu.Lock()
	defer rm.pendMu.Unlock()
	p := rm.pending[key]
	switch {
	case p == nil:
		return false
	case !p.finished:
		p.waiters = append(p.waiters, done)
		return true
	case p.err == nil:
		// Durable, and durable() dropped it: the sequencer knows the key.
		return false
	default:
		delete(rm.pending, key)
		rm.seq.forget(key, p.msg.Seq)
		return false
	}
}
