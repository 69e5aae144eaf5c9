package edge

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/arena-mesh/arena/protocol"
)

// MQTT 5 reason codes Arena sends (MQTT 5.0 section 2.4). MQTT 3.1.1 has
// no reason codes in PUBACK or DISCONNECT; its SUBACK failure is 0x80 and
// its CONNACK return codes are the mqtt3* constants.
const (
	mqttSuccess              byte = 0x00
	mqttDisconnectWithWill   byte = 0x04 // client DISCONNECT: publish the will anyway
	mqttNoSubscriptionExists byte = 0x11
	mqttUnspecified          byte = 0x80
	mqttMalformed            byte = 0x81
	mqttProtocolError        byte = 0x82
	mqttImplementation       byte = 0x83
	mqttBadCredentials       byte = 0x86
	mqttNotAuthorized        byte = 0x87
	mqttServerUnavailable    byte = 0x88
	mqttShuttingDown         byte = 0x8B
	mqttBadAuthMethod        byte = 0x8C
	mqttKeepAliveTimeout     byte = 0x8D
	mqttSessionTakenOver     byte = 0x8E
	mqttFilterInvalid        byte = 0x8F
	mqttTopicInvalid         byte = 0x90
	mqttIDNotFound           byte = 0x92
	mqttReceiveMaxExceeded   byte = 0x93
	mqttPacketTooLarge       byte = 0x95
	mqttQuotaExceeded        byte = 0x97
	mqttPayloadInvalid       byte = 0x99
	mqttRetainNotSupported   byte = 0x9A
	mqttSharedNotSupported   byte = 0x9E
	mqttWildcardNotSupported byte = 0xA2

	// mqttNoDisconnect is not a reason code: it asks fail to close the
	// socket without sending DISCONNECT (always the case for 3.1.1).
	mqttNoDisconnect byte = 0xFF
)

// MQTT 3.1.1 CONNACK return codes (MQTT 3.1.1 section 3.2.2.3).
const (
	mqtt3Accepted          byte = 0x00
	mqtt3BadVersion        byte = 0x01
	mqtt3IDRejected        byte = 0x02
	mqtt3ServerUnavailable byte = 0x03
	mqtt3NotAuthorized     byte = 0x05
	// mqtt3SubackFailure is the only SUBACK failure code of 3.1.1.
	mqtt3SubackFailure byte = 0x80
)

// mqttTopicRoom maps the topic name of an MQTT PUBLISH to its room: the
// topic IS the room name, so it must be a valid room name (1 to 200
// bytes of A-Z a-z 0-9 : _ - . @ /). Anything else, wildcards and topics
// starting with '$' included, is refused with 0x90 Topic Name invalid.
func mqttTopicRoom(topic string) (string, byte, error) {
	if err := protocol.CheckRoom(topic); err != nil {
		return "", mqttTopicInvalid, err
	}
	return topic, mqttSuccess, nil
}

// mqttFilterRoom maps the topic filter of an MQTT SUBSCRIBE or
// UNSUBSCRIBE to the room it stands for. Only exact topics are served:
//
//   - a filter with a wildcard ('+' or '#') would need the router to
//     subscribe to a set of rooms, which it cannot do, so every wildcard
//     is refused with 0xA2 Wildcard Subscriptions not supported. (Were it
//     added, "a/b/#" would map to the room "a/b" and every room with the
//     prefix "a/b/", as MQTT's '#' also matches the parent level; '+'
//     has no room-prefix equivalent and would stay refused.)
//   - "$share/..." (MQTT 5 shared subscriptions) gets 0x9E;
//   - any other filter that is not a valid room name gets 0x8F Topic
//     Filter invalid.
func mqttFilterRoom(filter string) (string, byte, error) {
	switch {
	case strings.HasPrefix(filter, "$share/"):
		return "", mqttSharedNotSupported, protocol.Errorf(protocol.CodeBadRequest, "shared subscriptions are not supported")
	case strings.ContainsAny(filter, "+#"):
		return "", mqttWildcardNotSupported, protocol.Errorf(protocol.CodeBadRequest, "wildcard subscriptions are not supported: subscribe to each room")
	}
	if err := protocol.CheckRoom(filter); err != nil {
		return "", mqttFilterInvalid, err
	}
	return filter, mqttSuccess, nil
}

// errMQTTPayload refuses an MQTT payload that cannot become Arena data.
var errMQTTPayload = protocol.Errorf(protocol.CodeBadRequest, "payload is not valid UTF-8")

// mqttPayloadData maps an MQTT payload to the data of an Arena message:
//
//   - a payload that is valid JSON is the data as is (compacted, so a
//     message never carries a newline);
//   - any other UTF-8 text (an empty payload included) becomes a JSON
//     string holding that text;
//   - a payload that is not valid UTF-8 (binary) is refused: data is
//     JSON, and a JSON string cannot carry arbitrary bytes.
//
// mqttDataPayload is the inverse, so MQTT clients get back what they sent
// (except that a payload that was itself a JSON string literal, quotes
// included, comes back unquoted, and JSON comes back compacted). The
// result does not alias payload.
func mqttPayloadData(payload []byte) ([]byte, error) {
	if !utf8.Valid(payload) {
		return nil, errMQTTPayload
	}
	if json.Valid(payload) {
		if !bytes.ContainsAny(payload, " \t\r\n") {
			return bytes.Clone(payload), nil
		}
		var b bytes.Buffer
		b.Grow(len(payload))
		if err := json.Compact(&b, payload); err == nil {
			return b.Bytes(), nil
		}
	}
	// json.Marshal of a valid UTF-8 string cannot fail.
	b, _ := json.Marshal(string(payload))
	return b, nil
}

// mqttDataPayload maps the data of an Arena message to an MQTT payload: a
// JSON string is delivered as its text (unquoted, unescaped); any other
// JSON value as its JSON bytes. data is shared by every subscriber: the
// result may alias it and must not be modified.
func mqttDataPayload(data []byte) []byte {
	if len(data) == 0 || data[0] != '"' {
		return data
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return data // not reachable for stored data, which is valid JSON
	}
	return []byte(s)
}

// mqttPublishReason is the MQTT 5 reason code of a publish refused with
// err.
func mqttPublishReason(err error) byte {
	switch protocol.AsError(err).Code {
	case protocol.CodeForbidden, protocol.CodeUnauthorized:
		return mqttNotAuthorized
	case protocol.CodeTooLarge, protocol.CodeRateLimited:
		return mqttQuotaExceeded
	case protocol.CodeBadRequest:
		return mqttImplementation
	default: // unavailable, internal
		return mqttUnspecified
	}
}
