package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Sign issues an HS256 token for user, valid from now for ttl, that may
// publish to the pub patterns and subscribe to the sub patterns (for
// `arena token` and tests). Claims: sub, iat, exp and arena{pub, sub}.
func Sign(secret []byte, user string, pub, sub []string, ttl time.Duration, now time.Time) (string, error) {
	switch {
	case len(secret) == 0:
		return "", errors.New("sign token: secret is empty")
	case user == "":
		return "", errors.New("sign token: user is empty")
	case len(user) > maxUserLen:
		return "", fmt.Errorf("sign token: user is longer than %d bytes", maxUserLen)
	case ttl <= 0:
		return "", fmt.Errorf("sign token: ttl %v is not positive", ttl)
	}
	if err := checkPatterns(pub); err != nil {
		return "", fmt.Errorf("sign token: pub: %w", err)
	}
	if err := checkPatterns(sub); err != nil {
		return "", fmt.Errorf("sign token: sub: %w", err)
	}
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   user,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Arena: &arenaClaim{Pub: nonNil(pub), Sub: nonNil(sub)},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// nonNil makes an absent list encode as [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
