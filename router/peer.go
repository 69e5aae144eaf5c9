package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arena-mesh/arena/mesh"
)

// MeshHooks connects a mesh to a router created after it: the mesh needs
// its Handler and OnChange at mesh.New, the router needs the mesh at New.
// Frames and changes that arrive before Bind are dropped (the router
// reads the member list itself in New).
//
//	var hooks router.MeshHooks
//	m, _ := mesh.New(ctx, mesh.Config{Handler: hooks.Handler, OnChange: hooks.OnChange, ...})
//	r, _ := router.New(router.Config{Mesh: m, ...})
//	hooks.Bind(r)
type MeshHooks struct{ r atomic.Pointer[Router] }

// Bind routes the hooks to r.
func (h *MeshHooks) Bind(r *Router) { h.r.Store(r) }

// Handler is the mesh.Config.Handler: it passes frames to the bound router.
func (h *MeshHooks) Handler(from mesh.NodeID, frame []byte) {
	if r := h.r.Load(); r != nil {
		r.HandlePeerFrame(from, frame)
	}
}

// OnChange is the mesh.Config.OnChange: it passes member lists to the
// bound router.
func (h *MeshHooks) OnChange(ms []mesh.Member) {
	if r := h.r.Load(); r != nil {
		r.MembersChanged(ms)
	}
}

// callResult is a peer's answer to a call.
type callResult struct {
	f    peerFrame  // scalars only; byte slices are cleared
	msgs []*Message // fetchReply messages
	err  error      // ErrUnavailable, ErrClosed: no answer
}

// call is one request waiting for its reply: a caller blocked on ch, or
// (async) a function run with the reply and a timer that fails the call
// when no reply comes in time.
type call struct {
	peer  mesh.NodeID
	ch    chan callResult  // buffered 1: delivered at most once; nil for async
	fn    func(callResult) // async: run once with the result, must not block
	timer *time.Timer      // async: fails the call; set under callTable.mu
}

// deliver hands res to the call's waiter. The caller has taken the call
// out of the table, so this runs at most once.
func (c *call) deliver(res callResult) {
	if c.fn == nil {
		c.ch <- res
		return
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	c.fn(res)
}

// callTable holds the requests waiting for replies, by request id.
type callTable struct {
	mu     sync.Mutex // guards m, closed and every call's timer
	m      map[uint64]*call
	closed bool // failAll ran: no call is added any more
}

func (t *callTable) init() { t.m = make(map[uint64]*call) }

// add registers a blocking call; it returns nil once the table is closed.
func (t *callTable) add(req uint64, peer mesh.NodeID) *call {
	c := &call{peer: peer, ch: make(chan callResult, 1)}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.m[req] = c
	return c
}

// addAsync registers a call whose result goes to fn: the reply, or after
// timeout the error expired returns. It reports false once the table is
// closed (fn will not run).
func (t *callTable) addAsync(req uint64, peer mesh.NodeID, timeout time.Duration, fn func(callResult), expired func() error) bool {
	c := &call{peer: peer, fn: fn}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.m[req] = c
	c.timer = time.AfterFunc(timeout, func() {
		if c := t.take(req); c != nil {
			c.deliver(callResult{err: expired()})
		}
	})
	return true
}

// take removes and returns the call req, if still waiting.
func (t *callTable) take(req uint64) *call { return t.takeFrom(req, "") }

// takeFrom is take for a reply from peer: a call to another peer is left
// waiting. Peer "" matches any.
func (t *callTable) takeFrom(req uint64, peer mesh.NodeID) *call {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.m[req]
	if c == nil || peer != "" && c.peer != peer {
		return nil
	}
	delete(t.m, req)
	return c
}

// failPeers fails the calls to peers for which gone is true.
func (t *callTable) failPeers(gone func(mesh.NodeID) bool, err error) {
	t.fail(gone, err, false)
}

// failAll fails every call and closes the table (Close).
func (t *callTable) failAll(err error) {
	t.fail(func(mesh.NodeID) bool { return true }, err, true)
}

func (t *callTable) fail(gone func(mesh.NodeID) bool, err error, closeTable bool) {
	var failed []*call
	t.mu.Lock()
	t.closed = t.closed || closeTable
	for req, c := range t.m {
		if gone(c.peer) {
			delete(t.m, req)
			failed = append(failed, c)
		}
	}
	t.mu.Unlock()
	// Outside the lock: async results run the callers' functions.
	for _, c := range failed {
		c.deliver(callResult{err: err})
	}
}

// call sends frame (request req, key room) to peer and waits for its
// reply, at most PeerTimeout. A reply with a code other than OK is
// returned as a result, not an error; errors wrap ErrUnavailable (or are
// ErrClosed, or ctx's).
func (r *Router) call(ctx context.Context, peer mesh.NodeID, room string, req uint64, frame []byte) (callResult, error) {
	c := r.calls.add(req, peer)
	if c == nil {
		return callResult{}, ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PeerTimeout)
	defer cancel()
	if err := r.mesh.Send(ctx, peer, room, frame); err != nil {
		r.calls.take(req)
		if errors.Is(err, mesh.ErrClosed) && r.closed.Load() {
			return callResult{}, ErrClosed
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != nil && !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
			return callResult{}, err
		}
		return callResult{}, fmt.Errorf("%w: send to %s: %w", ErrUnavailable, peer, err)
	}
	select {
	case res := <-c.ch:
		if res.err != nil {
			return res, res.err
		}
		return res, nil
	case <-ctx.Done():
		r.calls.take(req)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return callResult{}, fmt.Errorf("%w: %s did not answer", ErrUnavailable, peer)
		}
		return callResult{}, ctx.Err()
	}
}

// codeError turns a reply code into an error.
func codeError(peer mesh.NodeID, c peerCode) error {
	switch c {
	case codeOK:
		return nil
	case codeNotHome:
		return fmt.Errorf("%w: %s is not the room's home in its view", ErrUnavailable, peer)
	case codeUnavailable:
		return fmt.Errorf("%w: %s cannot serve the room now", ErrUnavailable, peer)
	case codeRetry:
		return fmt.Errorf("%w: the room is moving to %s", ErrUnavailable, peer)
	default:
		return fmt.Errorf("router: %s failed the request (code %d)", peer, c)
	}
}

// outFrame is a frame queued for a peer.
type outFrame struct {
	key   string
	frame []byte
}

// sender drains one peer's fan-out queue into mesh.Send, so that the wal's
// goroutine never blocks on the network.
type sender struct {
	ch   chan outFrame
	done chan struct{} // closed when the peer is gone
}

// senderTable holds a sender per peer that has one.
type senderTable struct {
	mu sync.Mutex // guards m
	m  map[mesh.NodeID]*sender
}

func (t *senderTable) init() { t.m = make(map[mesh.NodeID]*sender) }

// enqueue queues frame for peer without blocking; it reports false (the
// frame is dropped) when the peer's queue is full or the router closed.
func (r *Router) enqueue(peer mesh.NodeID, key string, frame []byte) bool {
	t := &r.senders
	t.mu.Lock()
	s := t.m[peer]
	if s == nil {
		s = &sender{ch: make(chan outFrame, r.cfg.PeerQueue), done: make(chan struct{})}
		if !r.spawn(func() { r.runSender(peer, s) }) {
			t.mu.Unlock()
			return false
		}
		t.m[peer] = s
	}
	t.mu.Unlock()
	select {
	case s.ch <- outFrame{key: key, frame: frame}:
		return true
	default:
		r.metrics.peerDrops.Inc()
		return false
	}
}

func (r *Router) runSender(peer mesh.NodeID, s *sender) {
	for {
		select {
		case f := <-s.ch:
			if err := r.mesh.Send(r.ctx, peer, f.key, f.frame); err != nil && r.ctx.Err() == nil {
				r.metrics.peerDrops.Inc()
				r.logger.Debug().Err(err).Str("peer", string(peer)).Str("room", f.key).Msg("peer frame dropped")
			}
		case <-s.done:
			return
		case <-r.ctx.Done():
			return
		}
	}
}

// dropSenders stops the senders of peers for which gone is true.
func (r *Router) dropSenders(gone func(mesh.NodeID) bool) {
	t := &r.senders
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, s := range t.m {
		if gone(id) {
			close(s.done)
			delete(t.m, id)
		}
	}
}

// pushLocked queues m for every interested peer of rm, encoded once. The
// caller holds rm.subsMu (read); it never blocks. On a home the
// interested peers are the nodes of its region and one relay per other
// region; on a relay (rm is a replica), the nodes of the relay's region.
func (r *Router) pushLocked(rm *room, m *Message) {
	frame := appendMsg(make([]byte, 0, msgFrameSize(m)), m)
	n := 0
	for peer := range rm.interest {
		if r.enqueue(peer, rm.name, frame) {
			n++
		}
	}
	r.metrics.peerMsgsSent.Add(float64(n))
}

// reply sends frame to peer on its own goroutine, bounded by PeerTimeout:
// the mesh Handler must not block on a Send (two nodes answering each
// other on full lanes would wait forever).
func (r *Router) reply(peer mesh.NodeID, room string, frame []byte) {
	r.spawn(func() {
		ctx, cancel := context.WithTimeout(r.ctx, r.cfg.PeerTimeout)
		defer cancel()
		if err := r.mesh.Send(ctx, peer, room, frame); err != nil && r.ctx.Err() == nil {
			r.logger.Debug().Err(err).Str("peer", string(peer)).Str("room", room).Msg("peer reply dropped")
		}
	})
}

// HandlePeerFrame handles a frame from another router (the mesh Handler,
// through MeshHooks). It never blocks on the network: requests that wait
// (publish until durable, fetch, interest) are answered from goroutines.
// Malformed frames are counted and dropped.
func (r *Router) HandlePeerFrame(from mesh.NodeID, frame []byte) {
	if r.closed.Load() || len(frame) == 0 {
		return
	}
	if isPresenceFrame(frame[0]) {
		r.handlePresenceFrame(from, frame) // peerframe_presence.go
		return
	}
	if frame[0] == peerFetchReply || frame[0] == peerMsg || frame[0] == peerHandoff {
		// Their messages outlive the call: one copy, shared by them all.
		frame = bytes.Clone(frame)
	}
	var f peerFrame
	if err := decodePeerFrame(frame, &f); err != nil {
		r.metrics.badPeerFrames.Inc()
		r.logger.Warn().Err(err).Str("peer", string(from)).Msg("malformed peer frame")
		return
	}
	switch f.Type {
	case peerPublish:
		r.servePublish(from, &f)
	case peerInterest:
		r.serveInterest(from, &f)
	case peerDrop:
		r.serveDrop(from, &f)
	case peerFetch:
		r.serveFetch(from, &f)
	case peerMsg:
		r.receiveMsg(from, &f)
	case peerHandoff:
		r.serveHandoff(from, &f)
	case peerHandoffKeys:
		r.serveHandoffKeys(from, &f)
	case peerLeaving:
		r.serveLeaving(from, &f)
	case peerEnded:
		r.serveEnded(from, &f)
	case peerHandedOver:
		if !r.isMember(from) {
			// from saw this node before this node saw from: the
			// expectation this notice ends is opened only once from
			// appears here, and would then wait out expectTimeout for
			// rooms from already handed over. Have from send it again
			// (notify retries until the answer is OK).
			r.reply(from, string(f.Room), appendReply(nil, string(f.Room), 0, f.Req, codeRetry, 0, 0, 0, 0))
			return
		}
		r.expect.close(from)
		r.reply(from, string(f.Room), appendReply(nil, string(f.Room), 0, f.Req, codeOK, 0, 0, 0, 0))
		r.reassertInterest(from) // handoff.go
		r.presenceReassert(from) // presence_remote.go
	case peerReply, peerFetchReply:
		c := r.calls.takeFrom(f.Req, from)
		if c == nil {
			return // timed out meanwhile, or not ours
		}
		res := callResult{f: f}
		if f.Type == peerFetchReply {
			res.msgs = messagesFromEntries(string(f.Room), f.Epoch, f.Msgs)
		}
		res.f.Room, res.f.Msgs, res.f.Msg = nil, nil, peerMsgEntry{}
		c.deliver(res)
	}
}

// messagesFromEntries turns decoded entries into Messages of room and
// epoch, allocated in one block. Data keeps pointing into the frame.
func messagesFromEntries(room string, epoch uint64, es []peerMsgEntry) []*Message {
	block := make([]Message, len(es))
	out := make([]*Message, len(es))
	for i := range es {
		m := &block[i]
		m.Room, m.Epoch, m.Seq, m.TS = room, epoch, es[i].Seq, es[i].TS
		m.From, m.Key, m.Data = string(es[i].From), string(es[i].Key), es[i].Data
		out[i] = m
	}
	return out
}

// peerCodeOf maps a local error to a reply code.
func peerCodeOf(err error) peerCode {
	switch {
	case err == nil:
		return codeOK
	case errors.Is(err, errNotHome):
		return codeNotHome
	case errors.As(err, new(*waitError)):
		return codeRetry
	case errors.Is(err, ErrClosed), errors.Is(err, ErrUnavailable), errors.Is(err, context.Canceled):
		return codeUnavailable
	default:
		return codeInternal
	}
}

// peerTimeoutCtx is the context of a request served for a peer.
func (r *Router) peerTimeoutCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.ctx, r.cfg.PeerTimeout+time.Second)
}
