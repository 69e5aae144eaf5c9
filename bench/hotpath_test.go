package bench

import (
	"testing"

	"github.com/arena-mesh/arena/protocol"
)

// The harness's per-delivery work must stay small next to the target's,
// or a saturated harness would be measuring itself.

func BenchmarkParsePayload(b *testing.B) {
	data := AppendPayload(nil, Payload{Stream: 12, N: 123456, Intended: 9_876_543_210, Sent: 9_876_543_999}, 128)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePayload(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendPayload(b *testing.B) {
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendPayload(buf[:0], Payload{Stream: 12, N: 123456, Intended: 9_876_543_210, Sent: 9_876_543_999}, 128)
	}
}

func BenchmarkTrackerObserve(b *testing.B) {
	tr := NewTracker(0)
	b.ReportAllocs()
	var n uint64
	for b.Loop() {
		n++
		tr.Observe(Payload{N: n}, protocol.Position{Epoch: 1, Seq: n})
	}
}

func BenchmarkLatencyRecord(b *testing.B) {
	l := NewLatency("x")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			l.Record(i, int64(i%5_000_000))
		}
	})
}
