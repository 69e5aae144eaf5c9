package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/arena-mesh/arena/protocol"
)

// FuzzAuthenticate checks that no credential makes Authenticate panic,
// that every refusal is an unauthorized *protocol.Error, and that every
// acceptance names a user.
func FuzzAuthenticate(f *testing.F) {
	k := keys(f)
	a := newAuth(f, Config{
		Secret:     testSecret,
		PublicKeys: []KeyConfig{{Alg: AlgEdDSA, PEM: k.edPEM}, {Alg: AlgES256, PEM: k.ecPEM}},
		APIKeys:    []APIKey{{Name: "svc", Key: "fuzz-api-key-0123456789", Pub: []string{"*"}}},
	})
	signed, err := Sign(testSecret, "alice", []string{"dm:{user}:*"}, []string{"chat:*"}, time.Hour, testNow)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		signed,
		"Bearer " + signed,
		signWith(f, jwt.SigningMethodEdDSA, k.ed, validClaims(), map[string]any{"kid": "k"}),
		signWith(f, jwt.SigningMethodES256, k.ec, validClaims(), nil),
		signWith(f, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["arena"] = map[string]any{"pub": "x"} }), nil),
		craft(`{"alg":"none"}`, `{"sub":"a","exp":1800000000}`, nil),
		"fuzz-api-key-0123456789",
		"",
		"a.b.c",
		"..",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, cred string) {
		p, err := a.Authenticate(cred)
		if err != nil {
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != protocol.CodeUnauthorized {
				t.Fatalf("error %#v is not an unauthorized *protocol.Error", err)
			}
			if p != nil {
				t.Fatal("principal with an error")
			}
			if len(cred) > 40 && strings.Contains(pe.Message, cred) {
				t.Fatalf("message %q quotes the credential", pe.Message)
			}
			return
		}
		if p == nil || p.User == "" {
			t.Fatalf("accepted without a user: %+v", p)
		}
		_ = p.CanPublish("chat:x")
		_ = p.CanSubscribe("dm:alice:x")
	})
}

// FuzzPattern checks CheckPattern and matching never panic, that a
// compiled pattern matches exactly as the plain definition says, and that
// a user id outside the room-name alphabet never grants anything through
// {user}.
func FuzzPattern(f *testing.F) {
	for _, s := range []struct{ pattern, user, room string }{
		{"chat:*", "alice", "chat:lobby"},
		{"dm:{user}", "alice", "dm:alice"},
		{"dm:{user}:*", "*", "dm:x:y"},
		{"*", "u", "x"},
		{"a", "u", "a"},
		{"{user}*", "ab", "abc"},
		{"dm:{user}", "{user}", "dm:{user}"},
	} {
		f.Add(s.pattern, s.user, s.room)
	}
	f.Fuzz(func(t *testing.T, pattern, user, room string) {
		if CheckPattern(pattern) != nil {
			return
		}
		got := compile([]string{pattern}, user).match(room)
		if protocol.CheckRoom(room) != nil {
			return // callers only ask about valid room names
		}
		if want := referenceMatch(pattern, user, room); got != want {
			t.Fatalf("pattern %q user %q room %q: match %v, definition says %v", pattern, user, room, got, want)
		}
		if got && strings.Contains(pattern, UserPlaceholder) && protocol.CheckRoom(user) != nil {
			t.Fatalf("user %q widened pattern %q to room %q", user, pattern, room)
		}
	})
}

// referenceMatch is the definition of a pattern match, written plainly.
func referenceMatch(pattern, user, room string) bool {
	if strings.Contains(pattern, UserPlaceholder) {
		if protocol.CheckRoom(user) != nil {
			return false
		}
		pattern = strings.ReplaceAll(pattern, UserPlaceholder, user)
	}
	if strings.HasSuffix(pattern, "*") {
		return strings.HasPrefix(room, pattern[:len(pattern)-1])
	}
	return room == pattern
}
