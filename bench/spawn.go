package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// NodeConfig says how to start a local Arena node.
type NodeConfig struct {
	Bin  string   // arena binary; "" means this executable (os.Executable)
	Args []string // extra arguments for `arena serve`
	// Dir holds the node's data directory and log; "" means a new
	// temporary directory, removed by Stop.
	Dir string
	// CPUs pins the node to these CPUs from its start; nil: not pinned.
	CPUs []int
	// Listen is the client address; "" means 127.0.0.1:0 (any free port).
	Listen string
	// TokenSecret, if set, is given to the node (in ARENA_TOKEN_SECRET,
	// not on the command line where ps shows it) so that it verifies the
	// tokens the harness mints; dev mode still admits clients without one.
	TokenSecret string
}

// Node is an `arena serve --dev` process started by the harness.
type Node struct {
	cfg     NodeConfig
	bin     string
	dir     string
	ownDir  bool
	logPath string

	mu   sync.Mutex // guards cmd, addr, done
	cmd  *exec.Cmd
	addr string        // the bound client address, host:port
	done chan struct{} // closed when the process has exited
}

// spawnConfig is the spawned node's configuration file: the defaults,
// except that the per-user publish rate limit is lifted, because the
// harness measures the relay, not the limiter. (Give --server-arg
// --config=FILE for another configuration.)
const spawnConfig = `# written by arena bench --spawn
limits:
  publish_rate: 1000000
`

// SpawnNote says how a spawned node differs from `arena serve --dev`.
const SpawnNote = "spawned node: arena serve --dev with limits.publish_rate 1000000 (the per-user rate limit would cap the load)"

// errNodeExited reports a node process that ended before it was ready.
var errNodeExited = errors.New("node exited before it was ready")

// StartNode starts a node and returns once it logged its listening
// address and GET /readyz answered 200.
func StartNode(ctx context.Context, cfg NodeConfig) (*Node, error) {
	n := &Node{cfg: cfg, bin: cfg.Bin, dir: cfg.Dir}
	if n.bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("spawn: find this executable: %w", err)
		}
		n.bin = exe
	}
	if n.dir == "" {
		dir, err := os.MkdirTemp("", "arena-bench-")
		if err != nil {
			return nil, fmt.Errorf("spawn: temp dir: %w", err)
		}
		n.dir, n.ownDir = dir, true
	}
	n.logPath = filepath.Join(n.dir, "serve.log")
	listen := cfg.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	if err := n.start(ctx, listen); err != nil {
		n.removeDir()
		return nil, err
	}
	return n, nil
}

// Addr is the node's client address (host:port).
func (n *Node) Addr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addr
}

// URL is the node's WebSocket URL.
func (n *Node) URL() string { return "ws://" + n.Addr() }

// PID is the node's process id.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd.Process.Pid
}

// LogPath is the file the node's log goes to.
func (n *Node) LogPath() string { return n.logPath }

func (n *Node) start(ctx context.Context, listen string) error {
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("spawn: open log: %w", err)
	}
	conf := filepath.Join(n.dir, "bench-serve.yaml")
	if err := os.WriteFile(conf, []byte(spawnConfig), 0o644); err != nil {
		logf.Close()
		return fmt.Errorf("spawn: write config: %w", err)
	}
	// The mesh port is free too, so that runs (and tests) can run side by
	// side with other nodes. Extra arguments come last and win.
	args := append([]string{"serve", "--dev", "--listen", listen, "--mesh", "127.0.0.1:0",
		"--data", filepath.Join(n.dir, "data"), "--config", conf}, n.cfg.Args...)
	cmd := exec.Command(n.bin, args...)
	cmd.Env = os.Environ()
	if n.cfg.TokenSecret != "" {
		cmd.Env = append(cmd.Env, "ARENA_TOKEN_SECRET="+n.cfg.TokenSecret)
	}
	if os.Getenv("ARENA_LOG_LEVEL") == "" {
		cmd.Env = append(cmd.Env, "ARENA_LOG_LEVEL=info") // the listening line is logged at info
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return fmt.Errorf("spawn: %w", err)
	}
	cmd.Stdout = logf
	if err := withAffinity(n.cfg.CPUs, cmd.Start); err != nil {
		logf.Close()
		return fmt.Errorf("spawn %s serve: %w", n.bin, err)
	}
	done := make(chan struct{})
	addrc := make(chan string, 1)
	go func() {
		// Copy the log to the file, watching for the listening line.
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			var rec struct {
				Message string `json:"message"`
				Addr    string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Message == "listening" && rec.Addr != "" {
				select {
				case addrc <- rec.Addr:
				default:
				}
			}
			_, _ = logf.Write(append(line, '\n'))
		}
		_, _ = io.Copy(logf, stderr)
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	n.mu.Lock()
	n.cmd, n.done = cmd, done
	n.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var addr string
	select {
	case addr = <-addrc:
	case <-done:
		return fmt.Errorf("spawn: %w (%s)", errNodeExited, n.logTail())
	case <-ctx.Done():
		n.kill()
		return fmt.Errorf("spawn: no listening line from the node: %w (%s)", ctx.Err(), n.logTail())
	}
	n.mu.Lock()
	n.addr = addr
	n.mu.Unlock()
	if err := waitReady(ctx, addr, done); err != nil {
		n.kill()
		return fmt.Errorf("spawn: %w (%s)", err, n.logTail())
	}
	return nil
}

// waitReady polls GET /readyz until it answers 200.
func waitReady(ctx context.Context, addr string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for /readyz: %w", ctx.Err())
		case <-exited:
			return errNodeExited
		case <-tick.C:
		}
	}
}

// Stop ends the node with sig (SIGTERM drains it) and waits for it to
// exit, killing it after grace. It returns when the process is gone.
func (n *Node) Stop(sig syscall.Signal, grace time.Duration) {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (n *Node) kill() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	_ = cmd.Process.Kill()
	<-done
}

// Restart stops the node with sig, records when it was gone, and starts
// it again on the same address and data. It returns the time the old
// process had exited; the new one is ready when Restart returns.
func (n *Node) Restart(ctx context.Context, sig syscall.Signal, clock *Clock) (gone int64, err error) {
	addr := n.Addr()
	n.Stop(sig, 30*time.Second)
	gone = clock.Now()
	if err := n.start(ctx, addr); err != nil {
		return gone, fmt.Errorf("restart: %w", err)
	}
	return gone, nil
}

// Close stops the node (SIGTERM, then SIGKILL after 10 s) and removes its
// temporary directory. Idempotent.
func (n *Node) Close() {
	n.Stop(syscall.SIGTERM, 10*time.Second)
	n.removeDir()
}

func (n *Node) removeDir() {
	if n.ownDir {
		_ = os.RemoveAll(n.dir)
		n.ownDir = false
	}
}

// logTail returns the end of the node's log, for error messages.
func (n *Node) logTail() string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return "no log"
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	if s == "" {
		return "log is empty"
	}
	return "log: " + s
}
