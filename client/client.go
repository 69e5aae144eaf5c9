package client

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/protocol"
)

// Client is a connection to an Arena edge that survives the loss of its
// WebSocket: it reconnects and resumes every subscription where it was.
// All methods are safe for concurrent use.
type Client struct {
	opts Options
	url  string // the WebSocket URL Dial was given, normalized
	log  zerolog.Logger
	http *http.Client
	own  *http.Transport // the transport the client made, closed with it; nil if given

	keyPrefix string        // random per client: generated keys are keyPrefix + counter
	keySeq    atomic.Uint64 // counter of generated idempotency keys
	lastID    atomic.Int64  // the last request id used; ids never repeat within a client

	ctx    context.Context // ends when the client closes
	cancel context.CancelFunc
	wg     sync.WaitGroup // the supervisor, writers and subscription helpers

	mu     sync.Mutex    // guards the fields below
	sess   *session      // the current connection; nil while reconnecting
	ready  chan struct{} // closed while sess is set; replaced when it is lost
	token  string        // sent on every (re)connect; updated by Refresh
	closed bool
	cause  error                    // why the client closed itself; nil after Close
	timers map[*time.Timer]struct{} // pending resubscription retries

	subsMu sync.RWMutex // guards subs
	subs   map[string]*Subscription
}

// Dial connects to the Arena edge at rawURL (ws://host:port, or
// http://host:port; the path /v1/ws is added when absent), completes the
// connect handshake and returns the connected client. ctx bounds this
// first connection only. A refusal by the server is a *protocol.Error,
// such as CodeUnauthorized for a missing or bad token.
func Dial(ctx context.Context, rawURL string, opts Options) (*Client, error) {
	u, err := wsURL(rawURL)
	if err != nil {
		return nil, err
	}
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Client{
		opts:   opts,
		url:    u,
		log:    opts.Logger.With().Str("component", "client").Logger(),
		token:  opts.Token,
		ready:  make(chan struct{}),
		timers: make(map[*time.Timer]struct{}),
		subs:   make(map[string]*Subscription),
	}
	c.http, c.own = c.opts.httpClient()
	var prefix [9]byte
	_, _ = crand.Read(prefix[:]) // crypto/rand.Read never fails
	c.keyPrefix = base64.RawURLEncoding.EncodeToString(prefix[:]) + "-"
	c.ctx, c.cancel = context.WithCancel(context.Background())

	s, err := c.connect(ctx, u)
	if err != nil {
		c.cancel()
		if c.own != nil {
			c.own.CloseIdleConnections()
		}
		return nil, err
	}
	c.setSession(s) // so that Info and the first calls need not wait for run
	c.wg.Add(1)
	go c.run(s)
	return c, nil
}

// setSession makes s the current connection, unless the client is closed.
func (c *Client) setSession(s *session) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	if c.sess != s {
		c.sess = s
		close(c.ready)
	}
	return true
}

// run is the supervisor and reader goroutine: it serves each connection
// until it fails, then reconnects with backoff until the client closes.
func (c *Client) run(s *session) {
	defer c.wg.Done()
	for s != nil {
		err := c.serve(s)
		if c.ctx.Err() != nil {
			return
		}
		c.log.Info().Err(err).Str("remote", s.info.URL).Int("close_code", int(websocket.CloseStatus(err))).Msg("connection lost")
		c.notify(ConnState{URL: s.info.URL, Err: err})
		s = c.reconnect(s.edges)
	}
}

// serve runs one connection: it starts the writer, subscribes again every
// subscription, then reads until the connection fails.
func (c *Client) serve(s *session) error {
	c.wg.Add(1)
	go s.writeLoop()

	var err error
	if !c.setSession(s) {
		err = ErrClosed
	} else {
		c.log.Debug().Str("remote", s.info.URL).Str("node", s.info.Node).Msg("connected")
		c.notify(ConnState{Connected: true, URL: s.info.URL, Session: s.info})
		for _, sub := range c.subscriptions() {
			s.resync(sub)
		}
		err = s.readLoop()
	}

	c.mu.Lock()
	if c.sess == s {
		c.sess = nil
		c.ready = make(chan struct{})
	}
	c.mu.Unlock()
	s.shutdown()
	return err
}

// reconnect dials again until it succeeds or the client closes: first the
// edges the server suggested, then the URL given to Dial. It closes the
// client and returns nil if the server no longer accepts its credentials.
func (c *Client) reconnect(edges []string) *session {
	urls := make([]string, 0, len(edges)+1)
	for _, e := range edges {
		if u, err := wsURL(e); err == nil && u != c.url {
			urls = append(urls, u)
		}
	}
	urls = append(urls, c.url)
	for attempt := 0; ; attempt++ {
		if !c.sleep(c.ctx, c.backoff(attempt)) {
			return nil
		}
		u := urls[attempt%len(urls)]
		s, err := c.connect(c.ctx, u)
		if err == nil {
			c.log.Info().Str("remote", u).Int("attempt", attempt+1).Msg("reconnected")
			return s
		}
		if c.ctx.Err() != nil {
			return nil
		}
		if Code(err) == protocol.CodeUnauthorized {
			c.log.Error().Err(err).Str("remote", u).Msg("credentials refused, closing")
			c.fail(err)
			return nil
		}
		c.log.Debug().Err(err).Str("remote", u).Int("attempt", attempt+1).Msg("reconnect failed")
	}
}

// backoff is the delay before reconnection attempt n (from 0): a random
// fraction of ReconnectMin first, then doubling up to ReconnectMax, each
// with jitter between half and all of it.
func (c *Client) backoff(n int) time.Duration {
	lo, hi := c.opts.ReconnectMin, c.opts.ReconnectMax
	if n == 0 {
		return rand.N(lo)
	}
	d := hi
	if n < 30 && lo<<n < hi {
		d = lo << n
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits d, and reports false if ctx or the client ended first.
func (c *Client) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil && c.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-c.ctx.Done():
		return false
	}
}

// session returns the current connection, waiting for one while the
// client reconnects.
func (c *Client) session(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		s, ready, closed := c.sess, c.ready, c.closed
		c.mu.Unlock()
		if closed {
			return nil, c.closedErr()
		}
		if s != nil {
			return s, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.ctx.Done():
			return nil, c.closedErr()
		}
	}
}

// currentSession returns the current connection, nil while reconnecting.
func (c *Client) currentSession() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

// Info describes the current connection; the zero SessionInfo while the
// client is reconnecting or closed.
func (c *Client) Info() SessionInfo {
	if s := c.currentSession(); s != nil {
		return s.info
	}
	return SessionInfo{}
}

// newID returns a request id never used before by this client, so a late
// reply can never be taken for another request's.
func (c *Client) newID() int64 { return c.lastID.Add(1) }

// newKey returns a fresh idempotency key: a random per-client prefix and
// a counter, unique without a random draw per message.
func (c *Client) newKey() string {
	var b [48]byte
	k := append(b[:0], c.keyPrefix...)
	return string(strconv.AppendUint(k, c.keySeq.Add(1), 36))
}

func (c *Client) currentToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

func (c *Client) notify(st ConnState) {
	if c.opts.OnConnState != nil {
		c.opts.OnConnState(st)
	}
}

// closedErr is what calls return once the client is closed.
func (c *Client) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cause != nil {
		return fmt.Errorf("%w: %w", ErrClosed, c.cause)
	}
	return ErrClosed
}

// fail closes the client from its own supervisor goroutine because it
// cannot go on; Close still has to be called to release everything.
func (c *Client) fail(cause error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.cause = cause
	c.stopTimersLocked()
	c.mu.Unlock()
	c.cancel()
	for _, sub := range c.subscriptions() {
		sub.close(cause)
	}
	c.notify(ConnState{Closed: true, URL: c.url, Err: cause})
}

// Close closes the connection and stops every goroutine of the client.
// Calls in flight and later calls return ErrClosed, and the channels of
// all subscriptions are closed. Close is idempotent and always returns nil.
func (c *Client) Close() error {
	c.mu.Lock()
	already := c.closed
	c.closed = true
	s := c.sess
	c.stopTimersLocked()
	c.mu.Unlock()
	if s != nil && !already {
		// A polite close: the reader goroutine reads the server's answer.
		s.conn.Close(websocket.StatusNormalClosure, "client closed")
	}
	c.cancel()
	c.wg.Wait()
	for _, sub := range c.subscriptions() {
		sub.close(nil)
	}
	c.wg.Wait() // subscription helpers that were still delivering
	if c.own != nil {
		c.own.CloseIdleConnections()
	}
	if !already {
		c.notify(ConnState{Closed: true, URL: c.url})
	}
	return nil
}

// afterFunc runs f after d on its own goroutine unless the client closes
// first; the goroutine is counted in wg so Close waits for it.
func (c *Client) afterFunc(d time.Duration, f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		c.mu.Lock()
		delete(c.timers, t)
		if c.closed {
			c.mu.Unlock()
			return
		}
		c.wg.Add(1)
		c.mu.Unlock()
		defer c.wg.Done()
		f()
	})
	c.timers[t] = struct{}{}
}

func (c *Client) stopTimersLocked() {
	for t := range c.timers {
		t.Stop()
		delete(c.timers, t)
	}
}

// errorsIsClosed reports whether err means the client is closed.
func errorsIsClosed(err error) bool { return errors.Is(err, ErrClosed) }
