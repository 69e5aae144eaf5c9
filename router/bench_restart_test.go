package router

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/arena-mesh/arena/wal"
)

// BenchmarkPublishRestarted: keyed publishes with new keys, as in
// BenchmarkPublish/key, to rooms restarted from a wal whose key index
// holds thousands of their keys. A restarted room that had to look every
// new key up in the index for a window paid a Pebble lookup per publish
// (lookups/op shows it).
func BenchmarkPublishRestarted(b *testing.B) {
	e := newEnv(b, func(_ *wal.Config, c *Config) { c.DedupMemory = 100 })
	const nrooms, perRoom = 64, 2000
	rooms := make([]string, nrooms)
	for i := range rooms {
		rooms[i] = "bench:" + strconv.Itoa(i)
	}
	data := []byte(`{"text":"hello, world","n":12345}`)
	ctx := context.Background()
	publish := func(pb *testing.PB, ctr *atomic.Uint64, prefix string) {
		for pb == nil || pb.Next() {
			i := ctr.Add(1)
			if pb == nil && i > nrooms*perRoom {
				return
			}
			req := PublishRequest{Room: rooms[i%nrooms], From: "bench", Data: data, Key: prefix + strconv.FormatUint(i, 36)}
			if _, err := e.r.Publish(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	}
	// Fill: every room evicts all but 100 of its keys into the index.
	var fill atomic.Uint64
	done := make(chan struct{})
	for range 32 {
		go func() {
			defer func() { done <- struct{}{} }()
			publish(nil, &fill, "old-")
		}()
	}
	for range 32 {
		<-done
	}
	e.restart()
	var ctr atomic.Uint64
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) { publish(pb, &ctr, "new-") })
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(counterValue(b, e.r.metrics.keyLookups)/float64(b.N), "lookups/op")
}
