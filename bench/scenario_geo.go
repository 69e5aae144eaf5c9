package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
)

// errGeoTarget is what geo says when it has no multi-region target.
var errGeoTarget = errors.New("geo needs a multi-region deployment: give --url of an edge in each region with a --region label for each " +
	"(e.g. --url ws://127.0.0.1:8081 --region eu --url ws://127.0.0.1:8082 --region us); " +
	"arena dev (three emulated regions in one process) is not available yet, and --spawn starts a single node")

var geoScenario = &scenario{
	name:    "geo",
	summary: "one publisher and S subscribers per region, all in one room: latency for every pair of regions (needs --url per region)",
	flags: func(fs *flag.FlagSet, p *Params) {
		fs.IntVar(&p.Subs, "subs", 10, "subscribers per region")
		fs.Float64Var(&p.Rate, "rate", 100, "messages per second of each region's publisher")
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
		return runFanout(ctx, r, "geo", pubs, subs, r.p.Regions)
	},
}
