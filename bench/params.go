package bench

import (
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"time"
)

// Params are the parameters of a run: every flag, recorded in the JSON
// result so that a figure can always be traced to how it was measured.
// Fields a scenario does not use stay zero and are left out of the JSON.
type Params struct {
	Scenario string `json:"scenario"`
	Driver   string `json:"driver"`

	// Target.
	URLs    []string `json:"urls,omitempty"`
	Regions []string `json:"regions,omitempty"`
	// Floors are geo's emulated one-way delays between regions, "a-b" (both
	// directions) to the delay: the floor a delivery cannot beat.
	Floors map[string]time.Duration `json:"floors,omitempty"`
	// Home is the region of geo's room's home: a delivery travels from
	// the publisher's region to the home and from there to the
	// subscriber's, so its floor is the sum of those two delays.
	Home       string   `json:"home,omitempty"`
	Spawn      bool     `json:"spawn,omitempty"`
	ServerBin  string   `json:"server_bin,omitempty"`
	ServerArgs []string `json:"server_args,omitempty"`
	ServerPID  int      `json:"server_pid,omitempty"`
	ServerCPU  string   `json:"server_cpu,omitempty"`
	BenchCPU   string   `json:"bench_cpu,omitempty"`
	Token      string   `json:"-"` // a credential: never written out
	Secret     string   `json:"-"` // a credential: never written out
	SourceIPs  int      `json:"source_ips"`

	// Common measurement.
	Duration Duration `json:"duration"`
	Warmup   Duration `json:"warmup"`
	Drain    Duration `json:"drain"`
	Size     int      `json:"size"`
	Inflight int      `json:"inflight"`

	// Scenario shapes.
	Subs        int      `json:"subs,omitempty"`
	Rate        float64  `json:"rate,omitempty"`
	Rooms       int      `json:"rooms,omitempty"`
	Members     int      `json:"members,omitempty"`
	Publishers  int      `json:"publishers,omitempty"`
	Conns       int      `json:"conns,omitempty"`
	ConnectRate float64  `json:"connect_rate,omitempty"`
	Concurrency int      `json:"concurrency,omitempty"`
	Hold        Duration `json:"hold,omitempty"`
	Clients     int      `json:"clients,omitempty"`
	How         string   `json:"how,omitempty"`
	Signal      string   `json:"signal,omitempty"`
	Recover     Duration `json:"recover,omitempty"`
	Watchers    int      `json:"watchers,omitempty"`
	Churners    int      `json:"churners,omitempty"`
	Settle      Duration `json:"settle,omitempty"`

	// Output; not part of the measurement.
	JSON  string `json:"-"`
	Plot  string `json:"-"`
	Quiet bool   `json:"-"`
}

// Duration is a time.Duration written in JSON as Go writes durations
// ("1m30s"), so results stay readable.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// durationFlag makes a Duration settable by flag.
func durationFlag(fs *flag.FlagSet, d *Duration, name string, def time.Duration, usage string) {
	*d = Duration(def)
	fs.Var((*durationValue)(d), name, usage)
}

type durationValue Duration

func (d *durationValue) String() string { return time.Duration(*d).String() }
func (d *durationValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = durationValue(v)
	return nil
}

// listFlag is a repeatable string flag (--url a --url b, or --url a,b).
type listFlag struct{ list *[]string }

func (l listFlag) String() string {
	if l.list == nil {
		return ""
	}
	return strings.Join(*l.list, ",")
}

func (l listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l.list = append(*l.list, v)
		}
	}
	return nil
}

// commonFlags registers the flags every scenario takes.
func commonFlags(fs *flag.FlagSet, p *Params) {
	fs.StringVar(&p.Driver, "driver", "arena", "client driver: arena (the Go SDK) or nats (nats.go over WebSocket)")
	fs.Var(listFlag{&p.URLs}, "url", "edge URL of a running deployment, ws:// or http:// (repeatable; geo pairs them with --region)")
	fs.Var(listFlag{&p.Regions}, "region", "region label of the --url at the same position (repeatable; geo)")
	fs.BoolVar(&p.Spawn, "spawn", false, "start a local node (arena serve --dev on 127.0.0.1) and measure it")
	fs.StringVar(&p.ServerBin, "server-bin", "", "arena binary to run with --spawn (default: this executable)")
	fs.Var(listFlag{&p.ServerArgs}, "server-arg", "extra argument for the spawned `arena serve` (repeatable)")
	fs.IntVar(&p.ServerPID, "server-pid", 0, "pid of a local server given by --url, to report its CPU time and memory")
	fs.StringVar(&p.ServerCPU, "server-cpu", "", "CPUs to pin the server to, as for taskset -c (e.g. 1 or 2-3)")
	fs.StringVar(&p.BenchCPU, "bench-cpu", "", "CPUs to pin the harness to, as for taskset -c (e.g. 0)")
	fs.StringVar(&p.Token, "token", "", "bearer token for every connection (note: per-user rate limits then apply to the whole run)")
	fs.StringVar(&p.Secret, "secret", "", "HS256 secret: mint a token per connection (user bench-<run>-<n>, pub and sub on every room); with --spawn the node gets it too")
	fs.IntVar(&p.SourceIPs, "source-ips", 16, "spread connections to a loopback target over this many source addresses 127.0.0.1..n (0: let the system choose)")
	durationFlag(fs, &p.Duration, "duration", 10*time.Second, "how long to measure")
	durationFlag(fs, &p.Warmup, "warmup", time.Second, "load before measuring; its latencies are not recorded (its messages are still checked for loss)")
	durationFlag(fs, &p.Drain, "drain", 10*time.Second, "how long to wait, after the last publish, for outstanding acks and deliveries")
	fs.IntVar(&p.Size, "size", 128, "message data size in bytes (a JSON object padded to this size)")
	fs.IntVar(&p.Inflight, "inflight", 1000, "unacknowledged publishes allowed per publisher; when reached the publisher falls behind its schedule, which shows in latency")
	fs.StringVar(&p.JSON, "json", "", "write every figure and the parameters to this JSON file")
	fs.StringVar(&p.Plot, "plot", "", "draw the latency distributions to this SVG file")
	fs.BoolVar(&p.Quiet, "quiet", false, "no live progress line")
}

// check validates the common parameters.
func (p *Params) check() error {
	switch {
	case p.Spawn && len(p.URLs) > 0:
		return fmt.Errorf("give --spawn or --url, not both")
	case !p.Spawn && len(p.URLs) == 0:
		return fmt.Errorf("no target: give --url URL of a running edge, or --spawn to start a local node")
	case p.Spawn && p.Driver != "arena":
		return fmt.Errorf("--spawn starts an Arena node; --driver %s needs --url", p.Driver)
	case p.Token != "" && p.Secret != "":
		return fmt.Errorf("give --token or --secret, not both")
	case p.Duration <= 0:
		return fmt.Errorf("--duration must be positive")
	case p.Warmup < 0 || p.Drain < 0:
		return fmt.Errorf("--warmup and --drain must not be negative")
	case p.Size < 64:
		return fmt.Errorf("--size must be at least 64 bytes (the payload's header)")
	case p.Size > 1<<20:
		return fmt.Errorf("--size must be at most 1 MiB")
	case p.Inflight < 1:
		return fmt.Errorf("--inflight must be at least 1")
	case p.SourceIPs < 0 || p.SourceIPs > 1<<16:
		return fmt.Errorf("--source-ips must be between 0 and 65536")
	case len(p.Regions) > 0 && len(p.Regions) != len(p.URLs):
		return fmt.Errorf("%d --region labels for %d --url: give one per URL", len(p.Regions), len(p.URLs))
	}
	return nil
}
