package edge

import (
	"bytes"
	"testing"

	"github.com/arena-mesh/arena/router"
)

// BenchmarkMQTTEncodePublish measures the per-delivery work of the MQTT
// writer: mapping data to a payload and encoding one PUBLISH packet.
func BenchmarkMQTTEncodePublish(b *testing.B) {
	m, err := newMQTTMetrics(nil)
	if err != nil {
		b.Fatal(err)
	}
	s := &mqttSession{srv: &Server{mqtt: mqttState{m: m}}, inflight: make(map[uint16]struct{}), outWindow: 1 << 16}
	cases := []struct {
		name    string
		version byte
		qos     byte
		data    string
	}{
		{"v311 qos0 json", 4, 0, `{"temp":21.5,"unit":"C","id":"sensor-17"}`},
		{"v5 qos1 json", 5, 1, `{"temp":21.5,"unit":"C","id":"sensor-17"}`},
		{"v5 qos0 text", 5, 0, `"temperature is 21.5 C at sensor 17"`},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			s.version = c.version
			msg := &router.Message{Room: "sensors/17/temp", Epoch: 1, Seq: 2, Data: []byte(c.data)}
			var buf bytes.Buffer
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if !s.encodePublish(&buf, msg, c.qos) {
					b.Fatal("not encoded")
				}
				if c.qos > 0 {
					s.handlePuback(s.nextID)
				}
			}
		})
	}
}
