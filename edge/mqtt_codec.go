package edge

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/mochi-mqtt/server/v2/packets"
)

// The MQTT wire format is encoded and decoded by the packets package of
// mochi-mqtt (github.com/mochi-mqtt/server/v2/packets), which speaks both
// MQTT 3.1.1 and 5 and has no dependency besides the standard library.
// This file only frames packets on the byte stream and turns the
// library's errors into reason codes.

// mqttVersion5 is the protocol level of MQTT 5 in CONNECT; 4 is 3.1.1 and
// 3 is 3.1 ("MQIsdp"), served as 3.1.1.
const mqttVersion5 byte = 5

// mqttPacketError is a packet that could not be read: the connection is
// closed, with a DISCONNECT carrying reason for MQTT 5.
type mqttPacketError struct {
	reason byte
	err    error
}

func (e *mqttPacketError) Error() string {
	return fmt.Sprintf("mqtt packet (reason 0x%02x): %v", e.reason, e.err)
}
func (e *mqttPacketError) Unwrap() error { return e.err }

// errMQTTTooLarge is a packet longer than the server accepts.
var errMQTTTooLarge = errors.New("packet is larger than the maximum packet size")

// readMQTTPacket reads one packet from r: the fixed header, then the rest
// of the packet, which is decoded for the given protocol version (0
// before CONNECT, whose body says the version). A packet over limit bytes
// is refused before its body is read. I/O errors are returned as is;
// everything wrong with the bytes is a *mqttPacketError.
//
// The body is read into a fresh buffer on purpose: the library's decoders
// return strings that alias it (topic names, which become room names kept
// by the router), so it must never be reused.
func readMQTTPacket(r *bufio.Reader, version byte, limit int) (*packets.Packet, error) {
	hb, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	var fh packets.FixedHeader
	if err := fh.Decode(hb); err != nil {
		return nil, &mqttPacketError{reason: reasonOf(err, mqttMalformed), err: err}
	}
	n, _, err := packets.DecodeLength(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		var c packets.Code
		if errors.As(err, &c) {
			return nil, &mqttPacketError{reason: mqttMalformed, err: err}
		}
		return nil, err
	}
	if n > limit {
		return nil, &mqttPacketError{reason: mqttPacketTooLarge, err: errMQTTTooLarge}
	}
	fh.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return decodeMQTTPacket(fh, version, body)
}

// decodeMQTTPacket decodes the body of a packet whose fixed header is fh.
// Packets a server never receives (CONNACK, SUBACK, ...) are protocol
// errors. The library's decoders index their input in places without a
// bounds check (a truncated MQTT 5 SUBSCRIBE, say); such a panic is
// recovered here and reported as a malformed packet, so that no input can
// crash the server.
func decodeMQTTPacket(fh packets.FixedHeader, version byte, body []byte) (pk *packets.Packet, err error) {
	defer func() {
		if r := recover(); r != nil {
			pk, err = nil, &mqttPacketError{reason: mqttMalformed, err: fmt.Errorf("%v: %v", packets.ErrMalformedPacket, r)}
		}
	}()
	pk = &packets.Packet{FixedHeader: fh, ProtocolVersion: version}
	switch fh.Type {
	case packets.Connect:
		err = pk.ConnectDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubrel:
		err = pk.PubrelDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
	case packets.Subscribe:
		err = pk.SubscribeDecode(body)
	case packets.Unsubscribe:
		err = pk.UnsubscribeDecode(body)
	case packets.Pingreq:
		err = pk.PingreqDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Auth:
		err = pk.AuthDecode(body)
	default:
		return nil, &mqttPacketError{reason: mqttProtocolError, err: fmt.Errorf("unexpected %s packet", packets.PacketNames[fh.Type])}
	}
	if err != nil {
		return nil, &mqttPacketError{reason: reasonOf(err, mqttMalformed), err: err}
	}
	return pk, nil
}

// reasonOf returns the reason code a library error carries, or def.
func reasonOf(err error, def byte) byte {
	var c packets.Code
	if errors.As(err, &c) && c.Code >= mqttUnspecified {
		return c.Code
	}
	return def
}

// appendMQTTPacket encodes pk (a packet the server sends) and appends it
// to b.
func appendMQTTPacket(b *bytes.Buffer, pk *packets.Packet) error {
	switch pk.FixedHeader.Type {
	case packets.Connack:
		return pk.ConnackEncode(b)
	case packets.Publish:
		return pk.PublishEncode(b)
	case packets.Puback:
		return pk.PubackEncode(b)
	case packets.Pubrec:
		return pk.PubrecEncode(b)
	case packets.Pubcomp:
		return pk.PubcompEncode(b)
	case packets.Suback:
		return pk.SubackEncode(b)
	case packets.Unsuback:
		return pk.UnsubackEncode(b)
	case packets.Pingresp:
		return pk.PingrespEncode(b)
	case packets.Disconnect:
		return pk.DisconnectEncode(b)
	default:
		return fmt.Errorf("encode mqtt packet: type %d is not sent by a server", pk.FixedHeader.Type)
	}
}
