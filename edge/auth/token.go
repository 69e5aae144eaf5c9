package auth

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/arena-mesh/arena/protocol"
)

// claims is the JWT claim set of PROTOCOL.md "Tokens". Decoding is strict
// about types: "arena": {"pub": "chat:*"} (a string, not a list) makes
// the token malformed rather than silently granting nothing or everything.
type claims struct {
	jwt.RegisteredClaims
	Arena *arenaClaim `json:"arena,omitempty"`
}

// arenaClaim is the "arena" claim: the room patterns the token grants.
type arenaClaim struct {
	Pub []string `json:"pub"` // rooms the user may publish to
	Sub []string `json:"sub"` // rooms the user may subscribe to, read history and presence of
}

// verifyJWT verifies tok with the configured algorithms and keys and turns
// its claims into a Principal.
func (a *Authenticator) verifyJWT(tok string) (*Principal, error) {
	if a.parser == nil {
		return nil, unauthorized("this server accepts no JWTs (no token secret or public key is configured)")
	}
	var c claims
	t, err := a.parser.ParseWithClaims(tok, &c, a.keyfunc)
	if err != nil {
		return nil, a.tokenError(t, err)
	}
	if c.Subject == "" {
		return nil, unauthorized("token has no sub claim")
	}
	if len(c.Subject) > maxUserLen {
		return nil, unauthorized("token sub is longer than %d bytes", maxUserLen)
	}
	p := &Principal{User: c.Subject, Expires: c.ExpiresAt.Time}
	var pub, sub []string
	if c.Arena != nil {
		pub, sub = c.Arena.Pub, c.Arena.Sub
	}
	if err := checkPatterns(pub); err != nil {
		return nil, unauthorized("token claim arena.pub: %v", err)
	}
	if err := checkPatterns(sub); err != nil {
		return nil, unauthorized("token claim arena.sub: %v", err)
	}
	p.pub = compile(pub, p.User)
	p.sub = compile(sub, p.User)
	return p, nil
}

// knownAlgs are the JWS algorithm names an error message may repeat: the
// header's alg is only echoed when it is one of these, never arbitrary
// token content.
var knownAlgs = []string{
	"none", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
	"ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA",
}

// tokenError turns a jwt parse error into a client-facing unauthorized
// error that says what is wrong without quoting the token.
func (a *Authenticator) tokenError(t *jwt.Token, err error) *protocol.Error {
	alg := ""
	if t != nil {
		alg, _ = t.Header["alg"].(string)
	}
	algOK := slices.Contains(a.algs, alg)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return unauthorized("token has expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return unauthorized("token is not valid yet (nbf is in the future)")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return unauthorized("token has no exp claim")
	case errors.Is(err, jwt.ErrTokenMalformed):
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			// Field is the Go path; registered claims sit in an embedded struct.
			field := strings.TrimPrefix(te.Field, "RegisteredClaims.")
			return unauthorized("token claim %q has the wrong type", truncate(field, 64))
		}
		return unauthorized("token is malformed (not three base64url parts of JSON, or a claim of the wrong type)")
	case !algOK && (errors.Is(err, jwt.ErrTokenSignatureInvalid) || errors.Is(err, jwt.ErrTokenUnverifiable)):
		accepted := strings.Join(a.algs, ", ")
		if slices.Contains(knownAlgs, alg) {
			return unauthorized("token algorithm %q is not accepted (accepted: %s)", alg, accepted)
		}
		return unauthorized("token algorithm is missing or not accepted (accepted: %s)", accepted)
	case errors.Is(err, errNoKey):
		return unauthorized("no configured %s key matches the token's kid", alg)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return unauthorized("token signature is invalid")
	default:
		return unauthorized("token is invalid")
	}
}

// truncate cuts s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
