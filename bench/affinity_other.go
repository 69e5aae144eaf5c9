//go:build !linux

package bench

import "errors"

// errNoPinning: --server-cpu and --bench-cpu pin with Linux's
// sched_setaffinity; elsewhere run the two under the system's own tools.
var errNoPinning = errors.New("pinning to CPUs (--server-cpu, --bench-cpu) needs Linux")

func pinProcess(pid int, cpus []int) error { return errNoPinning }

func pinSelf(cpus []int) error { return errNoPinning }

// withAffinity runs start; it cannot pin elsewhere than on Linux.
func withAffinity(cpus []int, start func() error) error {
	if len(cpus) == 0 {
		return start()
	}
	return errNoPinning
}
