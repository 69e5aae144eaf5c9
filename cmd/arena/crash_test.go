package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/arena-mesh/arena/edge/auth"
	"github.com/arena-mesh/arena/internal/testwait"
	"github.com/arena-mesh/arena/protocol"
)

// arenaBinary builds cmd/arena once per test binary run.
var arenaBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "arena-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "arena")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// child is an `arena serve` process started by a test.
type child struct {
	cmd  *exec.Cmd
	addr string // the client listener, host:port
	mesh string // the mesh (gossip + QUIC) address, host:port
	done chan struct{}
}

// startServe runs `arena serve` with args and waits until it logs the
// address it listens on and /readyz answers 200.
func startServe(t *testing.T, args ...string) *child {
	t.Helper()
	c := startServeListening(t, args...)
	c.waitReady(t)
	return c
}

// startServeListening runs `arena serve` with args and waits until it
// logs the address it listens on, ready or not.
func startServeListening(t *testing.T, args ...string) *child {
	t.Helper()
	bin, err := arenaBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), "ARENA_LOG_LEVEL=info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	addrc := make(chan [2]string, 1)
	go func() {
		// Read the JSON log lines until the process exits; the first
		// "listening" line tells the bound client address.
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var line struct {
				Message string `json:"message"`
				Addr    string `json:"addr"`
				Mesh    string `json:"mesh"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "listening" && line.Addr != "" {
				select {
				case addrc <- [2]string{line.Addr, line.Mesh}:
				default:
				}
			}
			t.Logf("arena: %s", sc.Text())
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
	})
	select {
	case a := <-addrc:
		c.addr, c.mesh = a[0], a[1]
	case <-c.done:
		t.Fatal("arena serve exited before listening")
	case <-time.After(60 * time.Second):
		t.Fatal("arena serve did not log its listen address")
	}
	return c
}

// readyz returns the status code of c's /readyz, 0 if it did not answer.
func (c *child) readyz() int {
	resp, err := http.Get("http://" + c.addr + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitReady waits until c's /readyz answers 200.
func (c *child) waitReady(t *testing.T) {
	t.Helper()
	waitFor(t, 30*time.Second, "readyz", func() bool { return c.readyz() == http.StatusOK })
}

// kill9 sends SIGKILL and waits for the process to be gone.
func (c *child) kill9(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-c.done
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, timeout, what, cond)
}

// TestCrashLosesNoAckedMessage publishes without waiting for acks, kills
// the node with SIGKILL after some acks arrived, restarts it on the same
// data directory and checks that every acked message is in history with
// the seq its ack named, and that publishing any of them again with its
// key is answered as a duplicate.
//
// By default the room delivers only durable messages, so it keeps its
// epoch: every ack's (epoch, seq) is the message's position after the
// restart. With early delivery (hot_idle) the room was delivering before
// the fsync when it was killed, so it continues in a new epoch (its log
// may have lost delivered messages), counted by
// arena_router_rooms_restarted_unclean_total, with every acked message at
// its seq. Early delivery runs with wal.sync_interval, as recommended with
// it: acks still wait for the (delayed) fsync.
func TestCrashLosesNoAckedMessage(t *testing.T) {
	t.Run("durable delivery", func(t *testing.T) { testCrashLosesNoAckedMessage(t, false) })
	t.Run("early delivery", func(t *testing.T) { testCrashLosesNoAckedMessage(t, true) })
}

func testCrashLosesNoAckedMessage(t *testing.T, early bool) {
	data := t.TempDir()
	// The publisher never waits, so the per-user rate limit is lifted: it
	// would close the connection before enough acks arrived. The room
	// keeps 500 keys in memory, so most keys are evicted into the wal's
	// key index before the kill and come back from it after the restart;
	// the restarted node keeps only 100, and must still relearn the 500
	// that were in memory.
	writeConf := func(memory int) string {
		conf := fmt.Sprintf("limits: {publish_rate: 1000000}\ndedup_memory: %d\n", memory)
		if early {
			conf += "hot_idle: 10s\nwal: {sync_interval: 2ms}\n"
		}
		path := filepath.Join(t.TempDir(), "crash.yaml")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	args := []string{"--listen", "127.0.0.1:0", "--mesh", "127.0.0.1:0", "--data", data, "--token-secret", "crash-test-secret", "--node-id", "crash"}
	node := startServe(t, append(args, "--config", writeConf(500))...)
	token := mustToken(t, "crash-test-secret", "writer")

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	conn := dialConnected(t, ctx, node.addr, token)

	type acked struct {
		seq   uint64
		epoch uint64
	}
	acks := make(map[string]acked) // key -> position
	var mu sync.Mutex
	const total = 20000
	const killAfter = 2000
	enough := make(chan struct{})
	readErr := make(chan error, 1)
	go func() {
		for {
			_, msg, err := conn.Read(ctx)
			if err != nil {
				readErr <- err
				return
			}
			for line := range protocol.Lines(msg) {
				var f protocol.Frame
				if err := json.Unmarshal(line, &f); err != nil {
					readErr <- err
					return
				}
				if f.Op != protocol.OpAck {
					continue
				}
				mu.Lock()
				acks[fmt.Sprintf("k%d", *f.ID)] = acked{seq: f.Seq, epoch: f.Epoch}
				n := len(acks)
				mu.Unlock()
				if n == killAfter {
					close(enough)
				}
			}
		}
	}()
	// Publish in batches of frames per WebSocket message, never waiting.
	go func() {
		for i := 1; i <= total; i += 50 {
			var b strings.Builder
			for j := i; j < i+50 && j <= total; j++ {
				fmt.Fprintf(&b, `{"op":"pub","id":%d,"room":"crash:room","key":"k%d","data":{"n":%d}}`+"\n", j, j, j)
			}
			if conn.Write(ctx, websocket.MessageText, []byte(b.String())) != nil {
				return
			}
		}
	}()
	select {
	case <-enough:
	case err := <-readErr:
		t.Fatalf("connection failed before %d acks: %v", killAfter, err)
	case <-ctx.Done():
		t.Fatal("timed out waiting for acks")
	}
	node.kill9(t)
	<-readErr // the connection dies with the process
	mu.Lock()
	snapshot := make(map[string]acked, len(acks))
	for k, v := range acks {
		snapshot[k] = v
	}
	mu.Unlock()
	t.Logf("acked before kill: %d", len(snapshot))

	node = startServe(t, append(args, "--config", writeConf(100))...)
	got := historyAll(t, node.addr, token, "crash:room")
	byKey := make(map[string]protocol.Msg, len(got))
	for i, m := range got {
		if m.Seq != uint64(i)+1 {
			t.Fatalf("history has a gap: position %d holds seq %d", i, m.Seq)
		}
		byKey[m.Key] = m
	}
	t.Logf("history after restart: %d messages", len(got))
	lost := 0
	for key, a := range snapshot {
		m, ok := byKey[key]
		if !ok {
			lost++
			t.Errorf("acked message %s (seq %d) lost after kill -9", key, a.seq)
			if lost > 5 {
				t.FailNow()
			}
			continue
		}
		if m.Seq != a.seq || (m.Epoch == a.epoch) == early {
			t.Fatalf("acked message %s: ack said (%d,%d), history has (%d,%d); early delivery %v", key, a.epoch, a.seq, m.Epoch, m.Seq, early)
		}
	}
	want := 0.0
	if early {
		want = 1
	}
	if got := metricValue(t, node.addr, "arena_router_rooms_restarted_unclean_total"); got != want {
		t.Fatalf("rooms restarted after the unclean stop = %v, want %v", got, want)
	}
	republishIsDup(t, node.addr, token, "crash:room", got)
}

// republishIsDup publishes every message of history again with its key:
// after the crash each must be answered dup with the position the
// restarted node gives it, and nothing published twice. The keys come
// back from the messages themselves (and the key index for those the room
// had evicted from memory), not from the crashed node's memory.
func republishIsDup(t *testing.T, addr, token, room string, history []protocol.Msg) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	conn := dialConnected(t, ctx, addr, token)
	go func() {
		for i := 0; i < len(history); i += 50 {
			var b strings.Builder
			for j, m := range history[i:min(i+50, len(history))] {
				fmt.Fprintf(&b, `{"op":"pub","id":%d,"room":%q,"key":%q,"data":{"again":true}}`+"\n", i+j+1, room, m.Key)
			}
			if conn.Write(ctx, websocket.MessageText, []byte(b.String())) != nil {
				return
			}
		}
	}()
	for answered := 0; answered < len(history); {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("republish: %d of %d answered: %v", answered, len(history), err)
		}
		for line := range protocol.Lines(msg) {
			var f protocol.Frame
			if err := json.Unmarshal(line, &f); err != nil {
				t.Fatal(err)
			}
			if f.ID == nil || *f.ID == 0 {
				continue // connected
			}
			m := history[*f.ID-1]
			if f.Op != protocol.OpAck || !f.Dup || f.Seq != m.Seq || f.Epoch != m.Epoch {
				t.Fatalf("republish of %s (history (%d,%d)): %s, want a dup ack of that position", m.Key, m.Epoch, m.Seq, line)
			}
			answered++
		}
	}
	if after := historyAll(t, addr, token, room); len(after) != len(history) {
		t.Fatalf("history holds %d messages after the republish, want %d", len(after), len(history))
	}
}

// metricValue reads an unlabelled metric from a node's /metrics.
func metricValue(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %q", name, v)
			}
			return f
		}
	}
	t.Fatalf("metric %s not in /metrics", name)
	return 0
}

// historyAll reads a room's whole history over the HTTP API, in pages.
func historyAll(t *testing.T, addr, token, room string) []protocol.Msg {
	t.Helper()
	var all []protocol.Msg
	after := uint64(0)
	for {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/v1/rooms/%s/messages?after=%d&limit=1000", addr, room, after), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Epoch uint64         `json:"epoch"`
			Msgs  []protocol.Msg `json:"msgs"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("history: status %d, %v", resp.StatusCode, err)
		}
		if len(page.Msgs) == 0 {
			return all
		}
		all = append(all, page.Msgs...)
		after = page.Msgs[len(page.Msgs)-1].Seq
	}
}

// dialConnected opens a WebSocket to the node at addr with token and
// sends connect; the connection closes when the test ends.
func dialConnected(t *testing.T, ctx context.Context, addr, token string) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.Dial(ctx, "ws://"+addr+"/v1/ws", &websocket.DialOptions{
		Subprotocols: []string{protocol.Subprotocol},
		HTTPHeader:   http.Header{"Authorization": {"Bearer " + token}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.CloseNow() })
	conn.SetReadLimit(16 << 20)
	writeFrames(t, ctx, conn, `{"op":"connect","id":0}`)
	return conn
}

func writeFrames(t *testing.T, ctx context.Context, conn *websocket.Conn, frames ...string) {
	t.Helper()
	if err := conn.Write(ctx, websocket.MessageText, []byte(strings.Join(frames, "\n"))); err != nil {
		t.Fatal(err)
	}
}

// mustToken signs a full-permission token for tests of the binary.
func mustToken(t *testing.T, secret, user string) string {
	t.Helper()
	tok, err := auth.Sign([]byte(secret), user, []string{"*"}, []string{"*"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
