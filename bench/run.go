package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// run is one scenario run: its parameters, how to reach the target, the
// clock, the connections it opened and the live counters the progress line
// shows. Scenarios build on it.
type run struct {
	p         *Params
	id        string // random, in room and user names: runs never share a room
	driver    Driver
	urls      []string
	node      *Node // the spawned node, or nil
	serverPID int   // the server process to watch, 0 if unknown
	clock     *Clock
	tokens    *tokenSource
	stderr    io.Writer
	loopback  bool // every URL is on a loopback address: spread source addresses

	connSeq atomic.Int64 // connections opened, for source addresses and user names

	// Live counters.
	sent      atomic.Uint64 // publishes handed to the driver
	acked     atomic.Uint64 // publishes the target acknowledged
	pubErrors atomic.Uint64 // publishes that failed
	unacked   atomic.Uint64 // publishes still unacknowledged when the run gave up on them
	received  atomic.Uint64 // distinct expected deliveries
	dups      atomic.Uint64 // duplicate deliveries
	resets    atomic.Uint64 // Reset notices
	garbage   atomic.Uint64 // deliveries whose data was not a bench payload

	// liveAfter is a Clock time: a receiver's first delivery of a message
	// sent at or after it marks the receiver live again (resume). MaxInt64
	// while no drop happened.
	liveAfter atomic.Int64
	live      atomic.Int64 // receivers live again after the drop

	mu        sync.Mutex // guards conns, dialers, firstPubErr
	conns     []Conn
	dialers   []*Dialer
	firstPErr error
}

func newRun(p *Params, driver Driver, stderr io.Writer) *run {
	var b [4]byte
	_, _ = rand.Read(b[:])
	r := &run{p: p, id: hex.EncodeToString(b[:]), driver: driver, clock: NewClock(), stderr: stderr}
	r.liveAfter.Store(math.MaxInt64)
	ttl := p.Warmup.D() + p.Duration.D() + p.Drain.D() + p.Hold.D() + p.Recover.D() + time.Hour
	r.tokens = &tokenSource{fixed: p.Token, secret: []byte(p.Secret), run: r.id, ttl: ttl}
	return r
}

// setURLs sets the target URLs and whether they are all on loopback.
func (r *run) setURLs(urls []string) {
	r.urls = urls
	r.loopback = len(urls) > 0
	for _, u := range urls {
		if !isLoopbackURL(u) {
			r.loopback = false
		}
	}
}

func isLoopbackURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// room names a room of this run. The name is a valid Arena room and a
// valid NATS subject.
func (r *run) room(kind string, i int) string {
	return fmt.Sprintf("bench.%s.%s.%d", r.id, kind, i)
}

// connect opens a connection to the edge urls[u % len(urls)].
func (r *run) connect(ctx context.Context, u int) (Conn, *Dialer, error) {
	i := int(r.connSeq.Add(1) - 1)
	d := &Dialer{}
	if r.loopback {
		d.LocalIP = sourceIP(i, r.p.SourceIPs)
	}
	tok, err := r.tokens.token(i)
	if err != nil {
		return nil, nil, err
	}
	target := r.urls[u%len(r.urls)]
	c, err := r.driver.Connect(ctx, ConnectOptions{URL: target, Token: tok, Name: "arena-bench", Dialer: d})
	if err != nil {
		return nil, nil, fmt.Errorf("connect %d to %s: %w", i, target, err)
	}
	r.mu.Lock()
	r.conns = append(r.conns, c)
	r.dialers = append(r.dialers, d)
	r.mu.Unlock()
	return c, d, nil
}

// closeAll closes every connection, a few dozen at a time (a close may
// wait for the server's close frame).
func (r *run) closeAll() {
	r.mu.Lock()
	conns := r.conns
	r.conns, r.dialers = nil, nil
	r.mu.Unlock()
	parallel(len(conns), 64, func(i int) { _ = conns[i].Close() })
}

// cutAll severs every connection's TCP socket at once, without telling
// the client libraries, and returns how many sockets were cut.
func (r *run) cutAll() int {
	r.mu.Lock()
	dialers := append([]*Dialer(nil), r.dialers...)
	r.mu.Unlock()
	n := 0
	for _, d := range dialers {
		n += d.Cut()
	}
	return n
}

func (r *run) pubError(err error) {
	r.pubErrors.Add(1)
	r.mu.Lock()
	if r.firstPErr == nil {
		r.firstPErr = err
	}
	r.mu.Unlock()
}

func (r *run) firstPubError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.firstPErr
}

// parallel runs fn(0..n-1) on at most width goroutines and waits.
func parallel(n, width int, fn func(i int)) {
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for w := 0; w < min(n, width); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// connectAll opens n connections, width at a time, connection i to the
// edge urlOf(i), and calls setup on each (subscribe). It stops at the
// first error.
func (r *run) connectAll(ctx context.Context, n, width int, urlOf func(i int) int, setup func(i int, c Conn) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var once sync.Once
	var first error
	parallel(n, width, func(i int) {
		if ctx.Err() != nil {
			return
		}
		c, _, err := r.connect(ctx, urlOf(i))
		if err == nil {
			err = setup(i, c)
		}
		if err != nil {
			once.Do(func() { first = err; cancel() })
		}
	})
	if first != nil {
		return first
	}
	return ctx.Err()
}

// sample is a reading of the resources used so far.
type sample struct {
	at        int64 // Clock time
	benchCPU  time.Duration
	benchRSS  int64
	server    ProcStats
	serverErr error
}

func (r *run) sample() sample {
	s := sample{at: r.clock.Now(), benchCPU: SelfCPU()}
	if self, err := ReadProcStats(0); err == nil {
		s.benchRSS = self.RSS
	}
	if r.serverPID != 0 {
		s.server, s.serverErr = ReadProcStats(r.serverPID)
	} else {
		s.serverErr = errNoServerPID
	}
	return s
}

var errNoServerPID = errors.New("server process unknown (use --spawn, or --server-pid for a local server)")

// resourceFigures adds the CPU and memory the harness and the server used
// between two samples.
func (r *run) resourceFigures(res *Result, a, b sample) {
	wall := time.Duration(b.at - a.at)
	res.add("wall time", wall.Seconds(), "s", "")
	if b.serverErr == nil && a.serverErr == nil {
		cpu := b.server.CPU - a.server.CPU
		res.add("server cpu", cpu.Seconds(), "s", "lower")
		res.add("server cpu use", 100*cpu.Seconds()/wall.Seconds(), "% of a core", "lower")
		res.add("server rss", float64(b.server.RSS)/(1<<20), "MiB", "lower")
		res.add("server peak rss", float64(b.server.Peak)/(1<<20), "MiB", "lower")
	} else {
		err := b.serverErr
		if err == nil {
			err = a.serverErr
		}
		res.Notes = append(res.Notes, "server cpu and memory not measured: "+err.Error())
	}
	cpu := b.benchCPU - a.benchCPU
	use := 100 * cpu.Seconds() / wall.Seconds()
	res.add("bench cpu", cpu.Seconds(), "s", "")
	res.add("bench cpu use", use, "% of a core", "")
	res.add("bench rss", float64(b.benchRSS)/(1<<20), "MiB", "")
	if note, saturated := harnessSaturation(use, runtime.GOMAXPROCS(0)); saturated {
		res.Notes = append(res.Notes, note)
	}
}

// saturatedUse is the share of its CPUs (percent) past which the harness
// counts as saturated: its own queueing is then in the latencies.
const saturatedUse = 90

// harnessSaturation returns a note when the harness used use percent of
// one core with cpus CPUs to run on, and that is saturatedUse percent of
// them or more.
func harnessSaturation(use float64, cpus int) (string, bool) {
	if cpus < 1 || use < saturatedUse*float64(cpus) {
		return "", false
	}
	return fmt.Sprintf("the harness used %.0f%% of a core with %d to run on: it is saturated, and the latencies include its own queueing (give it more CPUs with --bench-cpu, or lower the load)", use, cpus), true
}

// waitUntil polls cond every 10 ms until it holds or d passes, and
// reports whether it held.
func waitUntil(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return cond()
		case <-deadline.C:
			return cond()
		case <-tick.C:
		}
	}
	return true
}

// sleepUntil waits until the Clock reads at, or ctx ends.
func sleepUntil(ctx context.Context, clock *Clock, at int64) {
	d := time.Duration(at - clock.Now())
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
