package edge

import (
	"crypto/rand"
	"math"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/arena-mesh/arena/protocol"
	"github.com/arena-mesh/arena/router"
)

// maxClientIDLen bounds an MQTT client identifier: it is kept per session
// and logged; MQTT 3.1.1 only promises 23 bytes.
const maxClientIDLen = 256

// mqttMaxPacket is the largest MQTT packet accepted from a client (the
// Maximum Packet Size announced to MQTT 5 clients): the WebSocket read
// limit, max(1 MiB, 4 × MaxDataBytes).
func (s *Server) mqttMaxPacket() int {
	return int(min(s.cfg.readLimit(), math.MaxInt32))
}

// handleConnect authenticates the CONNECT packet pk and answers CONNACK.
// It returns the keep-alive the client asked for, and false when the
// connection is refused (the CONNACK is written, then the socket closed).
//
// The password is the token (a JWT or an API key, as in the
// Authorization header of the WebSocket); the user name is ignored. In
// dev mode a CONNECT without password gets the anonymous principal.
func (s *mqttSession) handleConnect(pk *packets.Packet) (time.Duration, bool) {
	switch pk.ProtocolVersion {
	case 3, 4:
		s.setVersion(4, pk)
	case mqttVersion5:
		s.setVersion(mqttVersion5, pk)
	default:
		// Answer in 3.1.1 form, which every version can read
		// ([MQTT-3.1.2-2]; MQTT 5 section 3.1.2.2).
		s.setVersion(4, pk)
		return 0, s.refuse(mqtt3BadVersion, 0x84, "unsupported protocol version")
	}
	if code := pk.ConnectValidate(); code != packets.CodeSuccess {
		if s.version != mqttVersion5 {
			// 3.1.1 has no return code for a malformed CONNECT: close.
			s.log.Debug().Str("reason", code.Reason).Msg("mqtt connect refused")
			s.fail(mqttNoDisconnect, "", false)
			return 0, false
		}
		return 0, s.refuse(0, max(code.Code, mqttProtocolError), code.Reason)
	}
	if s.version == mqttVersion5 && pk.Properties.AuthenticationMethod != "" {
		return 0, s.refuse(mqtt3NotAuthorized, mqttBadAuthMethod, "enhanced authentication is not supported")
	}

	clientID, assigned := pk.Connect.ClientIdentifier, ""
	switch {
	case len(clientID) > maxClientIDLen:
		return 0, s.refuse(mqtt3IDRejected, 0x85, "client identifier is too long")
	case clientID == "" && s.version != mqttVersion5 && !pk.Connect.Clean:
		// [MQTT-3.1.3-8]: an empty id needs a clean session.
		return 0, s.refuse(mqtt3IDRejected, 0x85, "an empty client identifier needs a clean session")
	case clientID == "":
		clientID = "arena-" + rand.Text()[:16]
		assigned = clientID
	}

	var cred string
	if pk.Connect.PasswordFlag {
		cred = string(pk.Connect.Password)
	}
	p, err := s.srv.cfg.Auth.Authenticate(cred)
	if err != nil {
		s.srv.m.errorSent(protocol.CodeUnauthorized)
		s.log.Debug().Err(err).Msg("mqtt connect refused")
		return 0, s.refuse(mqtt3NotAuthorized, mqttBadCredentials, protocol.AsError(err).Message)
	}
	if pk.Connect.WillFlag {
		will, reason, err := s.willRequest(pk, p.User)
		if err != nil {
			s.srv.m.errorSent(protocol.AsError(err).Code)
			return 0, s.refuse(mqtt3NotAuthorized, reason, protocol.AsError(err).Message)
		}
		if !p.CanPublish(will.Room) {
			s.srv.m.errorSent(protocol.CodeForbidden)
			return 0, s.refuse(mqtt3NotAuthorized, mqttNotAuthorized, "no permission to publish the will to "+will.Room)
		}
		s.will = will
	}

	s.mu.Lock()
	s.clientID, s.user = clientID, p.User
	s.mu.Unlock()
	old, ok := s.srv.claimClientID(s)
	if !ok {
		return 0, s.refuse(mqtt3ServerUnavailable, mqttServerUnavailable, "node is draining; try another edge")
	}
	if old != nil {
		old.dropWill.Store(true)
		old.fail(mqttSessionTakenOver, "session taken over", true)
	}
	s.principal = p

	ack := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: mqttSuccess}
	if s.version == mqttVersion5 {
		pr := &ack.Properties
		pr.AssignedClientID = assigned
		pr.ReceiveMaximum = uint16(min(s.srv.cfg.MaxInFlight, math.MaxUint16))
		pr.MaximumPacketSize = uint32(s.srv.mqttMaxPacket())
		pr.RetainAvailable, pr.RetainAvailableFlag = 0, true
		pr.WildcardSubAvailable, pr.WildcardSubAvailableFlag = 0, true
		pr.SubIDAvailable, pr.SubIDAvailableFlag = 0, true
		pr.SharedSubAvailable, pr.SharedSubAvailableFlag = 0, true
	}
	s.send(ack)
	s.setExpiry(p.Expires)
	s.log.Debug().Str("user", p.User).Str("client", clientID).Uint8("version", s.version).Msg("mqtt connected")
	return time.Duration(pk.Connect.Keepalive) * time.Second, true
}

// setVersion records the protocol version and the client's MQTT 5
// limits, which every packet sent from now on follows.
func (s *mqttSession) setVersion(v byte, pk *packets.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version = v
	s.problemInfo = true
	s.outWindow = s.srv.cfg.MaxInFlight
	if v != mqttVersion5 {
		return
	}
	pr := &pk.Properties
	if pr.RequestProblemInfoFlag && pr.RequestProblemInfo == 0 {
		s.problemInfo = false
	}
	if pr.ReceiveMaximum > 0 {
		s.outWindow = min(s.outWindow, int(pr.ReceiveMaximum))
	}
	if pr.MaximumPacketSize > 0 {
		s.maxOut = int(min(pr.MaximumPacketSize, math.MaxInt32))
	}
}

// refuse answers CONNECT with a failed CONNACK (code3 for MQTT 3.1.1,
// code5 and reason for MQTT 5) and closes the connection. It returns
// false, for handleConnect's callers.
func (s *mqttSession) refuse(code3, code5 byte, reason string) bool {
	ack := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: code3}
	if s.version == mqttVersion5 {
		ack.ReasonCode = code5
		ack.Properties.ReasonString = reason
	}
	s.log.Debug().Str("reason", reason).Msg("mqtt connect refused")
	s.sendMode(ack, queueForced)
	s.dropWill.Store(true)
	s.fail(mqttNoDisconnect, "", true)
	return false
}

// willRequest maps the Will Message of CONNECT to a publish (the same
// mapping as PUBLISH), checked for topic, payload and size. The reason is
// the MQTT 5 CONNACK code of a failure.
func (s *mqttSession) willRequest(pk *packets.Packet, user string) (*router.PublishRequest, byte, error) {
	if pk.Connect.WillRetain && s.version == mqttVersion5 {
		return nil, mqttRetainNotSupported, protocol.Errorf(protocol.CodeBadRequest, "retained messages are not supported")
	}
	room, reason, err := mqttTopicRoom(pk.Connect.WillTopic)
	if err != nil {
		return nil, reason, err
	}
	data, err := mqttPayloadData(pk.Connect.WillPayload)
	if err != nil {
		return nil, mqttPayloadInvalid, err
	}
	if err := protocol.DataTooLarge(data, s.srv.cfg.MaxDataBytes); err != nil {
		return nil, mqttPacketTooLarge, err
	}
	return &router.PublishRequest{Room: room, From: user, Data: data}, mqttSuccess, nil
}
