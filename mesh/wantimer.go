package mesh

import "time"

// A wakeTimer is the WAN emulator's alarm clock: arm sets when the next
// wait returns, and close makes wait return false. arm may be called from
// any goroutine, also while another waits; a later arm replaces an
// earlier one.
//
// Go's own timers are not precise enough for the emulator: an idle Go
// process sleeps in epoll_wait with a whole-millisecond timeout, so a
// timer fires up to a millisecond late (0.45 ms on average on this VM),
// and each delayed packet's error would be charged to the mesh. On Linux
// the emulator's alarm is a timerfd read through the runtime's poller
// (newPreciseTimer, wantimer_linux.go): epoll reports the timerfd's expiry
// when it happens. Tests in a synctest bubble, whose clock is fake, use a
// Go timer (newGoTimer).
type wakeTimer interface {
	// arm makes the next wait return after d (at once if d <= 0).
	arm(d time.Duration)
	// wait blocks until the armed time; false once the timer is closed.
	wait() bool
	close()
}

// goTimer is a wakeTimer on a Go timer.
type goTimer struct {
	t    *time.Timer
	done chan struct{}
}

func newGoTimer() *goTimer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &goTimer{t: t, done: make(chan struct{})}
}

func (t *goTimer) arm(d time.Duration) { t.t.Reset(max(d, 0)) }

func (t *goTimer) wait() bool {
	select {
	case <-t.t.C:
		return true
	case <-t.done:
		return false
	}
}

func (t *goTimer) close() {
	t.t.Stop()
	close(t.done)
}
