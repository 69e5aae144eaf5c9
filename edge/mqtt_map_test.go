package edge

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/arena-mesh/arena/protocol"
)

func TestMQTTFilterRoom(t *testing.T) {
	long := strings.Repeat("a", protocol.MaxRoomLen)
	cases := []struct {
		name, filter, room string
		reason             byte
	}{
		{"exact", "chat:1", "chat:1", mqttSuccess},
		{"levels", "a/b/c", "a/b/c", mqttSuccess},
		{"longest", long, long, mqttSuccess},
		{"too long", long + "a", "", mqttFilterInvalid},
		{"multi-level wildcard", "a/b/#", "", mqttWildcardNotSupported},
		{"hash alone", "#", "", mqttWildcardNotSupported},
		{"single-level wildcard", "a/+/c", "", mqttWildcardNotSupported},
		{"shared", "$share/g/a", "", mqttSharedNotSupported},
		{"system", "$SYS/broker", "", mqttFilterInvalid},
		{"space", "a b", "", mqttFilterInvalid},
		{"empty", "", "", mqttFilterInvalid},
		{"unicode", "caf\u00e9", "", mqttFilterInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			room, reason, err := mqttFilterRoom(c.filter)
			if room != c.room || reason != c.reason || (err != nil) != (reason != mqttSuccess) {
				t.Fatalf("mqttFilterRoom(%q) = %q, 0x%02x, %v; want %q, 0x%02x", c.filter, room, reason, err, c.room, c.reason)
			}
		})
	}
}

func TestMQTTPayloadMapping(t *testing.T) {
	cases := []struct {
		name, payload, data, back string
	}{
		{"object", `{"a":1}`, `{"a":1}`, `{"a":1}`},
		{"spaced json", "{ \"a\" :\n [1, 2] }", `{"a":[1,2]}`, `{"a":[1,2]}`},
		{"number", "42", "42", "42"},
		{"text", "hello world", `"hello world"`, "hello world"},
		{"empty", "", `""`, ""},
		{"json string", `"x"`, `"x"`, "x"},
		{"text with quotes and newline", "say \"hi\"\n", `"say \"hi\"\n"`, "say \"hi\"\n"},
		{"html", "<b>&</b>", `"\u003cb\u003e\u0026\u003c/b\u003e"`, "<b>&</b>"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data, err := mqttPayloadData([]byte(c.payload))
			if err != nil || string(data) != c.data {
				t.Fatalf("mqttPayloadData(%q) = %s, %v; want %s", c.payload, data, err, c.data)
			}
			if back := mqttDataPayload(data); string(back) != c.back {
				t.Fatalf("mqttDataPayload(%s) = %q, want %q", data, back, c.back)
			}
		})
	}
	if _, err := mqttPayloadData([]byte{0xff, 0x00}); protocol.AsError(err).Code != protocol.CodeBadRequest {
		t.Fatalf("binary payload: %v, want bad_request", err)
	}
}

// FuzzMQTTMapping checks the topic, filter and payload mappings on any
// input: a topic or filter maps to a valid room or is refused with a
// reason code; a payload maps to valid JSON with no newline (or is
// refused for not being UTF-8), and maps back to the payload itself, or
// for JSON to its compacted form, or for a JSON string to its text.
func FuzzMQTTMapping(f *testing.F) {
	for _, s := range []string{"chat:1", "a/b/#", "+", "$share/g/x", "", `{"a":1}`, " [1, 2] ", `"s"`, "text", "\xff", "null"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name, fn := range map[string]func(string) (string, byte, error){"topic": mqttTopicRoom, "filter": mqttFilterRoom} {
			room, reason, err := fn(s)
			if (err == nil) != (reason == mqttSuccess) {
				t.Fatalf("%s %q: reason 0x%02x with error %v", name, s, reason, err)
			}
			if err == nil && (room != s || protocol.CheckRoom(room) != nil) {
				t.Fatalf("%s %q mapped to invalid room %q", name, s, room)
			}
			if err != nil && protocol.AsError(err).Code != protocol.CodeBadRequest {
				t.Fatalf("%s %q refused with %v, want bad_request", name, s, err)
			}
		}

		payload := []byte(s)
		data, err := mqttPayloadData(payload)
		if !utf8.Valid(payload) {
			if err == nil {
				t.Fatalf("non-UTF-8 payload %q accepted", s)
			}
			return
		}
		if err != nil {
			t.Fatalf("payload %q refused: %v", s, err)
		}
		if !json.Valid(data) || bytes.ContainsAny(data, "\n\r") {
			t.Fatalf("payload %q mapped to %q: not compact JSON", s, data)
		}
		back := mqttDataPayload(data)
		var want []byte
		switch {
		case json.Valid(payload) && data[0] == '"':
			var text string
			_ = json.Unmarshal(payload, &text)
			want = []byte(text)
		case json.Valid(payload):
			var b bytes.Buffer
			_ = json.Compact(&b, payload)
			want = b.Bytes()
		default:
			want = payload
		}
		if !bytes.Equal(back, want) {
			t.Fatalf("payload %q -> data %s -> payload %q, want %q", s, data, back, want)
		}
	})
}

// FuzzMQTTPacket feeds arbitrary bytes to the packet reader in both
// protocol versions: it must return a packet or an error, never panic,
// and refuse anything over the size limit.
func FuzzMQTTPacket(f *testing.F) {
	for _, pk := range mqttSeedPackets() {
		for _, v := range []byte{4, 5} {
			pk.ProtocolVersion = v
			var b bytes.Buffer
			if err := encodeClientPacket(&b, &pk); err != nil {
				f.Fatal(err)
			}
			f.Add(b.Bytes(), v)
		}
	}
	f.Add([]byte{0x82, 0x06, 0, 1, 0, 0, 1, 'a'}, byte(5)) // truncated SUBSCRIBE: panics in the library
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0x7f}, byte(4))
	f.Fuzz(func(t *testing.T, b []byte, version byte) {
		const limit = 1 << 12
		r := bufio.NewReader(bytes.NewReader(b))
		for {
			pk, err := readMQTTPacket(r, version, limit)
			if err != nil {
				var pe *mqttPacketError
				if !errors.As(err, &pe) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				return
			}
			if pk.FixedHeader.Remaining > limit {
				t.Fatalf("packet of %d bytes accepted over the limit", pk.FixedHeader.Remaining)
			}
		}
	})
}

// mqttSeedPackets are valid client packets, one of each type.
func mqttSeedPackets() []packets.Packet {
	fh := func(typ, qos byte) packets.FixedHeader { return packets.FixedHeader{Type: typ, Qos: qos} }
	return []packets.Packet{
		{FixedHeader: fh(packets.Connect, 0), Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), ClientIdentifier: "c", Clean: true, Keepalive: 30,
			UsernameFlag: true, Username: []byte("u"), PasswordFlag: true, Password: []byte("tok"),
			WillFlag: true, WillTopic: "w", WillPayload: []byte("bye"),
		}},
		{FixedHeader: fh(packets.Publish, 1), TopicName: "chat:1", PacketID: 3, Payload: []byte(`{"a":1}`),
			Properties: packets.Properties{User: []packets.UserProperty{{Key: "key", Val: "k1"}}}},
		{FixedHeader: fh(packets.Publish, 0), TopicName: "t", Payload: []byte("x")},
		{FixedHeader: fh(packets.Puback, 0), PacketID: 3},
		{FixedHeader: fh(packets.Pubrel, 1), PacketID: 4},
		{FixedHeader: fh(packets.Subscribe, 1), PacketID: 5, Filters: packets.Subscriptions{{Filter: "a", Qos: 1}, {Filter: "b/#"}}},
		{FixedHeader: fh(packets.Unsubscribe, 1), PacketID: 6, Filters: packets.Subscriptions{{Filter: "a"}}},
		{FixedHeader: fh(packets.Pingreq, 0)},
		{FixedHeader: fh(packets.Disconnect, 0)},
	}
}

// encodeClientPacket encodes a packet a client sends.
func encodeClientPacket(b *bytes.Buffer, pk *packets.Packet) error {
	switch pk.FixedHeader.Type {
	case packets.Connect:
		return pk.ConnectEncode(b)
	case packets.Publish:
		return pk.PublishEncode(b)
	case packets.Puback:
		return pk.PubackEncode(b)
	case packets.Pubrel:
		return pk.PubrelEncode(b)
	case packets.Subscribe:
		return pk.SubscribeEncode(b)
	case packets.Unsubscribe:
		return pk.UnsubscribeEncode(b)
	case packets.Pingreq:
		return pk.PingreqEncode(b)
	default:
		return pk.DisconnectEncode(b)
	}
}
