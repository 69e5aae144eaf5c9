package mesh

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// sinkConn is an in-memory net.PacketConn that records what is written to
// it with the (bubble's) time of the write.
type sinkConn struct {
	writes chan sent
	once   sync.Once
	closed chan struct{}
}

type sent struct {
	at   time.Time
	data string
	to   netip.AddrPort
}

func newSinkConn() *sinkConn {
	return &sinkConn{writes: make(chan sent, 4096), closed: make(chan struct{})}
}

func (c *sinkConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ap, _ := addrPortOf(addr)
	c.writes <- sent{at: time.Now(), data: string(b), to: ap}
	return len(b), nil
}

func (c *sinkConn) ReadFrom([]byte) (int, net.Addr, error) {
	<-c.closed
	return 0, nil, net.ErrClosed
}

func (c *sinkConn) Close() error                     { c.once.Do(func() { close(c.closed) }); return nil }
func (c *sinkConn) LocalAddr() net.Addr              { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *sinkConn) SetDeadline(time.Time) error      { return nil }
func (c *sinkConn) SetReadDeadline(time.Time) error  { return nil }
func (c *sinkConn) SetWriteDeadline(time.Time) error { return nil }

var (
	addrB = netip.MustParseAddrPort("127.0.0.1:2002")
	addrC = netip.MustParseAddrPort("127.0.0.1:2003")
	addrX = netip.MustParseAddrPort("127.0.0.1:2099") // region unknown
)

func testRegions(a netip.AddrPort) (string, bool) {
	switch a {
	case addrB:
		return "b", true
	case addrC:
		return "c", true
	}
	return "", false
}

func newTestWAN(t *testing.T, wan *WAN) (*wanConn, *sinkConn, *int) {
	t.Helper()
	sink := newSinkConn()
	drops := new(int)
	// A Go timer: the tests run in synctest bubbles, with a fake clock.
	c := newWANConn(sink, wan, "a", testRegions, func() { *drops++ }, newGoTimer())
	t.Cleanup(func() { _ = c.Close() })
	return c, sink, drops
}

func write(t *testing.T, c *wanConn, to netip.AddrPort, data string) {
	t.Helper()
	if _, err := c.WriteTo([]byte(data), net.UDPAddrFromAddrPort(to)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func TestWANDelaysPerDestinationRegion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		wan := NewWAN(1)
		wan.Set("a", "b", Link{Delay: 50 * time.Millisecond})
		wan.Set("a", "c", Link{Delay: 120 * time.Millisecond})
		wan.Set("b", "a", Link{Delay: time.Hour}) // the other direction: not ours
		c, sink, _ := newTestWAN(t, wan)
		start := time.Now()
		write(t, c, addrC, "to-c")
		write(t, c, addrB, "to-b")
		write(t, c, addrX, "to-x")
		want := []struct {
			data  string
			delay time.Duration
		}{
			{"to-x", 0},
			{"to-b", 50 * time.Millisecond},
			{"to-c", 120 * time.Millisecond},
		}
		for _, w := range want {
			got := <-sink.writes
			if got.data != w.data || got.at.Sub(start) != w.delay {
				t.Errorf("got %q after %v, want %q after %v", got.data, got.at.Sub(start), w.data, w.delay)
			}
		}
	})
}

func TestWANKeepsOrderPerDestination(t *testing.T) {
	tests := []struct {
		name   string
		delays []time.Duration // link delay before each write
	}{
		{"constant delay", []time.Duration{30 * time.Millisecond, 30 * time.Millisecond, 30 * time.Millisecond}},
		{"delay shrinks", []time.Duration{100 * time.Millisecond, 10 * time.Millisecond, 0}},
		{"delay grows", []time.Duration{0, 10 * time.Millisecond, 100 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				wan := NewWAN(1)
				c, sink, _ := newTestWAN(t, wan)
				start := time.Now()
				for i, d := range tt.delays {
					wan.Set("a", "b", Link{Delay: d})
					for j := range 50 {
						write(t, c, addrB, fmt.Sprintf("%d-%02d", i, j))
					}
				}
				var last time.Time
				for i, d := range tt.delays {
					for j := range 50 {
						got := <-sink.writes
						if want := fmt.Sprintf("%d-%02d", i, j); got.data != want {
							t.Fatalf("packet %q arrived, want %q", got.data, want)
						}
						if got.at.Sub(start) < d {
							t.Fatalf("packet %q delayed %v, less than its link's %v", got.data, got.at.Sub(start), d)
						}
						if got.at.Before(last) {
							t.Fatalf("packet %q written before its predecessor", got.data)
						}
						last = got.at
					}
				}
			})
		})
	}
}

// dropPattern sends n packets to addrB through a fresh conn and returns
// which arrived.
func dropPattern(t *testing.T, seed uint64, drop float64, n int) ([]bool, int) {
	t.Helper()
	var got []bool
	var drops int
	synctest.Test(t, func(t *testing.T) {
		wan := NewWAN(seed)
		wan.Set("a", "b", Link{Drop: drop})
		c, sink, dp := newTestWAN(t, wan)
		for i := range n {
			write(t, c, addrB, fmt.Sprint(i))
		}
		got = make([]bool, n)
		for len(sink.writes) > 0 {
			var i int
			fmt.Sscan((<-sink.writes).data, &i)
			got[i] = true
		}
		drops = *dp
	})
	return got, drops
}

func TestWANDropIsDeterministic(t *testing.T) {
	const n = 2000
	p1, d1 := dropPattern(t, 42, 0.3, n)
	p2, d2 := dropPattern(t, 42, 0.3, n)
	p3, _ := dropPattern(t, 43, 0.3, n)
	if d1 != d2 || fmt.Sprint(p1) != fmt.Sprint(p2) {
		t.Fatalf("same seed, different drops: %d vs %d", d1, d2)
	}
	if fmt.Sprint(p1) == fmt.Sprint(p3) {
		t.Errorf("different seeds, same drops")
	}
	// Deterministic for this seed, so this bound cannot flake.
	if d1 < n/5 || d1 > 2*n/5 {
		t.Errorf("dropped %d of %d at rate 0.3", d1, n)
	}
	arrived := 0
	for _, ok := range p1 {
		if ok {
			arrived++
		}
	}
	if arrived+d1 != n {
		t.Errorf("%d arrived + %d dropped != %d sent", arrived, d1, n)
	}
	if _, d := dropPattern(t, 42, 1, 100); d != 100 {
		t.Errorf("cut link dropped %d of 100", d)
	}
	if _, d := dropPattern(t, 42, 0, 100); d != 0 {
		t.Errorf("lossless link dropped %d of 100", d)
	}
}

// BenchmarkWANDelayAccuracy measures how far from its due time the
// emulator writes a delayed packet (40 ms link, one packet per
// millisecond), in real time: the error it adds to every emulated hop.
// Reported as offset percentiles in µs (negative: early).
func BenchmarkWANDelayAccuracy(b *testing.B) {
	const delay = 40 * time.Millisecond
	wan := NewWAN(1)
	wan.Set("a", "b", Link{Delay: delay})
	sink := newSinkConn()
	timer, err := newPreciseTimer()
	if err != nil {
		b.Fatal(err)
	}
	c := newWANConn(sink, wan, "a", testRegions, func() {}, timer)
	defer c.Close()
	sentAt := make(map[string]time.Time, b.N)
	offsets := make([]time.Duration, 0, b.N)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	to := net.UDPAddrFromAddrPort(addrB)
	b.ResetTimer()
	for i := range b.N {
		data := fmt.Sprint(i)
		sentAt[data] = time.Now()
		if _, err := c.WriteTo([]byte(data), to); err != nil {
			b.Fatal(err)
		}
		for drained := false; !drained; {
			select {
			case got := <-sink.writes:
				offsets = append(offsets, got.at.Sub(sentAt[got.data])-delay)
			default:
				drained = true
			}
		}
		<-tick.C
	}
	for len(offsets) < b.N {
		got := <-sink.writes
		offsets = append(offsets, got.at.Sub(sentAt[got.data])-delay)
	}
	slices.Sort(offsets)
	pct := func(p float64) float64 {
		return float64(offsets[int(p*float64(len(offsets)-1))]) / float64(time.Microsecond)
	}
	b.ReportMetric(pct(0.01), "p1-µs")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
