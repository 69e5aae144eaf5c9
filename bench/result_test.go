package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleResult() *Result {
	return &Result{
		Version:  ResultVersion,
		Scenario: "fanout",
		Driver:   "arena",
		Target:   "spawn 127.0.0.1:1234",
		Started:  time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		Params: Params{
			Scenario: "fanout", Driver: "arena", Spawn: true, SourceIPs: 16,
			Duration: Duration(10 * time.Second), Warmup: Duration(time.Second), Drain: Duration(5 * time.Second),
			Size: 128, Inflight: 1000, Subs: 100, Rate: 1000,
		},
		Host:    HostInfo{GoVersion: "go1.26", NumCPU: 2, GOMAXPROCS: 2, NoFile: 20000},
		Figures: []Figure{{"messages sent", 10000, "msgs", ""}, {"publish rate", 1000.5, "msgs/s", "higher"}, {"lost", 0, "msgs", "zero"}},
		Latencies: []LatencySummary{{
			Name: "delivery", Count: 10000, Mean: 1.5, P50: 1.2, P90: 2, P99: 4.5, P999: 9, P9999: 12, Max: 13,
			Dist: []Point{{0, 0.5}, {50, 1.2}, {90, 2}, {99, 4.5}},
		}},
		Counts: Counts{Expected: 1000000, Received: 1000000},
		Alarms: []string{"LOST 0 messages"},
		Notes:  []string{"a note"},
	}
}

func TestResultJSONRoundTrip(t *testing.T) {
	want := sampleResult()
	path := filepath.Join(t.TempDir(), "r.json")
	withSecrets := *want
	withSecrets.Params.Token = "tok-must-not-leak"
	withSecrets.Params.Secret = "secret-must-not-leak"
	if err := withSecrets.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("must-not-leak")) {
		t.Fatalf("a credential was written to the result:\n%s", b)
	}
	got, err := ReadResult(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip changed the result:\n got %+v\nwant %+v", got, want)
	}
	if f, ok := got.Figure("publish rate"); !ok || f.Value != 1000.5 {
		t.Fatalf("Figure(publish rate) = %+v, %v", f, ok)
	}
}

func TestReadResultRejects(t *testing.T) {
	dir := t.TempDir()
	tests := map[string]string{
		"not json":      "{",
		"wrong version": `{"version": 99}`,
		"bad duration":  `{"version": 1, "params": {"duration": "soon"}}`,
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := ReadResult(path); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestPrintTableIsLoud(t *testing.T) {
	r := sampleResult()
	r.Alarms = nil
	r.Figures = nil
	r.countFigures(Counts{Expected: 10, Received: 7, Lost: 3, Duplicated: 1})
	var b strings.Builder
	r.PrintTable(&b)
	out := b.String()
	for _, want := range []string{"!! LOST 3 messages", "!! DUPLICATED 1 messages", "delivery", "p99.99"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "OUT OF ORDER") {
		t.Errorf("table raises an alarm for a zero count:\n%s", out)
	}
}

// A harness that used 90% or more of the CPUs it had is called out in a
// note, since its own queueing is then in the latencies.
func TestHarnessSaturation(t *testing.T) {
	for _, tc := range []struct {
		use  float64
		cpus int
		want bool
	}{
		{99.6, 1, true},
		{90, 1, true},
		{89.9, 1, false},
		{150, 2, false},
		{185, 2, true},
		{50, 0, false},
	} {
		note, got := harnessSaturation(tc.use, tc.cpus)
		if got != tc.want || got != (note != "") {
			t.Errorf("harnessSaturation(%v, %d) = %q, %v; want saturated %v", tc.use, tc.cpus, note, got, tc.want)
		}
	}
}
