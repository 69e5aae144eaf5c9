package bench

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// traffic is the publish-and-deliver core shared by the fanout, rooms,
// geo and resume scenarios: publishers on fixed-rate schedules, receivers
// that expect given streams, and the drain and bookkeeping at the end.
type traffic struct {
	r    *run
	pubs []*publisher
	recv []*receiver
	// subsOf[stream] is how many receivers expect that stream.
	subsOf []int
	start  int64 // Clock time of the first tick, set by begin
	// measureFrom is start + warmup: latencies of messages due before it
	// are not recorded. It is read by delivery goroutines, hence atomic.
	measureFrom atomic.Int64
	paced       bool  // runSchedules ran (the schedule lag means something)
	paceEnd     int64 // when the schedules ended
	sentAtEnd   uint64
	recvAtEnd   uint64
}

func newTraffic(r *run) *traffic {
	t := &traffic{r: r}
	t.measureFrom.Store(math.MaxInt64)
	return t
}

// begin fixes the schedules' start, a moment from now so that tick 1 is
// not already late, once every connection is set up.
//
// It first collects the set-up's garbage, as testing.B does before it
// starts the clock: connecting thousands of clients leaves the harness a
// collection due, and a collection's mark phase on the harness's one core
// delays its receivers for tens of milliseconds, which would be counted
// as the server's latency. After it, the next collection is a whole live
// heap of allocation away; one that still falls in a run shows in the
// harness's CPU figures like any other harness cost.
func (t *traffic) begin() {
	runtime.GC()
	for _, p := range t.pubs {
		p.keepPositions = len(t.recv) > 0 // to name lost messages
	}
	t.start = t.r.clock.Now() + int64(20*time.Millisecond)
	t.measureFrom.Store(t.start + int64(t.r.p.Warmup.D()))
}

// addPublisher adds a publisher of stream len(pubs) on conn to room.
func (t *traffic) addPublisher(conn Conn, room string) *publisher {
	p := newPublisher(t.r, uint32(len(t.pubs)), conn, room, &t.measureFrom)
	t.pubs = append(t.pubs, p)
	t.subsOf = append(t.subsOf, 0)
	return p
}

// addReceiver adds a receiver expecting the given streams (which must
// have been added as publishers already).
func (t *traffic) addReceiver(sched, sent *Latency, streams ...uint32) *receiver {
	v := &receiver{r: t.r, id: len(t.recv), tracker: NewTracker(streams...), sched: sched, sent: sent, measureFrom: &t.measureFrom}
	for _, s := range streams {
		t.subsOf[s]++
	}
	t.recv = append(t.recv, v)
	return v
}

// removeReceiver takes a receiver out of the bookkeeping (its
// subscription failed).
func (t *traffic) removeReceiver(v *receiver) {
	for s := range v.tracker.streams {
		t.subsOf[s]--
	}
	t.recv[v.id] = nil
}

// expected returns the deliveries due so far: each acknowledged message
// times the receivers expecting its stream.
func (t *traffic) expected() uint64 {
	var n uint64
	for i, p := range t.pubs {
		n += p.ackedN.Load() * uint64(t.subsOf[i])
	}
	return n
}

// runSchedules runs every publisher's schedule at rate (each publisher's
// own rate) for count ticks, or until paceCtx ends when count is 0, with
// the publishers' starts spread evenly over one interval so that many
// slow publishers do not all fire at once. It returns when every schedule
// has ended.
func (t *traffic) runSchedules(paceCtx, pubCtx context.Context, rate float64, count uint64) {
	t.paced = true
	var wg sync.WaitGroup
	spread := 1e9 / rate / float64(len(t.pubs))
	for i, p := range t.pubs {
		pc := Pacer{Rate: rate, Start: t.start + int64(float64(i)*spread), Count: count, Floor: t.measureFrom.Load()}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.pace(paceCtx, pubCtx, pc)
		}()
	}
	wg.Wait()
	t.paceEnd = t.r.clock.Now()
	t.sentAtEnd = t.r.sent.Load()
	t.recvAtEnd = t.r.received.Load()
}

// scheduleCount is the number of ticks of a schedule at rate that covers
// warmup and duration.
func scheduleCount(p *Params, rate float64) uint64 {
	return uint64(math.Ceil((p.Warmup.D() + p.Duration.D()).Seconds() * rate))
}

// settle waits (up to the drain time) for the publishes in flight to be
// acknowledged and then for the expected deliveries to arrive. It
// reports what did not settle in time as notes.
func (t *traffic) settle(ctx context.Context, res *Result) {
	drain := t.r.p.Drain.D()
	dctx, cancel := context.WithTimeout(ctx, drain)
	defer cancel()
	for _, p := range t.pubs {
		if !p.wait(dctx) {
			res.Notes = append(res.Notes, fmt.Sprintf("publishes still unacknowledged after --drain %v", drain))
			break
		}
	}
	// Stop early when nothing has arrived for a while: what is missing
	// then is lost, and waiting the whole --drain would only delay the
	// report.
	last, lastChange := t.r.received.Load(), time.Now()
	done := func() bool {
		got := t.r.received.Load()
		switch {
		case got >= t.expected():
			return true
		case got != last:
			last, lastChange = got, time.Now()
		}
		return time.Since(lastChange) > drainIdle
	}
	if !waitUntil(dctx, drain, done) || t.r.received.Load() < t.expected() {
		res.Notes = append(res.Notes, fmt.Sprintf("deliveries still missing at the end of the drain: %d of %d arrived",
			t.r.received.Load(), t.expected()))
	}
}

// drainIdle is how long settle waits for deliveries after the last one
// arrived.
const drainIdle = 3 * time.Second

// counts settles every receiver's tracker; call it after the connections
// are closed.
func (t *traffic) counts() Counts {
	acked := make([]*SeqSet, len(t.pubs))
	for i, p := range t.pubs {
		acked[i] = p.ackedSet()
	}
	lookup := func(s uint32) *SeqSet {
		if int(s) < len(acked) {
			return acked[s]
		}
		return nil
	}
	var c Counts
	for _, v := range t.recv {
		if v == nil {
			continue // removed
		}
		c.Add(v.tracker.Counts(lookup))
	}
	return c
}

// lossNotes names a few lost messages, with the position the target
// acknowledged them at and how many of their subscribers missed them, so
// that a loss can be looked for in the server's history and logs.
func (t *traffic) lossNotes(res *Result) {
	if res.Counts.Lost == 0 {
		return
	}
	type key struct {
		stream uint32
		n      uint64
	}
	missedBy := map[key]int{}
	var order []key
	for _, v := range t.recv {
		if v == nil {
			continue
		}
		for s := range v.tracker.streams {
			for _, n := range v.tracker.MissingOf(s, t.pubs[s].ackedSet(), 5) {
				k := key{s, n}
				if missedBy[k] == 0 {
					order = append(order, k)
				}
				missedBy[k]++
			}
		}
	}
	slices.SortFunc(order, func(a, b key) int {
		if a.stream != b.stream {
			return cmp.Compare(a.stream, b.stream)
		}
		return cmp.Compare(a.n, b.n)
	})
	for i, k := range order {
		if i == 5 {
			res.Notes = append(res.Notes, fmt.Sprintf("lost: %d more messages", len(order)-i))
			break
		}
		p := t.pubs[k.stream]
		at := "position unknown"
		if pos, ok := p.position(k.n); ok {
			at = fmt.Sprintf("acked at epoch %d seq %d", pos.Epoch, pos.Seq)
		}
		res.Notes = append(res.Notes, fmt.Sprintf("lost: room %s stream %d message %d (%s), missed by %d of %d subscribers",
			p.room, k.stream, k.n, at, missedBy[k], t.subsOf[k.stream]))
	}
}

// publishFigures adds the publish side's figures, with the publish and
// delivery rates if rates is set.
func (t *traffic) publishFigures(res *Result, rates bool) {
	r := t.r
	window := time.Duration(t.paceEnd - t.start).Seconds()
	res.add("messages sent", float64(r.sent.Load()), "msgs", "")
	res.add("messages acked", float64(r.acked.Load()), "msgs", "")
	res.add("publish errors", float64(r.pubErrors.Load()), "", "zero")
	if rates && window > 0 {
		res.add("publish rate", float64(t.sentAtEnd)/window, "msgs/s", "higher")
		if len(t.recv) > 0 {
			res.add("delivery rate", float64(t.recvAtEnd)/window, "msgs/s", "higher")
		}
	}
	if rates && t.paced {
		var lag int64
		for _, p := range t.pubs {
			lag = max(lag, p.maxLag.Load())
		}
		res.add("publisher max schedule lag", float64(lag)/1e6, "ms", "lower")
	}
	if n := r.pubErrors.Load(); n > 0 {
		res.Alarms = append(res.Alarms, fmt.Sprintf("PUBLISH FAILED %d times (first: %v)", n, r.firstPubError()))
	}
	if n := r.unacked.Load(); n > 0 {
		res.add("publishes never acknowledged", float64(n), "", "zero")
		res.Alarms = append(res.Alarms, fmt.Sprintf("UNACKNOWLEDGED %d publishes at the end of --drain %v", n, r.p.Drain.D()))
	}
	if n := r.resets.Load(); n > 0 {
		res.add("resets", float64(n), "", "zero")
		res.Alarms = append(res.Alarms, fmt.Sprintf("RESET %d subscriptions (their history was gone)", n))
	}
	if n := r.garbage.Load(); n > 0 {
		res.add("foreign messages", float64(n), "msgs", "zero")
		res.Alarms = append(res.Alarms, fmt.Sprintf("FOREIGN %d messages (data the harness did not write)", n))
	}
}
