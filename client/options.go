package client

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/rs/zerolog"
)

// Options configure a Client. The zero value connects without a token
// (a server in dev mode) with the defaults below.
type Options struct {
	// Token is the bearer credential (a JWT or a server API key) sent in
	// the connect frame. Empty: no token, for servers in dev mode, or when
	// Header carries an Authorization header instead.
	Token string
	// Name identifies the client software to the server; "" means "arena-go".
	Name string
	// Header holds extra HTTP headers for the WebSocket upgrade request;
	// nil means none.
	Header http.Header
	// HTTPClient performs the upgrade request; nil means a client of the
	// Client's own whose connections are dialed with DialContext or from
	// LocalAddr.
	HTTPClient *http.Client
	// DialContext opens the TCP connection when HTTPClient is nil; nil
	// means a net.Dialer with LocalAddr.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// LocalAddr is the local address connections are dialed from when
	// HTTPClient and DialContext are nil; nil lets the system choose. A load
	// generator spreads its connections over 127.0.0.x with it.
	LocalAddr net.Addr

	// ConnectTimeout bounds each connection attempt (upgrade, connect and
	// its reply); 0 means 10s.
	ConnectTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the delay between reconnection
	// attempts, which doubles from ReconnectMin up to ReconnectMax with
	// jitter; 0 means 100ms and 5s. The first attempt after a lost
	// connection waits a random fraction of ReconnectMin, so that the
	// clients of a draining node do not all arrive at once.
	ReconnectMin, ReconnectMax time.Duration
	// KeepAlive is how long the connection may stay silent before the
	// client sends a ping; a connection silent for twice as long, or whose
	// write blocks that long, is considered dead and replaced. 0 means
	// 20s; negative disables it.
	KeepAlive time.Duration
	// RetryRateLimited makes Publish wait the server's retry_ms and try
	// again when it is rate limited, instead of returning the error.
	RetryRateLimited bool

	// ReadLimit is the largest WebSocket message accepted from the server,
	// in bytes; 0 means 128 MiB (a history reply of 1000 messages of
	// 64 KiB fits).
	ReadLimit int64
	// WriteBuffer is how many bytes of frames may wait for the writer
	// before calls wait for it; 0 means 1 MiB.
	WriteBuffer int
	// MaxBatch is the largest WebSocket message the writer sends when it
	// batches several waiting frames ('\n'-separated); a single larger
	// frame is sent alone. 0 means 32 KiB.
	MaxBatch int

	// Logger receives the client's logs; the zero value discards them.
	Logger zerolog.Logger
	// OnConnState, if set, is called when the client connects, loses its
	// connection and reconnects, and when it closes. It runs on the
	// connection's reader goroutine and must not block (nor call Close).
	OnConnState func(ConnState)
	// OnEvent, if set, receives the events that belong to no subscription
	// of this client: receipts of messages it published in rooms it does
	// not subscribe to. It runs on the reader goroutine and must not block
	// (nor call Close).
	OnEvent func(Event)
}

// ConnState describes a change of the client's connection.
type ConnState struct {
	// Connected is true when a connection has just been established
	// (Session describes it) and false when it was lost or the client
	// closed (Err says why; nil after Close).
	Connected bool
	// Closed is true once the client is closed for good.
	Closed bool
	// URL is the WebSocket URL of the edge concerned.
	URL     string
	Session SessionInfo
	Err     error
}

// SessionInfo describes a connection as the server's connected reply
// did.
type SessionInfo struct {
	URL     string // the edge's WebSocket URL
	Session string
	User    string
	Node    string
	Region  string
	Expires time.Time // when the token expires; zero if it does not
}

const (
	defaultName           = "arena-go"
	defaultConnectTimeout = 10 * time.Second
	defaultReconnectMin   = 100 * time.Millisecond
	defaultReconnectMax   = 5 * time.Second
	defaultKeepAlive      = 20 * time.Second
	defaultReadLimit      = 128 << 20
	defaultWriteBuffer    = 1 << 20
	defaultMaxBatch       = 32 << 10
	defaultSubBuffer      = 256
)

// withDefaults validates o and fills in its defaults.
func (o Options) withDefaults() (Options, error) {
	if o.Name == "" {
		o.Name = defaultName
	}
	if o.ConnectTimeout < 0 || o.ReconnectMin < 0 || o.ReconnectMax < 0 || o.ReadLimit < 0 || o.WriteBuffer < 0 || o.MaxBatch < 0 {
		return o, fmt.Errorf("client: negative timeout or size in Options")
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = defaultConnectTimeout
	}
	if o.ReconnectMin == 0 {
		o.ReconnectMin = defaultReconnectMin
	}
	if o.ReconnectMax == 0 {
		o.ReconnectMax = defaultReconnectMax
	}
	if o.ReconnectMax < o.ReconnectMin {
		o.ReconnectMax = o.ReconnectMin
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = defaultKeepAlive
	}
	if o.ReadLimit == 0 {
		o.ReadLimit = defaultReadLimit
	}
	if o.WriteBuffer == 0 {
		o.WriteBuffer = defaultWriteBuffer
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = defaultMaxBatch
	}
	return o, nil
}

// httpClient returns the HTTP client for upgrade requests, and the
// transport the Client owns (nil when the caller gave the client).
func (o *Options) httpClient() (*http.Client, *http.Transport) {
	if o.HTTPClient != nil {
		return o.HTTPClient, nil
	}
	dial := o.DialContext
	if dial == nil {
		d := &net.Dialer{LocalAddr: o.LocalAddr, KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	t := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         frameDial(dial),
		TLSHandshakeTimeout: o.ConnectTimeout,
		// Every request is an upgrade, and a connection that was upgraded
		// is never reused: each upgrade dials its own (frameConn relies on
		// that).
		DisableKeepAlives: true,
	}
	return &http.Client{Transport: t}, t
}

// wsURL turns a server address into its WebSocket endpoint: http and
// https become ws and wss, and an empty path becomes /v1/ws.
func wsURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("client: parse url %q: %w", raw, err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("client: url %q: scheme must be ws, wss, http or https", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("client: url %q has no host", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/ws"
	}
	return u.String(), nil
}
