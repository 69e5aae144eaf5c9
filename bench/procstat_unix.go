//go:build unix

package bench

import (
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// processCPU returns the CPU time of process pid (0: this one), user and
// system, of every thread it ran, live or exited, to the nanosecond: from
// its CPU-time clock (what clock_getcpuclockid(3) gives, which Linux lets
// any process read). /proc's utime and stime count in ticks of 10 ms,
// which round the few milliseconds a lightly loaded node spends in a
// short run down to 0. ok is false where the clock cannot be read.
func processCPU(pid int) (cpu time.Duration, ok bool) {
	clock := int32(unix.CLOCK_PROCESS_CPUTIME_ID)
	if pid != 0 {
		if runtime.GOOS != "linux" {
			return 0, false // the encoding below is Linux's
		}
		// The kernel's MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED).
		const cpuclockSched = 2
		clock = int32(^pid)<<3 | cpuclockSched
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(clock, &ts); err != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}

// SelfCPU returns this process's user + system CPU time from getrusage:
// the harness's own cost, reported next to the server's so that a
// saturated harness is visible.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
