package bench

import (
	"context"
	"net"
	"sync"
	"time"
)

// Dialer opens the TCP connections of one client, from a chosen source
// address, and remembers them so that Cut can sever them all at once.
//
// The source address matters for large connection counts: a TCP
// connection is identified by its (source, destination) address pairs, so
// one source IP reaches one server port with at most about 28,000
// connections (the ephemeral port range). Linux routes all of 127.0.0.0/8
// to the loopback interface, so spreading clients over 127.0.0.1,
// 127.0.0.2, ... lifts that limit without any configuration.
//
// Cut is how the resume scenario makes clients drop without touching the
// server: the client library sees its connection fail as it would on a
// network fault, and its reconnect logic takes over.
type Dialer struct {
	LocalIP net.IP        // source address; nil lets the system choose
	Timeout time.Duration // connect timeout; 0 means 10s

	mu    sync.Mutex // guards conns
	conns map[*trackedConn]struct{}
}

// DialContext opens a TCP connection (for http.Transport).
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.Timeout}
	if nd.Timeout == 0 {
		nd.Timeout = 10 * time.Second
	}
	if d.LocalIP != nil {
		nd.LocalAddr = &net.TCPAddr{IP: d.LocalIP}
	}
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, d: d}
	d.mu.Lock()
	if d.conns == nil {
		d.conns = make(map[*trackedConn]struct{})
	}
	d.conns[tc] = struct{}{}
	d.mu.Unlock()
	return tc, nil
}

// Dial opens a TCP connection (for client libraries that take a
// Dial(network, address) dialer, as nats.go's CustomDialer).
func (d *Dialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, addr)
}

// Cut closes every open connection this dialer made and returns how many
// it closed.
func (d *Dialer) Cut() int {
	d.mu.Lock()
	conns := make([]*trackedConn, 0, len(d.conns))
	for c := range d.conns {
		conns = append(conns, c)
	}
	d.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return len(conns)
}

// Open returns the number of connections currently open.
func (d *Dialer) Open() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.conns)
}

type trackedConn struct {
	net.Conn
	d    *Dialer
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.d.mu.Lock()
		delete(c.d.conns, c)
		c.d.mu.Unlock()
	})
	return c.Conn.Close()
}

// sourceIP returns the i-th loopback source address of n: 127.0.0.1,
// 127.0.0.2, ..., cycling. n <= 0 means no choice (nil).
func sourceIP(i, n int) net.IP {
	if n <= 0 {
		return nil
	}
	v := i%n + 1 // 127.0.0.0 + v, within 127.0.0.0/8
	return net.IPv4(127, byte(v>>16), byte(v>>8), byte(v))
}
