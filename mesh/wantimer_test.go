package mesh

import (
	"net"
	"testing"
	"time"
)

// TestPreciseTimer exercises the emulator's real-time wake timer: a wait
// returns no earlier than armed, a later arm from another goroutine
// replaces the armed time of a waiting goroutine, and close ends a wait.
func TestPreciseTimer(t *testing.T) {
	timer, err := newPreciseTimer()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	timer.arm(2 * time.Millisecond)
	if !timer.wait() {
		t.Fatal("wait returned false on an open timer")
	}
	if d := time.Since(start); d < 2*time.Millisecond {
		t.Fatalf("woke after %v, armed for 2ms", d)
	}

	// Armed far away, then re-armed to now by another goroutine.
	timer.arm(time.Hour)
	woke := make(chan bool)
	go func() { woke <- timer.wait() }()
	timer.arm(0)
	if !<-woke {
		t.Fatal("re-armed wait returned false")
	}

	// A wait with nothing armed ends when the timer closes.
	timer.arm(time.Hour)
	go func() { woke <- timer.wait() }()
	timer.close()
	if <-woke {
		t.Fatal("wait on a closed timer returned true")
	}
}

// TestWANRealTimeDelay runs the emulator on the real-time timer: packets
// to one destination leave in order, none sooner than the link's delay
// less the timer's largest lead.
func TestWANRealTimeDelay(t *testing.T) {
	const delay = 5 * time.Millisecond
	wan := NewWAN(1)
	wan.Set("a", "b", Link{Delay: delay})
	timer, err := newPreciseTimer()
	if err != nil {
		t.Fatal(err)
	}
	sink := newSinkConn()
	c := newWANConn(sink, wan, "a", testRegions, func() { t.Error("dropped a packet on a lossless link") }, timer)
	defer c.Close()
	const n = 50
	sentAt := make([]time.Time, n)
	for i := range n {
		sentAt[i] = time.Now()
		if _, err := c.WriteTo([]byte{byte(i)}, net.UDPAddrFromAddrPort(addrB)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		got := <-sink.writes
		if got.data != string([]byte{byte(i)}) {
			t.Fatalf("packet %d: got %q, out of order", i, got.data)
		}
		if d := got.at.Sub(sentAt[i]); d < delay-maxWakeLead {
			t.Fatalf("packet %d left after %v, link delay %v", i, d, delay)
		}
	}
}
