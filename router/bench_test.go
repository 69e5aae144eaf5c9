package router

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkPublish: durable publishes from many goroutines over many rooms
// (group commit batches them).
func BenchmarkPublish(b *testing.B) {
	for _, keyed := range []bool{false, true} {
		name := "nokey"
		if keyed {
			name = "key"
		}
		b.Run(name, func(b *testing.B) {
			e := newEnv(b, nil)
			const nrooms = 64
			rooms := make([]string, nrooms)
			for i := range rooms {
				rooms[i] = "bench:" + strconv.Itoa(i)
				if _, err := e.r.Head(rooms[i]); err != nil {
					b.Fatal(err)
				}
			}
			data := []byte(`{"text":"hello, world","n":12345}`)
			var ctr atomic.Uint64
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := ctr.Add(1)
					req := PublishRequest{Room: rooms[i%nrooms], From: "bench", Data: data}
					if keyed {
						req.Key = strconv.FormatUint(i, 36)
					}
					if _, err := e.r.Publish(ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// pullSink is a subscriber that pulls on its own goroutine when notified,
// as an edge connection's writer does.
type pullSink struct {
	c      chan struct{}
	sub    *Subscription
	target uint64
	got    *atomic.Int64
}

func (s *pullSink) Notify(*Subscription) {
	select {
	case s.c <- struct{}{}:
	default:
	}
}

func (s *pullSink) run(done func()) {
	defer done()
	buf := make([]*Message, 0, 256)
	for range s.c {
		var err error
		buf, err = s.sub.Pull(buf[:0], cap(buf))
		if err != nil {
			panic(err) // a benchmark bug; no input here
		}
		s.got.Add(int64(len(buf)))
		if s.sub.Position().Seq >= s.target {
			return
		}
	}
}

// BenchmarkFanout: one room, 1000 subscribers that each pull every message.
func BenchmarkFanout(b *testing.B) {
	const subs = 1000
	e := newEnv(b, nil)
	ctx := context.Background()
	var got atomic.Int64
	var wg sync.WaitGroup
	sinks := make([]*pullSink, subs)
	for i := range sinks {
		s := &pullSink{c: make(chan struct{}, 1), target: uint64(b.N), got: &got}
		res, err := e.r.Subscribe(ctx, SubscribeRequest{Room: "fanout", Sink: s})
		if err != nil {
			b.Fatal(err)
		}
		s.sub = res.Sub
		b.Cleanup(res.Sub.Close)
		sinks[i] = s
	}
	data := []byte(`{"text":"hello, world"}`)
	b.ReportAllocs()
	b.ResetTimer()
	for _, s := range sinks {
		wg.Add(1)
		go s.run(wg.Done)
	}
	const publishers = 32
	var pwg sync.WaitGroup
	var next atomic.Int64
	for range publishers {
		pwg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if _, err := e.r.Publish(ctx, PublishRequest{Room: "fanout", Data: data}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	pwg.Wait()
	wg.Wait()
	b.StopTimer()
	if want := int64(b.N) * subs; got.Load() != want {
		b.Fatalf("%d deliveries, want %d", got.Load(), want)
	}
	b.ReportMetric(float64(got.Load())/b.Elapsed().Seconds(), "deliveries/s")
}
