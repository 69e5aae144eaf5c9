package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
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
