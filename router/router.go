package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/mesh"
	"github.com/arena-mesh/arena/wal"
)

// Router holds the rooms homed on this node: it sequences their messages,
// stores them in the wal, fans them out to subscriptions (and interested
// nodes) and serves history; rooms homed elsewhere it reaches through the
// mesh (see the package doc).
// Its methods are safe for concurrent use.
type Router struct {
	cfg     Config
	log     *wal.Log
	logger  zerolog.Logger
	metrics *metrics

	// recoverKeys is how many keys a room recovered from the wal relearns
	// from its messages; lowerKeptAt, when the wal's record of the keys
	// kept in memory is to be lowered to DedupMemory (UnixNano, 0: not).
	// See keptkeys.go.
	recoverKeys int
	lowerKeptAt atomic.Int64

	mu       sync.RWMutex // guards active, dormant, replicas
	active   map[string]*room
	dormant  map[string]dormantRoom
	replicas map[string]*replica // rooms homed elsewhere with local subscribers

	// Multi-node state; mesh is nil on a single node.
	mesh    *mesh.Mesh
	self    mesh.NodeID
	view    atomic.Pointer[view]
	nextReq atomic.Uint64 // request ids and interest tokens
	// greetMu serializes handOverThenGreet (see there).
	greetMu sync.Mutex
	// indexKeysMu lets one handoff at a time read a room's key index into
	// memory and send it (handOverIndexedKeys): a very busy room's can
	// be tens of MB, and rooms move several at a time.
	indexKeysMu sync.Mutex
	calls       callTable
	senders     senderTable

	ev events // presence and receipts (events.go); started on first use

	// viewMu serializes view changes (MembersChanged, leaving notices,
	// Handoff) and guards leaving.
	viewMu  sync.Mutex
	leaving map[mesh.NodeID]bool // nodes handing their rooms over before leaving (self after Handoff)
	expect  expectTable          // peers whose handoffs this node still waits for
	// settled is closed once the view holds every member the mesh's
	// join brought in (see settleIfJoined); until then no room is
	// loaded or started here.
	settled    chan struct{}
	settleOnce sync.Once

	ctx    context.Context // canceled by Close; bounds peer goroutines
	cancel context.CancelFunc

	closed    atomic.Bool
	closeOnce sync.Once
	stop      chan struct{} // closed by Close
	spawnMu   sync.RWMutex  // held (read) while adding to wg, so Close's Wait sees every Add
	wg        sync.WaitGroup
}

// dormantRoom is a room known to the wal but not held in memory: recovered
// at start and not used since, or evicted when idle. It is a few words, so
// many rooms cost little memory.
type dormantRoom struct {
	epoch, head uint64
	lookupUntil time.Time // see sequencer.lookupUntil
	// recovered: read from the wal at New, not used since. Such a room
	// may be stale (another node may have homed it meanwhile), so it is
	// never handed over, only dropped when it moves.
	recovered bool
	// hot: recovered from a wal that had the room marked hot, so it may
	// have delivered messages after head that the wal lost; its first use
	// restarts it in a new epoch (restartHot).
	hot bool
}

// New returns a Router that recovers every room's (epoch, head) from cfg.Log.
// Idempotency keys published before the restart are looked up in the wal
// for a DedupWindow after New.
func New(cfg Config) (*Router, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	states, err := cfg.Log.Rooms()
	if err != nil {
		return nil, fmt.Errorf("recover rooms: %w", err)
	}
	r := &Router{
		cfg:      cfg,
		log:      cfg.Log,
		logger:   cfg.Logger.With().Str("component", "router").Logger(),
		metrics:  m,
		active:   make(map[string]*room),
		dormant:  make(map[string]dormantRoom, len(states)),
		replicas: make(map[string]*replica),
		mesh:     cfg.Mesh,
		stop:     make(chan struct{}),
	}
	if err := r.setUpKeptKeys(cfg.Now()); err != nil {
		return nil, err
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.calls.init()
	r.senders.init()
	r.leaving = make(map[mesh.NodeID]bool)
	r.expect.init(r.expectTimeout())
	r.view.Store(newView(nil, "", nil))
	r.settled = make(chan struct{})
	var peers []mesh.NodeID
	if r.mesh != nil {
		r.self = r.mesh.LocalID()
		joined := r.mesh.HasJoined() // before Members: see settleIfJoined
		nv := newView(r.mesh.Members(), r.self, nil)
		for _, m := range nv.others {
			// Rooms they held that this node now wins come by handoff.
			r.expect.open(m.ID)
			peers = append(peers, m.ID)
		}
		r.view.Store(nv)
		r.settleIfJoined(joined)
	} else {
		r.settleIfJoined(true)
	}
	// Keys used before the restart are unknown to memory: until the window
	// since now has passed, a miss must look in the wal.
	lookupUntil := cfg.Now().Add(cfg.DedupWindow)
	for _, st := range states {
		r.dormant[st.Room] = dormantRoom{epoch: st.Epoch, head: st.Head, lookupUntil: lookupUntil, recovered: true, hot: st.Hot}
	}
	r.spawn(r.evictLoop)
	if r.cfg.HotIdle > 0 {
		r.spawn(r.coolLoop)
	}
	if len(peers) > 0 {
		// This node holds no room they may now win: say so.
		r.spawn(func() { r.handOverThenGreet(r.ctx, nil, peers) })
	}
	r.logger.Info().Int("rooms", len(states)).Msg("router started")
	return r, nil
}

// Close stops the router's goroutines; later calls return ErrClosed.
// Publishes already handed to the wal complete when the wal stores them
// (closing the wal flushes them); they fail with ErrClosed only if the wal
// was closed before they reached it. Existing subscriptions can still Pull
// what was written. Close is idempotent.
func (r *Router) Close() error {
	r.closeOnce.Do(func() {
		r.spawnMu.Lock()
		r.closed.Store(true)
		r.spawnMu.Unlock()
		close(r.stop)
		r.cancel()
		r.calls.failAll(ErrClosed)
		r.expect.stop()
		r.wg.Wait()
		r.coolAll()
		r.logger.Info().Msg("router closed")
	})
	return nil
}

// Head returns the room's current head: the newest written message, or
// (epoch, 0) for a room with no message. A new room is created.
func (r *Router) Head(name string) (Position, error) {
	if home := r.homeOf(name); home != "" {
		return r.remoteHead(r.ctx, home, name)
	}
	ctx, cancel := r.peerTimeoutCtx()
	defer cancel()
	rm, err := r.roomWait(ctx, name)
	if err != nil {
		return Position{}, err
	}
	return Position{Epoch: rm.epoch, Seq: rm.ring.Head()}, nil
}

// roomWait is room, waiting (until ctx ends) while the room is on its way
// here from its previous home.
func (r *Router) roomWait(ctx context.Context, name string) (*room, error) {
	for {
		rm, err := r.room(name)
		var w *waitError
		if !errors.As(err, &w) {
			return rm, err
		}
		select {
		case <-w.ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: room %q is still moving here: %w", ErrUnavailable, name, ctx.Err())
		case <-r.stop:
			return nil, ErrClosed
		}
	}
}

// room returns the room named name, loading it if dormant and creating it
// (with a new epoch, recorded in the wal) if unknown. The returned room may
// be evicted concurrently; callers that need it check room.evicted under
// the relevant lock and call room again. While the node that held the room
// before this node won it may still hand it over, room does not load or
// create it and returns a *waitError instead (see roomWait).
func (r *Router) room(name string) (*room, error) {
	if r.closed.Load() {
		return nil, ErrClosed
	}
	if !r.isHome(name) {
		return nil, errNotHome
	}
	r.mu.RLock()
	rm := r.active[name]
	r.mu.RUnlock()
	if rm != nil && !rm.evicted.Load() {
		return rm, nil
	}
	select {
	case <-r.settled:
	default:
		return nil, &waitError{ch: r.settled}
	}
	if prev := r.prevHome(name); prev != "" {
		if ch := r.expect.pending(prev); ch != nil {
			return nil, &waitError{ch: ch}
		}
	}

	r.mu.Lock()
	if rm = r.active[name]; rm != nil {
		r.mu.Unlock()
		return rm, nil
	}
	if d, ok := r.dormant[name]; ok && d.hot {
		r.mu.Unlock()
		if rm, err := r.restartHot(name, d); rm != nil || err != nil {
			return rm, err
		}
		return r.room(name) // the dormant entry changed meanwhile
	}
	if d, ok := r.dormant[name]; ok {
		rm = newRoom(r, name, d.epoch, d.head, d.lookupUntil)
		rm.needKeys = d.recovered
		delete(r.dormant, name)
		r.active[name] = rm
		r.metrics.rooms.Set(float64(len(r.active)))
		r.mu.Unlock()
		return rm, nil
	}
	epoch := uint64(r.cfg.Now().UnixMicro())
	rm = newRoom(r, name, epoch, 0, time.Time{})
	// Publishes to the new room wait for its epoch record to be queued
	// first: the wal keeps queue order.
	rm.mu.Lock()
	r.active[name] = rm
	r.metrics.rooms.Set(float64(len(r.active)))
	r.mu.Unlock()

	err := r.log.SetEpoch(name, epoch, func(err error) {
		if err != nil {
			r.logger.Error().Err(err).Str("room", name).Uint64("epoch", epoch).Msg("room epoch not stored")
		}
	})
	if err != nil {
		rm.subsMu.Lock()
		rm.evicted.Store(true)
		rm.subsMu.Unlock()
		rm.mu.Unlock()
		r.mu.Lock()
		if r.active[name] == rm {
			delete(r.active, name)
			r.metrics.rooms.Set(float64(len(r.active)))
		}
		r.mu.Unlock()
		if errors.Is(err, wal.ErrClosed) {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("create room %q: set epoch: %w", name, err)
	}
	rm.mu.Unlock()
	r.logger.Debug().Str("room", name).Uint64("epoch", epoch).Msg("room created")
	return rm, nil
}

// settleIfJoined lets rooms load and start once the view holds every
// member the mesh learnt by joining; joined is mesh.HasJoined, read before
// the view's members were. The mesh learns the members one at a time as
// its join merges the seed's member list, and reports them as it goes:
// a view taken in between holds some members and not others. Placed over
// such a view, a room held by a node the view lacks would seem to come
// from a node that has nothing to hand over, and start anew in a new
// epoch beside the live one. Joined closes only once the merge is done,
// so a view read after it holds every member the seed knew of.
func (r *Router) settleIfJoined(joined bool) {
	if joined {
		r.settleOnce.Do(func() { close(r.settled) })
	}
}

// errNotHome: the room is homed on another node (in this node's view).
var errNotHome = errors.New("room is homed on another node")

// spawn runs fn on a goroutine that Close waits for; after Close it does
// nothing and reports false. fn must return once r.ctx is done.
func (r *Router) spawn(fn func()) bool {
	r.spawnMu.RLock()
	defer r.spawnMu.RUnlock()
	if r.closed.Load() {
		return false
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		fn()
	}()
	return true
}

// every calls fn with the time every interval, until Close.
func (r *Router) every(interval time.Duration, fn func(now time.Time)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			fn(r.cfg.Now())
		}
	}
}

// evictLoop evicts idle rooms until Close.
func (r *Router) evictLoop() {
	r.every(evictInterval, func(now time.Time) {
		r.lowerKeptKeys(now)
		if n := r.evictIdle(now); n > 0 {
			r.logger.Debug().Int("rooms", n).Msg("idle rooms evicted")
		}
	})
}

// awaitStored waits for the result of a wal callback on ch, or until the
// router closes.
func (r *Router) awaitStored(ch <-chan error) error {
	select {
	case err := <-ch:
		return err
	case <-r.stop:
		return ErrClosed
	}
}

// evictIdle moves the rooms idle at now to the dormant set and returns how
// many it moved. Hot rooms idle that long are marked cold first (a hot
// room is never evicted).
func (r *Router) evictIdle(now time.Time) int {
	r.coolIdle(now)
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for name, rm := range r.active {
		d, ok := rm.tryEvict(now)
		if !ok {
			continue
		}
		delete(r.active, name)
		r.dormant[name] = d
		n++
	}
	if n > 0 {
		r.metrics.rooms.Set(float64(len(r.active)))
	}
	return n
}
