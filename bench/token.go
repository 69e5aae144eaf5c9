package bench

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenSource gives each connection its credential. With a secret it
// mints an HS256 token per connection for a distinct user, so that the
// server's per-user publish rate limit applies per simulated user as in a
// real deployment, not to the whole run. It signs the claims PROTOCOL.md
// describes itself rather than calling the server's signer, because the
// harness imports no server package.
type tokenSource struct {
	fixed  string
	secret []byte
	run    string
	ttl    time.Duration
}

// token returns the credential of connection i ("" for none: dev mode).
func (ts *tokenSource) token(i int) (string, error) {
	if len(ts.secret) == 0 {
		return ts.fixed, nil
	}
	return mintToken(ts.secret, fmt.Sprintf("bench-%s-%d", ts.run, i), ts.ttl, time.Now())
}

// mintToken signs an HS256 token for user with publish and subscribe
// permission on every room ("*": the empty prefix).
func mintToken(secret []byte, user string, ttl time.Duration, now time.Time) (string, error) {
	claims := jwt.MapClaims{
		"sub":   user,
		"iat":   now.Unix(),
		"nbf":   now.Add(-time.Minute).Unix(),
		"exp":   now.Add(ttl).Unix(),
		"arena": map[string]any{"pub": []string{"*"}, "sub": []string{"*"}},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}
