package main

import (
	"time"
)

// Config is the configuration of one `arena serve` node. It is read by
// LoadConfig from, in increasing precedence: built-in defaults, the YAML
// file (--config or ARENA_CONFIG), ARENA_* environment variables and
// flags. Validate fills the defaults of zero fields, so a zero field below
// always means "the default".
type Config struct {
	// NodeID names this node in the mesh, in logs and in connected frames;
	// it must be unique in the mesh and stable across restarts. Empty:
	// "<hostname>-<listen port>" (with a random suffix instead of the port
	// when the port is 0, so give --node-id to such nodes).
	NodeID string `yaml:"node_id"`
	// Region is this node's region, used for placement and latency-aware
	// edge lists. Empty: "local".
	Region string `yaml:"region"`
	// Listen is the client HTTP/WebSocket address, host:port. Empty:
	// 127.0.0.1:8080. An empty host (":8080") listens on every interface.
	Listen string `yaml:"listen"`
	// Mesh is the gossip and QUIC bind address, host:port (QUIC on the same
	// port over UDP). Empty: 127.0.0.1:7946.
	Mesh string `yaml:"mesh"`
	// Join lists mesh addresses (host:port) of existing nodes to join at
	// start. Empty: start a new mesh of one.
	Join []string `yaml:"join"`
	// BootstrapExpect, above 1, keeps the node unready, serving no room,
	// until it sees this many live mesh members, itself included, unless
	// it finds one already serving (mesh.Config.BootstrapExpect). Zero: no
	// wait.
	BootstrapExpect int `yaml:"bootstrap_expect"`
	// Data is the data directory (the write-ahead log). Empty: ./data.
	Data string `yaml:"data"`
	// Dev accepts clients without a credential, with full permissions. It
	// is refused unless Listen and Mesh are loopback addresses. False:
	// every client needs a token or an API key.
	Dev bool `yaml:"dev"`
	// MQTTListen is the MQTT 3.1.1/5 listener address, host:port (topics
	// are rooms; the password is a token). Empty: no MQTT listener.
	MQTTListen string `yaml:"mqtt_listen"`
	// Web serves the demo chat at / and the live dashboard at /dashboard.
	// false: served only with dev access.
	Web bool `yaml:"web"`
	// LogLevel is the zerolog level: trace, debug, info, warn, error,
	// fatal, panic or disabled. Empty: info.
	LogLevel string `yaml:"log_level"`

	// Auth says how clients authenticate. Zero: no way (refused unless Dev).
	Auth AuthConfig `yaml:"auth"`
	// Limits bounds what one client may do. Zero fields: defaults.
	Limits LimitsConfig `yaml:"limits"`
	// WAL configures the write-ahead log's retention and idempotency
	// window. Zero fields: defaults.
	WAL WALConfig `yaml:"wal"`

	// RingSize is the number of recent messages kept in memory per room.
	// 0: 1024.
	RingSize int `yaml:"ring_size"`
	// DedupMemory is the number of idempotency keys remembered in memory
	// per room, about 100 bytes each. A room that uses more keys within
	// wal.dedup_window writes each key it forgets to the WAL's key index,
	// which costs every publish more. 0: 10000.
	DedupMemory int `yaml:"dedup_memory"`
	// DrainTimeout bounds the SIGTERM drain (clients told to reconnect,
	// rooms handed over) before the node closes anyway. 0: 10s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// PresenceGrace keeps a user present in a room this long after a
	// connection dropped without closing, so a quick reconnect makes no
	// leave/join flicker. Zero: 15s; negative: no grace.
	PresenceGrace time.Duration `yaml:"presence_grace"`
	// HotIdle turns on early delivery: for this long after its last
	// publish a room delivers messages before their fsync (acks still
	// wait for it). Rooms that were this active when the node stopped
	// uncleanly restart in a new epoch. Zero (the default): every
	// delivery waits for the fsync.
	HotIdle time.Duration `yaml:"hot_idle"`

	// ClusterKey encrypts and authenticates mesh traffic: base64 of a 16,
	// 24 or 32-byte key, the same on every node. Empty: mesh traffic is
	// not encrypted (keep the mesh address on a private network).
	ClusterKey string `yaml:"cluster_key"`
	// DefaultRegion is the home region of rooms that no Placement rule
	// matches. Empty: no preference (the home is chosen among all live
	// nodes).
	DefaultRegion string `yaml:"default_region"`
	// Placement maps room-name prefixes to home regions; the longest
	// matching prefix wins. Empty: every room uses DefaultRegion.
	Placement []PlacementRule `yaml:"placement"`
	// Latency is injected one-way delay between regions, for WAN emulation
	// (`arena dev`): Latency[from][to]. Empty: no delay added.
	Latency map[string]map[string]time.Duration `yaml:"latency"`
}

// AuthConfig says how clients authenticate (PROTOCOL.md "Tokens").
type AuthConfig struct {
	// TokenSecret is the HS256 secret of client tokens. Prefer
	// ARENA_TOKEN_SECRET to writing it here. Empty: HS256 not accepted.
	TokenSecret string `yaml:"token_secret"`
	// PublicKeys verify RS256, ES256 and EdDSA tokens. Empty: none.
	PublicKeys []PublicKeyConfig `yaml:"public_keys"`
	// APIKeys are server credentials for the HTTP API (and WebSocket),
	// sent as "Authorization: Bearer <key>". Empty: none.
	APIKeys []APIKeyConfig `yaml:"api_keys"`
	// AllowedOrigins are browser Origin host patterns (path.Match syntax,
	// or "scheme://host") allowed to open a WebSocket. Empty: same host
	// only. Non-browser clients send no Origin and are not affected.
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// PublicKeyConfig is one token verification key. Exactly one of PEM and
// PEMFile is set.
type PublicKeyConfig struct {
	// Alg is the only algorithm the key verifies: RS256, ES256 or EdDSA.
	// Required.
	Alg string `yaml:"alg"`
	// KID restricts the key to tokens whose header kid equals it. Empty:
	// tried for every token of its Alg.
	KID string `yaml:"kid"`
	// PEM is the public key itself ("PUBLIC KEY", "RSA PUBLIC KEY" or
	// "CERTIFICATE"). Empty: read PEMFile.
	PEM string `yaml:"pem"`
	// PEMFile is a file holding the PEM, relative to the working
	// directory. Empty: use PEM.
	PEMFile string `yaml:"pem_file"`
}

// APIKeyConfig is one server API key.
type APIKeyConfig struct {
	// Name is the principal name: the "from" of what the key publishes.
	// Required, unique.
	Name string `yaml:"name"`
	// Key is the secret, at least 16 bytes, without '.' or spaces.
	// Required, unique.
	Key string `yaml:"key"`
	// Pub lists room patterns the key may publish to. Empty: none.
	Pub []string `yaml:"pub"`
	// Sub lists room patterns the key may subscribe to, read history and
	// presence of. Empty: none.
	Sub []string `yaml:"sub"`
	// Admin allows the admin endpoints (GET /v1/cluster). False: not.
	Admin bool `yaml:"admin"`
}

// LimitsConfig bounds what one client may do.
type LimitsConfig struct {
	// MaxDataBytes bounds the encoded data of one message. 0: 65536.
	MaxDataBytes int `yaml:"max_data_bytes"`
	// PublishRate is the publishes per second allowed per user (over all
	// of the user's connections). 0: 1000.
	PublishRate float64 `yaml:"publish_rate"`
	// PublishBurst is how many publishes a user may make at once above
	// the rate. 0: twice PublishRate.
	PublishBurst int `yaml:"publish_burst"`
	// SendQueue bounds the frames queued to one connection; a connection
	// that overflows it is closed with 4010. 0: 256.
	SendQueue int `yaml:"send_queue"`
}

// WALConfig configures the write-ahead log.
type WALConfig struct {
	// RetentionCount is the number of messages kept per room. 0: 100000.
	RetentionCount int `yaml:"retention_count"`
	// RetentionAge is how long messages are kept. 0: 168h (7 days).
	RetentionAge time.Duration `yaml:"retention_age"`
	// DedupWindow is how long an idempotency key is remembered. 0: 10m.
	DedupWindow time.Duration `yaml:"dedup_window"`
	// SyncInterval is the least time between two fsyncs of the log: one
	// fsync then covers every publish of the interval, so a busy node
	// spends far less CPU on fsyncs, and acks (and deliveries, unless
	// hot_idle is set) wait up to this much longer. At most 100ms.
	// 0: sync as soon as the previous fsync ends.
	SyncInterval time.Duration `yaml:"sync_interval"`
	// MemTableMB is the size in MiB of the log's memtable (Pebble's
	// in-memory part; see wal.Config.MemTableSize): larger means fewer
	// flushes and compactions under sustained load, for up to twice as
	// much memory plus as much again of block cache. 4 to 1024. 0: 128.
	MemTableMB int `yaml:"memtable_mb"`
}

// PlacementRule gives rooms whose name starts with Prefix the home
// region Region.
type PlacementRule struct {
	// Prefix is a room-name prefix ("eu:"). Required.
	Prefix string `yaml:"prefix"`
	// Region is the home region of those rooms. Required.
	Region string `yaml:"region"`
}

// Defaults filled by Validate into zero fields.
const (
	DefaultRegion         = "local"
	DefaultListen         = "127.0.0.1:8080"
	DefaultMesh           = "127.0.0.1:7946"
	DefaultData           = "./data"
	DefaultLogLevel       = "info"
	DefaultRingSize       = 1024
	DefaultDrainTimeout   = 10 * time.Second
	DefaultMaxDataBytes   = 64 << 10
	DefaultPublishRate    = 1000
	DefaultSendQueue      = 256
	DefaultRetentionCount = 100_000
	DefaultRetentionAge   = 7 * 24 * time.Hour
	DefaultDedupWindow    = 10 * time.Minute
)
