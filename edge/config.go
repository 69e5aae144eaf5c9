package edge

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/edge/auth"
	"github.com/arena-mesh/arena/protocol"
	"github.com/arena-mesh/arena/router"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultMaxDataBytes   = protocol.DefaultMaxData
	DefaultPublishRate    = 1000
	DefaultSendQueue      = 256
	DefaultConnectTimeout = protocol.ConnectTimeoutS * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultMaxInFlight    = 256
)

// Fixed limits that are not worth a configuration knob.
const (
	// minReadLimit is the smallest WebSocket read limit: a message may batch
	// many small frames, so the limit is max(minReadLimit, 4*MaxDataBytes).
	minReadLimit = 1 << 20
	// batchBytes is the size past which the writer stops adding frames to
	// one WebSocket message. A loopback write costs a few µs, so batching
	// is what makes fan-out cheap; 64 KiB keeps latency of one batch low.
	batchBytes = 64 << 10
	// pullMax is how many messages the writer pulls from one subscription
	// at a time, so one busy room cannot starve the others in a batch.
	pullMax = 128
	// abuseLimit bad frames within abuseWindow close the connection with
	// 1008; rateAbuseLimit rate-limited publishes close it with 4008.
	abuseLimit     = 100
	rateAbuseLimit = 1000
	abuseWindow    = 10 * time.Second
	// sseHeartbeat is the interval of SSE comment lines that keep proxies
	// from timing out an idle stream.
	sseHeartbeat = 15 * time.Second
	// closeGrace is how long Close lets sessions run their close handshake
	// before cutting their sockets.
	closeGrace = 2 * time.Second
	// maxQueuedEvents is how many presence and receipt frames a session may
	// have queued beyond its other control frames before it is closed as
	// too slow (see queueEvent).
	maxQueuedEvents = 4096
)

// Edge is one client-facing node, as listed by GET /v1/edges and in
// reconnect frames.
type Edge struct {
	Node   string `json:"node"`
	Region string `json:"region"`
	URL    string `json:"url"` // http(s)://host:port of the node's client listener
}

// Config configures a Server. New validates it and fills the defaults.
type Config struct {
	// NodeID names this node in connected frames, /v1/edges and logs; ""
	// means "local".
	NodeID string
	// Region is this node's region; "" means "local".
	Region string
	// Router sequences, stores and fans out messages (required). The
	// server does not close it.
	Router *router.Router
	// Auth checks tokens and API keys (required).
	Auth *auth.Authenticator
	// Logger receives logs; the zero value logs nothing.
	Logger zerolog.Logger
	// Registerer receives the edge's metrics; nil means not registered.
	Registerer prometheus.Registerer
	// MaxDataBytes bounds the encoded data of one message; 0 means
	// DefaultMaxDataBytes (64 KiB).
	MaxDataBytes int
	// PublishRate is the publishes per second allowed per user, over all
	// of the user's connections and the HTTP API; 0 means
	// DefaultPublishRate.
	PublishRate float64
	// PublishBurst is the rate limiter's bucket size; 0 means twice
	// PublishRate (at least 1).
	PublishBurst int
	// SendQueue bounds the control frames (replies, acks, errors) queued
	// per connection: while it is full the connection's reader waits
	// (back-pressure), and a client that stops reading is cut by
	// WriteTimeout. Publish acks may exceed it by up to MaxInFlight. 0
	// means DefaultSendQueue.
	SendQueue int
	// MaxInFlight bounds the publishes per connection sequenced but not
	// yet durable (acked); past it the connection's reader waits
	// (back-pressure). 0 means DefaultMaxInFlight.
	MaxInFlight int
	// AllowedOrigins are host patterns (path.Match syntax, or
	// "scheme://host" patterns) of browser origins allowed to open a
	// WebSocket; empty means same host only. Requests without an Origin
	// header (non-browser clients) are always allowed.
	AllowedOrigins []string
	// ConnectTimeout is how long a connection may take to complete
	// connect; 0 means DefaultConnectTimeout (10 s).
	ConnectTimeout time.Duration
	// WriteTimeout bounds one WebSocket or SSE write, so a dead peer
	// cannot pin a writer; 0 means DefaultWriteTimeout (10 s).
	WriteTimeout time.Duration
	// Edges lists the client-facing nodes, best first, for reconnect frames
	// and GET /v1/edges; nil means just this node (its URL taken from the
	// request).
	Edges func() []Edge
	// Ready reports readiness for /readyz besides the edge itself (for
	// example "joined the mesh"); nil means always ready.
	Ready func() bool
	// Gatherer is served on /metrics; nil means prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer
	// Now is the clock for token expiry; nil means time.Now.
	Now func() time.Time
	// Web serves the demo chat page at / and the live dashboard at
	// /dashboard (with their assets under /web/); false means they are
	// served only when dev access is on (Auth accepts an empty
	// credential). The browser SDK (/sdk/arena.js) and /v1/stats are
	// always served.
	Web bool
}

// withDefaults validates cfg and returns it with defaults filled in.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Router == nil {
		return cfg, errors.New("edge config: Router is required")
	}
	if cfg.Auth == nil {
		return cfg, errors.New("edge config: Auth is required")
	}
	switch {
	case cfg.MaxDataBytes < 0:
		return cfg, fmt.Errorf("edge config: MaxDataBytes %d is negative", cfg.MaxDataBytes)
	case cfg.PublishRate < 0:
		return cfg, fmt.Errorf("edge config: PublishRate %v is negative", cfg.PublishRate)
	case cfg.PublishBurst < 0:
		return cfg, fmt.Errorf("edge config: PublishBurst %d is negative", cfg.PublishBurst)
	case cfg.SendQueue < 0:
		return cfg, fmt.Errorf("edge config: SendQueue %d is negative", cfg.SendQueue)
	case cfg.MaxInFlight < 0:
		return cfg, fmt.Errorf("edge config: MaxInFlight %d is negative", cfg.MaxInFlight)
	case cfg.ConnectTimeout < 0:
		return cfg, fmt.Errorf("edge config: ConnectTimeout %v is negative", cfg.ConnectTimeout)
	case cfg.WriteTimeout < 0:
		return cfg, fmt.Errorf("edge config: WriteTimeout %v is negative", cfg.WriteTimeout)
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "local"
	}
	if cfg.Region == "" {
		cfg.Region = "local"
	}
	if cfg.MaxDataBytes == 0 {
		cfg.MaxDataBytes = DefaultMaxDataBytes
	}
	if cfg.PublishRate == 0 {
		cfg.PublishRate = DefaultPublishRate
	}
	if cfg.PublishBurst == 0 {
		cfg.PublishBurst = max(1, int(2*cfg.PublishRate))
	}
	if cfg.SendQueue == 0 {
		cfg.SendQueue = DefaultSendQueue
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Ready == nil {
		cfg.Ready = func() bool { return true }
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.DefaultGatherer
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg, nil
}

// readLimit is the largest WebSocket message accepted from a client.
func (cfg *Config) readLimit() int64 {
	return max(int64(minReadLimit), 4*int64(cfg.MaxDataBytes))
}
