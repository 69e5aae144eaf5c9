package client

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/edge/edgetest"
)

// TestSessionEndClosesConnection: the reader reads without a context, so
// ending a session's context must close its connection itself: the
// reader then returns and the client reconnects.
func TestSessionEndClosesConnection(t *testing.T) {
	n := edgetest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	states := make(chan ConnState, 16)
	c, err := Dial(ctx, n.WSURL, Options{
		Token:        n.AllToken("u"),
		Logger:       zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel),
		ReconnectMin: 5 * time.Millisecond,
		ReconnectMax: 50 * time.Millisecond,
		OnConnState: func(s ConnState) {
			select {
			case states <- s:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first := c.currentSession()
	if first == nil {
		t.Fatal("no session after Dial")
	}
	first.cancel()
	for {
		select {
		case s := <-states:
			if s.Connected && c.currentSession() != first {
				return // the reader ended and the client connected again
			}
		case <-ctx.Done():
			t.Fatal("the session's connection stayed open after its context ended")
		}
	}
}
