package bench

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The end-to-end tests run the scenarios for real: against an `arena
// serve` built from ../cmd/arena, and against a nats-server over its
// WebSocket listener. They assert what must hold whatever the speed: no
// message lost, duplicated or out of order, no failed publish, every
// figure present. They assert no timing.

// arenaBinary builds cmd/arena once per test binary.
var arenaBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "arena-bench-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "arena")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/arena").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ../cmd/arena: %v\n%s", err, out)
	}
	return bin, nil
})

func buildArena(t *testing.T) string {
	t.Helper()
	bin, err := arenaBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// runBench runs Main with args plus --quiet and --json, and returns the
// result it wrote and Main's error.
func runBench(t *testing.T, args ...string) (*Result, string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "result.json")
	var stdout, stderr strings.Builder
	err := Main(t.Context(), append(args, "--quiet", "--json", path), &stdout, &stderr)
	t.Logf("arena bench %s:\n%s%s", strings.Join(args, " "), stdout.String(), stderr.String())
	if _, statErr := os.Stat(path); statErr != nil {
		return nil, stdout.String(), err
	}
	res, rerr := ReadResult(path)
	if rerr != nil {
		t.Fatal(rerr)
	}
	return res, stdout.String(), err
}

// assertClean checks a result has no alarm and that its deliveries add
// up.
func assertClean(t *testing.T, res *Result, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("run failed: %v", err)
	}
	if len(res.Alarms) > 0 {
		t.Fatalf("alarms: %v", res.Alarms)
	}
	c := res.Counts
	if c.Lost != 0 || c.Duplicated != 0 || c.OutOfOrder != 0 || c.Unexpected != 0 || c.Received != c.Expected {
		t.Fatalf("counts: %+v", c)
	}
	if f, ok := res.Figure("publish errors"); !ok || f.Value != 0 {
		t.Fatalf("publish errors: %+v, %v", f, ok)
	}
}

func figure(t *testing.T, res *Result, name string) float64 {
	t.Helper()
	f, ok := res.Figure(name)
	if !ok {
		t.Fatalf("no figure %q in %+v", name, res.Figures)
	}
	return f.Value
}

// TestFanoutSpawn is the whole path: spawn a node, fan out, check every
// delivery, report the server's resources, write JSON and a plot.
func TestFanoutSpawn(t *testing.T) {
	bin := buildArena(t)
	svg := filepath.Join(t.TempDir(), "fanout.svg")
	res, _, err := runBench(t, "fanout", "--spawn", "--server-bin", bin,
		"--subs", "5", "--rate", "200", "--duration", "1s", "--warmup", "200ms", "--plot", svg)
	assertClean(t, res, err)
	sent := figure(t, res, "messages sent")
	if sent != 240 || figure(t, res, "messages acked") != sent {
		t.Fatalf("sent %v acked %v, want 240 (1.2 s at 200/s)", sent, figure(t, res, "messages acked"))
	}
	if res.Counts.Expected != 5*240 {
		t.Fatalf("expected %d deliveries, want %d", res.Counts.Expected, 5*240)
	}
	if figure(t, res, "server rss") <= 0 || figure(t, res, "bench cpu") <= 0 {
		t.Fatal("resources not measured")
	}
	if len(res.Latencies) != 2 || res.Latencies[0].Count != 5*200 {
		t.Fatalf("latencies: %+v (want 1000 after the warmup)", res.Latencies)
	}
	assertSVG(t, svg)
}

// TestSpawnWithSecret mints a token per connection, which the spawned
// node verifies.
func TestSpawnWithSecret(t *testing.T) {
	bin := buildArena(t)
	res, _, err := runBench(t, "fanout", "--spawn", "--server-bin", bin, "--secret", "bench-test-secret-0123456789",
		"--subs", "3", "--rate", "50", "--duration", "500ms", "--warmup", "100ms")
	assertClean(t, res, err)
	if res.Counts.Expected != 3*30 {
		t.Fatalf("expected %d deliveries, want %d", res.Counts.Expected, 3*30)
	}
}

// TestScenariosAgainstURL runs every scenario briefly against one node
// given by --url (with --server-pid), as against a running deployment.
func TestScenariosAgainstURL(t *testing.T) {
	bin := buildArena(t)
	node, err := StartNode(t.Context(), NodeConfig{Bin: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Close)
	target := []string{"--url", node.URL(), "--server-pid", strconv.Itoa(node.PID()), "--duration", "1s", "--warmup", "200ms"}
	tests := []struct {
		name string
		args []string
		want []string // figures that must be present
	}{
		{"fanout", []string{"fanout", "--subs", "3", "--rate", "100"}, []string{"delivery rate", "server cpu"}},
		{"rooms", []string{"rooms", "--rooms", "3", "--members", "3", "--rate", "20"}, []string{"connections"}},
		{"conns", []string{"conns", "--conns", "50", "--rooms", "5", "--hold", "100ms", "--connect-rate", "500"}, []string{"connect rate", "server memory per conn"}},
		{"durable paced", []string{"durable", "--rooms", "2", "--rate", "200"}, []string{"ack throughput"}},
		{"durable closed loop", []string{"durable", "--rooms", "2", "--inflight", "20"}, []string{"ack throughput"}},
		{"resume cut", []string{"resume", "--clients", "20", "--rooms", "2", "--rate", "40"}, []string{"sockets cut", "time until all live"}},
		// Two "regions" that are the same node: the geo code path, with
		// the mesh left out.
		{"geo", []string{"geo", "--url", "http://" + node.Addr(), "--region", "a", "--region", "b", "--subs", "2", "--rate", "50"},
			[]string{"delivery rate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(tt.args, target...)
			if tt.name == "geo" {
				args = append(tt.args, "--url", node.URL(), "--server-pid", strconv.Itoa(node.PID()), "--duration", "1s", "--warmup", "200ms")
			}
			res, _, err := runBench(t, args...)
			assertClean(t, res, err)
			for _, name := range tt.want {
				figure(t, res, name)
			}
		})
	}
}

// TestResumeRestart restarts the spawned node under K subscribed
// clients, with both signals: every client must come back, and nothing
// may be missed or duplicated.
func TestResumeRestart(t *testing.T) {
	bin := buildArena(t)
	for _, sig := range []string{"TERM", "KILL"} {
		t.Run(sig, func(t *testing.T) {
			res, _, err := runBench(t, "resume", "--spawn", "--server-bin", bin, "--signal", sig,
				"--clients", "30", "--rooms", "3", "--rate", "40", "--duration", "1s", "--warmup", "300ms")
			assertClean(t, res, err)
			if figure(t, res, "clients not live again") != 0 {
				t.Fatal("clients did not recover")
			}
			figure(t, res, "node restart time")
		})
	}
}

func TestGeoNeedsRegions(t *testing.T) {
	tests := map[string][]string{
		"no target": {"geo"},
		"spawn":     {"geo", "--spawn"},
		"one url":   {"geo", "--url", "ws://127.0.0.1:1", "--region", "a"},
		"no labels": {"geo", "--url", "ws://127.0.0.1:1", "--url", "ws://127.0.0.1:2"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			var out strings.Builder
			err := Main(t.Context(), args, &out, &out)
			if err == nil || !strings.Contains(err.Error(), "multi-region deployment") {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	tests := map[string][]string{
		"nothing":            {},
		"unknown scenario":   {"warp"},
		"no target":          {"fanout"},
		"two targets":        {"fanout", "--spawn", "--url", "ws://127.0.0.1:1"},
		"bad driver":         {"fanout", "--url", "ws://127.0.0.1:1", "--driver", "kafka"},
		"spawn nats":         {"fanout", "--spawn", "--driver", "nats"},
		"restart needs node": {"resume", "--url", "ws://127.0.0.1:1", "--how", "restart"},
		"tiny size":          {"fanout", "--url", "ws://127.0.0.1:1", "--size", "10"},
		"stray argument":     {"fanout", "--url", "ws://127.0.0.1:1", "extra"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			var out strings.Builder
			if err := Main(t.Context(), args, &out, &out); err == nil {
				t.Fatalf("Main(%q) succeeded", args)
			}
		})
	}
}

// natsServer is a nats-server with JetStream and a WebSocket listener on
// free loopback ports.
type natsServer struct {
	cmd *exec.Cmd
	url string // ws://127.0.0.1:PORT
}

var wsListening = regexp.MustCompile(`Listening for websocket clients on (ws://\S+)`)

func startNATS(t *testing.T) *natsServer {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		t.Fatalf("nats-server is needed for the peer driver's tests: apt-get install nats-server (bench/peers.sh does it): %v", err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	body := fmt.Sprintf("listen: 127.0.0.1:-1\nhttp: 0\njetstream { store_dir: %q }\nwebsocket { listen: \"127.0.0.1:-1\", no_tls: true }\n", filepath.Join(dir, "js"))
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	urlc := make(chan string, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := wsListening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urlc <- m[1]:
				default:
				}
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
	})
	select {
	case u := <-urlc:
		return &natsServer{cmd: cmd, url: u}
	case <-done:
		t.Fatal("nats-server exited before listening")
	case <-time.After(30 * time.Second):
		t.Fatal("nats-server did not report its websocket listener")
	}
	return nil
}

// TestNATSDriver runs scenarios against NATS through the peer driver.
func TestNATSDriver(t *testing.T) {
	ns := startNATS(t)
	target := []string{"--driver", "nats", "--url", ns.url, "--server-pid", strconv.Itoa(ns.cmd.Process.Pid), "--duration", "1s", "--warmup", "200ms"}
	t.Run("fanout", func(t *testing.T) {
		res, _, err := runBench(t, append([]string{"fanout", "--subs", "5", "--rate", "200"}, target...)...)
		assertClean(t, res, err)
		if res.Driver != "nats" || res.Counts.Expected != 5*240 {
			t.Fatalf("driver %s, expected %d", res.Driver, res.Counts.Expected)
		}
	})
	t.Run("durable jetstream", func(t *testing.T) {
		res, _, err := runBench(t, append([]string{"durable", "--rooms", "2", "--rate", "200"}, target...)...)
		assertClean(t, res, err)
		if figure(t, res, "messages acked") != 240 {
			t.Fatalf("acked %v, want 240", figure(t, res, "messages acked"))
		}
	})
	t.Run("rooms", func(t *testing.T) {
		res, _, err := runBench(t, append([]string{"rooms", "--rooms", "2", "--members", "3", "--rate", "20"}, target...)...)
		assertClean(t, res, err)
	})
}
