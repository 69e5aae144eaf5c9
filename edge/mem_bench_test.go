package edge_test

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/arena-mesh/arena/edge"
	"github.com/arena-mesh/arena/edge/auth"
	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/protocol"
)

var (
	idleConns = flag.Int("edge.idleconns", 2000,
		"connections BenchmarkIdleConnMemory opens")
	idleProfile = flag.String("edge.idleprofile", "",
		"file BenchmarkIdleConnMemory writes a heap profile to while its connections are open")
)

// idleClientsEnv names the environment variable that turns the test
// binary into BenchmarkIdleConnMemory's client process (see TestMain).
const idleClientsEnv = "EDGE_IDLE_CLIENTS"

// idleClientsSpec tells the client process what to open.
type idleClientsSpec struct {
	URL    string
	Secret []byte
	Conns  int
	Rooms  int
}

// BenchmarkIdleConnMemory measures the server's memory per idle,
// subscribed WebSocket connection, like `arena bench conns`.
//
// The clients run in a child process (this test binary, re-executed with
// EDGE_IDLE_CLIENTS set), so nothing of theirs is counted: every byte
// measured here is the node's. Each client connects with a token of its
// own user in the connect frame (as the Go client does), subscribes to
// one of 100 rooms and then stays silent. Once the child says all are
// subscribed and the node shows them all connected with nothing queued
// and no goroutine each (idle writers have retired and idle readers
// parked), the benchmark runs the GC a few times (a long-idle server gets
// that many cycles, which shrink over-grown stacks) and reads live heap
// objects and goroutine stack memory, minus the same figures before
// connecting.
//
// Run it with
//
//	go test -run '^$' -bench IdleConnMemory -benchtime 1x ./edge/
//
// and add -edge.idleprofile=heap.out for a heap profile taken while the
// connections are open (go tool pprof -sample_index=inuse_space).
func BenchmarkIdleConnMemory(b *testing.B) {
	if *idleProfile != "" {
		// Record every allocation, so the profile's per-connection bytes
		// are exact rather than sampled every 512 KiB.
		rate := runtime.MemProfileRate
		runtime.MemProfileRate = 1
		b.Cleanup(func() { runtime.MemProfileRate = rate })
	}
	n := edgetest.Start(b, edgetest.WithQuietLogs())
	conns := *idleConns
	var sum idleMemory
	for range b.N {
		m := measureIdle(b, n, conns)
		sum.heap += m.heap
		sum.stacks += m.stacks
		sum.stackUsed += m.stackUsed
		sum.goroutines += m.goroutines
	}
	k := float64(b.N * conns)
	b.ReportMetric(sum.heap/k, "heap-B/conn")
	b.ReportMetric(sum.stacks/k, "stack-B/conn")
	b.ReportMetric(sum.stackUsed/k, "stack-used-B/conn")
	b.ReportMetric((sum.heap+sum.stacks)/k, "B/conn")
	b.ReportMetric(sum.goroutines/k, "goroutines/conn")
}

// idleMemory is the growth of the server's memory with its connections.
type idleMemory struct {
	heap       float64 // live heap objects
	stacks     float64 // memory reserved for goroutine stacks
	stackUsed  float64 // the part of the stacks in use (scanned by the GC)
	goroutines float64
}

// measureIdle opens conns idle subscribed connections to n from a child
// process and returns the growth of the server's memory, then closes them.
func measureIdle(b *testing.B, n *edgetest.Node, conns int) idleMemory {
	b.Helper()
	waitFor(b, "no connections", func() bool { return metricValue(b, n, "arena_edge_connections") == 0 })
	before := settledMemory()

	spec, err := json.Marshal(idleClientsSpec{URL: n.WSURL, Secret: n.Secret, Conns: conns, Rooms: 100})
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), idleClientsEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = stdin.Close() // the child exits, dropping its sockets
		if err := cmd.Wait(); err != nil {
			b.Errorf("client process: %v", err)
		}
	}
	defer stop()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		b.Fatalf("client process did not get ready: %q, %v", line, err)
	}
	idleGoroutines := 1 // the reader
	if edge.ReadersPark {
		idleGoroutines = 0
	}
	waitFor(b, "every connection idle", func() bool {
		return metricValue(b, n, "arena_edge_connections") == float64(conns) &&
			metricValue(b, n, "arena_edge_send_queue_frames") == 0 &&
			// Writers retire a second after their last write, readers
			// park after at most 5 s without data (where they can: see
			// edge.ReadersPark); the margin is for the node's own goroutines
			// coming and going.
			(!edge.ReadersPark || metricValue(b, n, "arena_edge_parked_readers") == float64(conns)) &&
			runtime.NumGoroutine()-int(before.goroutines) <= idleGoroutines*conns+32
	})

	after := settledMemory()
	if *idleProfile != "" {
		writeHeapProfile(b, *idleProfile)
	}
	stop()
	return idleMemory{
		heap:       after.heap - before.heap,
		stacks:     after.stacks - before.stacks,
		stackUsed:  after.stackUsed - before.stackUsed,
		goroutines: after.goroutines - before.goroutines,
	}
}

// settledMemory runs a few GC cycles (each may halve a goroutine's stack
// that uses less than a quarter of it) and returns the live heap objects,
// the stack memory and the goroutines.
func settledMemory() idleMemory {
	for range 4 {
		runtime.GC()
	}
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
		{Name: "/gc/scan/stack:bytes"},
	}
	metrics.Read(s)
	return idleMemory{
		heap:       float64(s[0].Value.Uint64()),
		stacks:     float64(s[1].Value.Uint64()),
		stackUsed:  float64(s[2].Value.Uint64()),
		goroutines: float64(runtime.NumGoroutine()),
	}
}

func writeHeapProfile(b *testing.B, path string) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// runIdleClients is the client process of BenchmarkIdleConnMemory: it
// opens the connections of spec, each connected and subscribed, prints
// "ready", and holds them until its stdin closes.
func runIdleClients(specJSON string) error {
	var spec idleClientsSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return fmt.Errorf("decode spec: %w", err)
	}
	conns := make([]*websocket.Conn, spec.Conns)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= spec.Conns {
					return
				}
				c, err := openIdleClient(spec, i)
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					return
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// openIdleClient dials, connects with a token of its own user and
// subscribes to one room, reading both replies.
func openIdleClient(spec idleClientsSpec, i int) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tok, err := auth.Sign(spec.Secret, fmt.Sprintf("idle-%d", i), nil, []string{"idle:*"}, time.Hour, time.Now())
	if err != nil {
		return nil, err
	}
	c, _, err := websocket.Dial(ctx, spec.URL, &websocket.DialOptions{Subprotocols: []string{protocol.Subprotocol}})
	if err != nil {
		return nil, err
	}
	id := int64(1)
	frames := []protocol.Frame{
		{Op: protocol.OpConnect, ID: &id, Token: tok, Name: "idle"},
		{Op: protocol.OpSub, ID: &id, Room: fmt.Sprintf("idle:%d", i%spec.Rooms)},
	}
	for _, f := range frames {
		b, err := json.Marshal(f)
		if err != nil {
			return nil, err
		}
		if err := c.Write(ctx, websocket.MessageText, b); err != nil {
			return nil, err
		}
		if err := awaitReply(ctx, c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// awaitReply reads until a frame with id 1 comes, failing on an error
// frame.
func awaitReply(ctx context.Context, c *websocket.Conn) error {
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			return err
		}
		for line := range protocol.Lines(msg) {
			var f protocol.Frame
			if err := json.Unmarshal(line, &f); err != nil {
				return err
			}
			if f.Op == protocol.OpError {
				return fmt.Errorf("server error: %s", line)
			}
			if f.ID != nil && *f.ID == 1 {
				return nil
			}
		}
	}
}
