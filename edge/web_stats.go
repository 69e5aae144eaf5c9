package edge

import (
	"math"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// nodeStats is the body of GET /v1/stats: this node's counters, for the
// dashboard, which polls every node and turns totals into rates.
type nodeStats struct {
	Node   string `json:"node"`
	Region string `json:"region"`
	URL    string `json:"url"`
	// State is "alive", or "draining" once Drain or Close began.
	State string `json:"state"`
	// Time is the node's clock when the stats were taken, ms since the Unix
	// epoch: rates are computed between two of these.
	Time    int64   `json:"time"`
	UptimeS float64 `json:"uptime_s"`
	// Connections counts the WebSocket sessions, SSEStreams the event
	// streams open now.
	Connections int `json:"connections"`
	SSEStreams  int `json:"sse_streams"`
	// PublishesTotal counts the publishes accepted (WebSocket and HTTP,
	// duplicates included), PublishErrorsTotal those refused, and
	// DeliveriesTotal the messages written to subscribers, since start.
	PublishesTotal     uint64 `json:"publishes_total"`
	PublishErrorsTotal uint64 `json:"publish_errors_total"`
	DeliveriesTotal    uint64 `json:"deliveries_total"`
	// Rooms is the number of rooms the node's router holds, when its
	// metrics are in Config.Gatherer.
	Rooms *int64 `json:"rooms,omitempty"`
	// Latency summarizes every latency histogram of the node's metrics
	// (arena_*_seconds in Config.Gatherer), by metric name.
	Latency map[string]latencySummary `json:"latency"`
}

// latencySummary is one latency histogram: percentiles since the node
// started, and the cumulative buckets, so that a poller can compute the
// percentiles of the interval between two polls.
type latencySummary struct {
	Count uint64  `json:"count"`
	SumS  float64 `json:"sum_s"`
	P50MS float64 `json:"p50_ms"`
	P90MS float64 `json:"p90_ms"`
	P99MS float64 `json:"p99_ms"`
	// Buckets are cumulative: N observations took at most LE seconds. The
	// +Inf bucket is left out (its count is Count).
	Buckets []latencyBucket `json:"buckets"`
}

// latencyBucket is one cumulative histogram bucket.
type latencyBucket struct {
	LE float64 `json:"le"`
	N  uint64  `json:"n"`
}

// statsHandler serves GET /v1/stats. It needs no credential (like
// /metrics) and allows any origin: the dashboard, served by one node,
// reads every node's stats.
func (s *Server) statsHandler() http.HandlerFunc {
	started := s.now()
	return func(w http.ResponseWriter, r *http.Request) {
		now := s.now()
		conns, streams := s.load()
		st := nodeStats{
			Node:        s.cfg.NodeID,
			Region:      s.cfg.Region,
			URL:         selfURL(r),
			State:       "alive",
			Time:        now.UnixMilli(),
			UptimeS:     now.Sub(started).Seconds(),
			Connections: conns,
			SSEStreams:  streams,
			Latency:     map[string]latencySummary{},
		}
		if !s.accepting() {
			st.State = "draining"
		}
		ok := counterValue(s.m.pubOK) + counterValue(s.m.pubDup)
		st.PublishesTotal = uint64(ok)
		st.PublishErrorsTotal = uint64(max(0, vecTotal(s.m.publishes)-ok))
		st.DeliveriesTotal = uint64(counterValue(s.m.deliveries))
		s.gatherStats(&st)
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, st)
	}
}

// gatherStats adds what only the node's registry knows: the router's room
// count and the latency histograms. A failing collector leaves its part
// out; the stats are best effort.
func (s *Server) gatherStats(st *nodeStats) {
	families, _ := s.cfg.Gatherer.Gather()
	for _, f := range families {
		name := f.GetName()
		switch {
		case name == "arena_router_rooms" && f.GetType() == dto.MetricType_GAUGE:
			var n int64
			for _, m := range f.GetMetric() {
				n += int64(m.GetGauge().GetValue())
			}
			st.Rooms = &n
		case f.GetType() == dto.MetricType_HISTOGRAM && strings.HasPrefix(name, "arena_") && strings.HasSuffix(name, "_seconds"):
			if l, ok := summarize(f.GetMetric()); ok {
				st.Latency[name] = l
			}
		}
	}
}

// summarize merges the series of one histogram family (label sets with
// the same buckets) and computes its percentiles.
func summarize(ms []*dto.Metric) (latencySummary, bool) {
	var l latencySummary
	for _, m := range ms {
		h := m.GetHistogram()
		if h == nil {
			continue
		}
		bs := h.GetBucket()
		if l.Buckets == nil {
			l.Buckets = make([]latencyBucket, 0, len(bs))
			for _, b := range bs {
				if !math.IsInf(b.GetUpperBound(), 1) {
					l.Buckets = append(l.Buckets, latencyBucket{LE: b.GetUpperBound()})
				}
			}
		}
		if len(bs) < len(l.Buckets) {
			continue // different buckets: not mergeable
		}
		for i := range l.Buckets {
			l.Buckets[i].N += bs[i].GetCumulativeCount()
		}
		l.Count += h.GetSampleCount()
		l.SumS += h.GetSampleSum()
	}
	if l.Buckets == nil {
		return l, false
	}
	l.P50MS = quantile(0.50, l.Buckets, l.Count) * 1000
	l.P90MS = quantile(0.90, l.Buckets, l.Count) * 1000
	l.P99MS = quantile(0.99, l.Buckets, l.Count) * 1000
	return l, true
}

// quantile estimates the q-quantile of a cumulative histogram by linear
// interpolation within the bucket it falls in, as Prometheus's
// histogram_quantile does. Past the last finite bucket it answers that
// bucket's bound; with no observations, 0.
func quantile(q float64, bs []latencyBucket, count uint64) float64 {
	if count == 0 || len(bs) == 0 {
		return 0
	}
	rank := q * float64(count)
	lo, below := 0.0, 0.0
	for _, b := range bs {
		if float64(b.N) >= rank {
			in := float64(b.N) - below
			if in <= 0 {
				return b.LE
			}
			return lo + (b.LE-lo)*(rank-below)/in
		}
		lo, below = b.LE, float64(b.N)
	}
	return bs[len(bs)-1].LE
}

// counterValue reads a counter's current value.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if c.Write(&m) != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// vecTotal sums every series of a counter vector.
func vecTotal(v *prometheus.CounterVec) float64 {
	ch := make(chan prometheus.Metric, 16)
	go func() {
		v.Collect(ch)
		close(ch)
	}()
	var sum float64
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) == nil {
			sum += d.GetCounter().GetValue()
		}
	}
	return sum
}
