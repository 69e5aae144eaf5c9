package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"
	"unicode"
)

// MinAPIKeyLen is the shortest API key accepted: a key is a password that
// never expires, so it must not be guessable.
const MinAPIKeyLen = 16

// APIKey is a server API key, sent as "Bearer <Key>". Its principal is
// named Name and has the key's own patterns; {user} in them stands for
// Name.
type APIKey struct {
	Name  string   // principal name (the "from" of what it publishes); required
	Key   string   // the secret: at least MinAPIKeyLen bytes, no '.' or whitespace; required
	Pub   []string // room patterns it may publish to; empty: none
	Sub   []string // room patterns it may subscribe to and read; empty: none
	Admin bool     // may use admin endpoints (/v1/cluster)
}

// apiKey is a compiled APIKey. Only a digest of the secret is kept, which
// makes the comparison constant-time in the key's length too.
type apiKey struct {
	name     string
	digest   [sha256.Size]byte
	admin    bool
	pub, sub *matcher
}

// compileAPIKeys validates keys and precompiles their patterns.
func compileAPIKeys(keys []APIKey) ([]apiKey, error) {
	out := make([]apiKey, 0, len(keys))
	names := make(map[string]bool, len(keys))
	digests := make(map[[sha256.Size]byte]bool, len(keys))
	for i, k := range keys {
		if err := checkAPIKey(k); err != nil {
			return nil, fmt.Errorf("auth: api key %d (%q): %w", i, k.Name, err)
		}
		if names[k.Name] {
			return nil, fmt.Errorf("auth: api key %d: name %q is used twice", i, k.Name)
		}
		d := sha256.Sum256([]byte(k.Key))
		if digests[d] {
			return nil, fmt.Errorf("auth: api key %d (%q): the same key is configured twice", i, k.Name)
		}
		names[k.Name], digests[d] = true, true
		out = append(out, apiKey{
			name:   k.Name,
			digest: d,
			admin:  k.Admin,
			pub:    compile(k.Pub, k.Name),
			sub:    compile(k.Sub, k.Name),
		})
	}
	return out, nil
}

// checkAPIKey validates one APIKey.
func checkAPIKey(k APIKey) error {
	switch {
	case k.Name == "":
		return fmt.Errorf("name is empty")
	case len(k.Name) > maxUserLen:
		return fmt.Errorf("name is longer than %d bytes", maxUserLen)
	case strings.IndexFunc(k.Name, unicode.IsControl) >= 0:
		return fmt.Errorf("name has control characters")
	case len(k.Key) < MinAPIKeyLen:
		return fmt.Errorf("key is shorter than %d bytes", MinAPIKeyLen)
	case len(k.Key) > MaxCredentialLen:
		return fmt.Errorf("key is longer than %d bytes", MaxCredentialLen)
	case strings.Contains(k.Key, "."):
		return fmt.Errorf("key contains '.' (it could be mistaken for a JWT)")
	case strings.IndexFunc(k.Key, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("key contains whitespace or control characters")
	}
	if err := checkPatterns(k.Pub); err != nil {
		return fmt.Errorf("pub: %w", err)
	}
	if err := checkPatterns(k.Sub); err != nil {
		return fmt.Errorf("sub: %w", err)
	}
	return nil
}

// matchAPIKey returns the principal of the API key equal to cred, or nil.
// Every configured key is compared, in constant time, whatever matches.
func (a *Authenticator) matchAPIKey(cred string) *Principal {
	if len(a.apiKeys) == 0 {
		return nil
	}
	d := sha256.Sum256([]byte(cred))
	found := -1
	for i := range a.apiKeys {
		if subtle.ConstantTimeCompare(d[:], a.apiKeys[i].digest[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return nil
	}
	k := &a.apiKeys[found]
	return &Principal{User: k.name, Admin: k.admin, pub: k.pub, sub: k.sub}
}

// Check reports whether k is usable on its own, as New checks it (New
// also refuses names and keys used twice). Configuration loaders use it
// to name the bad entry.
func (k APIKey) Check() error {
	return checkAPIKey(k)
}
