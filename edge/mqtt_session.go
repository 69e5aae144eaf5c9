package edge

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/edge/auth"
	"github.com/arena-mesh/arena/protocol"
	"github.com/arena-mesh/arena/router"
)

// mqttSession is one MQTT client connection. Like a WebSocket session it
// has exactly two goroutines: the reader (run) decodes and handles
// packets; the writer (writeLoop) writes queued control packets and the
// PUBLISH packets of messages it pulls from dirty subscriptions. Nothing
// is kept after the connection ends (no persistent MQTT sessions).
type mqttSession struct {
	srv    *Server
	conn   net.Conn
	br     *bufio.Reader
	id     string
	remote string
	log    zerolog.Logger

	// ctx ends when the session is torn down or the server cuts every
	// socket; cancelling it closes the socket.
	ctx    context.Context
	cancel context.CancelFunc

	// Set by connect on the reader, before the first SUBSCRIBE (so before
	// the writer pulls anything), and read-only afterwards.
	version     byte // 4 (3.1.1; 3.1 is served as 3.1.1) or mqttVersion5
	clientID    string
	user        string
	maxOut      int  // the client's Maximum Packet Size (MQTT 5); 0: none
	problemInfo bool // MQTT 5 Request Problem Information: reason strings allowed
	outWindow   int  // outbound QoS 1 PUBLISHes unacknowledged at most

	// Reader-owned state.
	principal *auth.Principal
	subs      map[string]*mqttSub
	will      *router.PublishRequest // the Will Message, mapped and checked at CONNECT
	pubSem    chan struct{}          // one token per publish waiting for durability

	// dropWill is set when the connection ends in a way that must not
	// publish the will: a normal DISCONNECT, drain, takeover, expiry.
	dropWill    atomic.Bool
	expiryTimer *time.Timer // set once by connect; stopped at teardown

	wake       chan struct{} // cap 1: the writer has work
	done       chan struct{} // closed by fail
	writerDone chan struct{} // closed when the writer returns

	mu         sync.Mutex // guards everything below
	space      sync.Cond  // on mu: signalled when the control queue empties or closing starts
	ctrl       []byte     // encoded control packets, in order
	ctrlCount  int
	dirty      []*mqttSub
	blocked    []*mqttSub          // QoS 1 subscriptions waiting for a free packet id
	inflight   map[uint16]struct{} // outbound QoS 1 packet ids not yet PUBACKed
	nextID     uint16
	awaitRel   map[uint16]struct{} // inbound QoS 2 packet ids PUBRECed, waiting for PUBREL
	closing    bool
	closeCode  byte // MQTT 5 DISCONNECT reason, or mqttNoDisconnect
	closeText  string
	closeFlush bool
}

func newMQTTSession(srv *Server, conn net.Conn) *mqttSession {
	id := rand.Text()[:16]
	remote := conn.RemoteAddr().String()
	s := &mqttSession{
		srv:        srv,
		conn:       conn,
		br:         bufio.NewReader(conn),
		id:         id,
		remote:     remote,
		log:        srv.log.With().Str("conn", id).Str("remote", remote).Str("proto", "mqtt").Logger(),
		subs:       make(map[string]*mqttSub),
		pubSem:     make(chan struct{}, srv.cfg.MaxInFlight),
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
		inflight:   make(map[uint16]struct{}),
		awaitRel:   make(map[uint16]struct{}),
	}
	s.space.L = &s.mu
	s.ctx, s.cancel = context.WithCancel(srv.hardCtx)
	return s
}

// clientKey identifies the session for takeover.
func (s *mqttSession) clientKey() mqttClientKey {
	return mqttClientKey{user: s.user, clientID: s.clientID}
}

// run serves the session until the connection ends: it is the reader.
func (s *mqttSession) run() {
	s.log.Debug().Msg("mqtt session open")
	// Cutting every socket at once (the end of a drain) cancels ctx.
	stop := context.AfterFunc(s.ctx, func() { _ = s.conn.Close() })
	defer stop()
	go s.writeLoop()
	s.readLoop()

	s.fail(mqttNoDisconnect, "", false)
	<-s.writerDone
	_ = s.conn.Close()
	s.cancel()
	if s.expiryTimer != nil {
		s.expiryTimer.Stop()
	}
	for _, st := range s.subs {
		st.close()
	}
	if s.will != nil && !s.dropWill.Load() {
		s.publishWill()
	}
	s.mu.Lock()
	s.ctrl, s.ctrlCount, s.dirty, s.blocked = nil, 0, nil, nil
	s.mu.Unlock()
	s.log.Debug().Msg("mqtt session closed")
}

// readLoop reads packets until the connection fails or the session
// closes. The first packet must be CONNECT, within ConnectTimeout; later
// ones within 1.5 times the keep-alive the client asked for.
func (s *mqttSession) readLoop() {
	limit := s.srv.mqttMaxPacket()
	_ = s.conn.SetReadDeadline(time.Now().Add(s.srv.cfg.ConnectTimeout))
	pk, err := readMQTTPacket(s.br, 0, limit)
	if err != nil {
		s.readFailed(err)
		return
	}
	s.srv.mqtt.m.packetsIn.Inc()
	if pk.FixedHeader.Type != packets.Connect {
		s.log.Debug().Msg("mqtt first packet is not connect")
		return // [MQTT-3.1.0-1]: close without a reply
	}
	keepAlive, ok := s.handleConnect(pk)
	if !ok {
		return
	}
	for {
		if keepAlive > 0 {
			_ = s.conn.SetReadDeadline(time.Now().Add(keepAlive * 3 / 2))
		} else {
			_ = s.conn.SetReadDeadline(time.Time{})
		}
		pk, err := readMQTTPacket(s.br, s.version, limit)
		if err != nil {
			s.readFailed(err)
			return
		}
		s.srv.mqtt.m.packetsIn.Inc()
		if s.isClosing() || !s.handlePacket(pk) {
			return
		}
	}
}

// readFailed ends the session after a failed read: a malformed packet
// gets a DISCONNECT with its reason (MQTT 5), a keep-alive timeout 0x8D.
func (s *mqttSession) readFailed(err error) {
	var pe *mqttPacketError
	var ne net.Error
	switch {
	case errors.As(err, &pe):
		s.log.Debug().Err(err).Msg("mqtt bad packet")
		s.fail(pe.reason, pe.err.Error(), true)
	case errors.As(err, &ne) && ne.Timeout() && !s.isClosing():
		s.log.Debug().Msg("mqtt keep-alive timeout")
		s.fail(mqttKeepAliveTimeout, "keep alive timeout", true)
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	default:
		s.log.Debug().Err(err).Msg("mqtt read ended")
	}
}

// handlePacket handles one packet after CONNECT; false ends the session.
func (s *mqttSession) handlePacket(pk *packets.Packet) bool {
	switch pk.FixedHeader.Type {
	case packets.Publish:
		s.handlePublish(pk)
	case packets.Puback:
		s.handlePuback(pk.PacketID)
	case packets.Pubrel:
		s.handlePubrel(pk)
	case packets.Pubrec, packets.Pubcomp:
		// The server never sends QoS 2, so these answer nothing.
	case packets.Subscribe:
		s.handleSubscribe(pk)
	case packets.Unsubscribe:
		s.handleUnsubscribe(pk)
	case packets.Pingreq:
		s.send(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingresp}})
	case packets.Disconnect:
		if s.version != mqttVersion5 || pk.ReasonCode != mqttDisconnectWithWill {
			s.dropWill.Store(true) // [MQTT-3.14.4-3]
		}
		s.fail(mqttNoDisconnect, "", false)
		return false
	case packets.Connect:
		s.fail(mqttProtocolError, "second connect", false) // [MQTT-3.1.0-2]
		return false
	case packets.Auth:
		s.fail(mqttProtocolError, "enhanced authentication is not supported", true)
		return false
	}
	return true
}

// isClosing reports whether fail has been called.
func (s *mqttSession) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// fail starts closing the session: the writer writes the queued control
// packets when flush is set, then (MQTT 5, code not mqttNoDisconnect) a
// DISCONNECT with code and reason, then closes the socket. Only the
// first call counts. It never blocks.
func (s *mqttSession) fail(code byte, reason string, flush bool) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.closing = true
	s.closeCode, s.closeText, s.closeFlush = code, reason, flush
	s.space.Broadcast()
	s.mu.Unlock()
	close(s.done)
	if code != mqttNoDisconnect {
		s.log.Debug().Uint8("reason", code).Str("text", reason).Msg("closing mqtt session")
	}
}

// setExpiry arms the timer that closes the session when the token
// expires (MQTT 5: DISCONNECT 0x87); a zero time never expires. MQTT
// cannot refresh a token: the client reconnects with a fresh one.
func (s *mqttSession) setExpiry(exp time.Time) {
	if exp.IsZero() {
		return
	}
	s.expiryTimer = time.AfterFunc(exp.Sub(s.srv.now()), func() {
		s.dropWill.Store(true)
		s.srv.m.errorSent(protocol.CodeUnauthorized)
		s.fail(mqttNotAuthorized, "token expired", true)
	})
}

// errRateLimitedWill counts a will dropped by the rate limit.
var errRateLimitedWill = protocol.Errorf(protocol.CodeRateLimited, "will dropped by the publish rate limit")

// publishWill publishes the Will Message of a connection that ended
// without a normal DISCONNECT. It goes through the user's rate limit
// like any publish; its outcome is only counted.
func (s *mqttSession) publishWill() {
	if ok, _ := s.srv.limiters.allow(s.user, s.srv.now()); !ok {
		s.srv.m.published(false, errRateLimitedWill)
		return
	}
	err := s.srv.cfg.Router.PublishAsync(s.srv.hardCtx, *s.will, func(ack router.Ack, err error) {
		s.srv.m.published(ack.Dup, s.srv.publishOutcome(err))
	})
	if err != nil {
		s.srv.m.published(false, s.srv.publishOutcome(err))
	}
}
