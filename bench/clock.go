package bench

import (
	"sync/atomic"
	"time"
)

// Clock gives the harness's timestamps: nanoseconds since the start of a
// run on the monotonic clock. Publishers and receivers live in the same
// process, so a time a publisher puts in a payload and the time a receiver
// takes on arrival are read from the same clock and subtract without any
// clock-skew error, even when the target is a mesh of several edges.
//
// A Clock also learns how late the process's timers fire (see TimerLead),
// shared by every Pacer of the run.
type Clock struct {
	base time.Time // carries a monotonic reading

	// lead is how late a timer fires, on average, in ns (an exponentially
	// weighted mean of every pacer's observations).
	lead atomic.Int64
}

// NewClock starts a clock at zero now.
func NewClock() *Clock { return &Clock{base: time.Now()} }

// Now returns the nanoseconds elapsed since the clock started.
func (c *Clock) Now() int64 { return int64(time.Since(c.base)) }

// Time converts a clock reading back to wall-clock time (for reports).
func (c *Clock) Time(ns int64) time.Time { return c.base.Add(time.Duration(ns)) }

// maxTimerLead bounds how early a pacer arms its timer.
const maxTimerLead = int64(2 * time.Millisecond)

// TimerLead is how much earlier than a tick's due time a pacer arms its
// timer: the mean lateness of this process's timers so far.
//
// A Go timer fires late when the process is idle: the runtime's poller
// sleeps in whole milliseconds, so a wait of 0.3 ms takes 1 ms, and on
// this kind of VM a timer is 0.4 to 0.5 ms late on average. A pacer that
// armed its timer for the due time would send every message that much
// late, and since latency is measured from the due time, the harness
// would charge its own timer error to the target. Arming early by the
// mean lateness puts sends around their due time; one that goes early is
// measured from its actual send (see publisher.send), so no latency is
// understated.
func (c *Clock) TimerLead() int64 { return c.lead.Load() }

// observeTimer folds one timer's lateness (ns, clamped to [0,
// maxTimerLead]) into TimerLead.
func (c *Clock) observeTimer(late int64) {
	late = min(max(late, 0), maxTimerLead)
	for {
		old := c.lead.Load()
		if c.lead.CompareAndSwap(old, old+(late-old)/8) {
			return
		}
	}
}
