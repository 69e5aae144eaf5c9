package bench

import (
	"context"
	"errors"
	"fmt"

	"github.com/arena-mesh/arena/client"
)

// PresenceEvent is a join or a leave seen by a presence subscription.
type PresenceEvent struct {
	Join bool // a join; false for a leave
	User string
}

// PresenceConn is a Conn whose target has presence: who is in a room, and
// joins and leaves pushed to subscribers that ask for them. Arena's
// connections are; a peer's need not be (NATS has nothing like it), and
// the presence scenario refuses to run on a driver whose connections are
// not.
type PresenceConn interface {
	Conn
	// User is the user the target authenticated the connection as.
	User() string
	// SubscribePresence subscribes to room asking for its joins and
	// leaves, and returns once the target confirmed it. fn (nil: none) is
	// called for each join and leave, from one goroutine, in order; the
	// room's messages are read and dropped. With fn set the subscription
	// buffers many events, so that a briefly descheduled reader loses
	// none (see presenceBuffer). unsubscribe ends the
	// subscription, waiting for the target's answer until its context
	// ends.
	SubscribePresence(ctx context.Context, room string, fn func(PresenceEvent)) (unsubscribe func(context.Context) error, err error)
	// Presence returns the users present in room.
	Presence(ctx context.Context, room string) ([]string, error)
}

// errNoPresence is returned for a driver without presence.
var errNoPresence = errors.New("presence has no NATS equivalent: the presence scenario runs with --driver arena only")

func (a *arenaConn) User() string { return a.c.Info().User }

func (a *arenaConn) SubscribePresence(ctx context.Context, room string, fn func(PresenceEvent)) (func(context.Context) error, error) {
	buf := presenceBuffer
	if fn == nil {
		buf = subBuffer // nobody reads the events: no view to keep right
	}
	sub, err := a.c.Subscribe(ctx, room, client.SubscribeOptions{Presence: true, Buffer: buf})
	if err != nil {
		return nil, fmt.Errorf("subscribe %s with presence: %w", room, err)
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for ev := range sub.C() { // closed by Unsubscribe or when the client closes
			if fn == nil {
				continue
			}
			switch ev.Kind {
			case client.EventJoin:
				fn(PresenceEvent{Join: true, User: ev.Notice.User})
			case client.EventLeave:
				fn(PresenceEvent{User: ev.Notice.User})
			}
		}
	}()
	return func(ctx context.Context) error {
		if err := sub.Unsubscribe(ctx); err != nil {
			return fmt.Errorf("unsubscribe %s: %w", room, err)
		}
		return nil
	}, nil
}

func (a *arenaConn) Presence(ctx context.Context, room string) ([]string, error) {
	members, err := a.c.Presence(ctx, room)
	if err != nil {
		return nil, err // the client names the step
	}
	users := make([]string, len(members))
	for i, m := range members {
		users[i] = m.User
	}
	return users, nil
}

// presenceBuffer is the event channel capacity of a presence
// subscription. Joins and leaves cannot be fetched again: a subscription
// whose channel stays full loses them (and resubscribes, which makes its
// own user leave and join), so a watcher descheduled by a busy harness
// would report a wrong view that is the harness's fault. A flush brings
// at most a few hundred events per room; this is many flushes' worth.
// Only subscriptions whose events are read get it (it is 1.5 MB each).
const presenceBuffer = 1 << 16
