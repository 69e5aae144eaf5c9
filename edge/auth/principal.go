package auth

import "time"

// Principal is an authenticated user or API key with its permissions. It
// is immutable once returned by Authenticate and safe for concurrent use;
// callers must not modify it.
type Principal struct {
	User    string    // token sub, or API key name, or "anonymous-<random>" in dev mode
	Expires time.Time // token exp; zero for API keys and dev
	Admin   bool      // may use admin endpoints (/v1/cluster): admin API keys and dev

	pub, sub *matcher // compiled arena.pub and arena.sub patterns
}

// CanPublish reports whether p may publish to room. room must already be a
// valid room name (protocol.CheckRoom); the check does not allocate.
func (p *Principal) CanPublish(room string) bool {
	return p != nil && p.pub.match(room)
}

// CanSubscribe reports whether p may subscribe to room, read its history
// and see its presence. room must already be a valid room name; the check
// does not allocate.
func (p *Principal) CanSubscribe(room string) bool {
	return p != nil && p.sub.match(room)
}
