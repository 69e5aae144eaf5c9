package bench

import "sync/atomic"

// receiver is the harness side of one subscription: it checks each
// delivery against its Tracker and records latencies.
type receiver struct {
	r       *run
	id      int
	tracker *Tracker
	// sched and sent record the latency from the intended and from the
	// actual send time (either may be nil); pair, when set, gives a
	// further recorder by stream for the latency from the intended time
	// (geo: one per pair of regions).
	sched, sent *Latency
	pair        func(stream uint32) *Latency
	measureFrom *atomic.Int64 // Clock time: record latencies of messages due at or after it

	liveAt atomic.Int64 // Clock time of the first delivery sent after run.liveAfter; 0: not yet
}

// deliver handles one delivery; the driver calls it from the
// subscription's goroutine.
func (v *receiver) deliver(d Delivery) {
	now := v.r.clock.Now()
	if d.Reset {
		v.r.resets.Add(1)
		return
	}
	p, err := ParsePayload(d.Data)
	if err != nil {
		v.r.garbage.Add(1)
		return
	}
	switch v.tracker.Observe(p, d.Pos) {
	case Duplicate:
		v.r.dups.Add(1)
		return
	case Unexpected:
		return
	}
	v.r.received.Add(1)
	if p.Sent >= v.r.liveAfter.Load() && v.liveAt.Load() == 0 && v.liveAt.CompareAndSwap(0, now) {
		v.r.live.Add(1)
	}
	if p.Intended < v.measureFrom.Load() {
		return
	}
	if v.sched != nil {
		v.sched.Record(v.id, now-p.Intended)
	}
	if v.sent != nil {
		v.sent.Record(v.id, now-p.Sent)
	}
	if v.pair != nil {
		if l := v.pair(p.Stream); l != nil {
			l.Record(v.id, now-p.Intended)
		}
	}
}
