//go:build unix

package bench

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// raiseNoFile raises this process's open-file limit to its hard limit (a
// run with 10,000 connections needs more than the usual soft limit of
// 1,024) and returns the limit now in force.
func raiseNoFile() (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read open-file limit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("raise open-file limit: %w", err)
		}
	}
	return uint64(lim.Cur), nil
}
