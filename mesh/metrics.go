package mesh

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the mesh's Prometheus collectors, labelled node=NodeID so
// several nodes can share a registry (arena dev runs three in a process).
type metrics struct {
	framesSent        prometheus.Counter
	bytesSent         prometheus.Counter
	framesReceived    prometheus.Counter
	bytesReceived     prometheus.Counter
	framesDropped     *prometheus.CounterVec // reason
	sendBlocked       prometheus.Counter
	badFrames         prometheus.Counter
	handshakeFailures *prometheus.CounterVec // side
	dials             *prometheus.CounterVec // result
	badMeta           prometheus.Counter
	rejoins           prometheus.Counter
	staleConns        prometheus.Counter
	wanDropped        prometheus.Counter
	members           prometheus.GaugeFunc
	connected         prometheus.GaugeFunc
}

// Reasons a frame accepted by Send was not delivered.
const (
	dropPeerGone = "peer_gone"  // the peer left or died with frames queued
	dropConnLost = "conn_lost"  // the write failed: connection or stream gone
	dropNoReader = "no_handler" // received with no Config.Handler
)

func newMetrics(node NodeID, members, connected func() float64) *metrics {
	cl := prometheus.Labels{"node": string(node)}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "arena", Subsystem: "mesh", Name: name, Help: help, ConstLabels: cl})
	}
	vec := func(name, help, label string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "arena", Subsystem: "mesh", Name: name, Help: help, ConstLabels: cl}, []string{label})
	}
	gauge := func(name, help string, f func() float64) prometheus.GaugeFunc {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "arena", Subsystem: "mesh", Name: name, Help: help, ConstLabels: cl}, f)
	}
	return &metrics{
		framesSent:        counter("frames_sent_total", "Frames written to peer streams."),
		bytesSent:         counter("frame_bytes_sent_total", "Payload bytes written to peer streams."),
		framesReceived:    counter("frames_received_total", "Frames read from peer streams."),
		bytesReceived:     counter("frame_bytes_received_total", "Payload bytes read from peer streams."),
		framesDropped:     vec("frames_dropped_total", "Frames accepted by Send but not delivered, or received but not handled, by reason.", "reason"),
		sendBlocked:       counter("send_blocked_total", "Sends that waited for lane credit (back-pressure)."),
		badFrames:         counter("bad_frames_total", "Peer streams cancelled for a malformed envelope."),
		handshakeFailures: vec("handshake_failures_total", "QUIC handshakes rejected because the peer is not a cluster member, by side (server: it dialed us).", "side"),
		dials:             vec("dials_total", "QUIC dials to peers, by result.", "result"),
		badMeta:           counter("bad_meta_total", "Gossiped node metadata that failed to decode; the node is ignored."),
		rejoins:           counter("rejoins_total", "Periodic re-joins that reached at least one peer not seen alive."),
		staleConns:        counter("stale_connections_total", "Connections dropped because their peer came back after being declared dead and they had heard nothing since."),
		wanDropped:        counter("wan_dropped_packets_total", "Packets dropped by WAN emulation."),
		members:           gauge("members", "Live members, self included.", members),
		connected:         gauge("peers_connected", "Peers with an open QUIC connection.", connected),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	if r == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{
		m.framesSent, m.bytesSent, m.framesReceived, m.bytesReceived, m.framesDropped,
		m.sendBlocked, m.badFrames, m.handshakeFailures, m.dials, m.badMeta, m.rejoins, m.staleConns,
		m.wanDropped, m.members, m.connected,
	} {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("register mesh metrics: %w", err)
		}
	}
	return nil
}

func (m *metrics) unregister(r prometheus.Registerer) {
	if r == nil {
		return
	}
	for _, c := range []prometheus.Collector{
		m.framesSent, m.bytesSent, m.framesReceived, m.bytesReceived, m.framesDropped,
		m.sendBlocked, m.badFrames, m.handshakeFailures, m.dials, m.badMeta, m.rejoins, m.staleConns,
		m.wanDropped, m.members, m.connected,
	} {
		r.Unregister(c)
	}
}
