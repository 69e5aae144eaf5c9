package edge

import (
	"errors"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// mqttState is the Server's MQTT side: its listeners and sessions. Its
// fields are guarded by Server.mu.
type mqttState struct {
	listeners map[net.Listener]struct{}
	sessions  map[*mqttSession]struct{}
	// byClient finds the session of a client id, per user, for session
	// takeover ([MQTT-3.1.4-2]). Keyed by user too, so that one user
	// cannot cut another's connection by guessing its client id.
	byClient map[mqttClientKey]*mqttSession
	m        *mqttMetrics
}

type mqttClientKey struct{ user, clientID string }

func newMQTTState(reg prometheus.Registerer) (mqttState, error) {
	m, err := newMQTTMetrics(reg)
	if err != nil {
		return mqttState{}, err
	}
	return mqttState{
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*mqttSession]struct{}),
		byClient:  make(map[mqttClientKey]*mqttSession),
		m:         m,
	}, nil
}

// ServeMQTT serves MQTT 3.1.1 and 5 clients on ln (see "MQTT" in the
// package doc) until Drain or Close, which close ln; it then returns nil.
// It returns the listener's error if Accept fails for another reason. The
// caller owns ln's goroutine (like http.Server.Serve); the Server owns the
// connections' goroutines and stops them on Drain and Close. ServeMQTT may
// be called for several listeners.
func (s *Server) ServeMQTT(ln net.Listener) error {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		_ = ln.Close()
		return nil
	}
	s.mqtt.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.mqtt.listeners, ln)
		s.mu.Unlock()
	}()
	s.log.Info().Str("addr", ln.Addr().String()).Msg("mqtt listening")

	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if !s.accepting() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: wait, as
				// net/http does, instead of spinning.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn().Err(err).Dur("retry", backoff).Msg("mqtt accept failed")
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-s.streamsDone:
					t.Stop()
				}
				continue
			}
			return err
		}
		backoff = 0
		sess := newMQTTSession(s, conn)
		if !s.trackMQTT(sess) {
			_ = conn.Close()
			continue
		}
		go func() {
			defer s.untrackMQTT(sess)
			sess.run()
		}()
	}
}

// isTemporary reports whether err says to retry (EMFILE, ECONNABORTED).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// trackMQTT registers a new session; false once the server drains.
func (s *Server) trackMQTT(sess *mqttSession) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.mqtt.sessions[sess] = struct{}{}
	s.wg.Add(1)
	s.mqtt.m.connections.Inc()
	return true
}

// untrackMQTT removes a session registered by trackMQTT.
func (s *Server) untrackMQTT(sess *mqttSession) {
	s.mu.Lock()
	delete(s.mqtt.sessions, sess)
	if k := sess.clientKey(); s.mqtt.byClient[k] == sess {
		delete(s.mqtt.byClient, k)
	}
	s.mu.Unlock()
	s.mqtt.m.connections.Dec()
	s.wg.Done()
}

// claimClientID makes sess the session of its client id and returns the
// session it takes over from, if any ([MQTT-3.1.4-2]); false once the
// server drains.
func (s *Server) claimClientID(sess *mqttSession) (old *mqttSession, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return nil, false
	}
	k := sess.clientKey()
	old = s.mqtt.byClient[k]
	s.mqtt.byClient[k] = sess
	return old, true
}

// mqttGoAway closes the MQTT listeners and tells every MQTT session that
// the server is going away (MQTT 5: DISCONNECT 0x8B), for Drain and Close.
// Server.shutdown calls it once draining is set, so no session or
// listener is added afterwards.
func (s *Server) mqttGoAway() {
	s.mu.Lock()
	lns := make([]net.Listener, 0, len(s.mqtt.listeners))
	for ln := range s.mqtt.listeners {
		lns = append(lns, ln)
	}
	sessions := make([]*mqttSession, 0, len(s.mqtt.sessions))
	for sess := range s.mqtt.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, ln := range lns {
		_ = ln.Close()
	}
	for _, sess := range sessions {
		sess.dropWill.Store(true) // the client is not gone; it moves to another edge
		sess.fail(mqttShuttingDown, "server shutting down", true)
	}
}

// mqttMetrics are the MQTT listener's own collectors; publishes,
// deliveries and errors are counted in the edge's shared metrics.
type mqttMetrics struct {
	connections prometheus.Gauge
	packetsIn   prometheus.Counter
	packetsOut  prometheus.Counter
	dropped     prometheus.Counter
	throttled   prometheus.Counter
}

func newMQTTMetrics(reg prometheus.Registerer) (*mqttMetrics, error) {
	m := &mqttMetrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "arena_edge_mqtt_connections",
			Help: "MQTT connections currently open.",
		}),
		packetsIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_edge_mqtt_packets_in_total",
			Help: "MQTT packets received.",
		}),
		packetsOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_edge_mqtt_packets_out_total",
			Help: "MQTT packets sent.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_edge_mqtt_dropped_total",
			Help: "Messages not delivered to an MQTT client because they exceed its maximum packet size, and QoS 0 publishes dropped because the room's home was unavailable.",
		}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_edge_mqtt_throttled_total",
			Help: "MQTT publishes that waited for their user's rate limit (MQTT publishes are slowed down, not refused).",
		}),
	}
	if reg != nil {
		var err error
		r := registrar{reg: reg, err: &err}
		m.connections = register(r, m.connections)
		m.packetsIn = register(r, m.packetsIn)
		m.packetsOut = register(r, m.packetsOut)
		m.dropped = register(r, m.dropped)
		m.throttled = register(r, m.throttled)
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}
