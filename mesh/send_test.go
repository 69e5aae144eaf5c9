package mesh

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestSendAllPairsKeepsPerKeyOrder(t *testing.T) {
	ms, recs := cluster(t, 3, nil)
	const keys, perKey = 8, 300
	var wg sync.WaitGroup
	for _, src := range ms {
		for _, dst := range ms {
			if src == dst {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Interleave keys so lanes are shared and batches mix keys.
				for i := range perKey {
					for k := range keys {
						f := fmt.Appendf(nil, "k%d|%d", k, i)
						if err := src.Send(t.Context(), dst.LocalID(), fmt.Sprintf("room-%d", k), f); err != nil {
							t.Errorf("send %s→%s: %v", src.LocalID(), dst.LocalID(), err)
							return
						}
					}
				}
			}()
		}
	}
	wg.Wait()
	want := 2 * keys * perKey
	for i, rec := range recs {
		waitFor(t, converge, fmt.Sprintf("%s receives %d frames", ms[i].LocalID(), want), func() bool { return rec.count() >= want })
	}
	for i, rec := range recs {
		if rec.count() != want {
			t.Errorf("%s got %d frames, want %d", ms[i].LocalID(), rec.count(), want)
		}
		for _, src := range ms {
			if src == ms[i] {
				continue
			}
			next := make([]int, keys)
			for _, f := range rec.from(src.LocalID()) {
				var k, seq int
				if _, err := fmt.Sscanf(string(f), "k%d|%d", &k, &seq); err != nil {
					t.Fatalf("bad frame %q: %v", f, err)
				}
				if seq != next[k] {
					t.Fatalf("%s from %s key %d: got seq %d, want %d", ms[i].LocalID(), src.LocalID(), k, seq, next[k])
				}
				next[k]++
			}
			for k, n := range next {
				if n != perKey {
					t.Errorf("%s from %s key %d: %d frames, want %d", ms[i].LocalID(), src.LocalID(), k, n, perKey)
				}
			}
		}
	}
}

func TestSendErrors(t *testing.T) {
	ms, _ := cluster(t, 2, func(c *Config) { c.MaxFrameSize = 1024 })
	a := ms[0]
	tests := []struct {
		name  string
		to    NodeID
		frame []byte
		want  error
	}{
		{"unknown peer", "nobody", []byte("x"), ErrUnknownPeer},
		{"self", a.LocalID(), []byte("x"), ErrUnknownPeer},
		{"too large", ms[1].LocalID(), make([]byte, 1025), ErrFrameTooLarge},
		{"ok at limit", ms[1].LocalID(), make([]byte, 1024), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := a.Send(t.Context(), tt.to, "k", tt.frame); !errors.Is(err, tt.want) {
				t.Fatalf("Send: %v, want %v", err, tt.want)
			}
		})
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := a.Send(t.Context(), ms[1].LocalID(), "k", []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v, want ErrClosed", err)
	}
	if err := a.Leave(t.Context()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Leave after Close: %v, want ErrClosed", err)
	}
}

func TestSlowKeyBlocksOnlyItsLane(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	rec := newRecorder()
	ms, _ := cluster(t, 2, func(c *Config) {
		c.LaneBuffer = 8 << 10
		if c.NodeID == "n2" {
			c.Handler = func(from NodeID, f []byte) {
				if bytes.HasPrefix(f, []byte("slow")) {
					<-release
				}
				rec.handle(from, f)
			}
		}
	})
	t.Cleanup(unblock) // before the meshes close: a blocked Handler would hold Close
	a := ms[0]

	const slowFrames = 3000 // 3 MB: well past the lane's credit and stream window
	pad := bytes.Repeat([]byte("."), 1000)
	sendErr := make(chan error, 1)
	go func() {
		for i := range slowFrames {
			if err := a.Send(t.Context(), "n2", "slow", fmt.Appendf(nil, "slow|%d|%s", i, pad)); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()
	waitFor(t, converge, "the slow lane pushes back on Send", func() bool {
		return counterValue(a.metrics.sendBlocked) > 0
	})

	fast := "fast"
	for i := 0; laneOf(fast) == laneOf("slow"); i++ {
		fast = fmt.Sprintf("fast%d", i)
	}
	for i := range 100 {
		if err := a.Send(t.Context(), "n2", fast, fmt.Appendf(nil, "fast|%d", i)); err != nil {
			t.Fatalf("fast send: %v", err)
		}
	}
	waitFor(t, converge, "fast frames pass the stalled lane", func() bool { return rec.count() >= 100 })

	unblock()
	if err := <-sendErr; err != nil {
		t.Fatalf("slow send: %v", err)
	}
	waitFor(t, converge, "all slow frames arrive", func() bool { return rec.count() == 100+slowFrames })
	next := map[string]int{}
	for _, f := range rec.from("n1") {
		parts := strings.SplitN(string(f), "|", 3)
		seq, _ := strconv.Atoi(parts[1])
		if seq != next[parts[0]] {
			t.Fatalf("%s frame %d arrived, want %d", parts[0], seq, next[parts[0]])
		}
		next[parts[0]]++
	}
}
