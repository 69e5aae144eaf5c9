package bench

import (
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

func cpuSet(cpus []int) *unix.CPUSet {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	return &set
}

// pinProcess sets the CPU affinity of every thread of process pid (0:
// this one). Affinity is per thread in Linux, and a thread inherits its
// creator's, so after one pass over /proc/<pid>/task every later thread is
// pinned too; the pass repeats until it finds no thread it has not pinned,
// to catch threads started during it.
func pinProcess(pid int, cpus []int) error {
	set := cpuSet(cpus)
	who := "self"
	if pid != 0 {
		who = strconv.Itoa(pid)
	}
	pinned := map[int]bool{}
	for {
		entries, err := os.ReadDir("/proc/" + who + "/task")
		if err != nil {
			return fmt.Errorf("pin cpus: list threads: %w", err)
		}
		fresh := 0
		for _, e := range entries {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || pinned[tid] {
				continue
			}
			if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
				return fmt.Errorf("pin cpus: thread %d: %w", tid, err)
			}
			pinned[tid] = true
			fresh++
		}
		if fresh == 0 {
			return nil
		}
	}
}

// pinSelf pins the harness to cpus and sizes the Go scheduler to them, so
// the harness does not run more busy threads than it has CPUs.
func pinSelf(cpus []int) error {
	if err := pinProcess(0, cpus); err != nil {
		return err
	}
	runtime.GOMAXPROCS(len(cpus))
	return nil
}

// withAffinity runs start (which forks a child process) on a thread
// pinned to cpus, so that the child inherits that affinity from its first
// instruction, as under taskset, and the Go runtime in the child sizes
// itself to it. The thread's own affinity is restored afterwards.
func withAffinity(cpus []int, start func() error) error {
	if len(cpus) == 0 {
		return start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var saved unix.CPUSet
	if err := unix.SchedGetaffinity(0, &saved); err != nil {
		return fmt.Errorf("pin cpus: read affinity: %w", err)
	}
	if err := unix.SchedSetaffinity(0, cpuSet(cpus)); err != nil {
		return fmt.Errorf("pin cpus %v: %w", cpus, err)
	}
	err := start()
	if rerr := unix.SchedSetaffinity(0, &saved); rerr != nil && err == nil {
		err = fmt.Errorf("pin cpus: restore affinity: %w", rerr)
	}
	return err
}
