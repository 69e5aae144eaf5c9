package mesh

import (
	"encoding/binary"
	"fmt"
	"slices"
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

// BenchmarkSendLatency measures the one-way latency of a frame from one
// node's Send to the other's Handler over loopback QUIC, one 128-byte
// frame per millisecond, with no WAN delay and with a 40 ms emulated link
// each way: what the mesh adds to a hop over the emulated floor.
// Reported as percentiles in µs of (latency - delay).
func BenchmarkSendLatency(b *testing.B) {
	for _, delay := range []time.Duration{0, 40 * time.Millisecond} {
		b.Run(fmt.Sprintf("delay=%v", delay), func(b *testing.B) {
			wan := NewWAN(1)
			wan.SetBoth("r1", "r2", Link{Delay: delay})
			lat := make(chan time.Duration, 1<<16)
			var ms []*Mesh
			for i, id := range []string{"n1", "n2"} {
				cfg := testConfig(b, id, fmt.Sprintf("r%d", i+1))
				cfg.Logger = zerolog.Nop()
				cfg.Registerer = nil
				cfg.WAN = wan
				cfg.Handler = func(_ NodeID, f []byte) {
					sent := time.Unix(0, int64(binary.BigEndian.Uint64(f)))
					select {
					case lat <- time.Since(sent) - delay:
					default:
					}
				}
				if i > 0 {
					cfg.Join = []string{ms[0].Addr()}
				}
				ms = append(ms, startMesh(b, cfg))
			}
			waitFor(b, converge, "join", func() bool { return sees(ms[0], "n1", "n2") })
			frame := make([]byte, 128)
			send := func() {
				binary.BigEndian.PutUint64(frame, uint64(time.Now().UnixNano()))
				if err := ms[0].Send(b.Context(), "n2", "room", frame); err != nil {
					b.Fatal(err)
				}
			}
			send() // warm up: the connection and the lane's stream
			<-lat
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			got := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				<-tick.C
				send()
			}
			for len(got) < b.N {
				got = append(got, <-lat)
			}
			b.StopTimer()
			slices.Sort(got)
			pct := func(p float64) float64 {
				return float64(got[int(p*float64(len(got)-1))]) / float64(time.Microsecond)
			}
			b.ReportMetric(pct(0.50), "p50-µs")
			b.ReportMetric(pct(0.99), "p99-µs")
		})
	}
}
