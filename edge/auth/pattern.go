package auth

import (
	"errors"
	"fmt"
	"strings"

	"github.com/arena-mesh/arena/protocol"
)

// UserPlaceholder in a pattern stands for the principal's user id (a
// token's sub, or an API key's name).
const UserPlaceholder = "{user}"

// maxPatternLen bounds a pattern before substitution. A room name is at
// most protocol.MaxRoomLen bytes; the slack leaves room for placeholders.
const maxPatternLen = 512

// maxPatterns bounds the patterns of one list (a token's arena.pub, say),
// so that matching stays cheap whatever an issuer puts in a token.
const maxPatterns = 256

// ErrBadPattern is wrapped by every error CheckPattern returns.
var ErrBadPattern = errors.New("bad room pattern")

// CheckPattern reports whether p is a valid room pattern: "*" alone (every
// room), a room name (exact match), or a room-name prefix ending in '*'
// ("chat:*"). UserPlaceholder may appear anywhere before the '*'. Errors
// wrap ErrBadPattern.
func CheckPattern(p string) error {
	if p == "" {
		return fmt.Errorf("%w: empty", ErrBadPattern)
	}
	if len(p) > maxPatternLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrBadPattern, maxPatternLen)
	}
	body := p
	prefix := strings.HasSuffix(p, "*")
	if prefix {
		body = p[:len(p)-1]
	}
	if strings.Contains(body, "*") {
		return fmt.Errorf("%w: %q: '*' may only end a pattern", ErrBadPattern, p)
	}
	lit := strings.ReplaceAll(body, UserPlaceholder, "")
	if strings.ContainsAny(lit, "{}") {
		return fmt.Errorf("%w: %q: the only placeholder is %s", ErrBadPattern, p, UserPlaceholder)
	}
	if len(lit) > protocol.MaxRoomLen {
		return fmt.Errorf("%w: %q is longer than a room name can be (%d bytes)", ErrBadPattern, p, protocol.MaxRoomLen)
	}
	if lit != "" && protocol.CheckRoom(lit) != nil {
		return fmt.Errorf("%w: %q: a room name has only A-Z a-z 0-9 : _ - . @ /", ErrBadPattern, p)
	}
	return nil
}

// checkPatterns checks every pattern of a list and the list's length.
func checkPatterns(ps []string) error {
	if len(ps) > maxPatterns {
		return fmt.Errorf("%w: more than %d patterns", ErrBadPattern, maxPatterns)
	}
	for _, p := range ps {
		if err := CheckPattern(p); err != nil {
			return err
		}
	}
	return nil
}

// linearExact is the number of exact names up to which a matcher scans a
// slice instead of hashing: comparing a few strings (length first) is
// cheaper than hashing the room name.
const linearExact = 8

// matcher is a compiled list of patterns. It is immutable once built and
// shared freely (API key principals share their key's matcher).
type matcher struct {
	all      bool                // "*": every room
	exact    []string            // exact room names, when few
	exactSet map[string]struct{} // exact room names, when many
	prefixes []string            // room-name prefixes (the pattern without its '*')
}

// compile builds the matcher of patterns already accepted by CheckPattern,
// with UserPlaceholder replaced by user. When user is not made only of
// room-name characters, patterns that use the placeholder are dropped:
// they grant nothing, so a user id like "*" can never widen a permission.
func compile(patterns []string, user string) *matcher {
	userOK := protocol.CheckRoom(user) == nil
	var exact, prefixes []string
	for _, p := range patterns {
		if strings.Contains(p, UserPlaceholder) {
			if !userOK {
				continue
			}
			p = strings.ReplaceAll(p, UserPlaceholder, user)
		}
		if body, ok := strings.CutSuffix(p, "*"); ok {
			if body == "" {
				// Everything matches: the lists would never be consulted,
				// and every such matcher is the same one (a node holds a
				// principal per connection, most of them with "*").
				return matchAll
			}
			prefixes = append(prefixes, body)
			continue
		}
		if len(p) > protocol.MaxRoomLen {
			continue // can never match a room name
		}
		exact = append(exact, p)
	}
	if len(exact) == 0 && len(prefixes) == 0 {
		return nil // matches nothing
	}
	m := &matcher{prefixes: prefixes}
	if len(exact) > linearExact {
		m.exactSet = make(map[string]struct{}, len(exact))
		for _, e := range exact {
			m.exactSet[e] = struct{}{}
		}
	} else {
		m.exact = exact
	}
	return m
}

// match reports whether room is covered; a nil matcher covers nothing.
// It does not allocate.
func (m *matcher) match(room string) bool {
	if m == nil {
		return false
	}
	if m.all {
		return true
	}
	for _, e := range m.exact {
		if e == room {
			return true
		}
	}
	if m.exactSet != nil {
		if _, ok := m.exactSet[room]; ok {
			return true
		}
	}
	for _, p := range m.prefixes {
		if strings.HasPrefix(room, p) {
			return true
		}
	}
	return false
}

// matchAll is the matcher of "*", shared by every principal that has it
// (dev principals, and tokens with "*" patterns): matchers are never
// changed once compiled.
var matchAll = &matcher{all: true}
