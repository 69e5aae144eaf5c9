package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/arena-mesh/arena/client"
	"github.com/arena-mesh/arena/protocol"
)

// arenaDriver runs the scenarios through the public Go SDK
// (github.com/arena-mesh/arena/client) with its default options, exactly
// as an application would: its reconnection, resume and dedup are part of
// what is measured. The only options set are the ones a load generator
// needs: the dialer (source address, cut) and the token.
type arenaDriver struct{}

func (arenaDriver) Name() string { return "arena" }

func (arenaDriver) Connect(ctx context.Context, o ConnectOptions) (Conn, error) {
	opts := client.Options{Token: o.Token, Name: o.Name}
	if o.Dialer != nil {
		opts.DialContext = o.Dialer.DialContext
	}
	c, err := client.Dial(ctx, o.URL, opts)
	if err != nil {
		return nil, err
	}
	return &arenaConn{c: c}, nil
}

type arenaConn struct {
	c  *client.Client
	wg sync.WaitGroup // subscription readers and publishes in flight
}

// subBuffer is the event channel capacity of a subscription: large
// enough that a reader briefly descheduled by a busy harness does not
// make the client fall back to fetching missed messages.
const subBuffer = 1024

func (a *arenaConn) Subscribe(ctx context.Context, room string, fn func(Delivery)) error {
	sub, err := a.c.Subscribe(ctx, room, client.SubscribeOptions{Buffer: subBuffer})
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", room, err)
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for ev := range sub.C() { // closed when the client closes
			switch ev.Kind {
			case client.EventMsg:
				fn(Delivery{Data: ev.Msg.Data, Pos: ev.Msg.Position()})
			case client.EventReset:
				fn(Delivery{Reset: true})
			}
		}
	}()
	return nil
}

// Publish hands the message to the SDK's PublishAsync, so that a
// publisher keeps many in flight from one goroutine, as a feed would. The
// harness judges order by the room's sequence numbers, the order Arena
// promises.
func (a *arenaConn) Publish(ctx context.Context, room string, data []byte, durable bool, done func(protocol.Position, error)) {
	a.wg.Add(1)
	a.c.PublishAsync(ctx, room, json.RawMessage(data), client.PublishOptions{}, func(ack client.Ack, err error) {
		done(ack.Position(), err)
		a.wg.Done()
	})
}

func (a *arenaConn) Close() error {
	err := a.c.Close()
	a.wg.Wait()
	return err
}
