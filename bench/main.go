package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"
)

// ErrAlarms is returned (wrapped) by Main when a run finished but saw
// something that must not happen: lost, duplicated or out-of-order
// messages, failed publishes, clients that did not recover. The report
// and the JSON file are written first.
var ErrAlarms = errors.New("bench: the run raised alarms")

// Main runs `arena bench` with args (what follows "bench" on the command
// line): a scenario and its flags, or `compare A.json B.json`. The report
// goes to stdout, the live progress line and diagnostics to stderr.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return errors.New("bench: no scenario given")
		}
		return nil
	}
	if args[0] == "compare" {
		return compareMain(args[1:], stdout, stderr)
	}
	sc := lookupScenario(args[0])
	if sc == nil {
		usage(stderr)
		return fmt.Errorf("bench: unknown scenario %q", args[0])
	}
	p := &Params{Scenario: sc.name}
	fs := flag.NewFlagSet("arena bench "+sc.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	commonFlags(fs, p)
	sc.flags(fs, p)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: arena bench %s [flags]\n\n%s\n\nflags:\n", sc.name, sc.summary)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("bench %s: %w", sc.name, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench %s: unexpected argument %q", sc.name, fs.Arg(0))
	}
	if err := sc.check(p); err != nil {
		return fmt.Errorf("bench %s: %w", sc.name, err)
	}
	if err := p.check(); err != nil {
		return fmt.Errorf("bench %s: %w", sc.name, err)
	}
	res, err := execute(ctx, sc, p, stderr)
	if err != nil {
		return fmt.Errorf("bench %s: %w", sc.name, err)
	}
	res.PrintTable(stdout)
	if p.JSON != "" {
		if err := res.WriteFile(p.JSON); err != nil {
			return fmt.Errorf("bench %s: %w", sc.name, err)
		}
	}
	if p.Plot != "" {
		if err := PlotLatencies(p.Plot, fmt.Sprintf("arena bench %s (%s)", sc.name, p.Driver), seriesOf("", res)); err != nil {
			return fmt.Errorf("bench %s: %w", sc.name, err)
		}
	}
	if len(res.Alarms) > 0 {
		for _, a := range res.Alarms {
			fmt.Fprintf(stderr, "!! %s\n", a)
		}
		return fmt.Errorf("%w: %s", ErrAlarms, strings.Join(res.Alarms, "; "))
	}
	return nil
}

// execute prepares the harness and the target, runs the scenario and
// fills in the result's common fields.
func execute(ctx context.Context, sc *scenario, p *Params, stderr io.Writer) (*Result, error) {
	driver, err := lookupDriver(p.Driver)
	if err != nil {
		return nil, err
	}
	var notes []string
	nofile, err := raiseNoFile()
	if err != nil {
		notes = append(notes, err.Error())
	}
	var serverCPUs []int
	if p.ServerCPU != "" {
		if serverCPUs, err = ParseCPUList(p.ServerCPU); err != nil {
			return nil, err
		}
	}
	if p.BenchCPU != "" {
		cpus, err := ParseCPUList(p.BenchCPU)
		if err != nil {
			return nil, err
		}
		if err := pinSelf(cpus); err != nil {
			return nil, err
		}
	}

	r := newRun(p, driver, stderr)
	target := strings.Join(p.URLs, " ")
	if p.Spawn {
		node, err := StartNode(ctx, NodeConfig{Bin: p.ServerBin, Args: p.ServerArgs, CPUs: serverCPUs, TokenSecret: p.Secret})
		if err != nil {
			return nil, err
		}
		defer node.Close()
		r.node = node
		r.serverPID = node.PID()
		r.setURLs([]string{node.URL()})
		target = "spawn " + node.Addr()
		notes = append(notes, SpawnNote)
	} else {
		r.setURLs(p.URLs)
		r.serverPID = p.ServerPID
		if serverCPUs != nil {
			if p.ServerPID == 0 {
				return nil, errors.New("--server-cpu needs --spawn or --server-pid")
			}
			if err := pinProcess(p.ServerPID, serverCPUs); err != nil {
				return nil, err
			}
		}
	}
	if need := connectionsNeeded(p); uint64(need)+64 > nofile && nofile != 0 {
		notes = append(notes, fmt.Sprintf("the open-file limit %d may be too low for %d connections", nofile, need))
	}

	started := time.Now()
	res, err := sc.run(ctx, r)
	if err != nil {
		return nil, err
	}
	res.Version = ResultVersion
	res.Scenario = sc.name
	res.Driver = p.Driver
	res.Target = target
	res.Started = started.UTC()
	res.Params = *p
	res.Host = HostInfo{GoVersion: runtime.Version(), NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), NoFile: nofile}
	res.Notes = append(notes, res.Notes...)
	return res, nil
}

// connectionsNeeded estimates the connections a run opens, to warn about
// the open-file limit.
func connectionsNeeded(p *Params) int {
	switch p.Scenario {
	case "fanout":
		return p.Subs + 1
	case "rooms":
		return p.Rooms * p.Members
	case "conns":
		return p.Conns + p.Rooms
	case "durable":
		return p.Rooms * p.Publishers
	case "geo":
		return (p.Subs + 1) * len(p.URLs)
	case "resume":
		return p.Clients + p.Rooms
	case "presence":
		return p.Watchers + p.Churners
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: arena bench SCENARIO [flags]   (arena bench SCENARIO -h for its flags)\n")
	fmt.Fprintf(w, "       arena bench compare A.json B.json [--plot FILE.svg]\n\nscenarios:\n")
	for _, s := range scenarios {
		fmt.Fprintf(w, "  %-8s %s\n", s.name, s.summary)
	}
	fmt.Fprintf(w, "\ntarget: --spawn (a local arena serve --dev) or --url URL of a running edge; --driver nats runs the same scenario against NATS (all but presence)\n")
}

func compareMain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("arena bench compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	plot := fs.String("plot", "", "draw both runs' latency distributions to this SVG file")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: arena bench compare A.json B.json [--plot FILE.svg]\n")
		fs.PrintDefaults()
	}
	// Accept the flag before or after the two files.
	var files []string
	rest := args
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return fmt.Errorf("bench compare: %w", err)
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(files) != 2 {
		fs.Usage()
		return fmt.Errorf("bench compare: need two result files, got %d", len(files))
	}
	a, err := ReadResult(files[0])
	if err != nil {
		return fmt.Errorf("bench compare: %w", err)
	}
	b, err := ReadResult(files[1])
	if err != nil {
		return fmt.Errorf("bench compare: %w", err)
	}
	Compare(stdout, files[0], a, files[1], b)
	if *plot != "" {
		series := append(seriesOf("A "+a.Driver+": ", a), seriesOf("B "+b.Driver+": ", b)...)
		if err := PlotLatencies(*plot, fmt.Sprintf("%s vs %s (%s)", a.Driver, b.Driver, a.Scenario), series); err != nil {
			return fmt.Errorf("bench compare: %w", err)
		}
	}
	return nil
}
