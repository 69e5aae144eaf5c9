package mesh

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// BenchmarkSend measures frames per second from one node to another over
// loopback QUIC: 128-byte frames spread over 64 keys (all lanes), counted
// when the receiver's Handler has seen them all.
func BenchmarkSend(b *testing.B) {
	for _, size := range []int{128, 1024} {
		b.Run(fmt.Sprintf("frame=%d", size), func(b *testing.B) {
			var got atomic.Int64
			var ms []*Mesh
			for i, id := range []string{"n1", "n2"} {
				cfg := testConfig(b, id, "r1")
				cfg.Logger = zerolog.Nop()
				cfg.Registerer = nil
				cfg.Handler = func(NodeID, []byte) { got.Add(1) }
				if i > 0 {
					cfg.Join = []string{ms[0].Addr()}
				}
				ms = append(ms, startMesh(b, cfg))
			}
			waitFor(b, converge, "join", func() bool { return sees(ms[0], "n1", "n2") })
			keys := make([]string, 64)
			for i := range keys {
				keys[i] = fmt.Sprintf("room-%d", i)
			}
			frame := make([]byte, size)
			a := ms[0]
			ctx := b.Context()
			// Warm up: connection and all lanes' streams open.
			for _, k := range keys {
				if err := a.Send(ctx, "n2", k, frame); err != nil {
					b.Fatal(err)
				}
			}
			waitFor(b, converge, "warm-up", func() bool { return got.Load() == int64(len(keys)) })
			got.Store(0)

			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if err := a.Send(ctx, "n2", keys[i%len(keys)], frame); err != nil {
					b.Fatal(err)
				}
			}
			waitFor(b, 5*time.Minute, "delivery", func() bool { return got.Load() == int64(b.N) })
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "frames/s")
			b.ReportMetric(float64(b.N)*float64(size)/elapsed.Seconds()/1e6, "MB/s")
		})
	}
}
