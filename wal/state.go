package wal

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Receipt positions: how far each user has received and read each room.
// They live in the same Pebble DB as the messages, under their own kind
// (see layout.go for the others), byte by byte:
//
//	receipt   'u' | len(user) (2, big-endian) | user | room
//	          value: epoch (8) | delivered (8) | read (8)
//
// The user is length-prefixed rather than ended by 0x00 because user ids
// come from tokens and may hold any byte; the room is the rest of the key
// (1..MaxRoomLen bytes). The prefix 'u' | len | user therefore holds
// exactly one user's rooms, in room-name order, and Receipts lists them
// with one range scan. delivered and read are the highest seq of epoch the
// user received and read (read is cumulative: everything up to it); a
// position from an older epoch is stale and the router replaces it.
//
// e.g. user "ann", room "a", epoch 7, delivered 3, read 2:
//
//	key   75 00 03 61 6e 6e 61
//	value 00..07 00..03 00..02
const (
	kindReceipt byte = 'u'

	// receiptValueLen is the fixed length of a receipt value.
	receiptValueLen = 24
)

// MaxUserLen is the longest user id the receipt store accepts (Arena's
// tokens allow 256 bytes).
const MaxUserLen = 1024

// ReceiptState is how far a user has received and read a room, in the
// room's epoch Epoch.
type ReceiptState struct {
	User      string
	Room      string
	Epoch     uint64
	Delivered uint64 // highest seq delivered to the user
	Read      uint64 // everything up to this seq is read
}

// validUser reports whether user can be used in a receipt key.
func validUser(user string) bool { return len(user) > 0 && len(user) <= MaxUserLen }

// appendReceiptPrefix appends 'u' | len(user) | user: the prefix of every
// receipt key of user.
func appendReceiptPrefix(dst []byte, user string) []byte {
	dst = append(dst, kindReceipt)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(user)))
	return append(dst, user...)
}

// appendReceiptKey appends the receipt key of (user, room).
func appendReceiptKey(dst []byte, user, room string) []byte {
	return append(appendReceiptPrefix(dst, user), room...)
}

// decodeReceiptKey splits a receipt key into user and room (aliasing k).
func decodeReceiptKey(k []byte) (user, room []byte, err error) {
	if len(k) < 3 || k[0] != kindReceipt {
		return nil, nil, corruptf("receipt key of %d bytes", len(k))
	}
	n := int(binary.BigEndian.Uint16(k[1:]))
	rest := k[3:]
	if n == 0 || n > MaxUserLen || n >= len(rest) {
		return nil, nil, corruptf("receipt key: user of %d bytes with %d bytes left", n, len(rest))
	}
	user, room = rest[:n], rest[n:]
	if len(room) > MaxRoomLen || containsZero(string(room)) {
		return nil, nil, corruptf("receipt key: bad room name")
	}
	return user, room, nil
}

// appendReceiptValue appends the value of st.
func appendReceiptValue(dst []byte, st ReceiptState) []byte {
	dst = binary.BigEndian.AppendUint64(dst, st.Epoch)
	dst = binary.BigEndian.AppendUint64(dst, st.Delivered)
	return binary.BigEndian.AppendUint64(dst, st.Read)
}

// decodeReceiptValue decodes a receipt value into st's positions.
func decodeReceiptValue(v []byte, st *ReceiptState) error {
	if len(v) != receiptValueLen {
		return corruptf("receipt value of %d bytes, want %d", len(v), receiptValueLen)
	}
	st.Epoch = binary.BigEndian.Uint64(v)
	st.Delivered = binary.BigEndian.Uint64(v[8:])
	st.Read = binary.BigEndian.Uint64(v[16:])
	return nil
}

// PutReceipts stores states (replacing what was stored for each user and
// room) in one batch and waits for its fsync. Callers coalesce: the router
// writes at most one batch per event interval, so this costs one fsync per
// interval however many receipts arrived. A state with an invalid user or
// room fails the whole batch with an error wrapping ErrInvalid.
func (l *Log) PutReceipts(states []ReceiptState) error {
	if len(states) == 0 {
		return nil
	}
	for i := range states {
		if !validUser(states[i].User) || !validRoom(states[i].Room) {
			return fmt.Errorf("%w: receipt of user %q room %q", ErrInvalid, states[i].User, states[i].Room)
		}
	}
	err := l.readDB(func(db *pebble.DB) error {
		if err := l.failed(); err != nil {
			return err
		}
		b := db.NewBatch()
		defer func() { _ = b.Close() }()
		var k, v []byte
		for _, st := range states {
			k = appendReceiptKey(k[:0], st.User, st.Room)
			v = appendReceiptValue(v[:0], st)
			if err := b.Set(k, v, nil); err != nil {
				return err
			}
		}
		return l.apply(b, pebble.Sync, false)
	})
	if err != nil {
		return fmt.Errorf("put %d receipts: %w", len(states), err)
	}
	return nil
}

// Receipt returns the stored state of user in room; false if none.
func (l *Log) Receipt(user, room string) (ReceiptState, bool, error) {
	if !validUser(user) || !validRoom(room) {
		return ReceiptState{}, false, fmt.Errorf("%w: receipt of user %q room %q", ErrInvalid, user, room)
	}
	st := ReceiptState{User: user, Room: room}
	found := false
	err := l.readDB(func(db *pebble.DB) error {
		v, closer, err := db.Get(appendReceiptKey(nil, user, room))
		if errors.Is(err, pebble.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		defer func() { _ = closer.Close() }()
		found = true
		return decodeReceiptValue(v, &st)
	})
	if err != nil {
		return ReceiptState{}, false, fmt.Errorf("get receipt of user %q room %q: %w", user, room, err)
	}
	return st, found, nil
}

// Receipts returns every stored state of user, in room-name order.
func (l *Log) Receipts(user string) ([]ReceiptState, error) {
	if !validUser(user) {
		return nil, fmt.Errorf("%w: receipts of user %q", ErrInvalid, user)
	}
	var out []ReceiptState
	err := l.readDB(func(db *pebble.DB) error {
		lower := appendReceiptPrefix(nil, user)
		// Every key of user is the prefix plus a non-empty room.
		upper := receiptUpper(lower)
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return err
		}
		for ok := it.First(); ok; ok = it.Next() {
			u, room, err := decodeReceiptKey(it.Key())
			if err == nil && string(u) != user {
				err = corruptf("receipt key of user %q under user %q", u, user)
			}
			st := ReceiptState{User: user, Room: string(room)}
			if err == nil {
				err = decodeReceiptValue(it.Value(), &st)
			}
			if err != nil {
				return errors.Join(err, it.Close())
			}
			out = append(out, st)
		}
		return errors.Join(it.Error(), it.Close())
	})
	if err != nil {
		return nil, fmt.Errorf("list receipts of user %q: %w", user, err)
	}
	return out, nil
}

// receiptUpper returns the smallest key above every key starting with
// prefix: the prefix with its last non-0xff byte incremented and the rest
// cut (the prefix starts with 'u', so there is always one).
func receiptUpper(prefix []byte) []byte {
	up := append([]byte(nil), prefix...)
	for i := len(up) - 1; i >= 0; i-- {
		if up[i] != 0xff {
			up[i]++
			return up[:i+1]
		}
	}
	return nil
}
