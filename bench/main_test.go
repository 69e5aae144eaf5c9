package bench

import (
	"testing"

	"github.com/arena-mesh/arena/internal/leaktest"
)

// TestMain fails the run if any goroutine outlives the tests: everything
// the package starts must stop when its owner closes.
func TestMain(m *testing.M) { leaktest.Main(m, nil) }
