package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// Compare writes the figures of two results side by side with the ratio
// B/A, in A's order (figures only B has come last). The last column says
// which side is better for figures that have a direction, and "!!" marks a
// must-be-zero figure that is not.
func Compare(w io.Writer, nameA string, a *Result, nameB string, b *Result) {
	fmt.Fprintf(w, "A: %s — %s %s, target %s\n", nameA, a.Driver, a.Scenario, a.Target)
	fmt.Fprintf(w, "B: %s — %s %s, target %s\n", nameB, b.Driver, b.Scenario, b.Target)
	if a.Scenario != b.Scenario {
		fmt.Fprintf(w, "warning: different scenarios (%s, %s)\n", a.Scenario, b.Scenario)
	}
	if diff := paramDiff(a.Params, b.Params); len(diff) > 0 {
		fmt.Fprintf(w, "parameters differ: %s\n", strings.Join(diff, "; "))
	}
	fmt.Fprintln(w)

	fa, fb := allFigures(a), allFigures(b)
	byName := make(map[string]Figure, len(fb))
	for _, f := range fb {
		byName[f.Name] = f
	}
	seen := make(map[string]bool, len(fa))
	// Names are padded to one width so that they read left-aligned in a
	// right-aligned table.
	width := len("figure")
	for _, f := range append(fa, fb...) {
		width = max(width, len(f.Name))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\tA\tB\tB/A\tunit\tbetter\t\n", width, "figure")
	for _, f := range fa {
		seen[f.Name] = true
		g, ok := byName[f.Name]
		if !ok {
			fmt.Fprintf(tw, "%-*s\t%s\t-\t-\t%s\t\t\n", width, f.Name, formatValue(f.Value), f.Unit)
			continue
		}
		fmt.Fprintf(tw, "%-*s\t%s\t%s\t%s\t%s\t%s\t\n", width, f.Name, formatValue(f.Value), formatValue(g.Value),
			Ratio(f.Value, g.Value), f.Unit, better(f, g))
	}
	for _, g := range fb {
		if !seen[g.Name] {
			fmt.Fprintf(tw, "%-*s\t-\t%s\t-\t%s\t\t\n", width, g.Name, formatValue(g.Value), g.Unit)
		}
	}
	tw.Flush()
	for _, side := range []struct {
		name string
		r    *Result
	}{{"A", a}, {"B", b}} {
		for _, al := range side.r.Alarms {
			fmt.Fprintf(w, "!! %s: %s\n", side.name, al)
		}
	}
}

// allFigures is a result's figures followed by its latency percentiles.
func allFigures(r *Result) []Figure {
	out := append([]Figure(nil), r.Figures...)
	for _, s := range r.Latencies {
		out = append(out, latencyFigures(s)...)
	}
	return out
}

// Ratio formats b/a: "-" when a is 0 and b is not, "1" when both are 0.
func Ratio(a, b float64) string {
	switch {
	case a == 0 && b == 0:
		return "1"
	case a == 0:
		return "-"
	}
	r := b / a
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0f", r)
	case r >= 10:
		return fmt.Sprintf("%.1f", r)
	default:
		return fmt.Sprintf("%.2f", r)
	}
}

// better names the better side of a figure with a direction: A, B, or
// "=" within 2%; "!!" when a must-be-zero figure is not zero.
func better(a, b Figure) string {
	switch a.Better {
	case "zero":
		switch {
		case a.Value != 0 && b.Value != 0:
			return "!! both"
		case a.Value != 0:
			return "!! A"
		case b.Value != 0:
			return "!! B"
		}
		return ""
	case "lower", "higher":
	default:
		return ""
	}
	lo, hi := min(a.Value, b.Value), max(a.Value, b.Value)
	if hi == 0 || (hi-lo)/hi < 0.02 {
		return "="
	}
	if (a.Better == "lower") == (a.Value < b.Value) {
		return "A"
	}
	return "B"
}

// paramDiff lists the parameters whose values differ, ignoring how the
// target was reached.
func paramDiff(a, b Params) []string {
	ma, mb := paramMap(a), paramMap(b)
	for _, k := range []string{"driver", "urls", "regions", "spawn", "server_bin", "server_args", "server_pid", "source_ips"} {
		delete(ma, k)
		delete(mb, k)
	}
	keys := make(map[string]bool)
	for k := range ma {
		keys[k] = true
	}
	for k := range mb {
		keys[k] = true
	}
	var out []string
	for k := range keys {
		va, vb := string(ma[k]), string(mb[k])
		if va != vb {
			if va == "" {
				va = "-"
			}
			if vb == "" {
				vb = "-"
			}
			out = append(out, fmt.Sprintf("%s %s vs %s", k, va, vb))
		}
	}
	sort.Strings(out)
	return out
}

func paramMap(p Params) map[string]json.RawMessage {
	b, _ := json.Marshal(p)
	m := map[string]json.RawMessage{}
	_ = json.Unmarshal(b, &m)
	return m
}
