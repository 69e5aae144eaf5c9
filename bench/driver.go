package bench

import (
	"context"
	"fmt"
	"sort"

	"github.com/arena-mesh/arena/protocol"
)

// Driver connects the harness to one kind of target. The scenarios only
// speak to this interface, so the same scenario runs against Arena
// (through the public Go SDK, exactly as a user would) and against a peer
// system such as NATS, and their figures can be set side by side.
type Driver interface {
	// Name is the driver's name on the command line (--driver).
	Name() string
	// Connect opens one client connection.
	Connect(ctx context.Context, o ConnectOptions) (Conn, error)
}

// ConnectOptions says how to open one connection.
type ConnectOptions struct {
	URL   string // an edge: ws://host:port or http://host:port (Arena), ws://host:port (NATS)
	Token string // bearer credential; "" for none
	Name  string // client name reported to the server
	// Dialer opens the TCP connections (source address, cut); nil means
	// a plain net.Dialer.
	Dialer *Dialer
}

// Delivery is one event of a subscription.
type Delivery struct {
	Data []byte            // the message's data; nil for a Reset notice
	Pos  protocol.Position // the server's position; zero when the driver has none
	// Reset is set on a notice that the subscription could not resume
	// from its position (the history it needed is gone).
	Reset bool
}

// Conn is one client connection of a driver.
type Conn interface {
	// Subscribe joins room and returns once the target confirmed it.
	// fn is then called for each delivery, from one goroutine per
	// subscription, in delivery order; it must not block for long. The
	// driver stops calling fn before Close returns.
	Subscribe(ctx context.Context, room string, fn func(Delivery)) error
	// Publish sends data to room. The driver sends concurrent publishes
	// of one connection in call order when it can, and calls done once
	// with the outcome: a nil error once the target acknowledged the
	// message (Arena: durable; durable=true asks a peer for its durable
	// mode), with the position the target gave it if it gives one, or
	// the error. done may run before Publish returns.
	Publish(ctx context.Context, room string, data []byte, durable bool, done func(protocol.Position, error))
	// Close closes the connection and stops its goroutines; idempotent.
	Close() error
}

// drivers are the drivers by name.
var drivers = map[string]Driver{
	"arena": arenaDriver{},
	"nats":  natsDriver{},
}

func lookupDriver(name string) (Driver, error) {
	if d, ok := drivers[name]; ok {
		return d, nil
	}
	names := make([]string, 0, len(drivers))
	for n := range drivers {
		names = append(names, n)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("unknown driver %q (have %v)", name, names)
}
