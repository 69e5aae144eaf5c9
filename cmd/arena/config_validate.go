package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/arena-mesh/arena/edge/auth"
	"github.com/arena-mesh/arena/protocol"
	"github.com/arena-mesh/arena/wal"
)

// ErrNoAuth is returned by Validate when no client could ever
// authenticate.
var ErrNoAuth = errors.New("no way to authenticate clients: set --token-secret (or ARENA_TOKEN_SECRET), configure auth keys in the config file, or use --dev for local development")

// Validate fills the defaults of zero fields (see each field), then checks
// every field and returns every problem found, one per line. It reads the
// auth.public_keys pem_file files.
func (c *Config) Validate() error {
	c.fillDefaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if err := checkNodeID(c.NodeID); err != nil {
		add("node_id: %w", err)
	}
	if err := checkRegion(c.Region); err != nil {
		add("region: %w", err)
	}
	listenHost, listenPort, listenErr := checkHostPort(c.Listen)
	if listenErr != nil {
		add("listen %q: %w", c.Listen, listenErr)
	}
	meshHost, meshPort, meshErr := checkHostPort(c.Mesh)
	if meshErr != nil {
		add("mesh %q: %w", c.Mesh, meshErr)
	}
	if listenErr == nil && meshErr == nil && listenPort != 0 && listenPort == meshPort && listenHost == meshHost {
		add("listen and mesh are both %q: give them different ports", c.Listen)
	}
	if c.MQTTListen != "" {
		if _, _, err := checkHostPort(c.MQTTListen); err != nil {
			add("mqtt_listen %q: %w", c.MQTTListen, err)
		}
	}
	if c.BootstrapExpect < 0 {
		add("bootstrap_expect %d: want 0 (no wait) or a number of nodes", c.BootstrapExpect)
	}
	for i, j := range c.Join {
		if _, port, err := checkHostPort(j); err != nil {
			add("join[%d] %q: %w", i, j, err)
		} else if port == 0 {
			add("join[%d] %q: port 0 cannot be joined", i, j)
		}
	}
	if c.Dev {
		for _, l := range []struct{ name, addr string }{{"listen", c.Listen}, {"mesh", c.Mesh}, {"mqtt_listen", c.MQTTListen}} {
			if l.addr == "" {
				continue
			}
			host, _, err := net.SplitHostPort(l.addr)
			if err == nil && !isLoopback(host) {
				add("--dev gives every client full access without a token, so it is refused unless every listener is on a loopback address; %s %q is not (use 127.0.0.1, ::1 or localhost, or drop --dev and set --token-secret)", l.name, l.addr)
			}
		}
	}
	switch strings.ToLower(c.LogLevel) {
	case "trace", "debug", "info", "warn", "error", "fatal", "panic", "disabled":
	default:
		add("log_level %q: use trace, debug, info, warn, error, fatal, panic or disabled", c.LogLevel)
	}
	errs = append(errs, c.checkAuth()...)
	errs = append(errs, c.checkLimits()...)
	errs = append(errs, c.checkMesh()...)
	return errors.Join(errs...)
}

// fillDefaults sets the documented default of every zero field.
func (c *Config) fillDefaults() {
	setStr := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	setStr(&c.Region, DefaultRegion)
	setStr(&c.Listen, DefaultListen)
	setStr(&c.Mesh, DefaultMesh)
	setStr(&c.Data, DefaultData)
	setStr(&c.LogLevel, DefaultLogLevel)
	if c.NodeID == "" {
		c.NodeID = defaultNodeID(c.Listen)
	}
	if c.RingSize == 0 {
		c.RingSize = DefaultRingSize
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	l := &c.Limits
	if l.MaxDataBytes == 0 {
		l.MaxDataBytes = DefaultMaxDataBytes
	}
	if l.PublishRate == 0 {
		l.PublishRate = DefaultPublishRate
	}
	if l.PublishBurst == 0 && l.PublishRate > 0 && l.PublishRate < math.MaxInt32/2 {
		l.PublishBurst = max(1, int(math.Ceil(2*l.PublishRate)))
	}
	if l.SendQueue == 0 {
		l.SendQueue = DefaultSendQueue
	}
	w := &c.WAL
	if w.RetentionCount == 0 {
		w.RetentionCount = DefaultRetentionCount
	}
	if w.RetentionAge == 0 {
		w.RetentionAge = DefaultRetentionAge
	}
	if w.DedupWindow == 0 {
		w.DedupWindow = DefaultDedupWindow
	}
}

// defaultNodeID is "<hostname>-<listen port>": stable across restarts and
// distinct for nodes sharing a host. Port 0 (chosen by the kernel) gives
// no stable id, so a random suffix keeps such nodes distinct.
func defaultNodeID(listen string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	host = strings.Map(func(r rune) rune {
		if nodeIDRune(r) && r != ':' {
			return r
		}
		return '-'
	}, host)
	if len(host) > 100 {
		host = host[:100]
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil || port == "0" || port == "" {
		var b [3]byte
		_, _ = rand.Read(b[:])
		port = hex.EncodeToString(b[:])
	}
	return host + "-" + port
}

// nodeIDRune reports whether r may appear in a node id.
func nodeIDRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':'
}

// checkNodeID: 1 to 128 bytes of A-Z a-z 0-9 - _ . :
func checkNodeID(id string) error {
	if id == "" || len(id) > 128 || strings.IndexFunc(id, func(r rune) bool { return !nodeIDRune(r) }) >= 0 {
		return fmt.Errorf("%q: use 1 to 128 characters of A-Z a-z 0-9 - _ . :", id)
	}
	return nil
}

// checkRegion: 1 to 64 bytes of A-Z a-z 0-9 - _ .
func checkRegion(r string) error {
	if r == "" || len(r) > 64 || strings.IndexFunc(r, func(c rune) bool { return !nodeIDRune(c) || c == ':' }) >= 0 {
		return fmt.Errorf("%q: use 1 to 64 characters of A-Z a-z 0-9 - _ .", r)
	}
	return nil
}

// checkHostPort parses a host:port address with a numeric port.
func checkHostPort(addr string) (host string, port uint16, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("not host:port (%w)", err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q is not a number from 0 to 65535", p)
	}
	if strings.ContainsAny(host, " \t/") {
		return "", 0, fmt.Errorf("host %q is not a host name or IP address", host)
	}
	return host, uint16(n), nil
}

// isLoopback reports whether host (from host:port) is a loopback address:
// localhost, 127.0.0.0/8 or ::1. An empty host means every interface.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// checkAuth checks the auth section, and that some client could
// authenticate at all.
func (c *Config) checkAuth() []error {
	var errs []error
	a := c.Auth
	if a.TokenSecret == "" && len(a.PublicKeys) == 0 && len(a.APIKeys) == 0 && !c.Dev {
		errs = append(errs, ErrNoAuth)
	}
	shapeOK := true
	for i, k := range a.PublicKeys {
		if (k.PEM == "") == (k.PEMFile == "") {
			errs = append(errs, fmt.Errorf("auth.public_keys[%d]: set exactly one of pem and pem_file", i))
			shapeOK = false
		}
	}
	for i, o := range a.AllowedOrigins {
		if _, err := path.Match(o, ""); o == "" || err != nil {
			errs = append(errs, fmt.Errorf("auth.allowed_origins[%d] %q: not a host pattern (path.Match syntax, like *.example.com)", i, o))
		}
	}
	if shapeOK {
		if _, err := c.AuthenticatorConfig(); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// AuthenticatorConfig is the auth.Config of c: the token secret, the
// public keys (reading pem_file files), the API keys and Dev. It fails
// with a message naming the config entry if a file cannot be read or a
// key or pattern is unusable.
func (c *Config) AuthenticatorConfig() (auth.Config, error) {
	a := c.Auth
	cfg := auth.Config{Dev: c.Dev}
	if a.TokenSecret != "" {
		cfg.Secret = []byte(a.TokenSecret)
	}
	var errs []error
	for i, k := range a.PublicKeys {
		pem := k.PEM
		if k.PEMFile != "" {
			b, err := readPEMFile(k.PEMFile)
			if err != nil {
				errs = append(errs, fmt.Errorf("auth.public_keys[%d]: read pem_file: %w", i, err))
				continue
			}
			pem = string(b)
		}
		kc := auth.KeyConfig{Alg: k.Alg, PEM: pem, KID: k.KID}
		if err := kc.Check(); err != nil {
			errs = append(errs, fmt.Errorf("auth.public_keys[%d] (%s): %w", i, k.Alg, err))
		}
		cfg.PublicKeys = append(cfg.PublicKeys, kc)
	}
	for i, k := range a.APIKeys {
		ak := auth.APIKey{Name: k.Name, Key: k.Key, Pub: k.Pub, Sub: k.Sub, Admin: k.Admin}
		if err := ak.Check(); err != nil {
			errs = append(errs, fmt.Errorf("auth.api_keys[%d] (%q): %w", i, k.Name, err))
		}
		cfg.APIKeys = append(cfg.APIKeys, ak)
	}
	if len(errs) > 0 {
		return auth.Config{}, errors.Join(errs...)
	}
	// The entries are fine one by one; New also checks them together
	// (names and keys used twice).
	if _, err := auth.New(cfg); err != nil && !errors.Is(err, auth.ErrNoAuth) {
		return auth.Config{}, fmt.Errorf("auth.api_keys: %s", strings.TrimPrefix(err.Error(), "auth: "))
	}
	return cfg, nil
}

// maxPEMFile bounds a pem_file: a public key or certificate is a few KiB.
const maxPEMFile = 64 << 10

// readPEMFile reads a pem_file, refusing anything but a small regular file
// (a device or FIFO could block or never end).
func readPEMFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	if st.Size() > maxPEMFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxPEMFile)
	}
	return io.ReadAll(io.LimitReader(f, maxPEMFile))
}

// checkLimits checks the numeric limits, WAL and timing fields.
func (c *Config) checkLimits() []error {
	var errs []error
	neg := func(name string, v float64) {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			errs = append(errs, fmt.Errorf("%s %v: must be a finite number >= 0 (0 means the default)", name, v))
		}
	}
	neg("limits.max_data_bytes", float64(c.Limits.MaxDataBytes))
	neg("limits.publish_rate", c.Limits.PublishRate)
	neg("limits.publish_burst", float64(c.Limits.PublishBurst))
	neg("limits.send_queue", float64(c.Limits.SendQueue))
	neg("wal.retention_count", float64(c.WAL.RetentionCount))
	neg("ring_size", float64(c.RingSize))
	neg("dedup_memory", float64(c.DedupMemory))
	negDur := func(name string, d time.Duration) {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %v: must be >= 0 (0 means the default)", name, d))
		}
	}
	negDur("wal.retention_age", c.WAL.RetentionAge)
	negDur("wal.dedup_window", c.WAL.DedupWindow)
	negDur("drain_timeout", c.DrainTimeout)
	negDur("hot_idle", c.HotIdle)
	if c.WAL.SyncInterval > wal.MaxSyncInterval {
		errs = append(errs, fmt.Errorf("wal.sync_interval %v: must be at most %v", c.WAL.SyncInterval, wal.MaxSyncInterval))
	}
	negDur("wal.sync_interval", c.WAL.SyncInterval)
	if mb := c.WAL.MemTableMB; mb != 0 && (mb < wal.MinMemTableSize>>20 || mb > wal.MaxMemTableSize>>20) {
		errs = append(errs, fmt.Errorf("wal.memtable_mb %d: must be 0 (the default, %d) or from %d to %d",
			c.WAL.MemTableMB, wal.DefaultMemTableSize>>20, wal.MinMemTableSize>>20, wal.MaxMemTableSize>>20))
	}
	if c.Limits.PublishBurst == 0 && c.Limits.PublishRate >= math.MaxInt32/2 {
		errs = append(errs, fmt.Errorf("limits.publish_rate %v: too large", c.Limits.PublishRate))
	}
	return errs
}

// checkMesh checks the cluster key, placement and latency fields.
func (c *Config) checkMesh() []error {
	var errs []error
	if c.ClusterKey != "" {
		if _, err := c.ClusterKeyBytes(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.DefaultRegion != "" {
		if err := checkRegion(c.DefaultRegion); err != nil {
			errs = append(errs, fmt.Errorf("default_region: %w", err))
		}
	}
	seen := make(map[string]bool, len(c.Placement))
	for i, p := range c.Placement {
		if err := protocol.CheckRoom(p.Prefix); err != nil {
			errs = append(errs, fmt.Errorf("placement[%d].prefix %q: a room-name prefix: 1 to 200 bytes of A-Z a-z 0-9 : _ - . @ /", i, p.Prefix))
		}
		if err := checkRegion(p.Region); err != nil {
			errs = append(errs, fmt.Errorf("placement[%d].region: %w", i, err))
		}
		if seen[p.Prefix] {
			errs = append(errs, fmt.Errorf("placement[%d]: prefix %q appears twice", i, p.Prefix))
		}
		seen[p.Prefix] = true
	}
	for from, row := range c.Latency {
		if err := checkRegion(from); err != nil {
			errs = append(errs, fmt.Errorf("latency: %w", err))
		}
		for to, d := range row {
			if err := checkRegion(to); err != nil {
				errs = append(errs, fmt.Errorf("latency.%s: %w", from, err))
			}
			if d < 0 {
				errs = append(errs, fmt.Errorf("latency.%s.%s %v: must be >= 0", from, to, d))
			}
		}
	}
	return errs
}

// ClusterKeyBytes decodes ClusterKey (standard or URL base64) into the
// 16, 24 or 32-byte key of the mesh; nil when ClusterKey is empty.
func (c *Config) ClusterKeyBytes() ([]byte, error) {
	if c.ClusterKey == "" {
		return nil, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(c.ClusterKey); err == nil {
			switch len(k) {
			case 16, 24, 32:
				return k, nil
			}
			return nil, fmt.Errorf("cluster_key: decodes to %d bytes; use 16, 24 or 32 (make one with: openssl rand -base64 32)", len(k))
		}
	}
	return nil, errors.New("cluster_key: not base64 (make one with: openssl rand -base64 32)")
}
