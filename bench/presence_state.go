package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// churnRing is how many of a churner's latest subscribe cycles are kept
// to match joins against: a watcher sees a join long before the churner
// has subscribed that many more times.
const churnRing = 64

// churnCycle is one subscribe of a churner: when it was sent and when its
// ack was seen (0 while unacknowledged, or if it failed). Clock times.
type churnCycle struct{ sent, ack int64 }

// churner is one churning connection, its own user, and the record of
// its recent subscribes. Only its own goroutine subscribes and
// unsubscribes; watchers' goroutines read the record.
type churner struct {
	conn  PresenceConn
	room  string
	user  string
	unsub func(context.Context) error // the current subscription's; nil when unsubscribed (churner goroutine only)

	mu     sync.Mutex // guards cycles and n
	cycles [churnRing]churnCycle
	n      int // cycles recorded in all; the latest is cycles[(n-1)%churnRing]
}

// begin records a subscribe sent at sent.
func (c *churner) begin(sent int64) {
	c.mu.Lock()
	c.cycles[c.n%churnRing] = churnCycle{sent: sent}
	c.n++
	c.mu.Unlock()
}

// acked records the ack of the latest subscribe at at.
func (c *churner) acked(at int64) {
	c.mu.Lock()
	c.cycles[(c.n-1)%churnRing].ack = at
	c.mu.Unlock()
}

// joinLatency matches a join of c's user seen at seen to the latest
// subscribe sent before it, and returns the time from that subscribe's
// ack to seen. early is set when the ack was not seen yet (the watcher
// got the join before the churner got its ack): the latency is then 0.
// ok is false if no subscribe was sent before seen.
func (c *churner) joinLatency(seen int64) (lat int64, early, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := c.n - 1; k >= 0 && k >= c.n-churnRing; k-- {
		cy := c.cycles[k%churnRing]
		if cy.sent > seen {
			continue
		}
		if cy.ack == 0 || cy.ack > seen {
			return 0, true, true
		}
		return seen - cy.ack, false, true
	}
	return 0, false, false
}

// watcher is a connection subscribed with presence that keeps the room's
// members as its joins and leaves say.
type watcher struct {
	conn PresenceConn
	room string
	user string

	mu   sync.Mutex // guards view
	view map[string]bool
}

// apply takes one event into the view and reports whether it alternates:
// a join of a user the view lacks, or a leave of one it has.
func (w *watcher) apply(ev PresenceEvent) (alternates bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	alternates = w.view[ev.User] != ev.Join
	if ev.Join {
		w.view[ev.User] = true
	} else {
		delete(w.view, ev.User)
	}
	return alternates
}

// addAll adds users to the view (the room's members when the watcher
// started, which no event announces to it).
func (w *watcher) addAll(users []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, u := range users {
		w.view[u] = true
	}
}

// members returns the view's users, sorted.
func (w *watcher) members() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.view))
	for u := range w.view {
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}

// setDiff returns the users of got that want lacks (extra) and those of
// want that got lacks (missing); both inputs sorted.
func setDiff(got, want []string) (extra, missing []string) {
	i, j := 0, 0
	for i < len(got) || j < len(want) {
		switch {
		case j == len(want) || (i < len(got) && got[i] < want[j]):
			extra = append(extra, got[i])
			i++
		case i == len(got) || want[j] < got[i]:
			missing = append(missing, want[j])
			j++
		default:
			i++
			j++
		}
	}
	return extra, missing
}

// diffText describes a difference briefly: at most a few users of each
// side.
func diffText(extra, missing []string) string {
	short := func(us []string) string {
		const most = 3
		if len(us) > most {
			return strings.Join(us[:most], " ") + fmt.Sprintf(" and %d more", len(us)-most)
		}
		return strings.Join(us, " ")
	}
	var parts []string
	if len(extra) > 0 {
		parts = append(parts, fmt.Sprintf("%d extra [%s]", len(extra), short(extra)))
	}
	if len(missing) > 0 {
		parts = append(parts, fmt.Sprintf("%d missing [%s]", len(missing), short(missing)))
	}
	return strings.Join(parts, ", ")
}
