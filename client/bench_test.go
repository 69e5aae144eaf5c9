package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/client"
	"github.com/arena-mesh/arena/edge"
	"github.com/arena-mesh/arena/edge/edgetest"
)

func benchClient(b *testing.B, n *edgetest.Node, user string) *client.Client {
	b.Helper()
	c, err := client.Dial(context.Background(), n.WSURL, client.Options{Token: n.AllToken(user), Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func benchNode(b *testing.B) *edgetest.Node {
	return edgetest.Start(b, edgetest.WithQuietLogs(), edgetest.WithConfig(func(c *edge.Config) { c.PublishRate = 1e9 }))
}

// BenchmarkPublish is one publisher waiting for each ack (includes the
// node's fsync).
func BenchmarkPublish(b *testing.B) {
	c := benchClient(b, benchNode(b), "alice")
	data := json.RawMessage(`{"text":"hello, world","n":42}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Publish(b.Context(), "bench", data, client.PublishOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublishParallel is many goroutines publishing on one client,
// each to its own room (a connection's publishes to one room are acked in
// order): frames are batched on the way out, acks matched by id, and the
// node commits them in groups.
func BenchmarkPublishParallel(b *testing.B) {
	c := benchClient(b, benchNode(b), "alice")
	data := json.RawMessage(`{"text":"hello, world","n":42}`)
	var rooms atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		room := fmt.Sprintf("bench-%d", rooms.Add(1))
		for pb.Next() {
			if _, err := c.Publish(context.Background(), room, data, client.PublishOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPublishAsync publishes from one goroutine with up to 256
// publishes in flight (to 32 rooms), the way a feed would with
// PublishAsync; compare BenchmarkPublishParallel's 32 goroutines.
func BenchmarkPublishAsync(b *testing.B) {
	c := benchClient(b, benchNode(b), "alice")
	data := json.RawMessage(`{"text":"hello, world","n":42}`)
	var rooms [32]string
	for i := range rooms {
		rooms[i] = fmt.Sprintf("bench-%d", i)
	}
	window := make(chan struct{}, 256)
	var failed atomic.Pointer[error]
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		window <- struct{}{}
		c.PublishAsync(b.Context(), rooms[i%len(rooms)], data, client.PublishOptions{}, func(_ client.Ack, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
			<-window
		})
	}
	for range cap(window) {
		window <- struct{}{} // every publish acked
	}
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
}

// BenchmarkReceive is the subscriber side: messages read per second from
// one room while a publisher keeps it busy.
func BenchmarkReceive(b *testing.B) {
	n := benchNode(b)
	subC := benchClient(b, n, "bob")
	sub, err := subC.Subscribe(b.Context(), "bench", client.SubscribeOptions{Buffer: 4096})
	if err != nil {
		b.Fatal(err)
	}
	data := json.RawMessage(`{"text":"hello, world","n":42}`)
	ctx, cancel := context.WithCancel(b.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// Publishes of one room from one connection are acked in order, so
	// several publishers keep the room busy.
	for range 8 {
		pub := benchClient(b, n, "alice")
		wg.Go(func() {
			for ctx.Err() == nil {
				if _, err := pub.Publish(ctx, "bench", data, client.PublishOptions{}); err != nil && ctx.Err() == nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := <-sub.C(); !ok {
			b.Fatal(sub.Err())
		}
	}
}
