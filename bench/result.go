package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// ResultVersion is the version of the JSON result format.
const ResultVersion = 1

// Result is everything a run measured, with the parameters it ran with.
// It is what --json writes and what compare reads.
type Result struct {
	Version   int              `json:"version"`
	Scenario  string           `json:"scenario"`
	Driver    string           `json:"driver"`
	Target    string           `json:"target"` // "spawn ADDR" or the URLs
	Started   time.Time        `json:"started"`
	Params    Params           `json:"params"`
	Host      HostInfo         `json:"host"`
	Figures   []Figure         `json:"figures"`
	Latencies []LatencySummary `json:"latencies"`
	Counts    Counts           `json:"counts"`
	// Alarms are the things that must not happen and did (lost,
	// duplicated, out-of-order messages, failed publishes, clients that
	// did not recover), one line each.
	Alarms []string `json:"alarms,omitempty"`
	// Notes explain how to read a figure (a peer's semantics differ, a
	// figure could not be measured, ...).
	Notes []string `json:"notes,omitempty"`
}

// HostInfo describes where the harness ran.
type HostInfo struct {
	GoVersion  string `json:"go_version"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	NoFile     uint64 `json:"nofile"` // open-file limit of the harness
}

// Figure is one measured number.
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
	// Better says which way is good: "lower", "higher", or "zero" (any
	// other value is a failure); "" for context figures.
	Better string `json:"better,omitempty"`
}

// Figure returns the figure called name.
func (r *Result) Figure(name string) (Figure, bool) {
	for _, f := range r.Figures {
		if f.Name == name {
			return f, true
		}
	}
	return Figure{}, false
}

func (r *Result) add(name string, value float64, unit, better string) {
	r.Figures = append(r.Figures, Figure{Name: name, Value: value, Unit: unit, Better: better})
}

// WriteFile writes r as indented JSON.
func (r *Result) WriteFile(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}

// ReadResult reads a result written by WriteFile.
func ReadResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read result: %w", err)
	}
	r := new(Result)
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("decode result %s: %w", path, err)
	}
	if r.Version != ResultVersion {
		return nil, fmt.Errorf("result %s has version %d, this harness reads %d", path, r.Version, ResultVersion)
	}
	return r, nil
}

// countFigures adds the delivery bookkeeping as figures and raises the
// alarms for whatever must be zero and is not.
func (r *Result) countFigures(c Counts) {
	r.Counts = c
	r.add("deliveries expected", float64(c.Expected), "msgs", "")
	r.add("deliveries received", float64(c.Received), "msgs", "")
	r.add("lost", float64(c.Lost), "msgs", "zero")
	r.add("duplicated", float64(c.Duplicated), "msgs", "zero")
	r.add("out of order", float64(c.OutOfOrder), "msgs", "zero")
	if c.Unexpected > 0 {
		r.add("unexpected", float64(c.Unexpected), "msgs", "zero")
	}
	if c.Epochs > 0 {
		r.add("epoch changes", float64(c.Epochs), "", "zero")
	}
	r.alarm(c.Lost, "LOST %d messages")
	r.alarm(c.Duplicated, "DUPLICATED %d messages")
	r.alarm(c.OutOfOrder, "OUT OF ORDER %d messages")
	r.alarm(c.Unexpected, "UNEXPECTED %d messages (from streams a subscriber did not expect)")
	r.alarm(c.Epochs, "EPOCH CHANGED %d times (a room restarted its sequence)")
}

func (r *Result) alarm(n uint64, format string) {
	if n != 0 {
		r.Alarms = append(r.Alarms, fmt.Sprintf(format, n))
	}
}

// latencyFigures returns the figures of a latency summary, as compare
// lines them up.
func latencyFigures(s LatencySummary) []Figure {
	name := s.Name + " latency "
	return []Figure{
		{name + "p50", s.P50, "ms", "lower"},
		{name + "p90", s.P90, "ms", "lower"},
		{name + "p99", s.P99, "ms", "lower"},
		{name + "p99.9", s.P999, "ms", "lower"},
		{name + "p99.99", s.P9999, "ms", "lower"},
		{name + "max", s.Max, "ms", "lower"},
		{name + "mean", s.Mean, "ms", "lower"},
	}
}

// PrintTable writes the human-readable report.
func (r *Result) PrintTable(w io.Writer) {
	fmt.Fprintf(w, "\narena bench %s — driver %s, target %s\n", r.Scenario, r.Driver, r.Target)
	fmt.Fprintf(w, "%s\n\n", r.paramLine())
	width := 0
	for _, f := range r.Figures {
		width = max(width, len(f.Name))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, f := range r.Figures {
		fmt.Fprintf(tw, "%-*s\t%s\t %s\t\n", width, f.Name, formatValue(f.Value), f.Unit)
	}
	tw.Flush()
	if len(r.Latencies) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		width := len("latency (ms)")
		for _, s := range r.Latencies {
			width = max(width, len(s.Name))
		}
		fmt.Fprintf(tw, "%-*s\tcount\tmean\tp50\tp90\tp99\tp99.9\tp99.99\tmax\t\n", width, "latency (ms)")
		for _, s := range r.Latencies {
			fmt.Fprintf(tw, "%-*s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", width, s.Name, s.Count,
				formatValue(s.Mean), formatValue(s.P50), formatValue(s.P90), formatValue(s.P99),
				formatValue(s.P999), formatValue(s.P9999), formatValue(s.Max))
		}
		tw.Flush()
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if len(r.Alarms) > 0 {
		fmt.Fprintln(w)
		for _, a := range r.Alarms {
			fmt.Fprintf(w, "!! %s\n", a)
		}
	}
}

// paramLine is a one-line summary of the parameters that shape the load.
func (r *Result) paramLine() string {
	p := r.Params
	var parts []string
	addInt := func(name string, v int) {
		if v != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", name, v))
		}
	}
	addInt("subs", p.Subs)
	if p.Rate != 0 {
		parts = append(parts, "rate="+formatValue(p.Rate))
	}
	addInt("rooms", p.Rooms)
	addInt("members", p.Members)
	addInt("publishers", p.Publishers)
	addInt("conns", p.Conns)
	addInt("clients", p.Clients)
	addInt("watchers", p.Watchers)
	addInt("churners", p.Churners)
	if p.How != "" {
		parts = append(parts, "how="+p.How)
	}
	if p.Scenario != "conns" { // conns has no timed load
		if p.Scenario != "presence" { // nor presence messages
			parts = append(parts, "size="+strconv.Itoa(p.Size))
		}
		parts = append(parts, "duration="+p.Duration.D().String(), "warmup="+p.Warmup.D().String())
	}
	return strings.Join(parts, " ")
}

// formatValue prints integers as integers and other values with four
// significant digits.
func formatValue(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Sprint(v)
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
}
