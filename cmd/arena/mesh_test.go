package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arena-mesh/arena/client"
	"github.com/arena-mesh/arena/protocol"
)

// TestThreeProcessMesh starts three `arena serve` processes joined with
// --join and uses them only through the public protocol: every node lists
// the three edges, and publishers on every node and subscribers on every
// node see one identical, gap-free order per room.
func TestThreeProcessMesh(t *testing.T) {
	const secret = "mesh-test-secret"
	const adminKey = "ops-key-0123456789abcdef"
	cfgFile := filepath.Join(t.TempDir(), "arena.yaml")
	if err := os.WriteFile(cfgFile, []byte("auth:\n  api_keys:\n    - {name: ops, key: "+adminKey+", admin: true}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := func(id, region string, join ...string) *child {
		args := []string{
			"--config", cfgFile,
			"--node-id", id, "--region", region,
			"--listen", "127.0.0.1:0", "--mesh", "127.0.0.1:0",
			"--data", t.TempDir(), "--token-secret", secret,
		}
		for _, j := range join {
			args = append(args, "--join", j)
		}
		return startServe(t, args...)
	}
	a := start("node-a", "eu")
	b := start("node-b", "us", a.mesh)
	c := start("node-c", "ap", a.mesh)
	nodes := []*child{a, b, c}

	for _, n := range nodes {
		waitEdges(t, n, 3)
	}

	// The cluster view lists every member and region, from any node.
	req, _ := http.NewRequest("GET", "http://"+b.addr+"/v1/cluster", nil)
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var cluster struct {
		Regions []string `json:"regions"`
		Members []struct {
			Node, Region, URL, State string
		} `json:"members"`
	}
	err = json.NewDecoder(resp.Body).Decode(&cluster)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(cluster.Members) != 3 || len(cluster.Regions) != 3 {
		t.Fatalf("GET /v1/cluster: status %d, %v, %+v", resp.StatusCode, err, cluster)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	token := mustToken(t, secret, "tester")
	dial := func(n *child) *client.Client {
		cl, err := client.Dial(ctx, "ws://"+n.addr, client.Options{Token: token})
		if err != nil {
			t.Fatalf("dial %s: %v", n.addr, err)
		}
		t.Cleanup(func() { cl.Close() })
		return cl
	}

	rooms := []string{"mesh:one", "mesh:two", "mesh:three", "mesh:four"}
	const perPublisher = 40
	want := perPublisher * len(nodes)

	// One subscriber per node per room.
	type stream struct {
		node string
		sub  *client.Subscription
	}
	var streams []stream
	for _, n := range nodes {
		cl := dial(n)
		for _, room := range rooms {
			sub, err := cl.Subscribe(ctx, room, client.SubscribeOptions{Buffer: 4 * want})
			if err != nil {
				t.Fatalf("subscribe %s on %s: %v", room, n.addr, err)
			}
			streams = append(streams, stream{node: n.addr, sub: sub})
		}
	}

	// One publisher per node, publishing to every room concurrently.
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes))
	for i, n := range nodes {
		cl := dial(n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range perPublisher {
				for _, room := range rooms {
					data := json.RawMessage(fmt.Sprintf(`{"pub":%d,"k":%d}`, i, k))
					if _, err := cl.Publish(ctx, room, data, client.PublishOptions{}); err != nil {
						errs <- fmt.Errorf("publish to %s via %s: %w", room, n.addr, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Every subscriber of a room must see the same sequence 1..want.
	order := make(map[string][]string) // room -> data by seq, from the first stream
	for _, s := range streams {
		var got []protocol.Msg
		for len(got) < want {
			select {
			case ev, ok := <-s.sub.C():
				if !ok {
					t.Fatalf("subscription to %s on %s ended: %v", s.sub.Room(), s.node, s.sub.Err())
				}
				if ev.Kind == client.EventMsg {
					got = append(got, *ev.Msg)
				}
			case <-ctx.Done():
				t.Fatalf("%s on %s: %d of %d messages", s.sub.Room(), s.node, len(got), want)
			}
		}
		room := s.sub.Room()
		first, seen := order[room]
		for i, m := range got {
			if m.Seq != uint64(i)+1 {
				t.Fatalf("%s on %s: message %d has seq %d", room, s.node, i, m.Seq)
			}
			if seen && first[i] != string(m.Data) {
				t.Fatalf("%s: node %s saw %s at seq %d, another node saw %s", room, s.node, m.Data, m.Seq, first[i])
			}
			if !seen {
				order[room] = append(order[room], string(m.Data))
			}
		}
	}
}

// edgesOf reads GET /v1/edges of n; nil if it does not answer.
func edgesOf(n *child) []struct{ Node, Region, URL string } {
	resp, err := http.Get("http://" + n.addr + "/v1/edges")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var body struct {
		Edges []struct{ Node, Region, URL string } `json:"edges"`
	}
	if json.NewDecoder(resp.Body).Decode(&body) != nil {
		return nil
	}
	return body.Edges
}

// TestBootstrapExpectReadiness: a node whose config expects two mesh
// members is not ready until the second is up; then both are, and a
// publish through either is acked.
func TestBootstrapExpectReadiness(t *testing.T) {
	start := bootstrapNodes(t, 2)
	a := start("boot-a", t.TempDir())
	if code := a.readyz(); code != http.StatusServiceUnavailable {
		t.Fatalf("boot-a alone, expecting 2 members: /readyz %d, want 503", code)
	}
	b := start("boot-b", t.TempDir(), a.mesh)
	for i, n := range []*child{a, b} {
		n.waitReady(t)
		room := fmt.Sprintf("boot:%d", i)
		if res := publishHTTP(n.addr, room, "k1"); res.err != nil || res.status != http.StatusCreated {
			t.Fatalf("publish to %s through node %d: %+v, want 201", room, i, res)
		}
	}
}

// bootstrapNodes returns how to start `arena serve --dev` nodes with
// bootstrap_expect: expect, without waiting for them to be ready.
func bootstrapNodes(t *testing.T, expect int) func(id, data string, join ...string) *child {
	cfgFile := filepath.Join(t.TempDir(), "arena.yaml")
	if err := os.WriteFile(cfgFile, fmt.Appendf(nil, "bootstrap_expect: %d\n", expect), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(id, data string, join ...string) *child {
		args := []string{
			"--config", cfgFile, "--dev", "--node-id", id,
			"--listen", "127.0.0.1:0", "--mesh", "127.0.0.1:0", "--data", data,
		}
		for _, j := range join {
			args = append(args, "--join", j)
		}
		return startServeListening(t, args...)
	}
}

// TestBootstrapExpectKeepsEpochs: a three-node cluster with
// bootstrap_expect: 3 is killed whole (kill -9) and started again, its
// first node alone for a while with publishes to every room waiting on
// it: every room goes on in its epoch, on its usual home. Without the
// setting that first node is ready alone and starts the other nodes'
// rooms in new epochs. Then two nodes die and a new one joins the
// survivor: it finds it serving and is ready with two members of three.
func TestBootstrapExpectKeepsEpochs(t *testing.T) {
	startNode := bootstrapNodes(t, 3)
	ids := []string{"keep-a", "keep-b", "keep-c", "keep-d"}
	data := []string{t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()}
	start := func(i int, join ...string) *child { return startNode(ids[i], data[i], join...) }
	first := start(0)
	nodes := []*child{first, start(1, first.mesh), start(2, first.mesh)}
	for _, n := range nodes {
		n.waitReady(t)
	}
	rooms := make([]string, 24)
	epochs := make(map[string]uint64)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("keep:%d", i)
		res := publishHTTP(nodes[0].addr, rooms[i], "k1")
		if res.status != http.StatusCreated || res.err != nil || res.ack.Seq != 1 {
			t.Fatalf("first publish to %s: %+v", rooms[i], res)
		}
		epochs[rooms[i]] = res.ack.Epoch
	}
	for _, n := range nodes {
		n.kill9(t)
	}

	// The first node comes back alone, and every room gets a publish
	// through it at once (each waits up to 5 s for its room); the others
	// follow. A publish answered 503 meanwhile is retried, same key.
	a := start(0)
	answers := make([]publishResult, len(rooms))
	var wg sync.WaitGroup
	for i, room := range rooms {
		wg.Go(func() { answers[i] = publishHTTP(a.addr, room, "k2") })
	}
	b, c := start(1, a.mesh), start(2, a.mesh)
	wg.Wait()
	for i, room := range rooms {
		res := answers[i]
		waitFor(t, time.Minute, "publish to "+room, func() bool {
			if res.status == http.StatusServiceUnavailable {
				res = publishHTTP(a.addr, room, "k2")
			}
			return res.status != http.StatusServiceUnavailable
		})
		if res.err != nil || res.status != http.StatusCreated {
			t.Fatalf("publish to %s after the restart: status %d, %v", room, res.status, res.err)
		}
		if res.ack.Epoch != epochs[room] || res.ack.Seq != 2 || res.ack.Dup {
			t.Errorf("room %s after the restart: %+v, want (%d, 2)", room, res.ack, epochs[room])
		}
	}

	b.kill9(t)
	c.kill9(t)
	waitEdges(t, a, 1)
	start(3, a.mesh).waitReady(t)
}

// publishAck is the JSON of a 201 to POST /v1/rooms/{room}/messages.
type publishAck struct {
	Epoch uint64 `json:"epoch"`
	Seq   uint64 `json:"seq"`
	Dup   bool   `json:"dup"`
}

// publishResult is the outcome of one publishHTTP.
type publishResult struct {
	status int
	ack    publishAck
	err    error
}

// publishHTTP publishes {"n":1} with key to room through the node at addr.
func publishHTTP(addr, room, key string) publishResult {
	resp, err := http.Post("http://"+addr+"/v1/rooms/"+room+"/messages", "application/json",
		strings.NewReader(`{"data":{"n":1},"key":"`+key+`"}`))
	if err != nil {
		return publishResult{err: err}
	}
	defer resp.Body.Close()
	res := publishResult{status: resp.StatusCode}
	if res.status == http.StatusCreated {
		res.err = json.NewDecoder(resp.Body).Decode(&res.ack)
	}
	return res
}
