package client_test

import (
	"flag"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests: everything
// the package starts must stop when its owner closes.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		// A fuzz worker exits when its coordinator says so; a leak check
		// that retries would outlast the coordinator's deadline.
		os.Exit(m.Run())
	}
	// memberlist lets a probe in flight run to its timeout after Shutdown.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}
