package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"time"
)

var durableScenario = &scenario{
	name:    "durable",
	summary: "publish throughput with durable acks across K rooms, with ack latency percentiles",
	flags: func(fs *flag.FlagSet, p *Params) {
		fs.IntVar(&p.Rooms, "rooms", 10, "rooms published to (K)")
		fs.IntVar(&p.Publishers, "publishers", 1, "publishers (connections) per room")
		fs.Float64Var(&p.Rate, "rate", 0, "total messages per second over all publishers; 0 publishes as fast as --inflight allows (closed loop)")
	},
	check: func(p *Params) error {
		if p.Rooms < 1 || p.Publishers < 1 || p.Rate < 0 {
			return errors.New("durable needs --rooms >= 1, --publishers >= 1 and --rate >= 0")
		}
		return nil
	},
	run: runDurable,
}

// runDurable measures acknowledged publishes: with --rate, on fixed-rate
// schedules (ack latency from the intended send time); without, closed
// loop (as many publishes in flight as --inflight allows; ack latency from
// the actual send, and the throughput is the figure of merit).
func runDurable(ctx context.Context, r *run) (*Result, error) {
	p := r.p
	res := &Result{}
	k, per := p.Rooms, p.Publishers
	ack := NewLatency("ack")
	t := newTraffic(r)
	for i := 0; i < k*per; i++ {
		pub := t.addPublisher(nil, r.room("durable", i%k))
		pub.durable = true
		pub.ack = ack
	}
	pr := r.startProgress("durable", func() string {
		return fmt.Sprintf("connecting: %d of %d", r.connSeq.Load(), k*per)
	})
	err := r.connectAll(ctx, k*per, 64, func(i int) int { return i }, func(i int, c Conn) error {
		t.pubs[i].conn = c
		return nil
	})
	pr.Stop()
	if err != nil {
		r.closeAll()
		return nil, fmt.Errorf("set up durable: %w", err)
	}

	t.begin()
	before := r.sample()
	pr = r.startProgress("durable", r.trafficLine(ack))
	pubCtx, cancelPub := context.WithCancel(ctx)
	defer cancelPub()
	paceCtx, cancelPace := context.WithTimeout(ctx, 2*(p.Warmup.D()+p.Duration.D())+10*time.Second)
	defer cancelPace()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if p.Rate > 0 {
			rate := p.Rate / float64(k*per)
			t.runSchedules(paceCtx, pubCtx, rate, scheduleCount(p, rate))
			return
		}
		var wg sync.WaitGroup
		for _, pub := range t.pubs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pub.flood(paceCtx, pubCtx)
			}()
		}
		wg.Wait()
		t.paceEnd = r.clock.Now()
		t.sentAtEnd = r.sent.Load()
	}()
	// The throughput counts the acks between the end of the warmup and
	// the end of the load.
	sleepUntil(ctx, r.clock, t.measureFrom.Load())
	ackedAtWarmup, warmupEnd := r.acked.Load(), r.clock.Now()
	if p.Rate == 0 {
		sleepUntil(ctx, r.clock, warmupEnd+int64(p.Duration.D()))
		cancelPace()
	}
	<-done
	ackedAtEnd, loadEnd := r.acked.Load(), r.clock.Now()
	t.settle(ctx, res)
	after := r.sample()
	pr.Stop()
	cancelPub()
	r.closeAll()

	res.add("publishers", float64(k*per), "", "")
	t.publishFigures(res, true)
	if secs := time.Duration(loadEnd - warmupEnd).Seconds(); secs > 0 {
		res.add("ack throughput", float64(ackedAtEnd-ackedAtWarmup)/secs, "msgs/s", "higher")
	}
	res.Latencies = append(res.Latencies, Summarize(ack.Name(), ack.Total()))
	if p.Rate == 0 {
		res.Notes = append(res.Notes, "closed loop (--rate 0): ack latency is measured from the actual send and grows with --inflight; use --rate for latency under a fixed load")
	}
	if p.Driver == "nats" {
		res.Notes = append(res.Notes, "nats: durable publishes go through JetStream, which by default syncs to disk periodically rather than before each ack")
	}
	r.resourceFigures(res, before, after)
	return res, nil
}
