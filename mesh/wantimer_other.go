//go:build !linux

package mesh

// newPreciseTimer returns a Go timer where there is no timerfd.
func newPreciseTimer() (wakeTimer, error) { return newGoTimer(), nil }
