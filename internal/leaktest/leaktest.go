// Package leaktest is the goroutine-leak check every package's TestMain
// runs: one place for what it ignores and when it stays out of the way.
package leaktest

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// Ignored are goroutines that are not ours to stop: memberlist lets a
// probe in flight run to its timeout after Shutdown.
var Ignored = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
}

// Main runs the tests and fails the run if any goroutine outlives them.
// before runs after the tests and before the check (nil: nothing), for
// what the tests' own side must close first.
func Main(m *testing.M, before func()) {
	code := m.Run()
	if code == 0 && !fuzzing() {
		if before != nil {
			before()
		}
		if err := goleak.Find(Ignored...); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines outlived the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// fuzzing reports whether the binary runs a fuzz target, as coordinator
// or worker: a worker exits when its coordinator says so, and a check
// that retries would outlast the coordinator's deadline.
func fuzzing() bool {
	f, w := flag.Lookup("test.fuzz"), flag.Lookup("test.fuzzworker")
	return f != nil && f.Value.String() != "" || w != nil && w.Value.String() == "true"
}
