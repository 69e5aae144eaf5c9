package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"syscall"
	"time"
)

var resumeScenario = &scenario{
	name: "resume",
	summary: "K clients drop and resume at once (a reconnect storm): time until all are live again, " +
		"messages missed and duplicated (both must be 0)",
	flags: func(fs *flag.FlagSet, p *Params) {
		fs.IntVar(&p.Clients, "clients", 1000, "subscribed clients (K)")
		fs.IntVar(&p.Rooms, "rooms", 10, "rooms, each with one publisher; clients are spread over them")
		fs.Float64Var(&p.Rate, "rate", 50, "messages per second of each room's publisher, before, during and after the drop")
		fs.StringVar(&p.How, "how", "", "how the clients drop: restart (stop and restart the spawned node on the same port and data; needs --spawn) "+
			"or cut (sever every client socket at once; any target). Default: restart with --spawn, else cut")
		fs.StringVar(&p.Signal, "signal", "TERM", "restart: the signal that stops the node, TERM (drain) or KILL (crash)")
		durationFlag(fs, &p.Recover, "recover", time.Minute, "how long to wait for every client to be live again")
	},
	check: func(p *Params) error {
		if p.Clients < 1 || p.Rooms < 1 || p.Rate <= 0 {
			return errors.New("resume needs --clients >= 1, --rooms >= 1 and --rate > 0")
		}
		if p.How == "" {
			p.How = "cut"
			if p.Spawn {
				p.How = "restart"
			}
		}
		switch {
		case p.How != "restart" && p.How != "cut":
			return fmt.Errorf("--how must be restart or cut, not %q", p.How)
		case p.How == "restart" && !p.Spawn:
			return errors.New("--how restart needs --spawn (the harness can only restart a node it started); use --how cut")
		case p.Signal != "TERM" && p.Signal != "KILL":
			return fmt.Errorf("--signal must be TERM or KILL, not %q", p.Signal)
		}
		if p.How == "cut" {
			p.Signal = ""
		}
		p.Rooms = min(p.Rooms, p.Clients)
		return nil
	},
	run: runResume,
}

// runResume: publishers run on fixed schedules throughout. After the
// warmup every client is dropped at once (dropAt). A client is live again
// at its first delivery of a message sent after the drop had fully
// happened (the old node had exited, or the sockets were cut): nothing
// sent then could reach it over its old connection. The publishers go on
// for --duration after the drop or until every client is live, whichever
// is later; then the run settles and counts what was missed or
// duplicated.
func runResume(ctx context.Context, r *run) (*Result, error) {
	p := r.p
	res := &Result{}
	k, rooms := p.Clients, p.Rooms
	sched := NewLatency("delivery")
	recovery := NewLatency("recovery")
	t := newTraffic(r)
	for i := 0; i < rooms; i++ {
		t.addPublisher(nil, r.room("resume", i))
	}
	recv := make([]*receiver, k)
	for i := range recv {
		recv[i] = t.addReceiver(sched, nil, uint32(i%rooms))
	}
	pr := r.startProgress("resume", func() string {
		return fmt.Sprintf("connecting: %d of %d", r.connSeq.Load(), k+rooms)
	})
	err := r.connectAll(ctx, k, 64, func(i int) int { return i }, func(i int, c Conn) error {
		return c.Subscribe(ctx, t.pubs[i%rooms].room, recv[i].deliver)
	})
	if err == nil {
		err = r.connectAll(ctx, rooms, 64, func(i int) int { return i }, func(i int, c Conn) error {
			t.pubs[i].conn = c
			return nil
		})
	}
	pr.Stop()
	if err != nil {
		r.closeAll()
		return nil, fmt.Errorf("set up resume: %w", err)
	}

	t.begin()
	before := r.sample()
	pr = r.startProgress("resume", func() string {
		return fmt.Sprintf("live %d of %d | ", r.live.Load(), k) + r.trafficLine(sched)()
	})
	pubCtx, cancelPub := context.WithCancel(ctx)
	defer cancelPub()
	paceCtx, cancelPace := context.WithCancel(ctx)
	defer cancelPace()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t.runSchedules(paceCtx, pubCtx, p.Rate, 0)
	}()

	sleepUntil(ctx, r.clock, t.measureFrom.Load())
	dropAt := r.clock.Now()
	switch p.How {
	case "cut":
		n := r.cutAll()
		r.liveAfter.Store(r.clock.Now())
		res.add("sockets cut", float64(n), "", "")
	case "restart":
		sig := syscall.SIGTERM
		if p.Signal == "KILL" {
			sig = syscall.SIGKILL
		}
		gone, err := r.node.Restart(ctx, sig, r.clock)
		r.liveAfter.Store(gone)
		if err != nil {
			cancelPace()
			wg.Wait()
			pr.Stop()
			r.closeAll()
			return nil, err
		}
		res.add("node stop time", time.Duration(gone-dropAt).Seconds(), "s", "lower")
		res.add("node restart time", time.Duration(r.clock.Now()-gone).Seconds(), "s", "lower")
		r.serverPID = r.node.PID()
		before = r.sample() // the old process is gone: measure the new one from here
		res.Notes = append(res.Notes, "restart: server cpu and memory are the restarted process's, from its start")
	}
	allLive := waitUntil(ctx, p.Recover.D(), func() bool { return r.live.Load() >= int64(k) })
	liveAt := r.clock.Now()
	sleepUntil(ctx, r.clock, dropAt+int64(p.Duration.D()))
	cancelPace()
	wg.Wait()
	t.settle(ctx, res)
	after := r.sample()
	pr.Stop()
	cancelPub()
	r.closeAll()

	notLive := 0
	for _, v := range recv {
		if at := v.liveAt.Load(); at != 0 {
			recovery.Record(v.id, at-dropAt)
		} else {
			notLive++
		}
	}
	res.add("clients", float64(k), "", "")
	if allLive {
		res.add("time until all live", time.Duration(liveAt-dropAt).Seconds(), "s", "lower")
	}
	res.add("clients not live again", float64(notLive), "", "zero")
	if notLive > 0 {
		res.Alarms = append(res.Alarms, fmt.Sprintf("NOT RECOVERED %d of %d clients within --recover %v", notLive, k, p.Recover.D()))
	}
	t.publishFigures(res, true)
	res.countFigures(t.counts())
	t.lossNotes(res)
	res.Latencies = append(res.Latencies, Summarize(recovery.Name(), recovery.Total()), Summarize(sched.Name(), sched.Total()))
	if p.Driver == "nats" {
		res.Notes = append(res.Notes, "nats: core NATS does not resume a subscription, so messages published while a client reconnects are lost by design")
	}
	r.resourceFigures(res, before, after)
	return res, nil
}
