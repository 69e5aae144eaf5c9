package edge_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/arena-mesh/arena/edge"
	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/protocol"
	"github.com/arena-mesh/arena/router"
)

// BenchmarkFanoutWS measures fan-out to real WebSocket subscribers on
// loopback: b.N messages are published to one room (through the router,
// from many goroutines, so the publisher is not the bottleneck) and every
// subscriber reads them all. It reports deliveries/s and frames per
// WebSocket write (the batching factor).
func BenchmarkFanoutWS(b *testing.B) {
	for _, subs := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			benchFanout(b, subs)
		})
	}
}

func benchFanout(b *testing.B, subs int) {
	n := edgetest.Start(b, edgetest.WithQuietLogs(), edgetest.WithConfig(func(c *edge.Config) { c.PublishRate = 1e9 }))
	tok := n.AllToken("bench")
	const room = "bench:fanout"
	ctx := b.Context()

	conns := make([]*websocket.Conn, subs)
	for i := range conns {
		conn, _, err := websocket.Dial(ctx, n.WSURL, &websocket.DialOptions{
			HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}},
		})
		if err != nil {
			b.Fatal(err)
		}
		conn.SetReadLimit(-1)
		b.Cleanup(func() { _ = conn.CloseNow() })
		c := &wsClient{t: b, conn: conn}
		c.mustCall(protocol.Frame{Op: protocol.OpConnect}, protocol.OpConnected)
		c.sub(room, nil)
		conns[i] = conn
	}
	data := []byte(`{"text":"hello, this is a chat message of a typical size","n":12345}`)

	var frames, writes atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var readers sync.WaitGroup
	for _, conn := range conns {
		readers.Add(1)
		go func() {
			defer readers.Done()
			got := 0
			for got < b.N {
				_, msg, err := conn.Read(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				k := bytes.Count(msg, []byte{'\n'}) + 1
				got += k
				frames.Add(int64(k))
				writes.Add(1)
			}
		}()
	}
	const pumps = 64
	var next atomic.Int64
	var pub sync.WaitGroup
	for range pumps {
		pub.Add(1)
		go func() {
			defer pub.Done()
			for next.Add(1) <= int64(b.N) {
				if _, err := n.Router().Publish(context.Background(), router.PublishRequest{Room: room, From: "bench", Data: data}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	pub.Wait()
	readers.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(subs*b.N)/elapsed.Seconds(), "deliveries/s")
	if w := writes.Load(); w > 0 {
		b.ReportMetric(float64(frames.Load())/float64(w), "frames/write")
	}
}

// BenchmarkPublishWS measures publishes from one WebSocket connection,
// pipelined (up to 100 frames per message, acks collected as they come),
// to one room or spread over many rooms.
func BenchmarkPublishWS(b *testing.B) {
	for _, rooms := range []int{1, 16} {
		b.Run(fmt.Sprintf("rooms=%d", rooms), func(b *testing.B) {
			n := edgetest.Start(b, edgetest.WithQuietLogs(), edgetest.WithConfig(func(c *edge.Config) { c.PublishRate = 1e9 }))
			c := connectWS(b, n, n.AllToken("bench"))
			names := make([]string, rooms)
			for i := range names {
				names[i] = fmt.Sprintf("bench:pub:%d", i)
			}
			data := []byte(`{"text":"hello"}`)
			b.ReportAllocs()
			b.ResetTimer()
			done := make(chan error, 1)
			go func() {
				for acks := 0; acks < b.N; {
					_, msg, err := c.conn.Read(b.Context())
					if err != nil {
						done <- err
						return
					}
					acks += bytes.Count(msg, []byte{'\n'}) + 1
				}
				done <- nil
			}()
			var buf bytes.Buffer
			for i := 0; i < b.N; {
				buf.Reset()
				for j := 0; j < 100 && i < b.N; j, i = j+1, i+1 {
					if j > 0 {
						buf.WriteByte('\n')
					}
					fmt.Fprintf(&buf, `{"op":"pub","id":%d,"room":"%s","data":%s}`, i+1, names[i%rooms], data)
				}
				if err := c.conn.Write(b.Context(), websocket.MessageText, buf.Bytes()); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}
