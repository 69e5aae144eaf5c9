package bench

import (
	"context"
	"flag"
)

// scenario is one `arena bench SCENARIO`.
type scenario struct {
	name    string
	summary string
	// flags registers the scenario's own flags and their defaults.
	flags func(fs *flag.FlagSet, p *Params)
	// check validates them (after the common ones were checked).
	check func(p *Params) error
	// run measures and returns the result; the caller adds the common
	// fields (parameters, host, target) and prints it.
	run func(ctx context.Context, r *run) (*Result, error)
}

// scenarios in the order usage lists them.
var scenarios = []*scenario{
	fanoutScenario,
	roomsScenario,
	connsScenario,
	durableScenario,
	geoScenario,
	resumeScenario,
	presenceScenario,
}

func lookupScenario(name string) *scenario {
	for _, s := range scenarios {
		if s.name == name {
			return s
		}
	}
	return nil
}
