package routertest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/arena-mesh/arena/mesh"
	"github.com/arena-mesh/arena/router"
)

// BenchmarkClusterMove: how fast rooms move when a third node joins a
// two-node cluster, from the join until every room the new node won takes
// a publish there: on loopback (rooms of one message), and with the new
// node 75 ms away each way (emulated under QUIC), where each handoff is a
// round trip. The two old homes hand their rooms over at the same time.
//
//	go test -run '^$' -bench ClusterMove -benchtime 3x ./router/routertest/
func BenchmarkClusterMove(b *testing.B) {
	cases := []struct {
		name  string
		rooms int
		delay time.Duration
	}{
		{"loopback", 4000, 0},
		{"wan-150ms-rtt", 300, 75 * time.Millisecond},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			var moved int
			var took time.Duration
			for range b.N {
				b.StopTimer()
				opts := []Option{WithPeerTimeout(time.Second)}
				if bc.delay > 0 {
					wan := mesh.NewWAN(1)
					wan.SetBoth("near", "far", mesh.Link{Delay: bc.delay})
					opts = append(opts, WithRegions("near", "near", "far"), WithWAN(wan))
				}
				c := Start(b, 2, opts...)
				rooms := make([]string, bc.rooms)
				for i := range rooms {
					rooms[i] = fmt.Sprintf("move:%d", i)
				}
				publishAll(b, rooms, func(room string) *router.Router { return c.Nodes[c.HomeOf(room)].Router })
				b.StartTimer()
				start := time.Now()
				j := c.Join()
				var won []string
				for _, room := range rooms {
					if c.HomeOf(room) == j {
						won = append(won, room)
					}
				}
				publishAll(b, won, func(string) *router.Router { return c.Nodes[j].Router })
				took += time.Since(start)
				moved += len(won)
			}
			b.ReportMetric(float64(moved)/took.Seconds(), "rooms/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// publishAll publishes one message to each room through the router via
// picks, 64 at a time, retrying while a room is unavailable (moving).
func publishAll(b *testing.B, rooms []string, via func(room string) *router.Router) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, room := range rooms {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			for {
				_, err := via(room).Publish(b.Context(), router.PublishRequest{Room: room, From: "bench", Data: []byte("1")})
				if err == nil || !errors.Is(err, router.ErrUnavailable) {
					if err != nil {
						b.Error(err)
					}
					return
				}
			}
		})
	}
	wg.Wait()
}
