package bench

import "time"

// Clock gives the harness's timestamps: nanoseconds since the start of a
// run on the monotonic clock. Publishers and receivers live in the same
// process, so a time a publisher puts in a payload and the time a receiver
// takes on arrival are read from the same clock and subtract without any
// clock-skew error, even when the target is a mesh of several edges.
type Clock struct {
	base time.Time // carries a monotonic reading
}

// NewClock starts a clock at zero now.
func NewClock() *Clock { return &Clock{base: time.Now()} }

// Now returns the nanoseconds elapsed since the clock started.
func (c *Clock) Now() int64 { return int64(time.Since(c.base)) }

// Time converts a clock reading back to wall-clock time (for reports).
func (c *Clock) Time(ns int64) time.Time { return c.base.Add(time.Duration(ns)) }
