package auth

import (
	"fmt"
	"testing"
	"time"
)

func BenchmarkAuthenticateHS256(b *testing.B) {
	a := newAuth(b, Config{Secret: testSecret})
	tok, err := Sign(testSecret, "alice", []string{"dm:{user}:*", "chat:*"}, []string{"chat:*", "dm:{user}:*"}, time.Hour, testNow)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAuthenticateAPIKey(b *testing.B) {
	a := newAuth(b, Config{APIKeys: []APIKey{{Name: "svc", Key: "bench-api-key-0123456789", Pub: []string{"*"}}}})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate("bench-api-key-0123456789"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCanPublish(b *testing.B) {
	patterns := []string{"chat:*", "dm:{user}:*", "news", "alerts:eu", "alerts:us"}
	for i := range 10 {
		patterns = append(patterns, fmt.Sprintf("team:%d", i))
	}
	p := &Principal{User: "alice", pub: compile(patterns, "alice")}
	for _, room := range []string{"chat:lobby", "dm:alice:bob", "team:7", "nope:room"} {
		b.Run(room, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = p.CanPublish(room)
			}
		})
	}
}
