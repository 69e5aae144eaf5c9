package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

var presenceScenario = &scenario{
	name: "presence",
	summary: "W watchers subscribed with presence, C churners (one user each) subscribing and unsubscribing: " +
		"joins+leaves per second, join/leave events seen, join latency; every watcher's view must match the room's presence",
	flags: func(fs *flag.FlagSet, p *Params) {
		fs.IntVar(&p.Watchers, "watchers", 10, "connections subscribed with presence, each keeping the room's members from its joins and leaves (W)")
		fs.IntVar(&p.Churners, "churners", 100, "connections, each its own user, that subscribe (with presence) and unsubscribe in a loop (C)")
		fs.IntVar(&p.Rooms, "rooms", 1, "rooms; watchers and churners are spread over them round robin")
		fs.Float64Var(&p.Rate, "rate", 0, "subscribes+unsubscribes per second of all churners together; 0: each churner as fast as it can (closed loop)")
		durationFlag(fs, &p.Settle, "settle", time.Second, "once the churners stopped and every view matched, how long the views must go on matching (late events would break them)")
	},
	check: func(p *Params) error {
		if p.Driver != "arena" {
			return errNoPresence
		}
		if p.Watchers < 1 || p.Churners < 1 || p.Rooms < 1 || p.Rate < 0 || p.Settle < 0 {
			return errors.New("presence needs --watchers >= 1, --churners >= 1, --rooms >= 1, --rate >= 0 and --settle >= 0")
		}
		if p.Token != "" {
			return errors.New("presence needs a user per connection: --token makes them all one user (give --secret, or neither against a --dev node)")
		}
		p.Rooms = min(p.Rooms, p.Watchers, p.Churners)
		return nil
	},
	run: runPresence,
}

// churnOpTimeout bounds one subscribe or unsubscribe of a churner.
const churnOpTimeout = 10 * time.Second

// presenceRun is the state of one presence run shared by its goroutines.
type presenceRun struct {
	r        *run
	rooms    []string
	watchers []*watcher
	churners []*churner
	// byUser maps a churner's user to it; set once before the churn
	// starts, read by the watchers' goroutines.
	byUser atomic.Pointer[map[string]*churner]
	// measureFrom is a Clock time: joins seen and ops due before it are
	// not recorded. MaxInt64 until the churn starts.
	measureFrom atomic.Int64

	joinLat *Latency // churner's subscribe ack to a watcher seeing the join
	opLat   *Latency // a subscribe or unsubscribe, from its due time (or its send) to its answer

	ops        atomic.Uint64 // subscribes and unsubscribes answered
	opErrors   atomic.Uint64 // subscribes and unsubscribes that failed
	events     atomic.Uint64 // joins and leaves received by watchers
	early      atomic.Uint64 // joins seen before the churner saw its ack
	unmatched  atomic.Uint64 // joins of a churner that never subscribed before
	violations atomic.Uint64 // joins of a present churner or leaves of an absent one, per watcher

	mu        sync.Mutex // guards firstErr, firstViol
	firstErr  error
	firstViol string
}

func (pr *presenceRun) opFailed(err error) {
	pr.opErrors.Add(1)
	pr.mu.Lock()
	if pr.firstErr == nil {
		pr.firstErr = err
	}
	pr.mu.Unlock()
}

// onEvent is watcher w's handler of a join or leave.
func (pr *presenceRun) onEvent(i int, w *watcher, ev PresenceEvent) {
	now := pr.r.clock.Now()
	pr.events.Add(1)
	var c *churner
	if m := pr.byUser.Load(); m != nil {
		c = (*m)[ev.User]
	}
	if !w.apply(ev) && c != nil {
		// Joins and leaves of a user alternate by contract; a watcher's
		// own join or a fellow watcher's may repeat what its starting
		// snapshot had, so only churners are judged.
		pr.violations.Add(1)
		pr.mu.Lock()
		if pr.firstViol == "" {
			kind := "leave of absent"
			if ev.Join {
				kind = "join of present"
			}
			pr.firstViol = fmt.Sprintf("watcher %d of %s got a %s user %s", i, w.room, kind, ev.User)
		}
		pr.mu.Unlock()
	}
	if !ev.Join || c == nil || now < pr.measureFrom.Load() {
		return
	}
	lat, early, ok := c.joinLatency(now)
	if !ok {
		pr.unmatched.Add(1)
		return
	}
	if early {
		pr.early.Add(1)
	}
	pr.joinLat.Record(i, lat)
}

// churnOp runs one subscribe (sub) or unsubscribe of c, due at due.
func (pr *presenceRun) churnOp(ctx context.Context, k int, c *churner, sub bool, due int64) error {
	clock := pr.r.clock
	octx, cancel := context.WithTimeout(ctx, churnOpTimeout)
	defer cancel()
	if sub {
		c.begin(clock.Now())
		unsub, err := c.conn.SubscribePresence(octx, c.room, nil)
		if err != nil {
			pr.opFailed(err)
			return err
		}
		c.acked(clock.Now())
		c.unsub = unsub
	} else {
		unsub := c.unsub
		c.unsub = nil
		if err := unsub(octx); err != nil {
			pr.opFailed(err)
			return err
		}
	}
	pr.ops.Add(1)
	if due >= pr.measureFrom.Load() {
		pr.opLat.Record(k, clock.Now()-due)
	}
	return nil
}

// churn runs churner k until stop is set (closed loop) or paceCtx ends
// (paced), then leaves it unsubscribed.
func (pr *presenceRun) churn(ctx, paceCtx context.Context, k int, start int64, stop *atomic.Bool) {
	c := pr.churners[k]
	clock := pr.r.clock
	op := func(due int64) {
		if err := pr.churnOp(ctx, k, c, c.unsub == nil, due); err != nil {
			// A failing target must not be hammered by a closed loop.
			sleepUntil(paceCtx, clock, clock.Now()+int64(10*time.Millisecond))
		}
	}
	if rate := pr.r.p.Rate; rate > 0 {
		// Churner k's schedule is offset by k ticks of the total rate, so
		// that together the churners' operations are evenly spaced.
		per := rate / float64(len(pr.churners))
		pc := Pacer{Rate: per, Start: start + int64(float64(k)*1e9/rate), Floor: pr.measureFrom.Load()}
		pc.Run(paceCtx, clock, func(_ uint64, due int64) bool {
			op(due)
			return true
		})
	} else {
		sleepUntil(paceCtx, clock, start)
		for !stop.Load() && ctx.Err() == nil {
			op(clock.Now())
		}
	}
	if c.unsub != nil && ctx.Err() == nil {
		_ = pr.churnOp(ctx, k, c, false, clock.Now())
	}
}

// runPresence: the watchers subscribe first, and the run waits until each
// room's presence is exactly its watchers, which become every watcher's
// starting view. Then the churners churn for the warmup and --duration;
// they stop unsubscribed, so each room's presence must come back to its
// watchers, and every watcher's view, built from the joins and leaves it
// received, must match it and go on matching for --settle.
func runPresence(ctx context.Context, r *run) (*Result, error) {
	p := r.p
	res := &Result{}
	pr := newPresenceRun(r)
	if err := pr.setup(ctx); err != nil {
		r.closeAll()
		return nil, err
	}

	// Churn.
	clock := r.clock
	begin := clock.Now() + int64(20*time.Millisecond)
	measureFrom := begin + int64(p.Warmup.D())
	end := measureFrom + int64(p.Duration.D())
	pr.measureFrom.Store(measureFrom)
	paceCtx, stopPace := context.WithCancel(ctx)
	defer stopPace()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for k := range pr.churners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pr.churn(ctx, paceCtx, k, begin, &stop)
		}()
	}
	prog := r.startProgress("presence", pr.progressLine())
	sleepUntil(ctx, clock, measureFrom)
	before := r.sample()
	ops0, ev0 := pr.ops.Load(), pr.events.Load()
	sleepUntil(ctx, clock, end)
	after := r.sample()
	ops1, ev1 := pr.ops.Load(), pr.events.Load()
	stop.Store(true)
	stopPace()
	wg.Wait()
	stopped := clock.Now()
	prog.Stop()
	if ctx.Err() != nil {
		r.closeAll()
		return nil, ctx.Err()
	}

	// Every view must come to match its room's presence, which must be
	// the room's watchers, and go on matching.
	var chk presenceCheck
	converged := waitUntil(ctx, p.Drain.D(), func() bool {
		chk = pr.check(ctx, true)
		return chk.bad == 0
	})
	convergedAt := clock.Now()
	if converged {
		sleepUntil(ctx, clock, clock.Now()+int64(p.Settle.D()))
		chk = pr.check(ctx, true)
	}
	r.closeAll()

	window := time.Duration(after.at - before.at).Seconds()
	res.add("watchers", float64(p.Watchers), "", "")
	res.add("churners", float64(p.Churners), "", "")
	if p.Rate > 0 {
		res.add("target churn", p.Rate, "ops/s", "")
	}
	res.add("presence churn", float64(ops1-ops0)/window, "joins+leaves/s", "higher")
	res.add("churn ops", float64(ops1-ops0), "ops", "")
	res.add("churn errors", float64(pr.opErrors.Load()), "ops", "zero")
	res.add("presence events received", float64(ev1-ev0)/window, "events/s", "")
	res.add("presence events per watcher", float64(ev1-ev0)/window/float64(p.Watchers), "events/s", "")
	res.add("joins seen before their ack", float64(pr.early.Load()), "joins", "")
	res.add("presence out of alternation", float64(pr.violations.Load()), "events", "zero")
	res.add("rooms with wrong presence", float64(chk.rooms), "rooms", "zero")
	res.add("watcher views wrong", float64(chk.views), "watchers", "zero")
	if converged {
		res.add("views settled after", time.Duration(convergedAt-stopped).Seconds(), "s", "lower")
	}
	res.Latencies = append(res.Latencies, Summarize(pr.joinLat.Name(), pr.joinLat.Total()), Summarize(pr.opLat.Name(), pr.opLat.Total()))
	r.resourceFigures(res, before, after)

	if n := pr.opErrors.Load(); n > 0 {
		res.Alarms = append(res.Alarms, fmt.Sprintf("FAILED %d subscribes or unsubscribes (first: %v)", n, pr.firstErr))
	}
	if n := pr.violations.Load(); n > 0 {
		res.Alarms = append(res.Alarms, fmt.Sprintf("PRESENCE OUT OF ALTERNATION %d times: a join of a present user or a leave of an absent one (first: %s)", n, pr.firstViol))
	}
	if chk.bad > 0 {
		when := fmt.Sprintf("%v after the churners stopped and a --settle of %v", time.Duration(convergedAt-stopped).Round(time.Millisecond), p.Settle.D())
		if !converged {
			when = fmt.Sprintf("still, --drain %v after the churners stopped", p.Drain.D())
		}
		res.Alarms = append(res.Alarms, fmt.Sprintf("PRESENCE VIEWS WRONG %s: %d rooms' presence is not their watchers, %d of %d watchers' views differ from it (%v)",
			when, chk.rooms, chk.views, p.Watchers, chk.detail))
	}
	if n := pr.unmatched.Load(); n > 0 {
		res.Alarms = append(res.Alarms, fmt.Sprintf("UNEXPECTED JOIN %d times: a churner's user joined before it ever subscribed", n))
	}
	res.Notes = append(res.Notes,
		"joins and leaves are coalesced per event interval (100 ms by default): a subscribe and an unsubscribe within one interval make no event, "+
			"and join latency includes the wait for the interval's flush (up to one interval)")
	if p.Rate == 0 {
		res.Notes = append(res.Notes, "closed loop: a churner may subscribe several times within one interval, so a join is matched to the churner's latest subscribe "+
			"sent before it was seen and its latency is approximate; give --rate for an exact one")
	}
	return res, nil
}

// newPresenceRun prepares a run of r.p.Rooms rooms.
func newPresenceRun(r *run) *presenceRun {
	pr := &presenceRun{r: r, joinLat: NewLatency("join seen from sub ack"), opLat: NewLatency("churn op")}
	pr.measureFrom.Store(math.MaxInt64)
	for i := 0; i < r.p.Rooms; i++ {
		pr.rooms = append(pr.rooms, r.room("presence", i))
	}
	return pr
}

// setup connects the watchers (subscribed with presence) and the
// churners (not yet subscribed), and gives every watcher its starting
// view once each room's presence is exactly its watchers.
func (pr *presenceRun) setup(ctx context.Context) error {
	r, p := pr.r, pr.r.p
	pr.watchers = make([]*watcher, p.Watchers)
	pr.churners = make([]*churner, p.Churners)

	prog := r.startProgress("presence", func() string {
		return fmt.Sprintf("connecting: %d of %d", r.connSeq.Load(), p.Watchers+p.Churners)
	})
	err := r.connectAll(ctx, p.Watchers, 64, func(i int) int { return i }, func(i int, c Conn) error {
		pc, ok := c.(PresenceConn)
		if !ok {
			return errNoPresence
		}
		w := &watcher{conn: pc, room: pr.rooms[i%p.Rooms], user: pc.User(), view: make(map[string]bool)}
		pr.watchers[i] = w
		_, err := pc.SubscribePresence(ctx, w.room, func(ev PresenceEvent) { pr.onEvent(i, w, ev) })
		return err
	})
	if err == nil {
		err = r.connectAll(ctx, p.Churners, 64, func(i int) int { return i }, func(i int, c Conn) error {
			pc, ok := c.(PresenceConn)
			if !ok {
				return errNoPresence
			}
			pr.churners[i] = &churner{conn: pc, room: pr.rooms[i%p.Rooms], user: pc.User()}
			return nil
		})
	}
	prog.Stop()
	if err != nil {
		return fmt.Errorf("set up presence: %w", err)
	}
	if err := pr.distinctUsers(); err != nil {
		return err
	}
	// The starting views: each room's presence once it is its watchers.
	var start []string
	if !waitUntil(ctx, p.Drain.D(), func() bool {
		chk := pr.check(ctx, false)
		start = chk.detail
		return chk.bad == 0
	}) {
		return fmt.Errorf("set up presence: the rooms' presence did not become their watchers within --drain %v: %v", p.Drain.D(), start)
	}
	for _, w := range pr.watchers {
		w.addAll(pr.expected(w.room))
	}
	return nil
}

// distinctUsers checks that every connection is its own user.
func (pr *presenceRun) distinctUsers() error {
	users := make(map[string]*churner, len(pr.churners))
	seen := make(map[string]bool, len(pr.watchers)+len(pr.churners))
	for _, w := range pr.watchers {
		seen[w.user] = true
	}
	for _, c := range pr.churners {
		users[c.user] = c
		seen[c.user] = true
	}
	if n := len(pr.watchers) + len(pr.churners); len(seen) != n || seen[""] {
		return fmt.Errorf("set up presence: %d connections are only %d distinct users: give --secret, or neither --secret nor --token against a --dev node", n, len(seen))
	}
	pr.byUser.Store(&users)
	return nil
}

// expected returns the users room must have when no churner is in it:
// its watchers, sorted.
func (pr *presenceRun) expected(room string) []string {
	var out []string
	for _, w := range pr.watchers {
		if w.room == room {
			out = append(out, w.user)
		}
	}
	slices.Sort(out)
	return out
}

// presenceCheck is what check found.
type presenceCheck struct {
	bad    int      // rooms + views + failed queries
	rooms  int      // rooms whose presence is not their watchers
	views  int      // watchers whose view differs from their room's presence
	detail []string // the first few differences, for the report
}

// check asks each room's presence (through one of its watchers) and
// compares it with the room's watchers and, with views, with every
// watcher's view.
func (pr *presenceRun) check(ctx context.Context, views bool) presenceCheck {
	var chk presenceCheck
	note := func(format string, args ...any) {
		chk.bad++
		if len(chk.detail) < 3 {
			chk.detail = append(chk.detail, fmt.Sprintf(format, args...))
		}
	}
	for ri, room := range pr.rooms {
		qctx, cancel := context.WithTimeout(ctx, churnOpTimeout)
		actual, err := pr.watchers[ri].conn.Presence(qctx, room) // watcher ri is in room ri
		cancel()
		if err != nil {
			note("presence of %s: %v", room, err)
			continue
		}
		slices.Sort(actual)
		if extra, missing := setDiff(actual, pr.expected(room)); len(extra)+len(missing) > 0 {
			chk.rooms++
			note("room %s: %s", room, diffText(extra, missing))
		}
		if !views {
			continue
		}
		for i, w := range pr.watchers {
			if w.room != room {
				continue
			}
			if extra, missing := setDiff(w.members(), actual); len(extra)+len(missing) > 0 {
				chk.views++
				note("watcher %d of %s: %s", i, room, diffText(extra, missing))
			}
		}
	}
	return chk
}

// progressLine is the live line while the churners run.
func (pr *presenceRun) progressLine() func() string {
	return func() string {
		s := fmt.Sprintf("churn %d ops | events %d", pr.ops.Load(), pr.events.Load())
		if w := pr.joinLat.TakeWindow(); w.TotalCount() > 0 {
			s += fmt.Sprintf(" | join seen p50 %s p99 %s", fmtMS(w.ValueAtQuantile(50)), fmtMS(w.ValueAtQuantile(99)))
		}
		if n := pr.opErrors.Load(); n > 0 {
			s += fmt.Sprintf(" | !! %d errors", n)
		}
		if n := pr.violations.Load(); n > 0 {
			s += fmt.Sprintf(" | !! %d out of alternation", n)
		}
		return s
	}
}
