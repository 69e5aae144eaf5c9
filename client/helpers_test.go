package client_test

import (
	"context"
	"encoding/json"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/client"
	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/internal/testwait"
	"github.com/arena-mesh/arena/protocol"
)

// waitTimeout bounds how long a test waits for a condition before it
// fails; it is a deadline for failing, not an assertion about speed.
const waitTimeout = 20 * time.Second

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, waitTimeout, what, cond)
}

// ctxFor returns a context that ends with the test or after waitTimeout.
func ctxFor(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// dial connects a client to n as user (allowed everything unless opts
// carries a token) and closes it at the end of the test.
func dial(t testing.TB, n *edgetest.Node, user string, opts client.Options) *client.Client {
	t.Helper()
	if opts.Token == "" && user != "" {
		opts.Token = n.AllToken(user)
	}
	opts.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	if opts.ReconnectMin == 0 {
		opts.ReconnectMin = 5 * time.Millisecond
		opts.ReconnectMax = 50 * time.Millisecond
	}
	c, err := client.Dial(ctxFor(t), n.WSURL, opts)
	if err != nil {
		t.Fatalf("dial %s as %q: %v", n.WSURL, user, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func subscribe(t testing.TB, c *client.Client, room string, opts client.SubscribeOptions) *client.Subscription {
	t.Helper()
	sub, err := c.Subscribe(ctxFor(t), room, opts)
	if err != nil {
		t.Fatalf("subscribe %s: %v", room, err)
	}
	return sub
}

func publish(t testing.TB, c *client.Client, room string, data string) client.Ack {
	t.Helper()
	ack, err := c.Publish(ctxFor(t), room, json.RawMessage(data), client.PublishOptions{})
	if err != nil {
		t.Fatalf("publish to %s: %v", room, err)
	}
	return ack
}

// next returns the subscription's next event, failing the test if none
// comes.
func next(t testing.TB, sub *client.Subscription) client.Event {
	t.Helper()
	select {
	case ev, ok := <-sub.C():
		if !ok {
			t.Fatalf("subscription to %s ended: %v", sub.Room(), sub.Err())
		}
		return ev
	case <-time.After(waitTimeout):
		t.Fatalf("no event on %s", sub.Room())
	}
	return client.Event{}
}

// nextMsg returns the next event, which must be a message.
func nextMsg(t testing.TB, sub *client.Subscription) *protocol.Msg {
	t.Helper()
	ev := next(t, sub)
	if ev.Kind != client.EventMsg {
		t.Fatalf("event %v %+v, want a message", ev.Kind, ev.Notice)
	}
	return ev.Msg
}

// expectSeqs reads messages and checks they are exactly seqs first..last
// of one epoch, in order.
func expectSeqs(t testing.TB, sub *client.Subscription, first, last uint64) []*protocol.Msg {
	t.Helper()
	var msgs []*protocol.Msg
	var epoch uint64
	for seq := first; seq <= last; seq++ {
		m := nextMsg(t, sub)
		if epoch == 0 {
			epoch = m.Epoch
		}
		if m.Seq != seq || m.Epoch != epoch {
			t.Fatalf("got message (%d, %d), want (%d, %d)", m.Epoch, m.Seq, epoch, seq)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// cutter is a DialContext hook that remembers the client's TCP
// connections so that a test can cut them (as a network failure would) or
// stall what the client reads.
type cutter struct {
	mu    sync.Mutex
	conns []*cutConn
	dials int
}

func (k *cutter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cc := &cutConn{Conn: c, cut: make(chan struct{})}
	k.mu.Lock()
	k.conns = append(k.conns, cc)
	k.dials++
	k.mu.Unlock()
	return cc, nil
}

// last returns the newest connection.
func (k *cutter) last() *cutConn {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.conns[len(k.conns)-1]
}

func (k *cutter) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.dials
}

type cutConn struct {
	net.Conn
	stall   sync.Mutex // held while reads are stalled
	stalled bool       // guarded by stall
	cut     chan struct{}
	cutOnce sync.Once
}

// Read drops what it read and waits for the cut while stalled: the client
// never sees those bytes.
func (c *cutConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.stall.Lock()
	stalled := c.stalled
	c.stall.Unlock()
	if stalled {
		<-c.cut
		return 0, net.ErrClosed
	}
	return n, err
}

// Stall makes the client stop receiving anything on this connection.
func (c *cutConn) Stall() {
	c.stall.Lock()
	c.stalled = true
	c.stall.Unlock()
}

// Close is how the client itself closes the connection; it also ends a
// stalled Read.
func (c *cutConn) Close() error {
	c.Cut()
	return nil
}

// Cut closes the TCP connection under the client's feet.
func (c *cutConn) Cut() {
	c.cutOnce.Do(func() {
		close(c.cut)
		c.Conn.Close()
	})
}

// clientGoroutines returns the stacks of goroutines running client code
// (or the HTTP transport the client dials with).
func clientGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "arena-mesh/arena/client.") || strings.Contains(g, "net/http.(*persistConn)") {
			found = append(found, g)
		}
	}
	return found
}
