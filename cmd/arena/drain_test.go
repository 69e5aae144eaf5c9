package main

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/arena-mesh/arena/client"
	"github.com/arena-mesh/arena/protocol"
)

// TestDrainMovesClients sends SIGTERM to the node a subscriber is connected
// to while a publisher on another node keeps publishing: the drained node
// sends its clients a reconnect frame, the subscriber moves to another edge
// and resumes, and it sees every message exactly once, in order, in one
// epoch — for rooms homed on the drained node (handed over) and elsewhere.
func TestDrainMovesClients(t *testing.T) {
	const secret = "drain-test-secret"
	_, b, c := startMesh3(t, "drain", secret)

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	token := mustToken(t, secret, "drainer")
	sub, err := client.Dial(ctx, "ws://"+c.addr, client.Options{Token: token, ReconnectMin: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	pub, err := client.Dial(ctx, "ws://"+b.addr, client.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	// Several rooms, so that some are homed on the drained node and some
	// elsewhere (placement is by hash of the name).
	rooms := []string{"drain:1", "drain:2", "drain:3", "drain:4", "drain:5", "drain:6"}
	subs := map[string]*client.Subscription{}
	for _, room := range rooms {
		s, err := sub.Subscribe(ctx, room, client.SubscribeOptions{Buffer: 4096})
		if err != nil {
			t.Fatal(err)
		}
		subs[room] = s
	}

	const total = 150
	published := make(chan error, 1)
	go func() {
		for i := range total {
			for _, room := range rooms {
				if _, err := pub.Publish(ctx, room, json.RawMessage(fmt.Sprint(i)), client.PublishOptions{}); err != nil {
					published <- fmt.Errorf("publish %d to %s: %w", i, room, err)
					return
				}
			}
			if i == total/3 {
				// Drain the subscriber's node mid-stream.
				if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
					published <- err
					return
				}
			}
		}
		published <- nil
	}()

	for _, room := range rooms {
		var got []protocol.Msg
		for len(got) < total {
			select {
			case ev, ok := <-subs[room].C():
				if !ok {
					t.Fatalf("%s: subscription ended: %v", room, subs[room].Err())
				}
				switch ev.Kind {
				case client.EventMsg:
					got = append(got, *ev.Msg)
				case client.EventReset:
					t.Fatalf("%s: reset after the drain (the epoch changed)", room)
				}
			case <-ctx.Done():
				t.Fatalf("%s: %d of %d messages", room, len(got), total)
			}
		}
		for i, m := range got {
			if m.Seq != uint64(i)+1 || m.Epoch != got[0].Epoch || string(m.Data) != fmt.Sprint(i) {
				t.Fatalf("%s: message %d is (%d,%d) %s, want (%d,%d) %d", room, i, m.Epoch, m.Seq, m.Data, got[0].Epoch, i+1, i)
			}
		}
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		t.Fatal("the drained node did not exit")
	}
	if info := sub.Info(); info.Node == "drain-c" {
		t.Fatalf("subscriber still on the drained node: %+v", info)
	}
}

// waitEdges waits until n lists want edges in GET /v1/edges.
func waitEdges(t *testing.T, n *child, want int) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("%d edges on %s", want, n.addr), func() bool {
		return len(edgesOf(n)) == want
	})
}

// TestKilledHomeRestartsRooms kills one of three `arena serve` processes
// with SIGKILL: after failure detection every room accepts publishes again
// through the survivors, rooms that were homed on the dead node in a new
// epoch (their subscribers get a reset), the others in the same epoch with
// nothing lost.
func TestKilledHomeRestartsRooms(t *testing.T) {
	const secret = "kill-test-secret"
	a, _, c := startMesh3(t, "kill", secret)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	token := mustToken(t, secret, "killer")
	pub, err := client.Dial(ctx, "ws://"+a.addr, client.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	rooms := []string{"kill:1", "kill:2", "kill:3", "kill:4", "kill:5", "kill:6", "kill:7", "kill:8"}
	before := map[string]client.Ack{}
	for _, room := range rooms {
		for i := range 3 {
			ack, err := pub.Publish(ctx, room, json.RawMessage(fmt.Sprint(i)), client.PublishOptions{})
			if err != nil {
				t.Fatalf("publish to %s: %v", room, err)
			}
			before[room] = ack
		}
	}
	c.kill9(t)

	// Publish retries on unavailable until the mesh has noticed the death
	// and the rooms have new homes.
	moved := 0
	for _, room := range rooms {
		ack, err := pub.Publish(ctx, room, json.RawMessage(`"after"`), client.PublishOptions{})
		if err != nil {
			t.Fatalf("publish to %s after the kill: %v", room, err)
		}
		prev := before[room]
		switch {
		case ack.Epoch == prev.Epoch && ack.Seq == prev.Seq+1:
			// Homed on a survivor: same stream, nothing lost.
		case ack.Epoch > prev.Epoch && ack.Seq == 1:
			moved++ // homed on the dead node: restarted
		default:
			t.Fatalf("%s: after the kill ack (%d,%d), before (%d,%d)", room, ack.Epoch, ack.Seq, prev.Epoch, prev.Seq)
		}
	}
	if moved == 0 || moved == len(rooms) {
		t.Fatalf("%d of %d rooms restarted: want the dead node's share only", moved, len(rooms))
	}
	waitEdges(t, a, 2)
}

// startMesh3 starts three `arena serve` processes, named prefix-a, -b and
// -c, the last two joining the first, and waits until each lists all three
// edges.
func startMesh3(t *testing.T, prefix, secret string) (a, b, c *child) {
	t.Helper()
	start := func(id string, join ...string) *child {
		args := []string{
			"--node-id", id, "--listen", "127.0.0.1:0", "--mesh", "127.0.0.1:0",
			"--data", t.TempDir(), "--token-secret", secret,
		}
		for _, j := range join {
			args = append(args, "--join", j)
		}
		return startServe(t, args...)
	}
	a = start(prefix + "-a")
	b = start(prefix+"-b", a.mesh)
	c = start(prefix+"-c", a.mesh)
	for _, n := range []*child{a, b, c} {
		waitEdges(t, n, 3)
	}
	return a, b, c
}
