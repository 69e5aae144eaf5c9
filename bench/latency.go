package bench

import (
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram range: 1 µs resolution at the bottom, 10 minutes at the top,
// three significant digits (every value within 0.1%).
const (
	histLowest  = int64(time.Microsecond)
	histHighest = int64(10 * time.Minute)
	histDigits  = 3
)

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowest, histHighest, histDigits)
}

// Latency records latencies (nanoseconds) from many goroutines into HDR
// histograms. It is sharded so that thousands of receiving goroutines do
// not all queue on one lock: a caller passes any number (its receiver
// index) to pick a shard. Each shard keeps the whole run and the current
// progress window (what the live progress line shows, reset each time it
// is read).
//
// Coordinated omission is handled by what callers record, not here: every
// latency in this harness is measured from the moment a fixed-rate
// schedule meant to send the message (see Pacer), so a stall anywhere, in
// the target or in the harness, shows in every message it delayed. See
// the package documentation.
type Latency struct {
	name   string
	shards []latencyShard
}

type latencyShard struct {
	mu     sync.Mutex // guards total and window
	total  *hdrhistogram.Histogram
	window *hdrhistogram.Histogram
	_      [64]byte // keep shards on separate cache lines
}

// NewLatency returns an empty recorder; name labels it in reports
// ("delivery", "ack", ...).
func NewLatency(name string) *Latency {
	n := 2 * runtime.GOMAXPROCS(0)
	if n < 4 {
		n = 4
	}
	l := &Latency{name: name, shards: make([]latencyShard, n)}
	for i := range l.shards {
		l.shards[i].total = newHist()
		l.shards[i].window = newHist()
	}
	return l
}

// Name returns the recorder's label.
func (l *Latency) Name() string { return l.name }

// Record adds one latency of ns nanoseconds. Values outside the range are
// clamped (a negative one can only come from a payload the harness did
// not write).
func (l *Latency) Record(shard int, ns int64) {
	ns = max(0, min(ns, histHighest))
	s := &l.shards[uint(shard)%uint(len(l.shards))]
	s.mu.Lock()
	_ = s.total.RecordValue(ns)
	_ = s.window.RecordValue(ns)
	s.mu.Unlock()
}

// Total returns a merged copy of everything recorded.
func (l *Latency) Total() *hdrhistogram.Histogram {
	h := newHist()
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		h.Merge(s.total)
		s.mu.Unlock()
	}
	return h
}

// TakeWindow returns a merged copy of what was recorded since the last
// call and starts a new window.
func (l *Latency) TakeWindow() *hdrhistogram.Histogram {
	h := newHist()
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		h.Merge(s.window)
		s.window.Reset()
		s.mu.Unlock()
	}
	return h
}

// LatencySummary is a latency distribution as reported: milliseconds.
type LatencySummary struct {
	Name  string  `json:"name"`
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	P9999 float64 `json:"p99_99_ms"`
	Max   float64 `json:"max_ms"`
	// Dist is the percentile curve for plots, from p0 (the minimum) to
	// the maximum, spaced evenly on the logarithmic 1/(1-p) scale.
	Dist []Point `json:"dist,omitempty"`
}

// Point is one point of a percentile curve: the latency at percentile P.
type Point struct {
	P  float64 `json:"p"` // percentile, 0 to 100
	MS float64 `json:"ms"`
}

// Summarize turns a histogram of nanoseconds into a summary.
func Summarize(name string, h *hdrhistogram.Histogram) LatencySummary {
	s := LatencySummary{Name: name, Count: h.TotalCount()}
	if s.Count == 0 {
		return s
	}
	s.Mean = h.Mean() / 1e6
	s.P50 = ms(h.ValueAtQuantile(50))
	s.P90 = ms(h.ValueAtQuantile(90))
	s.P99 = ms(h.ValueAtQuantile(99))
	s.P999 = ms(h.ValueAtQuantile(99.9))
	s.P9999 = ms(h.ValueAtQuantile(99.99))
	s.Max = ms(h.Max())
	s.Dist = percentileCurve(h)
	return s
}

// percentileCurve samples h at 1/(1-p) = 10^(k/20) for k = 0, 1, ...,
// while there are enough samples for that percentile to mean something
// (1/(1-p) at most the count), and ends with the maximum at the next
// step.
func percentileCurve(h *hdrhistogram.Histogram) []Point {
	n := float64(h.TotalCount())
	var pts []Point
	for k := 0; ; k++ {
		x := math.Pow(10, float64(k)/20)
		p := 100 * (1 - 1/x)
		if x > n || p >= 100 {
			pts = append(pts, Point{P: p, MS: ms(h.Max())})
			return pts
		}
		pts = append(pts, Point{P: p, MS: ms(h.ValueAtQuantile(p))})
	}
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }
