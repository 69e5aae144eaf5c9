package router

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// eventMetrics count presence and receipt work. They are registered when
// the event machinery starts (the first Enter, Receipt, Presence or
// UserRooms, or the first peer frame about them).
type eventMetrics struct {
	changes    prometheus.Counter // joins and leaves flushed by homes here
	receipts   prometheus.Counter // receipt positions that advanced here
	deliveries prometheus.Counter // events handed to local connections
	stored     prometheus.Counter // receipt positions written to the wal
}

func newEventMetrics(reg prometheus.Registerer) (*eventMetrics, error) {
	m := &eventMetrics{
		changes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_router_presence_changes_total",
			Help: "Joins and leaves announced by the rooms homed on this node (after coalescing).",
		}),
		receipts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_router_receipts_total",
			Help: "Delivered and read positions that advanced at the rooms homed on this node.",
		}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_router_presence_deliveries_total",
			Help: "Presence and receipt events handed to this node's connections.",
		}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_router_receipt_positions_stored_total",
			Help: "Receipt positions written to the wal (coalesced per event interval).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.changes, m.receipts, m.deliveries, m.stored} {
		errs = append(errs, reg.Register(c))
	}
	return m, errors.Join(errs...)
}
