package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"
)

var fanoutScenario = &scenario{
	name:    "fanout",
	summary: "S subscribers in one room, one publisher at R msg/s: delivery latency to every subscriber",
	flags: func(fs *flag.FlagSet, p *Params) {
		fs.IntVar(&p.Subs, "subs", 100, "subscribers in the room")
		fs.Float64Var(&p.Rate, "rate", 1000, "messages per second of the publisher")
	},
	check: func(p *Params) error {
		if p.Subs < 1 || p.Rate <= 0 {
			return errors.New("fanout needs --subs >= 1 and --rate > 0")
		}
		return nil
	},
	run: func(ctx context.Context, r *run) (*Result, error) {
		// Subscribers are spread over the given edges, the publisher is on
		// the first.
		subs := make([]int, r.p.Subs)
		for i := range subs {
			subs[i] = i % len(r.urls)
		}
		return runFanout(ctx, r, "fanout", []int{0}, subs, nil)
	},
}

// runFanout runs publishers (one per entry of pubURL, on that URL index)
// and subscribers (one per entry of subURL) in one room, each publisher at
// --rate. With regions, latencies are also kept per (publisher region,
// subscriber region) pair.
func runFanout(ctx context.Context, r *run, kind string, pubURL, subURL []int, regions []string) (*Result, error) {
	p := r.p
	res := &Result{}
	room := r.room(kind, 0)
	sched, sent := NewLatency("delivery"), NewLatency("delivery from send")
	t := newTraffic(r)

	// Publishers first (streams must exist before receivers expect them),
	// connected after the subscribers so that nothing is published early.
	pubConns := make([]Conn, len(pubURL))
	var pairs [][]*Latency // [publisher][subscriber URL]: latency from the schedule
	for i := range pubURL {
		t.addPublisher(nil, room)
		if regions != nil {
			row := make([]*Latency, len(regions))
			for j := range regions {
				row[j] = NewLatency(fmt.Sprintf("delivery %s->%s", regions[pubURL[i]], regions[j]))
			}
			pairs = append(pairs, row)
		}
	}
	streams := make([]uint32, len(pubURL))
	for i := range streams {
		streams[i] = uint32(i)
	}
	recv := make([]*receiver, len(subURL))
	for i, u := range subURL {
		v := t.addReceiver(sched, sent, streams...)
		if pairs != nil {
			v.pair = func(s uint32) *Latency { return pairs[s][u] }
		}
		recv[i] = v
	}

	pr := r.startProgress(kind, func() string {
		return fmt.Sprintf("connecting: %d connections", r.connSeq.Load())
	})
	err := r.connectAll(ctx, len(subURL), 64, func(i int) int { return subURL[i] }, func(i int, c Conn) error {
		return c.Subscribe(ctx, room, recv[i].deliver)
	})
	if err == nil {
		for i, u := range pubURL {
			if pubConns[i], _, err = r.connect(ctx, u); err != nil {
				break
			}
			t.pubs[i].conn = pubConns[i]
		}
	}
	pr.Stop()
	if err != nil {
		r.closeAll()
		return nil, fmt.Errorf("set up %s: %w", kind, err)
	}

	t.begin()
	before := r.sample()
	pr = r.startProgress(kind, r.trafficLine(sched))
	pubCtx, cancelPub := context.WithCancel(ctx)
	defer cancelPub()
	paceCtx, cancelPace := context.WithTimeout(ctx, 2*(p.Warmup.D()+p.Duration.D())+10*time.Second)
	t.runSchedules(paceCtx, pubCtx, p.Rate, scheduleCount(p, p.Rate))
	cancelPace()
	t.settle(ctx, res)
	after := r.sample()
	pr.Stop()
	cancelPub()
	r.closeAll()

	t.publishFigures(res, true)
	res.countFigures(t.counts())
	t.lossNotes(res)
	res.Latencies = append(res.Latencies, Summarize(sched.Name(), sched.Total()))
	if pairs != nil {
		for _, row := range pairs {
			for _, l := range row {
				res.Latencies = append(res.Latencies, Summarize(l.Name(), l.Total()))
			}
		}
	}
	res.Latencies = append(res.Latencies, Summarize(sent.Name(), sent.Total()))
	r.resourceFigures(res, before, after)
	return res, nil
}
