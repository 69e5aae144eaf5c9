package edge_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/arena-mesh/arena/edge"
	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/protocol"
)

// mqttVersions are the protocol versions of the mosquitto clients' -V.
var mqttVersions = []string{"mqttv311", "mqttv5"}

// TestMQTTRoundTrip publishes with mosquitto_pub at QoS 1 and receives
// with mosquitto_sub at QoS 1, in both protocol versions: JSON payloads
// pass unchanged, text payloads come back as they were sent.
func TestMQTTRoundTrip(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithMQTT())
	tok := n.AllToken("alice")
	for _, v := range mqttVersions {
		t.Run(v, func(t *testing.T) {
			room := "sensors/" + v + "/temp"
			sub := startMosquittoSub(t, n, v, tok, 1, room)
			if !slices.Equal(sub.granted, []int{1}) {
				t.Fatalf("SUBACK %v, want QoS 1 granted", sub.granted)
			}
			for _, payload := range []string{`{"c":21.5,"tags":["a","b"]}`, "hello mqtt", "42"} {
				res := mosquittoPub(t, n, v, tok, "", "-q", "1", "-t", room, "-m", payload)
				if res.exit != 0 || !strings.Contains(res.out, "received PUBACK (Mid: 1, RC:0)") {
					t.Fatalf("mosquitto_pub exit %d, want a successful PUBACK:\n%s", res.exit, res.out)
				}
				got := sub.next()
				if got.topic != room || got.payload != payload || got.qos != 1 {
					t.Fatalf("received %+v, want %q on %s at QoS 1", got, payload, room)
				}
			}
		})
	}
}

// TestMQTTToWebSocket checks that what MQTT clients publish reaches
// WebSocket subscribers of the same room as Arena messages: a JSON payload
// is the data (compacted), any other text a JSON string.
func TestMQTTToWebSocket(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithMQTT())
	for _, v := range mqttVersions {
		t.Run(v, func(t *testing.T) {
			room := "chat:" + v
			ws := connectWS(t, n, n.AllToken("bob"))
			ws.sub(room, nil)
			tok := n.Token("alice", []string{"chat:*"}, nil)
			cases := []struct{ payload, data string }{
				{`{"text":"hi","n":[1,2]}`, `{"text":"hi","n":[1,2]}`},
				{"{ \"spaced\" : true }", `{"spaced":true}`},
				{"plain text", `"plain text"`},
				{`"quoted"`, `"quoted"`},
				{"null", "null"},
			}
			for _, c := range cases {
				res := mosquittoPub(t, n, v, tok, "", "-q", "1", "-t", room, "-m", c.payload)
				if res.exit != 0 {
					t.Fatalf("mosquitto_pub exit %d:\n%s", res.exit, res.out)
				}
				m := ws.msgs(1)[0]
				if m.Room != room || m.From != "alice" || string(m.Data) != c.data {
					t.Fatalf("payload %q arrived as %+v (data %s), want data %s from alice", c.payload, m, m.Data, c.data)
				}
			}
		})
	}
}

// TestWebSocketToMQTT checks that WebSocket publishes reach MQTT
// subscribers: data as its JSON bytes, a JSON string as its text.
func TestWebSocketToMQTT(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithMQTT())
	for _, v := range mqttVersions {
		t.Run(v, func(t *testing.T) {
			room := "feed:" + v
			sub := startMosquittoSub(t, n, v, n.Token("mq", nil, []string{"feed:*"}), 1, room)
			ws := connectWS(t, n, n.AllToken("alice"))
			cases := []struct{ data, payload string }{
				{`{"x":1}`, `{"x":1}`},
				{`"text with \"quotes\" and \u00e9"`, `text with "quotes" and é`},
				{`[true,null]`, `[true,null]`},
			}
			for _, c := range cases {
				ws.pub(room, "", c.data)
				got := sub.next()
				if got.topic != room || got.payload != c.payload || got.qos != 1 {
					t.Fatalf("data %s arrived as %+v, want payload %q at QoS 1", c.data, got, c.payload)
				}
			}
		})
	}
}

// TestMQTTRefused covers what the listener refuses, with the code each
// protocol version can express, and checks that nothing refused was
// published.
func TestMQTTRefused(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithMQTT(), edgetest.WithConfig(func(c *edge.Config) { c.MaxDataBytes = 64 }))
	tok := n.Token("alice", []string{"ok:*"}, []string{"ok:*"})
	pubCases := []struct {
		name, version, password, topic, payload string
		want                                    string // in mosquitto_pub's output
		wantExit                                bool   // a non-zero exit
	}{
		{"bad password 3.1.1", "mqttv311", "not-a-token", "ok:a", "x", "Connection Refused: not authorised", true},
		{"bad password 5", "mqttv5", "not-a-token", "ok:a", "x", "Bad User Name or Password", true},
		{"no password 3.1.1", "mqttv311", "", "ok:a", "x", "Connection Refused: not authorised", true},
		{"no password 5", "mqttv5", "", "ok:a", "x", "Bad User Name or Password", true},
		{"expired token 5", "mqttv5", n.TokenTTL("alice", all, all, -time.Hour), "ok:a", "x", "Bad User Name or Password", true},
		// MQTT 3.1.1 has no negative PUBACK: the server closes.
		{"forbidden 3.1.1", "mqttv311", tok, "no:a", "x", "The connection was lost", true},
		{"forbidden 5", "mqttv5", tok, "no:a", "x", "Publish 1 failed: Not authorized", false},
		{"bad topic 3.1.1", "mqttv311", tok, "ok a", "x", "The connection was lost", true},
		{"too large 3.1.1", "mqttv311", tok, "ok:big", strings.Repeat("x", 100), "The connection was lost", true},
		{"too large 5", "mqttv5", tok, "ok:big", strings.Repeat("x", 100), "Publish 1 failed: Quota exceeded", false},
	}
	for _, c := range pubCases {
		t.Run(c.name, func(t *testing.T) {
			res := mosquittoPub(t, n, c.version, c.password, "", "-q", "1", "-t", c.topic, "-m", c.payload)
			if !strings.Contains(res.out, c.want) || (res.exit != 0) != c.wantExit {
				t.Fatalf("mosquitto_pub exit %d, want %q (non-zero exit: %v):\n%s", res.exit, c.want, c.wantExit, res.out)
			}
			if protocol.CheckRoom(c.topic) == nil {
				if head, err := n.Router().Head(c.topic); err != nil || head.Seq != 0 {
					t.Fatalf("room %s head %+v (%v): a refused publish was published", c.topic, head, err)
				}
			}
		})
	}
	subCases := []struct {
		name, version string
		topics        []string
		want          []int // SUBACK codes
	}{
		{"forbidden 3.1.1", "mqttv311", []string{"ok:a", "no:a"}, []int{1, 0x80}},
		{"forbidden 5", "mqttv5", []string{"ok:a", "no:a"}, []int{1, 0x87}},
		{"wildcard 3.1.1", "mqttv311", []string{"ok/#", "ok/+/x"}, []int{0x80, 0x80}},
		{"wildcard 5", "mqttv5", []string{"ok/#", "+"}, []int{0xA2, 0xA2}},
		{"shared 5", "mqttv5", []string{"$share/g/ok:a"}, []int{0x9E}},
		{"bad filter 5", "mqttv5", []string{"$SYS/x", "ok a"}, []int{0x8F, 0x8F}},
	}
	for _, c := range subCases {
		t.Run("sub "+c.name, func(t *testing.T) {
			sub := startMosquittoSub(t, n, c.version, tok, 1, c.topics...)
			if !slices.Equal(sub.granted, c.want) {
				t.Fatalf("SUBACK %v, want %v", sub.granted, c.want)
			}
		})
	}
}

// TestMQTTDev connects without a password in dev mode.
func TestMQTTDev(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithDev(), edgetest.WithMQTT())
	for _, v := range mqttVersions {
		t.Run(v, func(t *testing.T) {
			sub := startMosquittoSub(t, n, v, "", 1, "dev:"+v)
			if res := mosquittoPub(t, n, v, "", "", "-q", "1", "-t", "dev:"+v, "-m", "hi"); res.exit != 0 {
				t.Fatalf("mosquitto_pub exit %d:\n%s", res.exit, res.out)
			}
			if got := sub.next(); got.payload != "hi" {
				t.Fatalf("received %+v", got)
			}
		})
	}
}

// TestMQTTRateLimit checks that MQTT publishes share the user's rate
// limit and are slowed down to it rather than refused: every message
// arrives, and the publishes past the burst waited.
func TestMQTTRateLimit(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithMQTT(), edgetest.WithConfig(func(c *edge.Config) {
		c.PublishRate, c.PublishBurst = 4, 1
	}))
	ws := connectWS(t, n, n.AllToken("bob"))
	ws.sub("rl", nil)
	// -l publishes each line of stdin as one message, back to back.
	res := mosquittoPub(t, n, "mqttv5", n.AllToken("alice"), "1\n2\n3\n", "-q", "1", "-t", "rl", "-l")
	if res.exit != 0 {
		t.Fatalf("mosquitto_pub exit %d:\n%s", res.exit, res.out)
	}
	for i, m := range ws.msgs(3) {
		if want := string(rune('1' + i)); string(m.Data) != want {
			t.Fatalf("message %d has data %s, want %s", i, m.Data, want)
		}
	}
	if got := metricValue(t, n, "arena_edge_mqtt_throttled_total"); got < 1 {
		t.Fatalf("arena_edge_mqtt_throttled_total = %v: publishes past the burst of 1 did not wait", got)
	}
}

// metricValue returns the value of the unlabelled counter or gauge name
// in n's registry.
func metricValue(t testing.TB, n *edgetest.Node, name string) float64 {
	t.Helper()
	mfs, err := n.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) == 0 {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}
