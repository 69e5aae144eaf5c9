package edge

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// sweepEvery is how often idle limiters are dropped.
const sweepEvery = time.Minute

// limiters holds one token bucket per user, shared by all of the user's
// connections and HTTP requests.
type limiters struct {
	limit rate.Limit
	burst int

	mu        sync.Mutex // guards byUser, lastSweep
	byUser    map[string]*rate.Limiter
	lastSweep time.Time
}

func newLimiters(perSecond float64, burst int) *limiters {
	return &limiters{limit: rate.Limit(perSecond), burst: burst, byUser: make(map[string]*rate.Limiter)}
}

// allow takes one token of user's bucket at now. When the bucket is empty
// it returns false and how long until a token is available.
func (l *limiters) allow(user string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > sweepEvery {
		l.sweepLocked(now)
	}
	lim := l.byUser[user]
	if lim == nil {
		lim = rate.NewLimiter(l.limit, l.burst)
		l.byUser[user] = lim
	}
	if lim.AllowN(now, 1) {
		return true, 0
	}
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return false, d
}

// sweepLocked drops the buckets that are full again: their users have
// been idle long enough that a fresh bucket is the same thing.
func (l *limiters) sweepLocked(now time.Time) {
	l.lastSweep = now
	for user, lim := range l.byUser {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.byUser, user)
		}
	}
}
