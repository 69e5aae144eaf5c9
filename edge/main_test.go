package edge_test

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"github.com/arena-mesh/arena/internal/leaktest"
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
	// Keep-alive connections of the tests' own HTTP client are not the
	// node's to close.
	leaktest.Main(m, http.DefaultClient.CloseIdleConnections)
}
