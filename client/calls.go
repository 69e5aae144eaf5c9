package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/arena-mesh/arena/protocol"
)

// PublishOptions configure one Publish.
type PublishOptions struct {
	// Key is the idempotency key (1 to 64 bytes of UTF-8): a publish with
	// a key the room has seen in the last minutes (10 by default) is not
	// published again, and its Ack has Dup set. "" means a fresh key made
	// by the client, which is what makes Publish's own retries safe; give
	// your own to make retries of your own safe too.
	Key string
}

// Ack confirms a durable message: its position in the room and the
// server's timestamp.
type Ack struct {
	Epoch, Seq uint64
	TS         int64 // ms since the Unix epoch
	// Dup is set when the room already had a message with this key, so
	// nothing was published again: the caller reused a key, or a retry
	// after a lost connection found that the first attempt had been
	// published. Epoch, Seq and TS are then the original message's.
	Dup bool
}

// Position returns the acknowledged message's position.
func (a Ack) Position() protocol.Position { return protocol.Position{Epoch: a.Epoch, Seq: a.Seq} }

// Publish publishes data, any JSON value, to room and returns once the
// message is durable. It retries, with the same idempotency key, when the
// connection is lost or the server answers unavailable, until ctx ends, so
// the message is published once. Other refusals come back at once as a
// *protocol.Error (forbidden, too_large, rate_limited with its RetryMS
// unless Options.RetryRateLimited, ...). If ctx ends first, the message
// may still be published.
func (c *Client) Publish(ctx context.Context, room string, data json.RawMessage, opts PublishOptions) (Ack, error) {
	data, err := checkPub(room, opts.Key, data)
	if err != nil {
		return Ack{}, err
	}
	return c.publishLoop(ctx, room, c.pubEncoder(room, opts.Key, data))
}

// PublishAsync is Publish without the wait, for keeping many publishes in
// flight from one goroutine (a feed, a bridge): it queues the publish and
// returns, and done receives the outcome exactly once, the Ack once the
// message is durable or the error Publish would have returned. Publishes
// go on the wire in call order. Retries are Publish's, with the same
// idempotency key.
//
// done runs on the connection's reader goroutine, or on a goroutine of
// its own after a retry, and must not block; it runs before PublishAsync
// returns for a bad argument. ctx bounds the wait for room in the write
// buffer (Options.WriteBuffer, during which PublishAsync blocks) and the
// retries; a publish already written waits for its ack, or for the loss
// of its connection, whatever becomes of ctx.
func (c *Client) PublishAsync(ctx context.Context, room string, data json.RawMessage, opts PublishOptions, done func(Ack, error)) {
	data, err := checkPub(room, opts.Key, data)
	if err != nil {
		done(Ack{}, err)
		return
	}
	enc := c.pubEncoder(room, opts.Key, data)
	// failed takes the first attempt's failure: what Publish would retry
	// is retried on a goroutine, by Publish's loop.
	failed := func(err error) {
		retry := errors.Is(err, errConnLost)
		attempt, delay := 1, time.Duration(0)
		if !retry {
			delay, retry = c.retryDelay(err, &attempt)
		}
		if !retry {
			done(Ack{}, fmt.Errorf("publish to %s: %w", room, err))
			return
		}
		go func() {
			if delay > 0 && !c.sleep(ctx, delay) {
				if c.ctx.Err() != nil {
					err = c.closedErr()
				} else {
					err = fmt.Errorf("%w after %w", ctx.Err(), err)
				}
				done(Ack{}, fmt.Errorf("publish to %s: %w", room, err))
				return
			}
			done(c.publishLoop(ctx, room, enc))
		}()
	}
	s := c.currentSession()
	if s == nil {
		failed(errConnLost) // reconnecting: the loop waits for the connection
		return
	}
	id := c.newID()
	if !s.addPending(id, func(f *protocol.Frame, err error) {
		if err == nil {
			switch f.Op {
			case protocol.OpAck:
				done(Ack{Epoch: f.Epoch, Seq: f.Seq, TS: f.TS, Dup: f.Dup}, nil)
				return
			case protocol.OpError:
				err = frameError(f)
			default:
				err = protocol.Errorf(protocol.CodeInternal, "unexpected %q reply, want %q", f.Op, protocol.OpAck)
			}
		}
		failed(err)
	}) {
		failed(errConnLost)
		return
	}
	if err := s.send(ctx, true, func(b []byte) []byte { return enc(b, id) }); err != nil {
		if s.takePending(id) != nil { // else the connection's loss took it
			failed(err)
		}
	}
}

// checkPub checks a publish's arguments before anything is sent, and
// returns data as it goes on the wire (see checkData).
func checkPub(room, key string, data json.RawMessage) (json.RawMessage, error) {
	if err := protocol.CheckRoom(room); err != nil {
		return nil, err
	}
	if err := protocol.CheckKey(key); err != nil {
		return nil, err
	}
	return checkData(data)
}

// pubEncoder returns the encoder of a pub frame of data to room with key,
// or with a fresh key if key is "": the one every attempt sends.
func (c *Client) pubEncoder(room, key string, data json.RawMessage) func(b []byte, id int64) []byte {
	if key == "" {
		key = c.newKey()
	}
	return func(b []byte, id int64) []byte { return appendPub(b, id, room, key, data) }
}

// publishLoop is Publish's request loop (see do).
func (c *Client) publishLoop(ctx context.Context, room string, enc func(b []byte, id int64) []byte) (Ack, error) {
	var ack Ack
	err := c.do(ctx, protocol.OpAck, enc,
		func(f *protocol.Frame) { ack = Ack{Epoch: f.Epoch, Seq: f.Seq, TS: f.TS, Dup: f.Dup} })
	if err != nil {
		return Ack{}, fmt.Errorf("publish to %s: %w", room, err)
	}
	return ack, nil
}

// HistoryOptions select the messages History returns. With neither
// Before, After nor FromOldest, it returns the newest Limit messages.
type HistoryOptions struct {
	// Before returns the messages before this seq; 0 means no bound.
	Before uint64
	// After returns the messages after this seq; 0 means no bound unless
	// FromOldest is set.
	After uint64
	// FromOldest returns the oldest retained messages (after seq 0).
	FromOldest bool
	// Limit is the most messages returned, 1 to 1000; 0 means 50.
	Limit int
}

// History returns messages of room's current epoch, oldest first, and
// that epoch. It is retried on a lost connection or unavailable until ctx
// ends.
func (c *Client) History(ctx context.Context, room string, opts HistoryOptions) (uint64, []protocol.Msg, error) {
	f := protocol.Frame{Op: protocol.OpHistory, Room: room, Limit: opts.Limit}
	if opts.Before != 0 {
		f.Before = &opts.Before
	}
	if opts.After != 0 || opts.FromOldest {
		f.After = &opts.After
	}
	if err := f.CheckClient(); err != nil {
		return 0, nil, err
	}
	var (
		epoch uint64
		msgs  []protocol.Msg
	)
	err := c.do(ctx, protocol.OpHistory, func(b []byte, id int64) []byte {
		f.ID = &id
		return appendFrame(b, &f)
	}, func(r *protocol.Frame) {
		// Msgs was decoded into a fresh slice (dispatch zeroes the frame).
		epoch, msgs = r.Epoch, r.Msgs
	})
	if err != nil {
		return 0, nil, fmt.Errorf("history of %s: %w", room, err)
	}
	if msgs == nil {
		msgs = []protocol.Msg{}
	}
	return epoch, msgs, nil
}

// Presence returns the users present in room with their connection
// counts.
func (c *Client) Presence(ctx context.Context, room string) ([]protocol.Member, error) {
	if err := protocol.CheckRoom(room); err != nil {
		return nil, err
	}
	var members []protocol.Member
	err := c.do(ctx, protocol.OpPresence, func(b []byte, id int64) []byte {
		return appendFrame(b, &protocol.Frame{Op: protocol.OpPresence, ID: &id, Room: room})
	}, func(r *protocol.Frame) { members = r.Members })
	if err != nil {
		return nil, fmt.Errorf("presence of %s: %w", room, err)
	}
	return members, nil
}

// Ping measures the round trip of a ping frame to the edge and back
// (through the client's queues and the server's, unlike a WebSocket ping).
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	var sent time.Time
	err := c.do(ctx, protocol.OpPong, func(b []byte, id int64) []byte {
		sent = time.Now()
		return appendFrame(b, &protocol.Frame{Op: protocol.OpPing, ID: &id})
	}, nil)
	if err != nil {
		return 0, fmt.Errorf("ping: %w", err)
	}
	return time.Since(sent), nil
}

// Refresh gives the server a fresh token before the current one expires
// (the server closes the connection when it does), and keeps it for later
// reconnections. It returns the new expiry.
func (c *Client) Refresh(ctx context.Context, token string) (time.Time, error) {
	if token == "" {
		return time.Time{}, protocol.Errorf(protocol.CodeBadRequest, "refresh needs a token")
	}
	var expires int64
	err := c.do(ctx, protocol.OpRefreshed, func(b []byte, id int64) []byte {
		return appendFrame(b, &protocol.Frame{Op: protocol.OpRefresh, ID: &id, Token: token})
	}, func(r *protocol.Frame) { expires = r.Expires })
	if err != nil {
		return time.Time{}, fmt.Errorf("refresh: %w", err)
	}
	c.mu.Lock()
	c.token = token
	c.mu.Unlock()
	if expires == 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(expires), nil
}

// Rooms lists the rooms this user has read positions in, in room-name
// order: each room's head, the user's read position and how many messages
// are unread (after the read position up to the head). Positions are
// recorded by MarkRead (and MarkDelivered), from any connection of the user.
func (c *Client) Rooms(ctx context.Context) ([]protocol.UserRoom, error) {
	var rooms []protocol.UserRoom
	err := c.do(ctx, protocol.OpRooms, func(b []byte, id int64) []byte {
		return appendFrame(b, &protocol.Frame{Op: protocol.OpRooms, ID: &id})
	}, func(r *protocol.Frame) { rooms = r.Rooms })
	if err != nil {
		return nil, fmt.Errorf("rooms: %w", err)
	}
	if rooms == nil {
		rooms = []protocol.UserRoom{}
	}
	return rooms, nil
}

// MarkDelivered tells the server that this user got message seq of room;
// the publisher (and presence subscribers) receive a receipt. It sends the
// frame and returns: the server does not answer it.
func (c *Client) MarkDelivered(ctx context.Context, room string, seq uint64) error {
	return c.mark(ctx, protocol.OpRecv, room, seq)
}

// MarkRead tells the server that this user read every message of room up
// to seq. Like MarkDelivered, it does not wait for the server.
func (c *Client) MarkRead(ctx context.Context, room string, seq uint64) error {
	return c.mark(ctx, protocol.OpRead, room, seq)
}

func (c *Client) mark(ctx context.Context, op, room string, seq uint64) error {
	f := protocol.Frame{Op: op, Room: room, Seq: seq}
	if err := f.CheckClient(); err != nil {
		return err
	}
	for {
		s, err := c.session(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		err = s.send(ctx, true, func(b []byte) []byte { return appendFrame(b, &f) })
		if !errors.Is(err, errConnLost) {
			return err
		}
	}
}

// do sends a request and waits for its reply. take copies what the caller
// needs from a successful reply (on the reader goroutine; nil when nothing
// is needed). A lost connection makes it send the request again on the
// next one, and unavailable (or rate_limited, with
// Options.RetryRateLimited) after a delay, until ctx ends; other server errors are returned.
func (c *Client) do(ctx context.Context, want string, enc func(b []byte, id int64) []byte, take func(*protocol.Frame)) error {
	for attempt := 1; ; {
		s, err := c.session(ctx)
		if err != nil {
			return err
		}
		err = c.once(ctx, s, want, enc, take)
		if err == nil {
			return nil
		}
		if errors.Is(err, errConnLost) {
			continue // c.session waits for the next connection
		}
		d, ok := c.retryDelay(err, &attempt)
		if !ok {
			return err
		}
		if !c.sleep(ctx, d) {
			if c.ctx.Err() != nil {
				return c.closedErr()
			}
			return fmt.Errorf("%w after %w", ctx.Err(), err)
		}
	}
}

// retryDelay says whether a server error asks for a retry, and after how
// long.
func (c *Client) retryDelay(err error, attempt *int) (time.Duration, bool) {
	var e *protocol.Error
	if !errors.As(err, &e) {
		return 0, false
	}
	switch {
	case retryable(e):
		d := c.backoff(*attempt)
		*attempt++
		return d, true
	case e.Code == protocol.CodeRateLimited && c.opts.RetryRateLimited:
		if e.RetryMS > 0 {
			return time.Duration(e.RetryMS) * time.Millisecond, true
		}
		return c.backoff(1), true
	}
	return 0, false
}

// once sends one request on s and waits for the reply. errConnLost means
// s ended first.
func (c *Client) once(ctx context.Context, s *session, want string, enc func(b []byte, id int64) []byte, take func(*protocol.Frame)) error {
	id := c.newID()
	done := make(chan error, 1)
	if !s.addPending(id, func(f *protocol.Frame, err error) {
		if err == nil {
			switch f.Op {
			case want:
				if take != nil {
					take(f)
				}
			case protocol.OpError:
				err = frameError(f)
			default:
				err = protocol.Errorf(protocol.CodeInternal, "unexpected %q reply, want %q", f.Op, want)
			}
		}
		done <- err
	}) {
		return errConnLost
	}
	if err := s.send(ctx, true, func(b []byte) []byte { return enc(b, id) }); err != nil {
		s.takePending(id)
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		s.takePending(id)
		return ctx.Err()
	case <-c.ctx.Done():
		return c.closedErr()
	}
}

// roundTrip sends one request on s alone, with no retry (Unsubscribe).
func (c *Client) roundTrip(ctx context.Context, s *session, enc func(b []byte, id int64) []byte) error {
	return c.once(ctx, s, protocol.OpUnsubscribed, enc, nil)
}
