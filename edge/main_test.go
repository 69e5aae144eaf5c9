package edge_test

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if goroutines outlive the tests: every session's
// reader, writer and publish goroutines must stop when its node closes,
// and so must Pebble's, the WebSocket library's and the HTTP server's.
//
// With EDGE_IDLE_CLIENTS set the binary is instead the client process of
// BenchmarkIdleConnMemory, and runs no tests.
func TestMain(m *testing.M) {
	if spec := os.Getenv(idleClientsEnv); spec != "" {
		if err := runIdleClients(spec); err != nil {
			fmt.Fprintf(os.Stderr, "idle clients: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if fuzzing() {
		// A fuzz worker exits when its coordinator says so; a leak check
		// that retries would outlast the coordinator's deadline.
		os.Exit(code)
	}
	// Keep-alive connections of the tests' own HTTP client are not the
	// node's to close.
	http.DefaultClient.CloseIdleConnections()
	if code == 0 {
		// memberlist lets a probe in flight run to its timeout after Shutdown.
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode")); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines outlived the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// fuzzing reports whether the binary runs a fuzz target (as coordinator
// or worker).
func fuzzing() bool {
	f, w := flag.Lookup("test.fuzz"), flag.Lookup("test.fuzzworker")
	return f != nil && f.Value.String() != "" || w != nil && w.Value.String() == "true"
}
