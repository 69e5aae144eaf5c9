package edge_test

import (
	"context"
	"net"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/router"
)

// TestMQTTConnack checks what CONNACK tells MQTT 5 clients about the
// server's limits.
func TestMQTTConnack(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithMQTT())
	c := dialRaw(t, n, 5)
	c.send(connectPacket(5, "", n.AllToken("alice")))
	ack := c.expect(packets.Connack)
	pr := ack.Properties
	switch {
	case ack.ReasonCode != 0 || ack.SessionPresent:
		t.Fatalf("CONNACK reason 0x%02x session present %v", ack.ReasonCode, ack.SessionPresent)
	case pr.AssignedClientID == "":
		t.Error("no Assigned Client Identifier for an empty client id")
	case !pr.RetainAvailableFlag || pr.RetainAvailable != 0:
		t.Error("Retain Available is not 0")
	case !pr.WildcardSubAvailableFlag || pr.WildcardSubAvailable != 0:
		t.Error("Wildcard Subscription Available is not 0")
	case !pr.SharedSubAvailableFlag || pr.SharedSubAvailable != 0:
		t.Error("Shared Subscription Available is not 0")
	case pr.MaximumPacketSize == 0 || pr.ReceiveMaximum == 0:
		t.Errorf("Maximum Packet Size %d, Receive Maximum %d", pr.MaximumPacketSize, pr.ReceiveMaximum)
	}

	t.Run("empty id without clean session 3.1.1", func(t *testing.T) {
		c := dialRaw(t, n, 4)
		pk := connectPacket(4, "", n.AllToken("alice"))
		pk.Connect.Clean = false
		c.send(pk)
		if ack := c.expect(packets.Connack); ack.ReasonCode != 0x02 {
			t.Fatalf("CONNACK %d, want 2 (identifier rejected)", ack.ReasonCode)
		}
		c.expectClosed()
	})
	t.Run("unsupported version", func(t *testing.T) {
		c := dialRaw(t, n, 4)
		c.write([]byte{0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 6, 2, 0, 60, 0, 0})
		if ack := c.expect(packets.Connack); ack.ReasonCode != 0x01 {
			t.Fatalf("CONNACK %d, want 1 (unacceptable protocol version)", ack.ReasonCode)
		}
		c.expectClosed()
	})
	t.Run("first packet not connect", func(t *testing.T) {
		c := dialRaw(t, n, 4)
		c.send(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
		if pk := c.expectClosed(); pk != nil {
			t.Fatalf("got %+v before the close", pk)
		}
	})
}

// TestMQTTTokenExpiry checks that a connection ends when its token
// expires: MQTT 5 gets DISCONNECT 0x87. (The token has just expired:
// within the authenticator's leeway it is accepted, then the expiry
// timer fires at once.)
func TestMQTTTokenExpiry(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithMQTT())
	c := connectRaw(t, n, 5, "", n.TokenTTL("alice", all, all, -1), nil)
	if d := c.expectClosed(); d == nil || d.ReasonCode != 0x87 {
		t.Fatalf("closed with %+v, want DISCONNECT 0x87", d)
	}
}

// TestMQTTQoS2 runs the inbound QoS 2 flow: PUBREC once durable, a resent
// PUBLISH is not published twice, PUBREL gets PUBCOMP.
func TestMQTTQoS2(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithMQTT())
	for _, v := range []byte{4, 5} {
		room := "q2:" + string('0'+v)
		c := connectRaw(t, n, v, "q2-client", n.AllToken("alice"), nil)
		c.publish(7, 2, room, `{"once":true}`)
		if rec := c.expect(packets.Pubrec); rec.PacketID != 7 || rec.ReasonCode != 0 {
			t.Fatalf("v%d: PUBREC %d reason 0x%02x", v, rec.PacketID, rec.ReasonCode)
		}
		c.send(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2, Dup: true},
			PacketID: 7, TopicName: room, Payload: []byte(`{"once":true}`)})
		if rec := c.expect(packets.Pubrec); rec.PacketID != 7 {
			t.Fatalf("v%d: PUBREC of the resent PUBLISH: %d", v, rec.PacketID)
		}
		c.send(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: 7})
		if comp := c.expect(packets.Pubcomp); comp.PacketID != 7 || comp.ReasonCode != 0 {
			t.Fatalf("v%d: PUBCOMP %d reason 0x%02x", v, comp.PacketID, comp.ReasonCode)
		}
		if head, err := n.Router().Head(room); err != nil || head.Seq != 1 {
			t.Fatalf("v%d: head %+v (%v), want exactly one message", v, head, err)
		}
	}
}

// TestMQTTReceiveMaximum checks that outbound QoS 1 PUBLISHes wait for
// PUBACKs once the client's Receive Maximum is reached: with 1, the second
// message is held back until the first is acknowledged.
func TestMQTTReceiveMaximum(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithMQTT())
	c := connectRaw(t, n, 5, "rm", n.AllToken("alice"), func(pk *packets.Packet) { pk.Properties.ReceiveMaximum = 1 })
	if codes := c.subscribe(1, 1, "rm"); len(codes) != 1 || codes[0] != 1 {
		t.Fatalf("SUBACK %v", codes)
	}
	for _, d := range []string{`1`, `2`, `3`} {
		if _, err := n.Router().Publish(t.Context(), router.PublishRequest{Room: "rm", From: "x", Data: []byte(d)}); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []string{"1", "2", "3"} {
		pub := c.expect(packets.Publish)
		if string(pub.Payload) != want || pub.FixedHeader.Qos != 1 || pub.PacketID == 0 {
			t.Fatalf("PUBLISH %d: %q qos %d id %d", i, pub.Payload, pub.FixedHeader.Qos, pub.PacketID)
		}
		// Every message is durable and notified already: were the
		// window not enforced, the next PUBLISH would come before this
		// PINGRESP.
		c.send(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
		c.expect(packets.Pingresp)
		c.send(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pub.PacketID})
	}
}

// TestMQTTTakeover checks that a second connection with the same client
// id (and user) takes over: the first gets DISCONNECT 0x8E.
func TestMQTTTakeover(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithMQTT())
	first := connectRaw(t, n, 5, "dup-id", n.AllToken("alice"), nil)
	other := connectRaw(t, n, 5, "dup-id", n.AllToken("mallory"), nil) // another user: no takeover
	connectRaw(t, n, 5, "dup-id", n.AllToken("alice"), nil)
	if d := first.expectClosed(); d == nil || d.ReasonCode != 0x8E {
		t.Fatalf("first connection closed with %+v, want DISCONNECT 0x8E", d)
	}
	other.send(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	other.expect(packets.Pingresp)
}

// TestMQTTWill checks the Will Message: published when the connection
// drops, not after a normal DISCONNECT.
func TestMQTTWill(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithMQTT())
	ws := connectWS(t, n, n.AllToken("bob"))
	ws.sub("status", nil)
	withWill := func(pk *packets.Packet) {
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload = true, "status", []byte("gone")
	}
	polite := connectRaw(t, n, 5, "polite", n.AllToken("alice"), withWill)
	polite.send(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	polite.expectClosed()
	rude := connectRaw(t, n, 4, "rude", n.AllToken("carol"), withWill)
	_ = rude.conn.Close()
	m := ws.msgs(1)[0]
	if m.From != "carol" || string(m.Data) != `"gone"` {
		t.Fatalf("will arrived as %+v (data %s), want carol's", m, m.Data)
	}

	t.Run("forbidden will", func(t *testing.T) {
		c := dialRaw(t, n, 5)
		pk := connectPacket(5, "w", n.Token("dave", []string{"own"}, nil))
		withWill(pk)
		c.send(pk)
		if ack := c.expect(packets.Connack); ack.ReasonCode != 0x87 {
			t.Fatalf("CONNACK 0x%02x, want 0x87", ack.ReasonCode)
		}
	})
}

// TestMQTTDrain checks that Drain sends MQTT 5 clients DISCONNECT 0x8B,
// closes 3.1.1 connections, and stops ServeMQTT.
func TestMQTTDrain(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithMQTT())
	c5 := connectRaw(t, n, 5, "d5", n.AllToken("alice"), nil)
	c4 := connectRaw(t, n, 4, "d4", n.AllToken("alice"), nil)
	c5.subscribe(1, 1, "drain")
	if err := n.Drain(readTimeout); err != nil {
		t.Fatal(err)
	}
	if d := c5.expectClosed(); d == nil || d.ReasonCode != 0x8B {
		t.Fatalf("MQTT 5 connection closed with %+v, want DISCONNECT 0x8B", d)
	}
	if d := c4.expectClosed(); d != nil {
		t.Fatalf("MQTT 3.1.1 connection got %+v", d)
	}
	if conn, err := (&net.Dialer{}).DialContext(context.Background(), "tcp", n.MQTTAddr); err == nil {
		conn.Close()
		t.Fatal("the MQTT listener still accepts after Drain")
	}
	// A restarted node serves MQTT on the same address again.
	n.Restart()
	c := connectRaw(t, n, 4, "again", n.AllToken("alice"), nil)
	c.send(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	c.expect(packets.Pingresp)
}

// TestMQTTBadPackets checks that malformed packets and protocol errors
// close only their own connection, with the MQTT 5 reason.
func TestMQTTBadPackets(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithMQTT())
	cases := []struct {
		name   string
		packet []byte
		reason byte
	}{
		{"truncated subscribe", []byte{0x82, 0x06, 0, 1, 0, 0, 1, 'a'}, 0x81},
		{"bad flags", []byte{0x83, 0x00}, 0x81},
		{"publish qos 3", []byte{0x36, 0x00}, 0x82},
		{"publish wildcard topic", []byte{0x30, 0x05, 0, 1, '#', 0, 'x'}, 0x82},
		{"connack from client", []byte{0x20, 0x03, 0, 0, 0}, 0x82},
		{"too large", []byte{0x30, 0xff, 0xff, 0xff, 0x7f}, 0x95},
		{"retain", []byte{0x31, 0x05, 0, 1, 'r', 0, 'x'}, 0x9A},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn := connectRaw(t, n, 5, "", n.AllToken("alice"), nil)
			conn.write(c.packet)
			if d := conn.expectClosed(); d == nil || d.ReasonCode != c.reason {
				t.Fatalf("closed with %+v, want DISCONNECT 0x%02x", d, c.reason)
			}
		})
	}
	ok := connectRaw(t, n, 4, "", n.AllToken("alice"), nil)
	ok.send(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	ok.expect(packets.Pingresp)
}
