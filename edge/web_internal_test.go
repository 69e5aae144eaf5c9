package edge

import (
	"math"
	"testing"
)

// TestQuantile checks the histogram interpolation /v1/stats reports
// percentiles with.
func TestQuantile(t *testing.T) {
	bs := []latencyBucket{{LE: 0.001, N: 10}, {LE: 0.002, N: 30}, {LE: 0.004, N: 40}}
	for _, tc := range []struct {
		name  string
		q     float64
		bs    []latencyBucket
		count uint64
		want  float64
	}{
		{"empty", 0.5, bs[:0], 0, 0},
		{"no observations", 0.5, []latencyBucket{{LE: 1}}, 0, 0},
		{"inside the first bucket", 0.1, bs, 40, 0.0004},
		{"median in the second bucket", 0.5, bs, 40, 0.0015},
		{"bucket edge", 0.75, bs, 40, 0.002},
		{"p99 in the last bucket", 0.99, bs, 40, 0.002 + 0.002*(39.6-30)/10},
		{"past the last finite bucket", 0.99, bs, 100, 0.004},
		{"empty bucket before", 0.5, []latencyBucket{{LE: 1, N: 0}, {LE: 2, N: 0}, {LE: 4, N: 2}}, 2, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := quantile(tc.q, tc.bs, tc.count); math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
}
