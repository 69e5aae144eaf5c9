package bench

import (
	"testing"
	"time"
)

// TestGeoOverheads: each region pair's delivery latency is reported next
// to its emulated floor, with the overhead above it; pairs without a floor
// get none.
func TestGeoOverheads(t *testing.T) {
	p := Params{Home: "eu"}
	for _, v := range []string{"eu-us=40ms", "us-ap=80ms"} {
		if err := (floorFlag{&p}).Set(v); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []string{"eu-us", "eu=40ms", "eu-us=fast", "-us=1ms", "eu-us=-1ms"} {
		if err := (floorFlag{&p}).Set(bad); err == nil {
			t.Errorf("--floor %q accepted", bad)
		}
	}
	// The room is homed in eu; eu-ap has no floor given.
	res := &Result{Latencies: []LatencySummary{
		{Name: "delivery us->eu", Count: 10, P50: 41.5, P99: 43},
		{Name: "delivery eu->eu", Count: 10, P50: 0.8, P99: 2},
		{Name: "delivery us->us", Count: 10, P50: 81, P99: 85},
		{Name: "delivery eu->ap", Count: 10, P50: 121, P99: 125},
		{Name: "publish ack", Count: 10, P50: 1, P99: 2},
	}}
	addGeoOverheads(res, p)
	want := map[string]float64{
		"floor us->eu": 40, "overhead p50 us->eu": 1.5, "overhead p99 us->eu": 3,
		"floor eu->eu": 0, "overhead p50 eu->eu": 0.8, "overhead p99 eu->eu": 2,
		"floor us->us": 80, "overhead p50 us->us": 1, "overhead p99 us->us": 5,
	}
	if len(res.Figures) != len(want) {
		t.Fatalf("figures %+v, want %d of them", res.Figures, len(want))
	}
	for name, v := range want {
		f, ok := res.Figure(name)
		if !ok || f.Value != v {
			t.Errorf("%s = %v (present %v), want %v", name, f.Value, ok, v)
		}
	}
	if p.Floors["ap-us"] != 80*time.Millisecond {
		t.Errorf("floors not symmetric: %v", p.Floors)
	}
}
