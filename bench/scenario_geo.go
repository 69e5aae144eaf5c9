package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"
)

// errGeoTarget is what geo says when it has no multi-region target.
var errGeoTarget = errors.New("geo needs a multi-region deployment: give --url of an edge in each region with a --region label for each " +
	"(e.g. --url ws://127.0.0.1:8081 --region eu --url ws://127.0.0.1:8082 --region us); " +
	"arena dev runs three emulated regions in one process and prints the command line to measure them; --spawn starts a single node")

var geoScenario = &scenario{
	name:    "geo",
	summary: "one publisher and S subscribers per region, all in one room: latency for every pair of regions (needs --url per region)",
	flags: func(fs *flag.FlagSet, p *Params) {
		fs.IntVar(&p.Subs, "subs", 10, "subscribers per region")
		fs.Float64Var(&p.Rate, "rate", 100, "messages per second of each region's publisher")
		fs.StringVar(&p.Home, "home", "", "region of the room's home (the default region of the deployment; arena dev: eu): a delivery's floor is the delay publisher->home plus home->subscriber")
		fs.Var(floorFlag{p}, "floor", "emulated one-way delay between two regions, A-B=DURATION (repeatable, both directions; e.g. eu-us=40ms): reported next to each pair's latency with the overhead above it")
	},
	check: func(p *Params) error {
		if p.Spawn || len(p.URLs) < 2 || len(p.Regions) != len(p.URLs) {
			return errGeoTarget
		}
		seen := map[string]bool{}
		for _, r := range p.Regions {
			if seen[r] {
				return fmt.Errorf("geo: region %q given twice: give one edge per region", r)
			}
			seen[r] = true
		}
		if len(p.Floors) > 0 && p.Home == "" {
			return errors.New("geo: --floor needs --home, the region of the room's home (the path's floor goes through it)")
		}
		if p.Subs < 1 || p.Rate <= 0 {
			return errors.New("geo needs --subs >= 1 and --rate > 0")
		}
		return nil
	},
	run: func(ctx context.Context, r *run) (*Result, error) {
		// Publisher i on edge i; subscribers round robin over the edges.
		pubs := make([]int, len(r.urls))
		for i := range pubs {
			pubs[i] = i
		}
		subs := make([]int, r.p.Subs*len(r.urls))
		for i := range subs {
			subs[i] = i % len(r.urls)
		}
		res, err := runFanout(ctx, r, "geo", pubs, subs, r.p.Regions)
		if err == nil {
			addGeoOverheads(res, *r.p)
		}
		return res, err
	},
}

// floorFlag parses --floor A-B=DURATION into Params.Floors.
type floorFlag struct{ p *Params }

func (f floorFlag) String() string { return "" }

func (f floorFlag) Set(v string) error {
	pair, dur, ok := strings.Cut(v, "=")
	a, b, ok2 := strings.Cut(pair, "-")
	if !ok || !ok2 || a == "" || b == "" {
		return fmt.Errorf("--floor %q: want A-B=DURATION, e.g. eu-us=40ms", v)
	}
	d, err := time.ParseDuration(dur)
	if err != nil || d < 0 {
		return fmt.Errorf("--floor %q: bad duration", v)
	}
	if f.p.Floors == nil {
		f.p.Floors = map[string]time.Duration{}
	}
	f.p.Floors[a+"-"+b], f.p.Floors[b+"-"+a] = d, d
	return nil
}

// addGeoOverheads adds, for every region pair, the floor of its path
// (publisher's region -> the room's home -> subscriber's region, from the
// emulated one-way delays) and how far above it the delivery latency's p50
// and p99 are: the cost of the mesh itself on that path. Pairs whose path
// has a leg without a known delay are skipped.
func addGeoOverheads(res *Result, p Params) {
	leg := func(a, b string) (time.Duration, bool) {
		if a == b {
			return 0, true
		}
		d, ok := p.Floors[a+"-"+b]
		return d, ok
	}
	for _, l := range res.Latencies {
		from, to, ok := strings.Cut(strings.TrimPrefix(l.Name, "delivery "), "->")
		if !ok || !strings.HasPrefix(l.Name, "delivery ") || l.Count == 0 {
			continue
		}
		in, ok1 := leg(from, p.Home)
		out, ok2 := leg(p.Home, to)
		if !ok1 || !ok2 {
			continue
		}
		ms := float64(in+out) / float64(time.Millisecond)
		pair := from + "->" + to
		res.add("floor "+pair, ms, "ms", "")
		res.add("overhead p50 "+pair, l.P50-ms, "ms", "lower")
		res.add("overhead p99 "+pair, l.P99-ms, "ms", "lower")
	}
}
