package testwait

import (
	"testing"

	"github.com/arena-mesh/arena/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m, nil) }
