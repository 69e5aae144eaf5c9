package bench

import (
	"strings"
	"testing"
)

func TestRatio(t *testing.T) {
	tests := []struct {
		a, b float64
		want string
	}{
		{2, 4, "2.00"}, {4, 2, "0.50"}, {1, 25, "25.0"}, {1, 250, "250"}, {0, 0, "1"}, {0, 3, "-"},
	}
	for _, tt := range tests {
		if got := Ratio(tt.a, tt.b); got != tt.want {
			t.Errorf("Ratio(%v, %v) = %q, want %q", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestCompare(t *testing.T) {
	a := sampleResult()
	b := sampleResult()
	b.Driver = "nats"
	b.Params.Driver = "nats"
	b.Params.Rate = 2000
	b.Figures = []Figure{{"messages sent", 20000, "msgs", ""}, {"publish rate", 2001, "msgs/s", "higher"}, {"lost", 3, "msgs", "zero"}, {"only in b", 7, "", ""}}
	b.Latencies[0].P99 = 9
	b.Latencies[0].P50 = 1.2
	b.Alarms = []string{"LOST 3 messages"}
	a.Alarms = nil

	var out strings.Builder
	Compare(&out, "a.json", a, "b.json", b)
	// A row is the figure's name, two spaces or more, then the columns.
	rows := map[string][]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		if name, rest, ok := strings.Cut(strings.TrimLeft(line, " "), "  "); ok {
			rows[name] = strings.Fields(rest)
		}
	}
	tests := []struct {
		figure string
		want   []string // A, B, B/A, then unit and better when present
	}{
		{"messages sent", []string{"10000", "20000", "2.00", "msgs"}},
		{"publish rate", []string{"1000", "2001", "2.00", "msgs/s", "B"}},
		{"lost", []string{"0", "3", "-", "msgs", "!!", "B"}},
		{"delivery latency p99", []string{"4.5", "9", "2.00", "ms", "A"}},
		{"delivery latency p50", []string{"1.2", "1.2", "1.00", "ms", "="}},
		{"only in b", []string{"-", "7", "-"}},
	}
	for _, tt := range tests {
		t.Run(tt.figure, func(t *testing.T) {
			got, ok := rows[tt.figure]
			if !ok {
				t.Fatalf("no row for %q in:\n%s", tt.figure, out.String())
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("row %q = %q, want %q", tt.figure, got, tt.want)
			}
		})
	}
	for _, want := range []string{"parameters differ: rate 1000 vs 2000", "!! B: LOST 3 messages"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestCompareMain runs `arena bench compare` on two files, with a plot.
func TestCompareMain(t *testing.T) {
	dir := t.TempDir()
	a, b := sampleResult(), sampleResult()
	b.Latencies[0].P99 = 9
	if err := a.WriteFile(dir + "/a.json"); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteFile(dir + "/b.json"); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	err := Main(t.Context(), []string{"compare", dir + "/a.json", dir + "/b.json", "--plot", dir + "/c.svg"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("compare: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "delivery latency p99") {
		t.Fatalf("compare output:\n%s", stdout.String())
	}
	assertSVG(t, dir+"/c.svg")
	if err := Main(t.Context(), []string{"compare", dir + "/a.json"}, &stdout, &stderr); err == nil {
		t.Fatal("compare with one file succeeded")
	}
}
