package router

import (
	"strconv"
	"sync/atomic"
	"testing"
)

// countingSink counts the events delivered to it.
type countingSink struct{ n atomic.Int64 }

func (s *countingSink) Events(_ string, evs []Event) { s.n.Add(int64(len(evs))) }

// BenchmarkPresenceChurn measures the cost of a user joining and leaving
// a room watched by 100 presence subscribers on one node: Enter, Leave
// and one flush (the event interval's work) per churn, with the join and
// leave either coalesced away (both within one interval) or delivered
// (a flush between them).
func BenchmarkPresenceChurn(b *testing.B) {
	for _, mode := range []string{"coalesced", "delivered"} {
		b.Run(mode, func(b *testing.B) {
			e := newEnv(b, nil)
			r := e.r
			sink := &countingSink{}
			for i := range 100 {
				if _, err := r.Enter(EnterRequest{Room: "r", User: "w" + strconv.Itoa(i), Presence: true, Sink: sink}); err != nil {
					b.Fatal(err)
				}
			}
			ev := r.events()
			ev.flush(e.clock.Now())
			sink.n.Store(0)
			users := make([]string, 1024)
			for i := range users {
				users[i] = "u" + strconv.Itoa(i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				c, err := r.Enter(EnterRequest{Room: "r", User: users[i%len(users)], Sink: sink})
				if err != nil {
					b.Fatal(err)
				}
				if mode == "delivered" {
					ev.flush(e.clock.Now())
				}
				c.Leave(true)
				ev.flush(e.clock.Now())
			}
			b.ReportMetric(float64(sink.n.Load())/float64(b.N), "events/op")
		})
	}
}
