// Package auth verifies client credentials and answers permission
// questions for the edge.
//
// A credential is a JWT (PROTOCOL.md "Tokens") or a server API key from
// the configuration. JWTs are verified with the configured algorithms
// only: HS256 with Config.Secret, and RS256, ES256 or EdDSA with
// Config.PublicKeys, each key used only for the algorithm it is declared
// with; "alg: none" and every other algorithm are refused. A token needs
// sub and exp; nbf is honoured; exp and nbf allow Config.Leeway of clock
// skew. Its "arena" claim lists room patterns: {"pub": [...], "sub": [...]}.
//
// A pattern is a room name (exact match), a prefix ending in '*'
// ("chat:*"), or "*" alone (every room). {user} in a pattern stands for the
// principal's user id; a user id that is not made of room-name characters
// (say "*") makes such patterns grant nothing, so it can never widen a
// permission. Patterns are compiled once per principal, so CanPublish and
// CanSubscribe neither allocate nor use regular expressions.
//
// In Dev mode an empty credential gives a fresh "anonymous-<random>"
// principal with every permission; a credential that is given is still
// verified.
//
// Every authentication failure is a *protocol.Error with
// protocol.CodeUnauthorized; messages never repeat the credential.
//
// Concurrency: an Authenticator and the Principals it returns are
// immutable and safe for concurrent use.
//
// Example:
//
//	a, err := auth.New(auth.Config{Secret: secret})
//	if err != nil {
//		return err
//	}
//	tok, _ := auth.Sign(secret, "alice", []string{"dm:{user}:*"}, []string{"chat:*"}, time.Hour, time.Now())
//	p, err := a.Authenticate(tok) // or "Bearer " + tok
//	if err != nil {
//		return err // *protocol.Error, CodeUnauthorized
//	}
//	p.CanPublish("dm:alice:bob") // true
//	p.CanSubscribe("chat:lobby") // true
package auth
