package auth

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/arena-mesh/arena/protocol"
)

func TestCheckPattern(t *testing.T) {
	tests := []struct {
		pattern string
		ok      bool
	}{
		{"*", true},
		{"chat:lobby", true},
		{"chat:*", true},
		{"dm:{user}", true},
		{"dm:{user}:*", true},
		{"{user}", true},
		{"{user}:{user}", true},
		{"a-Z_0.9@x/y:z", true},
		{strings.Repeat("r", protocol.MaxRoomLen), true},
		{strings.Repeat("r", protocol.MaxRoomLen) + "*", true},
		{"", false},
		{"**", false},
		{"*chat", false},
		{"chat:*:x", false},
		{"a*b", false},
		{"chat lobby", false},
		{"chat#1", false},
		{"dm:{usr}", false},
		{"dm:{user", false},
		{"dm:user}", false},
		{"dm:{}", false},
		{"é", false},
		{strings.Repeat("r", protocol.MaxRoomLen+1), false},
		{strings.Repeat("{user}", 100), false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%.40q", tc.pattern), func(t *testing.T) {
			err := CheckPattern(tc.pattern)
			if (err == nil) != tc.ok {
				t.Fatalf("CheckPattern(%q) = %v, want ok=%v", tc.pattern, err, tc.ok)
			}
		})
	}
}

// TestPatternMatch checks exact, prefix, "*" and {user} matching, with
// user ids that try to widen a permission.
func TestPatternMatch(t *testing.T) {
	many := make([]string, 0, 20)
	for i := range 20 {
		many = append(many, fmt.Sprintf("room:%d", i))
	}
	tests := []struct {
		name     string
		patterns []string
		user     string
		room     string
		want     bool
	}{
		{"exact", []string{"chat:lobby"}, "u", "chat:lobby", true},
		{"exact is not a prefix", []string{"chat:lobby"}, "u", "chat:lobby2", false},
		{"exact is not a suffix", []string{"chat:lobby"}, "u", "chat:lobb", false},
		{"prefix", []string{"chat:*"}, "u", "chat:lobby", true},
		{"prefix matches just the prefix", []string{"chat:*"}, "u", "chat:", true},
		{"prefix other", []string{"chat:*"}, "u", "chatx", false},
		{"star", []string{"*"}, "u", "anything/at:all", true},
		{"none", nil, "u", "a", false},
		{"second pattern", []string{"a", "b:*", "c"}, "u", "b:1", true},
		{"user exact", []string{"dm:{user}"}, "alice", "dm:alice", true},
		{"user exact other", []string{"dm:{user}"}, "alice", "dm:bob", false},
		{"user prefix", []string{"dm:{user}:*"}, "alice", "dm:alice:bob", true},
		{"user prefix other", []string{"dm:{user}:*"}, "alice", "dm:bob:alice", false},
		{"user twice", []string{"{user}:{user}"}, "a", "a:a", true},
		{"user star", []string{"dm:{user}"}, "*", "dm:anything", false},
		{"user star literal", []string{"dm:{user}"}, "*", "dm:*", false},
		{"user trailing star", []string{"dm:{user}"}, "ali*", "dm:alice", false},
		{"user star in prefix pattern", []string{"dm:{user}:*"}, "*", "dm:x:y", false},
		{"user empty", []string{"dm:{user}*"}, "", "dm:x", false},
		{"user with space", []string{"dm:{user}"}, "a b", "dm:a b", false},
		{"user with braces", []string{"dm:{user}"}, "{user}", "dm:{user}", false},
		{"user too long for exact", []string{"{user}"}, strings.Repeat("u", 201), strings.Repeat("u", 201), false},
		{"bad user keeps other patterns", []string{"dm:{user}", "pub:*"}, "*", "pub:x", true},
		{"many exact hit", many, "u", "room:17", true},
		{"many exact miss", many, "u", "room:20", false},
		{"many exact and prefix", append(append([]string{}, many...), "z:*"), "u", "z:1", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := compile(tc.patterns, tc.user)
			if got := m.match(tc.room); got != tc.want {
				t.Fatalf("patterns %q user %q: match(%q) = %v, want %v", tc.patterns, tc.user, tc.room, got, tc.want)
			}
		})
	}
}

// TestPrincipalPatternsFromToken checks {user} is filled from the token's
// sub, and a sub of "*" gains nothing.
func TestPrincipalPatternsFromToken(t *testing.T) {
	a := newAuth(t, Config{Secret: testSecret})
	tests := []struct {
		sub, room string
		pub, subs bool
	}{
		{"alice", "dm:alice", true, true},
		{"alice", "dm:alice:inbox", false, true},
		{"alice", "dm:bob", false, false},
		{"*", "dm:bob", false, false},
		{"*", "dm:*", false, false},
		{"al ice", "dm:al ice", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.sub+" "+tc.room, func(t *testing.T) {
			tok, err := Sign(testSecret, tc.sub, []string{"dm:{user}"}, []string{"dm:{user}*"}, time.Hour, testNow)
			if err != nil {
				t.Fatal(err)
			}
			p, err := a.Authenticate(tok)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.CanPublish(tc.room); got != tc.pub {
				t.Errorf("CanPublish(%q) = %v, want %v", tc.room, got, tc.pub)
			}
			if got := p.CanSubscribe(tc.room); got != tc.subs {
				t.Errorf("CanSubscribe(%q) = %v, want %v", tc.room, got, tc.subs)
			}
		})
	}
	var nilP *Principal
	if nilP.CanPublish("x") || nilP.CanSubscribe("x") {
		t.Fatal("a nil principal has permissions")
	}
}

// TestMatchDoesNotAllocate pins the hot path at zero allocations.
func TestMatchDoesNotAllocate(t *testing.T) {
	many := make([]string, 0, 20)
	for i := range 20 {
		many = append(many, fmt.Sprintf("room:%d", i))
	}
	p := &Principal{User: "u", pub: compile(append(many, "chat:*", "dm:{user}"), "u"), sub: compile([]string{"*"}, "u")}
	allocs := testing.AllocsPerRun(100, func() {
		_ = p.CanPublish("room:7")
		_ = p.CanPublish("chat:lobby")
		_ = p.CanPublish("nope")
		_ = p.CanSubscribe("x")
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per check", allocs)
	}
}

// A node keeps a principal per connection: a token with "*" (or no)
// patterns shares the one "*" matcher (or has none) rather than
// allocating its own.
func TestCompileSharesTrivialMatchers(t *testing.T) {
	if m := compile([]string{"chat:*", "*"}, "u"); m != matchAll {
		t.Fatalf(`compile("*") = %p, want the shared matchAll %p`, m, matchAll)
	}
	for _, patterns := range [][]string{nil, {"dm:{user}"}} {
		if m := compile(patterns, "*"); m != nil {
			t.Fatalf("compile(%q) for user * = %+v, want nil (matches nothing)", patterns, m)
		}
	}
	allocs := testing.AllocsPerRun(100, func() { _ = compile([]string{"*"}, "u") })
	if allocs != 0 {
		t.Fatalf(`compile("*") allocates %v times`, allocs)
	}
}
