package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// Reads see every applied (written) record, durable or not. They run
// concurrently with appends and with each other.

// Read returns up to limit records of room in epoch with Seq >= from,
// ascending.
func (l *Log) Read(room string, epoch, from uint64, limit int) ([]Record, error) {
	if !validRoom(room) {
		return nil, fmt.Errorf("%w: room name %q", ErrInvalid, room)
	}
	if limit <= 0 {
		return nil, nil
	}
	var out []Record
	err := l.readDB(func(db *pebble.DB) error {
		buf := make([]byte, 0, 2*messageKeyLen(room)+1)
		lower := appendMessageKey(buf, room, epoch, from)
		upper := appendEpochEnd(lower[len(lower):], room, epoch)
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return err
		}
		out = make([]Record, 0, min(limit, 256))
		for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
			rec, err := recordAt(it, room, epoch)
			if err != nil {
				return errors.Join(err, it.Close())
			}
			out = append(out, rec)
		}
		return errors.Join(it.Error(), it.Close())
	})
	if err != nil {
		return nil, fmt.Errorf("read room %q epoch %d from %d: %w", room, epoch, from, err)
	}
	return out, nil
}

// ReadBefore returns the newest up to limit records of room in epoch with
// Seq < before, ascending.
func (l *Log) ReadBefore(room string, epoch, before uint64, limit int) ([]Record, error) {
	if !validRoom(room) {
		return nil, fmt.Errorf("%w: room name %q", ErrInvalid, room)
	}
	if limit <= 0 || before == 0 {
		return nil, nil
	}
	var out []Record
	err := l.readDB(func(db *pebble.DB) error {
		buf := make([]byte, 0, 2*messageKeyLen(room))
		lower := appendMessageKey(buf, room, epoch, 0)
		upper := appendMessageKey(lower[len(lower):], room, epoch, before)
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return err
		}
		out = make([]Record, 0, min(limit, 256))
		for ok := it.Last(); ok && len(out) < limit; ok = it.Prev() {
			rec, err := recordAt(it, room, epoch)
			if err != nil {
				return errors.Join(err, it.Close())
			}
			out = append(out, rec)
		}
		return errors.Join(it.Error(), it.Close())
	})
	if err != nil {
		return nil, fmt.Errorf("read room %q epoch %d before %d: %w", room, epoch, before, err)
	}
	slices.Reverse(out)
	return out, nil
}

// recordAt decodes the record at it, which is bounded to the message keys
// of (room, epoch).
func recordAt(it *pebble.Iterator, room string, epoch uint64) (Record, error) {
	k := it.Key()
	if len(k) != messageKeyLen(room) {
		return Record{}, corruptf("message key of %d bytes in room %q", len(k), room)
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return Record{}, err
	}
	return recordFromValue(room, epoch, binary.BigEndian.Uint64(k[len(k)-8:]), v)
}

// messageAt decodes the message key and value at it, which is bounded to
// message keys.
func messageAt(it *pebble.Iterator) (keyParts, messageValue, error) {
	p, err := decodeKey(it.Key())
	if err != nil {
		return keyParts{}, messageValue{}, err
	}
	if p.Kind != kindMessage {
		return keyParts{}, messageValue{}, corruptf("key kind 0x%02x among message keys", p.Kind)
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return keyParts{}, messageValue{}, err
	}
	m, err := decodeMessageValue(v)
	return p, m, err
}

// First returns the oldest retained seq of room in epoch (0 if the log
// holds none).
func (l *Log) First(room string, epoch uint64) (uint64, error) {
	if !validRoom(room) {
		return 0, fmt.Errorf("%w: room name %q", ErrInvalid, room)
	}
	var first uint64
	err := l.readDB(func(db *pebble.DB) error {
		it, err := newMessageIter(db)
		if err != nil {
			return err
		}
		var s epochSpan
		s, err = spanOf(it, make([]byte, 0, messageKeyLen(room)+1), room, epoch)
		first = s.first
		return errors.Join(err, it.Close())
	})
	if err != nil {
		return 0, fmt.Errorf("first of room %q epoch %d: %w", room, epoch, err)
	}
	return first, nil
}

// LookupKey finds key in room's idempotency index if it was used within
// DedupWindow (by its record's TS) of Config.Now.
func (l *Log) LookupKey(room, key string) (DedupEntry, bool, error) {
	if !validRoom(room) {
		return DedupEntry{}, false, fmt.Errorf("%w: room name %q", ErrInvalid, room)
	}
	if key == "" || len(key) > MaxKeyLen {
		return DedupEntry{}, false, nil
	}
	var (
		e     DedupEntry
		found bool
	)
	err := l.readDB(func(db *pebble.DB) (err error) {
		e, found, err = l.lookupIndexed(db, room, key, l.dedupCutoff())
		return err
	})
	if err != nil {
		return DedupEntry{}, false, fmt.Errorf("lookup key in room %q: %w", room, err)
	}
	return e, found, nil
}

// IndexedKeys calls fn with each key room's idempotency index holds (the
// keys IndexKeys was given, and those of messages retention deleted)
// whose TS is at or after since, with its entry, in no particular order;
// key is valid only during the call. It stops after limit keys and
// reports whether it visited them all. A room restarted from the log
// learns from it which keys it need look up at all (see RecentKeys for
// the rest); a room handed to another node sends them along.
func (l *Log) IndexedKeys(room string, since int64, limit int, fn func(key []byte, e DedupEntry)) (bool, error) {
	if !validRoom(room) {
		return false, fmt.Errorf("%w: room name %q", ErrInvalid, room)
	}
	var complete bool
	err := l.readDB(func(db *pebble.DB) (err error) {
		complete, err = l.scanIndexed(db, room, since, max(limit, 0), fn)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("scan key index of room %q: %w", room, err)
	}
	return complete, nil
}

// RecentKeys returns the idempotency keys of room's messages whose TS is
// at or after since, the newest use of each, at most limit keys, oldest
// first. It walks the room's epochs newest first and leaves an epoch at
// its first message older than since (TSs rise with seqs within an
// epoch). A room restarted from the log relearns with it the keys that
// only its memory held (see IndexKeys).
func (l *Log) RecentKeys(room string, since int64, limit int) ([]KeyUse, error) {
	if !validRoom(room) {
		return nil, fmt.Errorf("%w: room name %q", ErrInvalid, room)
	}
	if limit <= 0 {
		return nil, nil
	}
	var out []KeyUse
	err := l.readDB(func(db *pebble.DB) error {
		buf := make([]byte, 0, 2*messageKeyLen(room)+1)
		lower := appendMessageKey(buf, room, 0, 0)
		upper := appendRoomMessagesEnd(lower[len(lower):], room)
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return err
		}
		seen := make(map[string]struct{})
		var seek []byte
		for ok := it.Last(); ok && len(out) < limit; {
			p, m, err := messageAt(it)
			if err != nil {
				return errors.Join(err, it.Close())
			}
			if m.TS < since {
				if p.Epoch == 0 {
					break
				}
				// The rest of this epoch is older still.
				seek = appendMessageKey(seek[:0], room, p.Epoch, 0)
				ok = it.SeekLT(seek)
				continue
			}
			if _, dup := seen[string(m.Key)]; len(m.Key) > 0 && !dup {
				key := string(m.Key)
				seen[key] = struct{}{}
				out = append(out, KeyUse{Key: key, DedupEntry: DedupEntry{Epoch: p.Epoch, Seq: p.Seq, TS: m.TS}})
			}
			ok = it.Prev()
		}
		return errors.Join(it.Error(), it.Close())
	})
	if err != nil {
		return nil, fmt.Errorf("recent keys of room %q: %w", room, err)
	}
	slices.Reverse(out)
	return out, nil
}

// dedupCutoff is the oldest TS (ms) still inside the dedup window.
func (l *Log) dedupCutoff() int64 {
	return l.cfg.Now().Add(-l.cfg.DedupWindow).UnixMilli()
}

// Rooms returns every room the log knows (every room given to SetEpoch),
// with its current epoch, the First and Head of that epoch, and whether it
// is hot in that epoch (see MarkHot). It costs a scan of the room keys, a
// scan of the hot keys and two seeks per room.
func (l *Log) Rooms() ([]RoomState, error) {
	var out []RoomState
	err := l.readDB(func(db *pebble.DB) error {
		rooms, err := db.NewIter(&pebble.IterOptions{
			LowerBound: []byte{kindRoom},
			UpperBound: []byte{kindRoom + 1},
		})
		if err != nil {
			return err
		}
		msgs, err := newMessageIter(db)
		if err != nil {
			return errors.Join(err, rooms.Close())
		}
		hot, err := newHotMarks(db)
		if err != nil {
			return errors.Join(err, msgs.Close(), rooms.Close())
		}
		buf := make([]byte, 0, 64)
		for ok := rooms.First(); ok; ok = rooms.Next() {
			p, err := decodeKey(rooms.Key())
			if err == nil && p.Kind != kindRoom {
				err = corruptf("key kind 0x%02x among room keys", p.Kind)
			}
			var v []byte
			if err == nil {
				v, err = rooms.ValueAndErr()
			}
			var epoch uint64
			if err == nil {
				epoch, err = decodeRoomValue(v)
			}
			var s epochSpan
			if err == nil {
				s, err = spanOf(msgs, buf, string(p.Room), epoch)
			}
			var hotEpoch uint64
			var marked bool
			if err == nil {
				hotEpoch, marked, err = hot.epochOf(p.Room)
			}
			if err != nil {
				return errors.Join(err, hot.close(), msgs.Close(), rooms.Close())
			}
			out = append(out, RoomState{Room: string(p.Room), Epoch: epoch, First: s.first, Head: s.head,
				Hot: marked && hotEpoch == epoch})
		}
		return errors.Join(rooms.Error(), hot.close(), msgs.Close(), rooms.Close())
	})
	if err != nil {
		return nil, fmt.Errorf("list rooms: %w", err)
	}
	return out, nil
}

// newMessageIter returns an iterator over all message keys, to be
// positioned by seeks.
func newMessageIter(db *pebble.DB) (*pebble.Iterator, error) {
	return db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{kindMessage},
		UpperBound: []byte{kindMessage + 1},
	})
}

// epochSpan is the range of seqs a room holds in one epoch; 0, 0 when none.
type epochSpan struct{ first, head uint64 }

// spanOf finds the first and last seq of (room, epoch) with two seeks of
// it, a message iterator. buf is scratch space for keys.
func spanOf(it *pebble.Iterator, buf []byte, room string, epoch uint64) (epochSpan, error) {
	start := appendMessageKey(buf[:0], room, epoch, 0)
	prefix := start[:len(start)-8]
	var s epochSpan
	if it.SeekGE(start) && bytes.HasPrefix(it.Key(), prefix) {
		k := it.Key()
		if len(k) != len(start) {
			return epochSpan{}, corruptf("message key of %d bytes in room %q", len(k), room)
		}
		s.first = binary.BigEndian.Uint64(k[len(k)-8:])
		end := appendEpochEnd(buf[:0], room, epoch)
		if !it.SeekLT(end) || !bytes.HasPrefix(it.Key(), end[:len(prefix)]) {
			return epochSpan{}, errors.Join(it.Error(), corruptf("room %q epoch %d lost its last message", room, epoch))
		}
		k = it.Key()
		if len(k) != len(start) {
			return epochSpan{}, corruptf("message key of %d bytes in room %q", len(k), room)
		}
		s.head = binary.BigEndian.Uint64(k[len(k)-8:])
	}
	return s, it.Error()
}
