package main

import (
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/arena-mesh/arena/edge/auth"
)

func TestTokenCommand(t *testing.T) {
	now := time.Now()
	const secret = "token-command-secret"
	a, err := auth.New(auth.Config{Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		user    string
		pub     []string // rooms it may publish to
		notPub  []string
		sub     []string
		warning bool
	}{
		{"flags", []string{"--secret", secret, "--user", "alice", "--pub", "chat:*", "--pub", "dm:{user}", "--sub", "chat:*"}, nil,
			"alice", []string{"chat:x", "dm:alice"}, []string{"dm:bob", "news"}, []string{"chat:y"}, false},
		{"secret from env", []string{"--user", "bob", "--pub", "a,b:*"}, map[string]string{"ARENA_TOKEN_SECRET": secret},
			"bob", []string{"a", "b:1"}, []string{"c"}, nil, false},
		{"flag beats env", []string{"--secret", secret, "--user", "c", "--sub", "*"}, map[string]string{"ARENA_TOKEN_SECRET": "other"},
			"c", nil, []string{"x"}, []string{"x"}, false},
		{"no patterns", []string{"--secret", secret, "--user", "d"}, nil, "d", nil, []string{"x"}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut strings.Builder
			if err := tokenCommand(tc.args, env(tc.env), now, &out, &errOut); err != nil {
				t.Fatal(err)
			}
			tok, ok := strings.CutSuffix(out.String(), "\n")
			if !ok || strings.Contains(tok, "\n") {
				t.Fatalf("output %q is not one line", out.String())
			}
			p, err := a.Authenticate(tok)
			if err != nil {
				t.Fatal(err)
			}
			if p.User != tc.user || !p.Expires.Equal(now.Add(time.Hour).Truncate(time.Second)) {
				t.Fatalf("principal %+v", p)
			}
			for _, r := range tc.pub {
				if !p.CanPublish(r) {
					t.Errorf("cannot publish to %q", r)
				}
			}
			for _, r := range tc.notPub {
				if p.CanPublish(r) {
					t.Errorf("can publish to %q", r)
				}
			}
			for _, r := range tc.sub {
				if !p.CanSubscribe(r) {
					t.Errorf("cannot subscribe to %q", r)
				}
			}
			if got := strings.Contains(errOut.String(), "warning"); got != tc.warning {
				t.Errorf("stderr %q, warning expected: %v", errOut.String(), tc.warning)
			}
		})
	}
	t.Run("ttl", func(t *testing.T) {
		var out strings.Builder
		if err := tokenCommand([]string{"--secret", secret, "--user", "e", "--ttl", "5m", "--sub", "x"}, env(nil), now, &out, &strings.Builder{}); err != nil {
			t.Fatal(err)
		}
		p, err := a.Authenticate(strings.TrimSpace(out.String()))
		if err != nil || !p.Expires.Equal(now.Add(5*time.Minute).Truncate(time.Second)) {
			t.Fatalf("principal %+v, %v", p, err)
		}
	})
}

func TestTokenCommandErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no secret", []string{"--user", "a"}, "no secret"},
		{"no user", []string{"--secret", "s"}, "--user is required"},
		{"bad pattern", []string{"--secret", "s", "--user", "a", "--pub", "a b"}, "bad room pattern"},
		{"bad ttl", []string{"--secret", "s", "--user", "a", "--ttl", "-1h"}, "not positive"},
		{"ttl not a duration", []string{"--secret", "s", "--user", "a", "--ttl", "soon"}, "invalid value"},
		{"positional", []string{"--secret", "s", "--user", "a", "extra"}, "unexpected argument"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut strings.Builder
			err := tokenCommand(tc.args, func(string) string { return "" }, time.Now(), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if out.Len() != 0 {
				t.Fatalf("printed %q on error", out.String())
			}
		})
	}
	t.Run("help", func(t *testing.T) {
		var errOut strings.Builder
		err := tokenCommand([]string{"-h"}, func(string) string { return "" }, time.Now(), &strings.Builder{}, &errOut)
		if !errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut.String(), "-user") {
			t.Fatalf("error %v, usage %q", err, errOut.String())
		}
	})
}
