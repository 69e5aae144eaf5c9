package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"
)

var roomsScenario = &scenario{
	name:    "rooms",
	summary: "N rooms of M members, each member subscribed to its room and publishing at r msg/s",
	flags: func(fs *flag.FlagSet, p *Params) {
		fs.IntVar(&p.Rooms, "rooms", 100, "rooms")
		fs.IntVar(&p.Members, "members", 10, "members per room (one connection each)")
		fs.Float64Var(&p.Rate, "rate", 1, "messages per second of each member")
	},
	check: func(p *Params) error {
		if p.Rooms < 1 || p.Members < 1 || p.Rate <= 0 {
			return errors.New("rooms needs --rooms >= 1, --members >= 1 and --rate > 0")
		}
		return nil
	},
	run: runRooms,
}

// runRooms: member j of room i is stream i*M+j; every member of a room
// expects the streams of all its room's members, its own included.
func runRooms(ctx context.Context, r *run) (*Result, error) {
	p := r.p
	res := &Result{}
	n, m := p.Rooms, p.Members
	sched, sent := NewLatency("delivery"), NewLatency("delivery from send")
	t := newTraffic(r)
	for i := 0; i < n*m; i++ {
		t.addPublisher(nil, r.room("rooms", i/m))
	}
	recv := make([]*receiver, n*m)
	for i := range recv {
		room := i / m
		streams := make([]uint32, m)
		for j := range streams {
			streams[j] = uint32(room*m + j)
		}
		recv[i] = t.addReceiver(sched, sent, streams...)
	}

	pr := r.startProgress("rooms", func() string {
		return fmt.Sprintf("connecting: %d of %d", r.connSeq.Load(), n*m)
	})
	err := r.connectAll(ctx, n*m, 64, func(i int) int { return i }, func(i int, c Conn) error {
		t.pubs[i].conn = c
		return c.Subscribe(ctx, t.pubs[i].room, recv[i].deliver)
	})
	pr.Stop()
	if err != nil {
		r.closeAll()
		return nil, fmt.Errorf("set up rooms: %w", err)
	}

	t.begin()
	before := r.sample()
	pr = r.startProgress("rooms", r.trafficLine(sched))
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

	res.add("connections", float64(n*m), "", "")
	t.publishFigures(res, true)
	res.countFigures(t.counts())
	t.lossNotes(res)
	res.Latencies = append(res.Latencies, Summarize(sched.Name(), sched.Total()), Summarize(sent.Name(), sent.Total()))
	r.resourceFigures(res, before, after)
	return res, nil
}
