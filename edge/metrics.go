package edge

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arena-mesh/arena/protocol"
)

// metrics are the edge's Prometheus collectors. Hot-path counters are
// resolved once (no label lookup per frame).
type metrics struct {
	connections   prometheus.Gauge
	parkedReaders prometheus.Gauge
	framesIn      *prometheus.CounterVec // by op
	framesOut     prometheus.Counter
	wsWrites      prometheus.Counter
	publishes     *prometheus.CounterVec // by result
	deliveries    prometheus.Counter
	slowCloses    prometheus.Counter
	errors        *prometheus.CounterVec // by code
	sseStreams    prometheus.Gauge
	sendQueued    prometheus.Gauge

	framesInByOp map[string]prometheus.Counter
	framesInBad  prometheus.Counter
	pubOK        prometheus.Counter
	pubDup       prometheus.Counter
}

// Label values of arena_edge_publishes_total besides the error codes.
const (
	resultOK  = "ok"
	resultDup = "dup"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "arena_edge_connections",
			Help: "WebSocket connections currently open.",
		}),
		parkedReaders: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "arena_edge_parked_readers",
			Help: "WebSocket connections idle long enough that no goroutine reads them: the node's idle watch wakes a reader when data comes.",
		}),
		framesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arena_edge_frames_in_total",
			Help: "Client frames received, by op (\"invalid\" for frames that did not decode).",
		}, []string{"op"}),
		framesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_edge_frames_out_total",
			Help: "Server frames written to WebSockets.",
		}),
		wsWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_edge_ws_writes_total",
			Help: "WebSocket messages written; frames_out/ws_writes is the batching factor.",
		}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arena_edge_publishes_total",
			Help: "Publishes handled (WebSocket and HTTP), by result: ok, dup, or the error code.",
		}, []string{"result"}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_edge_deliveries_total",
			Help: "Messages delivered to subscribers (WebSocket and SSE).",
		}),
		slowCloses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_edge_slow_closes_total",
			Help: "Connections closed with 4010 because they could not keep up.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arena_edge_errors_total",
			Help: "Errors sent to clients (error frames and HTTP errors), by code.",
		}, []string{"code"}),
		sseStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "arena_edge_sse_streams",
			Help: "Server-Sent Events streams currently open.",
		}),
		sendQueued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "arena_edge_send_queue_frames",
			Help: "Control frames queued on all connections, not yet written. Messages are not queued: writers pull them from the router.",
		}),
	}
	if reg != nil {
		var err error
		r := registrar{reg: reg, err: &err}
		m.connections = register(r, m.connections)
		m.parkedReaders = register(r, m.parkedReaders)
		m.framesIn = register(r, m.framesIn)
		m.framesOut = register(r, m.framesOut)
		m.wsWrites = register(r, m.wsWrites)
		m.publishes = register(r, m.publishes)
		m.deliveries = register(r, m.deliveries)
		m.slowCloses = register(r, m.slowCloses)
		m.errors = register(r, m.errors)
		m.sseStreams = register(r, m.sseStreams)
		m.sendQueued = register(r, m.sendQueued)
		if err != nil {
			return nil, err
		}
	}
	m.framesInByOp = make(map[string]prometheus.Counter)
	for _, op := range []string{
		protocol.OpConnect, protocol.OpSub, protocol.OpUnsub, protocol.OpPub, protocol.OpRecv,
		protocol.OpRead, protocol.OpHistory, protocol.OpPresence, protocol.OpRefresh, protocol.OpPing,
	} {
		m.framesInByOp[op] = m.framesIn.WithLabelValues(op)
	}
	m.framesInBad = m.framesIn.WithLabelValues("invalid")
	m.pubOK = m.publishes.WithLabelValues(resultOK)
	m.pubDup = m.publishes.WithLabelValues(resultDup)
	return m, nil
}

// registrar registers collectors and keeps the first error.
type registrar struct {
	reg prometheus.Registerer
	err *error
}

// register registers c, or returns the collector already registered under
// the same name (a server restarted in the same process, as tests do).
func register[C prometheus.Collector](r registrar, c C) C {
	err := r.reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	if *r.err == nil {
		*r.err = fmt.Errorf("register edge metrics: %w", err)
	}
	return c
}

// frameIn counts one received frame; op is "" for frames that did not
// decode or carry an unknown op.
func (m *metrics) frameIn(op string) {
	if c, ok := m.framesInByOp[op]; ok {
		c.Inc()
		return
	}
	m.framesInBad.Inc()
}

// published counts one publish outcome.
func (m *metrics) published(dup bool, err error) {
	switch {
	case err != nil:
		m.publishes.WithLabelValues(string(protocol.AsError(err).Code)).Inc()
	case dup:
		m.pubDup.Inc()
	default:
		m.pubOK.Inc()
	}
}

// errorSent counts one error reported to a client.
func (m *metrics) errorSent(code protocol.Code) {
	m.errors.WithLabelValues(string(code)).Inc()
}
