package wal

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Hot marks (key layout in layout.go): a room that delivers messages on
// Append's written callback, before their fsync, is marked hot first, so
// that recovery can tell whether a crash may have taken messages that
// subscribers already saw. The router also marks a room it hands to
// another node, whose sequence goes on there in the same epoch: either
// way, the log's copy of the room may be behind positions already given
// out, and the room must not continue its epoch from it.

// MarkHot durably records that room may deliver messages of epoch before
// they are durable: on Append's written callback rather than its durable
// one, which takes the fsync off the delivery latency. A message delivered
// that way is still lost if the process dies before its fsync (kill -9,
// power loss); subscribers saw it, yet after the restart its seq would be
// handed out again to a different message. The mark lets recovery tell:
// Rooms reports Hot for a room marked in its current epoch and not marked
// cold since, and such a room must not continue that epoch (the router
// restarts it in a new one, which also makes the mark stale). Deliver
// early only once the mark's durable(nil) has run, and clear the mark with
// MarkCold once everything delivered is durable. Marking again replaces
// the mark; a mark of an epoch other than the room's current one (see
// SetEpoch) is stale and Rooms ignores it.
//
// It is queued and ordered like Append: durable runs in order with the
// appends' durable callbacks, and may be nil. durable gets the same errors
// as an append's (one wrapping ErrFailed once the log has failed) and
// follows the same rules as Append's callbacks. MarkHot returns ErrClosed
// after Close, or an error wrapping ErrInvalid for an invalid room name;
// then durable does not run.
func (l *Log) MarkHot(room string, epoch uint64, durable func(error)) error {
	if !validRoom(room) {
		return fmt.Errorf("%w: room name %q", ErrInvalid, room)
	}
	return l.enqueue(op{kind: opMarkHot, room: room, epoch: epoch, durable: durable})
}

// MarkCold removes room's hot mark (see MarkHot): every message the room
// delivered before it was durable is durable now, so a crash can no longer
// take one and the room may continue its epoch after a restart. Call it
// once the durable callbacks of everything delivered early have run and
// the room delivers nothing more early; to deliver early again, MarkHot
// first. A room with no mark is fine (the delete changes nothing).
//
// Queued and ordered like Append; durable may be nil, gets the same
// errors as an append's and follows the same rules as Append's callbacks.
// MarkCold returns ErrClosed after Close, or an error wrapping ErrInvalid
// for an invalid room name; then durable does not run.
func (l *Log) MarkCold(room string, durable func(error)) error {
	if !validRoom(room) {
		return fmt.Errorf("%w: room name %q", ErrInvalid, room)
	}
	return l.enqueue(op{kind: opMarkCold, room: room, durable: durable})
}

// hotMarks walks the hot keys alongside Rooms' walk of the room keys. Both
// are kind | room, so they sort by room alike, and one forward pass over
// each finds every mark without a seek per room.
type hotMarks struct {
	it *pebble.Iterator
	ok bool // it is positioned on a hot key
}

func newHotMarks(db *pebble.DB) (*hotMarks, error) {
	it, err := db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{kindHot},
		UpperBound: []byte{kindHot + 1},
	})
	if err != nil {
		return nil, err
	}
	return &hotMarks{it: it, ok: it.First()}, nil
}

// epochOf returns the epoch room is marked hot in, or false if it has no
// mark. Calls must come in ascending room order. The marks of rooms in
// between (rooms without a room key) are skipped.
func (h *hotMarks) epochOf(room []byte) (uint64, bool, error) {
	for ; h.ok; h.ok = h.it.Next() {
		p, err := decodeKey(h.it.Key())
		if err == nil && p.Kind != kindHot {
			err = corruptf("key kind 0x%02x among hot keys", p.Kind)
		}
		if err != nil {
			return 0, false, err
		}
		switch c := bytes.Compare(p.Room, room); {
		case c > 0:
			return 0, false, nil
		case c == 0:
			v, err := h.it.ValueAndErr()
			if err != nil {
				return 0, false, err
			}
			epoch, err := decodeHotValue(v)
			if err != nil {
				return 0, false, fmt.Errorf("hot mark of room %q: %w", room, err)
			}
			return epoch, true, nil
		}
	}
	return 0, false, h.it.Error()
}

func (h *hotMarks) close() error { return h.it.Close() }
