package bench

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests: everything
// the package starts must stop when its owner closes.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
