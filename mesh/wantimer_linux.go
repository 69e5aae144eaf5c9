//go:build linux

package mesh

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// fdTimer is a wakeTimer on a Linux timerfd. The fd is non-blocking and
// wrapped in an os.File, so wait parks the goroutine in the runtime's
// poller rather than blocking a thread.
type fdTimer struct {
	f   *os.File
	buf [8]byte // the expiration count wait reads and ignores
}

// newPreciseTimer returns a timerfd-based wakeTimer.
func newPreciseTimer() (wakeTimer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("timerfd_create", err)
	}
	return &fdTimer{f: os.NewFile(uintptr(fd), "wan-timerfd")}, nil
}

func (t *fdTimer) arm(d time.Duration) {
	// A zero it_value disarms a timerfd; the shortest wait is 1 ns.
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(max(int64(d), 1))}
	// It cannot fail on a valid timerfd with a valid value; once closed,
	// wait returns false anyway.
	_ = t.settime(&spec)
}

func (t *fdTimer) settime(spec *unix.ItimerSpec) error {
	rc, err := t.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.TimerfdSettime(int(fd), 0, spec, nil) }); err != nil {
		return err
	}
	return serr
}

func (t *fdTimer) wait() bool {
	_, err := t.f.Read(t.buf[:])
	return err == nil
}

func (t *fdTimer) close() { _ = t.f.Close() }
