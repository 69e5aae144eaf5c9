// Package testwait is how the tests wait for a condition: they poll it,
// and fail after a deadline. The deadline detects a hang; it is not an
// assertion about speed.
package testwait

import (
	"testing"
	"time"
)

// maxPoll bounds the polling interval, which starts at a millisecond and
// doubles: a condition that holds soon is seen soon, and a slow one (an
// HTTP request, say) is not run a thousand times a second.
const maxPoll = 10 * time.Millisecond

// For polls cond until it holds, failing t after timeout with what it
// was waiting for.
func For(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for poll := time.Millisecond; !cond(); poll = min(2*poll, maxPoll) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(poll) // the polling interval, not a wait for an outcome
	}
}
