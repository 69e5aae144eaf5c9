package bench

import (
	"context"
	"io"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/arena-mesh/arena/protocol"
)

// loopConn is a Conn whose publishes are delivered at once to the
// subscribers registered with Subscribe, on the publishing goroutine,
// except that the publish of message stallAt first blocks for stall: a
// target that stops for a moment.
type loopConn struct {
	stallAt uint64
	stall   time.Duration

	mu   sync.Mutex // guards subs
	subs []func(Delivery)
}

func (c *loopConn) Subscribe(_ context.Context, _ string, fn func(Delivery)) error {
	c.mu.Lock()
	c.subs = append(c.subs, fn)
	c.mu.Unlock()
	return nil
}

func (c *loopConn) Publish(_ context.Context, _ string, data []byte, _ bool, done func(protocol.Position, error)) {
	p, err := ParsePayload(data)
	if err != nil {
		done(protocol.Position{}, err)
		return
	}
	if p.N == c.stallAt {
		time.Sleep(c.stall)
	}
	c.mu.Lock()
	subs := c.subs
	c.mu.Unlock()
	for _, fn := range subs {
		fn(Delivery{Data: data})
	}
	done(protocol.Position{Epoch: 1, Seq: p.N}, nil)
}

func (c *loopConn) Close() error { return nil }

// TestStallProducesCorrectedTail runs a fixed-rate publisher (1000 msg/s,
// 2000 messages) through the real publisher and receiver code against a
// target that stalls for 200 ms once, in synctest's virtual time. Measured
// from the intended send time, the ~200 messages the stall delayed must
// show latencies spread from 200 ms down to 0, the tail HdrHistogram's
// RecordCorrectedValue reconstructs from the one stalled sample; measured
// from the actual
// send (the uncorrected way) the stall is a single sample that no
// percentile below the maximum shows.
func TestStallProducesCorrectedTail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			rate  = 1000
			count = 2000
			stall = 200 * time.Millisecond
		)
		p := &Params{Size: 64, Inflight: 1}
		r := newRun(p, nil, io.Discard)
		tr := newTraffic(r)
		conn := &loopConn{stallAt: 500, stall: stall}
		tr.addPublisher(conn, "room")
		sched, sent := NewLatency("delivery"), NewLatency("delivery from send")
		v := tr.addReceiver(sched, sent, 0)
		if err := conn.Subscribe(t.Context(), "room", v.deliver); err != nil {
			t.Fatal(err)
		}
		tr.begin()
		tr.runSchedules(t.Context(), t.Context(), rate, count)

		corrected, naive := sched.Total(), sent.Total()
		if corrected.TotalCount() != count || naive.TotalCount() != count {
			t.Fatalf("recorded %d and %d latencies, want %d", corrected.TotalCount(), naive.TotalCount(), count)
		}
		// The reference: the uncorrected latencies, corrected after the
		// fact with the schedule's interval.
		ref := newHist()
		interval := int64(time.Second / rate)
		for _, b := range naive.Distribution() {
			for i := int64(0); i < b.Count; i++ {
				if err := ref.RecordCorrectedValue(b.From, interval); err != nil {
					t.Fatal(err)
				}
			}
		}
		// RecordCorrectedValue adds synthetic samples on top of the real
		// ones (2199 in all), so compare the tails by rank from the top:
		// the k-th largest latency must agree.
		for _, k := range []int64{1, 10, 20, 50, 100, 150} {
			got, want := largest(corrected, k), largest(ref, k)
			if !within(got, want, 0.02) {
				t.Errorf("%d-th largest from the schedule = %v, corrected reference = %v", k, time.Duration(got), time.Duration(want))
			}
		}
		if got := corrected.ValueAtQuantile(99); got < int64(150*time.Millisecond) {
			t.Errorf("p99 from the schedule = %v: the stall does not show in the tail", time.Duration(got))
		}
		if got := naive.ValueAtQuantile(99); got > int64(time.Millisecond) {
			t.Errorf("p99 from the actual send = %v: expected the uncorrected measure to hide the stall", time.Duration(got))
		}
		if got := corrected.Max(); !within(got, int64(stall), 0.01) {
			t.Errorf("max = %v, want the stall %v", time.Duration(got), stall)
		}
		// Nothing lost on the way.
		if c := tr.counts(); c.Lost != 0 || c.Received != count || c.Duplicated != 0 || c.OutOfOrder != 0 {
			t.Errorf("counts = %+v", c)
		}
	})
}

// TestPacerKeepsSchedule checks the due times and that ticks delayed by a
// slow callback are issued back to back with their own due times.
func TestPacerKeepsSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := NewClock()
		pc := Pacer{Rate: 100, Start: clock.Now() + int64(time.Second), Count: 50}
		type call struct {
			n       uint64
			due, at int64
		}
		var calls []call
		issued := pc.Run(t.Context(), clock, func(n uint64, due int64) bool {
			calls = append(calls, call{n, due, clock.Now()})
			if n == 10 {
				time.Sleep(105 * time.Millisecond) // ten ticks' worth and a half
			}
			return true
		})
		if issued != 50 || len(calls) != 50 {
			t.Fatalf("issued %d ticks, want 50", issued)
		}
		for i, c := range calls {
			n := uint64(i + 1)
			if c.n != n || c.due != pc.Start+int64(i)*int64(10*time.Millisecond) {
				t.Fatalf("call %d: n %d due %d, want n %d due %d", i, c.n, c.due, n, pc.Start+int64(i)*int64(10*time.Millisecond))
			}
			late := c.at - c.due
			switch {
			case n <= 10 || n > 20:
				if late != 0 {
					t.Errorf("tick %d issued %v late", n, time.Duration(late))
				}
			default: // delayed by the slow tick 10, issued as soon as it returned
				if c.at != calls[9].at+int64(105*time.Millisecond) {
					t.Errorf("tick %d issued at %v, want right after the stall", n, time.Duration(c.at-pc.Start))
				}
			}
		}
	})
}

func TestPacerStopsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := NewClock()
		ctx, cancel := context.WithTimeout(t.Context(), 95*time.Millisecond)
		defer cancel()
		n := Pacer{Rate: 100, Start: clock.Now()}.Run(ctx, clock, func(uint64, int64) bool { return true })
		if n != 10 { // ticks at 0, 10, ..., 90 ms
			t.Fatalf("issued %d ticks before the context ended, want 10", n)
		}
	})
}

// largest returns the k-th largest value recorded in h (k from 1).
func largest(h *hdrhistogram.Histogram, k int64) int64 {
	bars := h.Distribution()
	for i := len(bars) - 1; i >= 0; i-- {
		k -= bars[i].Count
		if k <= 0 {
			return bars[i].From
		}
	}
	return 0
}

func within(got, want int64, frac float64) bool {
	d := float64(got - want)
	if d < 0 {
		d = -d
	}
	return d <= frac*float64(want)
}

// TestPacerArmsEarlyByTimerLead checks that with a known timer lateness
// the pacer issues a tick that much before its due time, and hands fn the
// actual time rather than the later due time, so that a latency measured
// from it is not understated. synctest's timers are never late, so the
// pacer's own observations then shrink the lead tick by tick.
func TestPacerArmsEarlyByTimerLead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := NewClock()
		const lead = 300 * time.Microsecond
		clock.lead.Store(int64(lead))
		pc := Pacer{Rate: 100, Start: clock.Now() + int64(time.Second), Count: 5}
		var early []int64
		pc.Run(t.Context(), clock, func(k uint64, at int64) bool {
			now := clock.Now()
			if at != now {
				t.Errorf("tick %d: fn got %v, want the actual time %v", k, time.Duration(at), time.Duration(now))
			}
			early = append(early, pc.Due(k)-now)
			return true
		})
		if len(early) != 5 {
			t.Fatalf("issued %d ticks, want 5", len(early))
		}
		if early[0] != int64(lead) {
			t.Errorf("tick 1 issued %v before its due time, want the lead %v", time.Duration(early[0]), lead)
		}
		for i := 1; i < len(early); i++ {
			if early[i] <= 0 || early[i] >= early[i-1] {
				t.Errorf("tick %d issued %v early after %v: want the lead to shrink toward 0 on on-time timers",
					i+1, time.Duration(early[i]), time.Duration(early[i-1]))
			}
		}
	})
}

// TestPacerEarlyTickKeepsItsPeriod: a tick due exactly at the end of the
// warmup (Floor) and fired early is given the Floor, not the earlier
// actual time, so the harness still counts it as measured; ticks due
// before the Floor get their actual time.
func TestPacerEarlyTickKeepsItsPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := NewClock()
		const lead = 300 * time.Microsecond
		pc := Pacer{Rate: 100, Start: clock.Now() + int64(time.Second), Count: 3}
		pc.Floor = pc.Due(2)
		var got []int64
		pc.Run(t.Context(), clock, func(_ uint64, at int64) bool {
			got = append(got, at)
			clock.lead.Store(int64(lead)) // synctest's timers are never late: keep the lead
			return true
		})
		if len(got) != 3 {
			t.Fatalf("issued %d ticks, want 3", len(got))
		}
		if got[1] != pc.Floor {
			t.Errorf("tick 2 (due at the floor) given %v, want the floor %v", time.Duration(got[1]-pc.Start), time.Duration(pc.Floor-pc.Start))
		}
		if want := pc.Due(3) - int64(lead); got[2] != want {
			t.Errorf("tick 3 given %v, want its actual time %v", time.Duration(got[2]-pc.Start), time.Duration(want-pc.Start))
		}
	})
}

// TestClockLearnsTimerLateness feeds observations to the estimate: it
// must converge on a steady lateness, ignore early fires and stay capped.
func TestClockLearnsTimerLateness(t *testing.T) {
	c := NewClock()
	for range 200 {
		c.observeTimer(int64(500 * time.Microsecond))
	}
	if got := time.Duration(c.TimerLead()); got < 490*time.Microsecond || got > 500*time.Microsecond {
		t.Errorf("lead after steady 500µs lateness = %v", got)
	}
	for range 200 {
		c.observeTimer(-int64(time.Millisecond)) // fired early: counts as on time
	}
	if got := time.Duration(c.TimerLead()); got > 10*time.Microsecond {
		t.Errorf("lead after on-time fires = %v, want about 0", got)
	}
	for range 200 {
		c.observeTimer(int64(time.Second)) // a stalled process
	}
	if got := c.TimerLead(); got > maxTimerLead {
		t.Errorf("lead = %v, above the cap %v", time.Duration(got), time.Duration(maxTimerLead))
	}
}
