package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/arena-mesh/arena/protocol"
)

// natsDriver runs the scenarios against a NATS server through its
// WebSocket listener (nats.go speaks WebSocket for ws:// URLs), so the
// peer's clients pay for the same transport as Arena's. A room is a
// subject of the same name (the harness's room names are valid subjects).
//
// Semantics differ, and the figures should be read with that in mind:
// core NATS publish has no acknowledgement (a publish counts as acked once
// nats.go buffered it) and no resume, so messages published while a
// subscriber reconnects are lost by design. With durable=true the driver
// publishes through JetStream (a stream "BENCH" over the durable
// scenario's rooms, bench.*.durable.>, in file storage, created on first
// use) and waits for its ack; JetStream by
// default syncs to disk periodically, not per acknowledgement as Arena
// does.
type natsDriver struct{}

func (natsDriver) Name() string { return "nats" }

func (natsDriver) Connect(ctx context.Context, o ConnectOptions) (Conn, error) {
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
		nats.ReconnectJitter(50*time.Millisecond, 50*time.Millisecond),
		nats.Timeout(10 * time.Second),
		// Keep the default pending limits: a subscriber that cannot keep
		// up loses messages in NATS, and the harness should see it.
	}
	if o.Dialer != nil {
		opts = append(opts, nats.SetCustomDialer(o.Dialer))
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	type result struct {
		nc  *nats.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(o.URL, opts...)
		ch <- result{nc, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("nats connect %s: %w", o.URL, r.err)
		}
		return &natsConn{nc: r.nc}, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

type natsConn struct {
	nc *nats.Conn

	// mu guards closed; handlers hold it shared while they run, so Close
	// (holding it exclusively) knows none runs and none will.
	mu     sync.RWMutex
	closed bool

	jsOnce sync.Once
	js     jetstream.JetStream
	jsErr  error
}

func (c *natsConn) Subscribe(ctx context.Context, room string, fn func(Delivery)) error {
	handler := func(m *nats.Msg) {
		c.mu.RLock()
		defer c.mu.RUnlock()
		if !c.closed {
			fn(Delivery{Data: m.Data})
		}
	}
	if _, err := c.nc.Subscribe(room, handler); err != nil {
		return fmt.Errorf("nats subscribe %s: %w", room, err)
	}
	// The server registers the interest when it reads the SUB; a flush
	// round trip makes sure it has.
	if _, ok := ctx.Deadline(); !ok { // nats.go insists on a deadline
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	if err := c.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("nats flush after subscribe %s: %w", room, err)
	}
	return nil
}

func (c *natsConn) Publish(ctx context.Context, room string, data []byte, durable bool, done func(protocol.Position, error)) {
	if !durable {
		// Publish only buffers; it keeps call order and never waits for
		// the server.
		done(protocol.Position{}, c.nc.Publish(room, data))
		return
	}
	c.jsOnce.Do(func() {
		c.js, c.jsErr = jetstream.New(c.nc)
		if c.jsErr == nil {
			_, c.jsErr = c.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
				Name: "BENCH",
				// Only the durable scenario's rooms: the core publishes of
				// other scenarios must not be stored.
				Subjects: []string{"bench.*.durable.>"},
				Storage:  jetstream.FileStorage,
				MaxAge:   time.Hour,
			})
			if c.jsErr != nil {
				// Every connection sets the stream up, concurrently, and
				// nats-server may refuse all but one of them ("subjects
				// overlap with an existing stream"): the stream is there.
				if _, err := c.js.Stream(ctx, "BENCH"); err == nil {
					c.jsErr = nil
				}
			}
		}
	})
	if c.jsErr != nil {
		done(protocol.Position{}, fmt.Errorf("nats jetstream: %w", c.jsErr))
		return
	}
	go func() {
		ack, err := c.js.Publish(ctx, room, data)
		var pos protocol.Position
		if err == nil {
			pos.Seq = ack.Sequence // the stream's sequence: for diagnostics only
		}
		done(pos, err)
	}()
}

func (c *natsConn) Close() error {
	// nats.go may still be inside a handler when Close returns; taking
	// mu exclusively waits for it, and closed turns later ones away.
	c.nc.Close()
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}
