package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

var connsScenario = &scenario{
	name:    "conns",
	summary: "C idle subscribed connections: connect rate and latency, server memory per connection, then one probe message per room",
	flags: func(fs *flag.FlagSet, p *Params) {
		fs.IntVar(&p.Conns, "conns", 1000, "connections to open and keep (C)")
		fs.Float64Var(&p.ConnectRate, "connect-rate", 0, "connection attempts per second; 0 opens them as fast as --concurrency allows")
		fs.IntVar(&p.Concurrency, "concurrency", 64, "connection attempts in flight at most")
		fs.IntVar(&p.Rooms, "rooms", 100, "rooms the connections subscribe to, round robin")
		durationFlag(fs, &p.Hold, "hold", 5*time.Second, "how long to hold the connections idle before measuring memory and probing")
	},
	check: func(p *Params) error {
		if p.Conns < 1 || p.Concurrency < 1 || p.Rooms < 1 || p.ConnectRate < 0 || p.Hold < 0 {
			return errors.New("conns needs --conns >= 1, --concurrency >= 1, --rooms >= 1, --connect-rate >= 0 and --hold >= 0")
		}
		p.Rooms = min(p.Rooms, p.Conns)
		return nil
	},
	run: runConns,
}

func runConns(ctx context.Context, r *run) (*Result, error) {
	p := r.p
	res := &Result{}
	n, rooms := p.Conns, p.Rooms
	connLat := NewLatency("connect")
	t := newTraffic(r)
	for i := 0; i < rooms; i++ {
		t.addPublisher(nil, r.room("conns", i))
	}
	recv := make([]*receiver, n)
	for i := range recv {
		recv[i] = t.addReceiver(nil, nil, uint32(i%rooms))
	}

	var ok, failed atomic.Int64
	var errMu sync.Mutex
	var firstErr error
	failedAt := make([]bool, n) // written by attempt i only, read after all attempts
	attempt := func(i int, since int64) {
		c, _, err := r.connect(ctx, i)
		if err == nil {
			err = c.Subscribe(ctx, t.pubs[i%rooms].room, recv[i].deliver)
		}
		if err != nil {
			failedAt[i] = true
			failed.Add(1)
			errMu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			errMu.Unlock()
			return
		}
		connLat.Record(i, r.clock.Now()-since)
		ok.Add(1)
	}

	base := r.sample()
	pr := r.startProgress("conns", func() string {
		s := fmt.Sprintf("connected %d of %d", ok.Load(), n)
		if f := failed.Load(); f > 0 {
			s += fmt.Sprintf(" | !! %d failed", f)
		}
		if w := connLat.TakeWindow(); w.TotalCount() > 0 {
			s += fmt.Sprintf(" | connect p50 %s p99 %s", fmtMS(w.ValueAtQuantile(50)), fmtMS(w.ValueAtQuantile(99)))
		}
		return s
	})
	if p.ConnectRate > 0 {
		// A fixed-rate ramp: connect latency is measured from each
		// attempt's intended start, as message latency is.
		sem := make(chan struct{}, p.Concurrency)
		var wg sync.WaitGroup
		pc := Pacer{Rate: p.ConnectRate, Start: r.clock.Now(), Count: uint64(n)}
		pc.Run(ctx, r.clock, func(k uint64, due int64) bool {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return false
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				attempt(int(k-1), due)
			}()
			return true
		})
		wg.Wait()
	} else {
		parallel(n, p.Concurrency, func(i int) { attempt(i, r.clock.Now()) })
	}
	ramped := r.sample()
	pr.Stop()
	if ctx.Err() != nil {
		r.closeAll()
		return nil, ctx.Err()
	}
	if ok.Load() == 0 {
		r.closeAll()
		return nil, fmt.Errorf("no connection succeeded: %w", firstErr)
	}
	// Connections that failed expect nothing.
	for i, v := range recv {
		if failedAt[i] {
			t.removeReceiver(v)
		}
	}

	// Hold the connections idle, then read memory once it has settled.
	sleepUntil(ctx, r.clock, r.clock.Now()+int64(p.Hold.D()))
	held := r.sample()

	// Probe: one message per room must reach every connection in it.
	err := r.connectAll(ctx, rooms, 64, func(i int) int { return i }, func(i int, c Conn) error {
		t.pubs[i].conn = c
		return nil
	})
	if err != nil {
		r.closeAll()
		return nil, fmt.Errorf("connect probe publishers: %w", err)
	}
	t.begin()
	pubCtx, cancelPub := context.WithCancel(ctx)
	defer cancelPub()
	t.runSchedules(ctx, pubCtx, 1, 1)
	t.settle(ctx, res)
	cancelPub()
	r.closeAll()

	ramp := time.Duration(ramped.at - base.at)
	res.add("connections", float64(ok.Load()), "", "higher")
	res.add("failed connections", float64(failed.Load()), "", "zero")
	if f := failed.Load(); f > 0 {
		res.Alarms = append(res.Alarms, fmt.Sprintf("FAILED %d connections (first: %v)", f, firstErr))
	}
	res.add("ramp time", ramp.Seconds(), "s", "lower")
	res.add("connect rate", float64(ok.Load())/ramp.Seconds(), "conns/s", "higher")
	res.Latencies = append(res.Latencies, Summarize(connLat.Name(), connLat.Total()))
	if held.serverErr == nil && base.serverErr == nil {
		res.add("server rss idle", float64(base.server.RSS)/(1<<20), "MiB", "")
		res.add("server rss with conns", float64(held.server.RSS)/(1<<20), "MiB", "lower")
		res.add("server memory per conn", float64(held.server.RSS-base.server.RSS)/1024/float64(ok.Load()), "KiB", "lower")
		res.add("server cpu during ramp", (ramped.server.CPU - base.server.CPU).Seconds(), "s", "lower")
		res.add("server cpu while idle", (held.server.CPU - ramped.server.CPU).Seconds(), "s", "lower")
	} else {
		res.Notes = append(res.Notes, "server memory not measured: use --spawn, or --server-pid for a local server")
	}
	res.add("bench memory per conn", float64(held.benchRSS-base.benchRSS)/1024/float64(ok.Load()), "KiB", "")
	res.add("bench cpu during ramp", (ramped.benchCPU - base.benchCPU).Seconds(), "s", "")
	t.publishFigures(res, false)
	res.countFigures(t.counts())
	t.lossNotes(res)
	return res, nil
}
