package router

import (
	"context"
	"fmt"

	"github.com/arena-mesh/arena/wal"
)

// History limits.
const (
	DefaultHistoryLimit = 50
	MaxHistoryLimit     = 1000
)

// HistoryQuery selects messages of a room's current epoch.
type HistoryQuery struct {
	// After = S: the messages with seq > S, oldest first, up to Limit.
	// Before = S: the newest Limit messages with seq < S.
	// Neither: the newest Limit messages. Before is ignored when After is
	// set (the caller validates that at most one is).
	Before, After uint64
	// FromOldest asks for the oldest Limit messages still retained (what
	// a client's "after 0" means: After cannot say it, 0 being unset),
	// wherever retention made the room start. Before and After are then
	// ignored. False: Before and After apply.
	FromOldest bool
	// Limit is 1..MaxHistoryLimit; 0 (or less) means DefaultHistoryLimit,
	// more than MaxHistoryLimit means MaxHistoryLimit.
	Limit int
}

// History returns messages of the room's current epoch, oldest first, from
// the ring when it holds the whole range, else from the wal. A new room is
// created (its history is empty).
func (r *Router) History(ctx context.Context, room string, q HistoryQuery) (epoch uint64, msgs []*Message, err error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	if home := r.homeOf(room); home != "" {
		return r.remoteHistory(ctx, home, room, q)
	}
	rm, err := r.roomWait(ctx, room)
	if err != nil {
		return 0, nil, err
	}
	msgs, err = r.historyOf(rm, q, rm.ring.Head())
	if err != nil {
		return 0, nil, err
	}
	return rm.epoch, msgs, nil
}

// historyOf answers q for rm, a room homed here, consistently with head.
func (r *Router) historyOf(rm *room, q HistoryQuery, head uint64) ([]*Message, error) {
	limit := clampLimit(q.Limit)
	if q.FromOldest {
		return r.readAfterLocal(rm, 0, head, limit)
	}
	from, to, ok := historyRange(q, uint64(limit), head)
	if !ok {
		return nil, nil
	}
	msgs := make([]*Message, 0, to-from+1)
	if msgs, ok = rm.ring.readRange(msgs, from, to); ok {
		return msgs, nil
	}
	var recs []wal.Record
	var err error
	if q.After != 0 {
		recs, err = r.log.Read(rm.name, rm.epoch, from, limit)
	} else {
		recs, err = r.log.ReadBefore(rm.name, rm.epoch, to+1, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("history room %q seq %d..%d: %w", rm.name, from, to, err)
	}
	// The wal may already hold messages newer than the head read above;
	// answer consistently with that head.
	for len(recs) > 0 && recs[len(recs)-1].Seq > to {
		recs = recs[:len(recs)-1]
	}
	return messagesFromRecords(msgs, recs), nil
}

// clampLimit applies HistoryQuery.Limit's default and maximum.
func clampLimit(limit int) int {
	switch {
	case limit <= 0:
		return DefaultHistoryLimit
	case limit > MaxHistoryLimit:
		return MaxHistoryLimit
	}
	return limit
}

// historyRange is the inclusive seq range q asks for in a room whose head is
// head; ok is false when it is empty.
func historyRange(q HistoryQuery, limit, head uint64) (from, to uint64, ok bool) {
	if q.After != 0 {
		if q.After >= head {
			return 0, 0, false
		}
		return q.After + 1, q.After + min(limit, head-q.After), true
	}
	to = head
	if q.Before != 0 && q.Before <= head {
		to = q.Before - 1
	}
	if to == 0 {
		return 0, 0, false
	}
	from = 1
	if to > limit {
		from = to - limit + 1
	}
	return from, to, true
}
