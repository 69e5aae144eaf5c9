//go:build !unix

package bench

import "time"

// processCPU cannot read another process's CPU clock here.
func processCPU(pid int) (time.Duration, bool) { return 0, false }

// SelfCPU is not measured here: 0.
func SelfCPU() time.Duration { return 0 }
