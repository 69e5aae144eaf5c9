package router

import (
	"errors"
	"testing"

	"github.com/arena-mesh/arena/mesh"
)

// A home takes interest only from members of its view. CI once saw a
// relay that was leaving hand its replica's interest to the home after
// the home had seen it leave: the home kept the interest and pushed every
// message of the room to the departed node for ever.
func TestInterestOnlyFromMembers(t *testing.T) {
	e := newEnv(t, nil)
	r := e.r
	r.view.Store(newView([]mesh.Member{{ID: r.self}, {ID: "peer"}}, r.self, nil))
	const room = "interest"
	e.publish(room, "")
	if _, _, _, err := r.addInterest(room, "peer", 1); err != nil {
		t.Fatalf("interest from a member: %v", err)
	}
	if _, _, _, err := r.addInterest(room, "gone", 2); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("interest from a node not in the view: %v, want ErrUnavailable", err)
	}
	if code := peerCodeOf(errNotMember("gone")); code != codeUnavailable {
		t.Fatalf("the refusal's code is %v, want codeUnavailable (the peer asks again)", code)
	}
	r.mu.RLock()
	rm := r.active[room]
	r.mu.RUnlock()
	rm.subsMu.Lock()
	defer rm.subsMu.Unlock()
	if len(rm.interest) != 1 || rm.interest["peer"] != 1 {
		t.Fatalf("interest = %v, want only peer's", rm.interest)
	}
}
