package bench

import (
	"context"
	"time"
)

// Pacer is a fixed-rate schedule: tick n (1, 2, 3, ...) is due at
// Start + (n-1)/Rate seconds. Run calls its function at each tick with the
// tick's due time, its intended send time. When the function is slow (it
// blocked because the target or the harness stalled), later ticks are
// already due when it returns and are issued back to back, each still
// carrying its own due time: the schedule never slides. A latency
// measured from the due time therefore includes the time a message spent
// waiting to be sent, which is the delay a user sending at that rate
// would have seen; this is the harness's coordinated-omission correction.
//
// The timer for a tick is armed early by the clock's TimerLead, so that
// ticks are issued around their due time rather than always after it; fn
// may thus run a little before due. It is then given the actual time
// instead of the due time: latency measured from the later due time would
// be understated. A tick due at or after Floor is never given a time
// before it, so firing early cannot move a tick of the measured period
// into the warmup.
type Pacer struct {
	Rate  float64 // ticks per second; must be > 0
	Start int64   // Clock time of tick 1
	Count uint64  // ticks in all; 0 means until the context ends
	Floor int64   // Clock time: the end of the warmup, or 0
}

// Due returns the due time of tick n (n >= 1).
func (p Pacer) Due(n uint64) int64 {
	return p.Start + int64(float64(n-1)*1e9/p.Rate)
}

// Run issues the ticks in order on the calling goroutine until Count
// ticks were issued, fn returns false, or ctx ends. It returns the number
// of ticks issued.
func (p Pacer) Run(ctx context.Context, clock *Clock, fn func(n uint64, due int64) bool) uint64 {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var n uint64
	for p.Count == 0 || n < p.Count {
		due := p.Due(n + 1)
		if wait := due - clock.TimerLead() - clock.Now(); wait > 0 {
			armedFor := clock.Now() + wait
			timer.Reset(time.Duration(wait))
			select {
			case <-ctx.Done():
				return n
			case <-timer.C:
				clock.observeTimer(clock.Now() - armedFor)
			}
		} else if ctx.Err() != nil {
			return n
		}
		n++
		if now := clock.Now(); now < due {
			// Fired early: the intended time is the actual one, within
			// the period the due time belongs to.
			if due < p.Floor || now >= p.Floor {
				due = now
			} else {
				due = p.Floor
			}
		}
		if !fn(n, due) {
			return n
		}
	}
	return n
}
