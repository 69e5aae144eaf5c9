package edge_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/arena-mesh/arena/edge/edgetest"
)

// FuzzMQTTSession feeds arbitrary bytes, after a valid CONNECT, through a
// real MQTT session of a real node, in MQTT 3.1.1 and 5. Whatever the
// input, the server must not crash, everything it sends must be a
// well-formed packet, and it must end the connection once the client
// stops sending.
func FuzzMQTTSession(f *testing.F) {
	seed := func(v byte, pks ...*packets.Packet) {
		var b bytes.Buffer
		for _, pk := range pks {
			pk.ProtocolVersion = v
			switch pk.FixedHeader.Type {
			case packets.Publish:
				_ = pk.PublishEncode(&b)
			case packets.Subscribe:
				_ = pk.SubscribeEncode(&b)
			case packets.Unsubscribe:
				_ = pk.UnsubscribeEncode(&b)
			case packets.Pubrel:
				_ = pk.PubrelEncode(&b)
			default:
				_ = pk.PingreqEncode(&b)
			}
		}
		f.Add(b.Bytes(), v == 5)
	}
	for _, v := range []byte{4, 5} {
		seed(v, &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
			Filters: packets.Subscriptions{{Filter: "fz", Qos: 1}, {Filter: "fz/#"}}},
			&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 2, TopicName: "fz", Payload: []byte(`{"a":1}`)},
			&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2}, PacketID: 3, TopicName: "fz", Payload: []byte("x")},
			&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: 3},
			&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1}, PacketID: 4, Filters: packets.Subscriptions{{Filter: "fz"}}},
			&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
		seed(v, &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "no", Payload: []byte{0xff}})
	}
	f.Add([]byte{0x82, 0x06, 0, 1, 0, 0, 1, 'a'}, true)
	f.Add([]byte{0xe0, 0x00}, false)

	n := edgetest.Start(f, edgetest.WithMQTT(), edgetest.WithQuietLogs())
	tok := n.Token("fuzz", []string{"fz", "fz/*"}, []string{"fz", "fz/*"})
	f.Fuzz(func(t *testing.T, input []byte, v5 bool) {
		version := byte(4)
		if v5 {
			version = 5
		}
		c := connectRaw(t, n, version, "", tok, nil)
		c.write(input)
		_ = c.conn.(*net.TCPConn).CloseWrite()
		for {
			pk, err := c.tryRead()
			switch {
			case err == nil:
				if pk.FixedHeader.Type == packets.Connack {
					t.Fatalf("second CONNACK")
				}
				continue
			case errors.Is(err, io.EOF), isReset(err):
				return
			default:
				t.Fatalf("reading the server's packets: %v", err)
			}
		}
	})
}
