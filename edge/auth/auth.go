package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/arena-mesh/arena/protocol"
)

// Config configures an Authenticator.
type Config struct {
	Secret     []byte           // HS256 secret; empty: HS256 not accepted
	PublicKeys []KeyConfig      // accepted asymmetric keys; empty: none
	APIKeys    []APIKey         // server API keys for the HTTP API (and WebSocket); empty: none
	Dev        bool             // an empty credential gets an anonymous principal with full permissions
	Leeway     time.Duration    // clock skew allowed on exp and nbf; 0 means 5s
	Now        func() time.Time // clock for exp and nbf; nil means time.Now
}

// DefaultLeeway is the clock skew allowed when Config.Leeway is zero.
const DefaultLeeway = 5 * time.Second

// MaxCredentialLen is the longest credential Authenticate looks at; longer
// ones are refused before any parsing.
const MaxCredentialLen = 8 << 10

// maxUserLen bounds a token's sub: it becomes the "from" of messages.
const maxUserLen = 256

// ErrNoAuth is returned by New when the configuration accepts no
// credential at all and Dev is off.
var ErrNoAuth = errors.New("auth: no way to authenticate clients (no secret, public key or API key, and not dev mode)")

// Authenticator verifies client credentials. It is immutable after New and
// safe for concurrent use.
type Authenticator struct {
	dev     bool
	secret  []byte
	keys    map[string][]verifyKey // by algorithm
	algs    []string               // configured JWT algorithms, for the parser
	parser  *jwt.Parser            // nil when no JWT algorithm is configured
	apiKeys []apiKey
}

// New validates cfg and returns an Authenticator. It fails with ErrNoAuth
// when nothing could ever authenticate and Dev is off, and with a message
// naming the bad entry for an unusable key or pattern.
func New(cfg Config) (*Authenticator, error) {
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("auth: leeway %v is negative", cfg.Leeway)
	}
	leeway := cfg.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	a := &Authenticator{dev: cfg.Dev, keys: make(map[string][]verifyKey)}
	if len(cfg.Secret) > 0 {
		a.secret = append([]byte(nil), cfg.Secret...)
		a.algs = append(a.algs, AlgHS256)
	}
	for i, kc := range cfg.PublicKeys {
		key, err := parsePublicKey(kc.Alg, kc.PEM)
		if err != nil {
			return nil, fmt.Errorf("auth: public key %d (%s): %w", i, kc.Alg, err)
		}
		if len(a.keys[kc.Alg]) == 0 {
			a.algs = append(a.algs, kc.Alg)
		}
		a.keys[kc.Alg] = append(a.keys[kc.Alg], verifyKey{kid: kc.KID, key: key})
	}
	keys, err := compileAPIKeys(cfg.APIKeys)
	if err != nil {
		return nil, err
	}
	a.apiKeys = keys
	if len(a.algs) > 0 {
		a.parser = jwt.NewParser(
			jwt.WithValidMethods(a.algs),
			jwt.WithLeeway(leeway),
			jwt.WithTimeFunc(now),
			jwt.WithExpirationRequired(),
			jwt.WithStrictDecoding(),
		)
	}
	if a.parser == nil && len(a.apiKeys) == 0 && !a.dev {
		return nil, ErrNoAuth
	}
	return a, nil
}

// Authenticate checks a bearer credential: a JWT (PROTOCOL.md "Tokens") or
// a server API key, optionally prefixed with "Bearer ". An empty credential
// gives the dev principal in Dev mode; a non-empty one is verified even in
// Dev mode, so real user ids can be tried out locally. Every error is a
// *protocol.Error with CodeUnauthorized whose message never contains the
// credential.
func (a *Authenticator) Authenticate(credential string) (*Principal, error) {
	credential = trimBearer(credential)
	if credential == "" {
		if a.dev {
			return devPrincipal(), nil
		}
		return nil, unauthorized("no token given")
	}
	if len(credential) > MaxCredentialLen {
		return nil, unauthorized("token is longer than %d bytes", MaxCredentialLen)
	}
	// A JWT is three base64url parts: exactly two dots. API keys have none
	// (compileAPIKeys refuses dots), so one scan tells them apart.
	if strings.Count(credential, ".") == 2 {
		return a.verifyJWT(credential)
	}
	if p := a.matchAPIKey(credential); p != nil {
		return p, nil
	}
	return nil, unauthorized("token is neither a valid JWT nor a known API key")
}

// trimBearer strips an optional "Bearer" scheme (any case) and spaces.
func trimBearer(s string) string {
	s = strings.TrimSpace(s)
	const scheme = "bearer"
	if len(s) >= len(scheme) && strings.EqualFold(s[:len(scheme)], scheme) &&
		(len(s) == len(scheme) || s[len(scheme)] == ' ' || s[len(scheme)] == '\t') {
		s = strings.TrimSpace(s[len(scheme):])
	}
	return s
}

// devPrincipal is a fresh anonymous principal with every permission.
func devPrincipal() *Principal {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return &Principal{
		User:  "anonymous-" + hex.EncodeToString(b[:]),
		Admin: true,
		pub:   matchAll,
		sub:   matchAll,
	}
}

// unauthorized is the error every failed authentication returns.
func unauthorized(format string, args ...any) *protocol.Error {
	return protocol.Errorf(protocol.CodeUnauthorized, format, args...)
}
