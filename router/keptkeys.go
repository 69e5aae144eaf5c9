package router

import (
	"fmt"
	"time"
)

// A room's keys in memory are not in the wal's key index (only those it
// evicts are), so a room restarted from the wal must relearn from its
// messages as many keys as the run before kept: were DedupMemory lowered
// across a restart, relearning only the new number would forget, for a
// window, the keys in between, and a retry of one would be published
// again. The wal records the number (wal.SetKeptKeys). A router relearns
// the larger of that and its own, records its own at once when it is
// larger, and when it is smaller only once a window has passed since its
// start, when no key used before it is left in the window. Until then a
// crash leaves the larger number recorded.

// setUpKeptKeys reads the number of keys kept in memory the wal records
// and sets recoverKeys from it. New calls it before any room starts.
func (r *Router) setUpKeptKeys(now time.Time) error {
	prev, err := r.log.KeptKeys()
	if err != nil {
		return fmt.Errorf("new router: %w", err)
	}
	keep := r.cfg.DedupMemory
	r.recoverKeys = max(prev, keep)
	switch {
	case prev < keep:
		if err := r.log.SetKeptKeys(keep); err != nil {
			return fmt.Errorf("new router: %w", err)
		}
	case prev > keep:
		r.lowerKeptAt.Store(now.Add(r.cfg.DedupWindow).UnixNano())
		r.logger.Info().Int("dedup_memory", keep).Int("previous", prev).
			Dur("after", r.cfg.DedupWindow).Msg("dedup memory lowered: rooms relearn the previous number of keys until the window has passed")
	}
	return nil
}

// lowerKeptKeys records DedupMemory in the wal once the keys the run
// before kept have left the window (see setUpKeptKeys); evictLoop calls
// it.
func (r *Router) lowerKeptKeys(now time.Time) {
	at := r.lowerKeptAt.Load()
	if at == 0 || now.UnixNano() < at {
		return
	}
	if err := r.log.SetKeptKeys(r.cfg.DedupMemory); err != nil {
		r.logger.Warn().Err(err).Msg("dedup memory not recorded; retrying")
		return
	}
	r.lowerKeptAt.CompareAndSwap(at, 0)
}
