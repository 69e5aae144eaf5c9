package wal

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the log's Prometheus collectors. They are always created (the
// hot path updates them unconditionally) and registered only when
// Config.Registerer is set.
type metrics struct {
	batchRecords prometheus.Histogram
	fsyncSeconds prometheus.Histogram
	appends      prometheus.Counter
	// retentionDeleted counts what retention deleted by kind: "message",
	// "dedup_bucket" (a bucket of the key index), "dedup" (an entry of
	// the key index before buckets).
	retentionDeleted *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		batchRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "arena_wal_batch_records",
			Help:    "Records (appends and epoch changes) per group commit: one Pebble batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13), // 1 .. 4096
		}),
		fsyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "arena_wal_fsync_seconds",
			Help: "Time from a group being applied to Pebble until its WAL fsync completed " +
				"(including waiting behind an fsync already in flight, and for the sync interval if one is set).",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16), // 50µs .. 1.6s
		}),
		appends: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_wal_appends_total",
			Help: "Records appended (applied to Pebble).",
		}),
		retentionDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arena_wal_retention_deleted_total",
			Help: "Entries deleted by retention, by kind (message; dedup_bucket: a bucket of idempotency keys; dedup: an idempotency key of the index before buckets).",
		}, []string{"kind"}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	if r == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.batchRecords, m.fsyncSeconds, m.appends, m.retentionDeleted} {
		if err := r.Register(c); err != nil {
			m.unregister(r)
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}

func (m *metrics) unregister(r prometheus.Registerer) {
	if r == nil {
		return
	}
	for _, c := range []prometheus.Collector{m.batchRecords, m.fsyncSeconds, m.appends, m.retentionDeleted} {
		r.Unregister(c)
	}
}
