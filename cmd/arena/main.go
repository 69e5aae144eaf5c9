// Command arena runs Arena, a real-time messaging relay: `arena serve` runs
// one node, `arena token` prints a client token, `arena bench` runs the load
// harness. See README.md and docs/protocol.md.
//
// This file only dispatches subcommands; serve.go wires the packages
// together (wal -> router -> edge) and owns their start and stop order.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/arena-mesh/arena/bench"
)

const usage = `arena — real-time messaging relay

Usage:
  arena serve [flags]     run one node (arena serve -h for flags)
  arena token [flags]     print a signed client token (arena token -h)
  arena bench SCENARIO    run the load harness (arena bench -h)
  arena dev [flags]       a local mesh: three nodes in three emulated regions (eu, us, ap)

Environment: every serve flag is also ARENA_<FLAG> (ARENA_TOKEN_SECRET, ...).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = runServe(ctx, args[1:], os.Environ(), stderr)
	case "token":
		err = runToken(args[1:], stdout, stderr)
	case "bench":
		err = bench.Main(ctx, args[1:], stdout, stderr)
	case "dev":
		err = runDev(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "arena: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintf(stderr, "arena %s: %v\n", args[0], err)
		return 1
	}
}
