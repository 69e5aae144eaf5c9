package wal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
)

// The Pebble key space, byte by byte. Every integer is big-endian so that
// Pebble's bytewise order is numeric order: a room's messages sort by
// (epoch, seq), and expiry entries sort by time.
//
// A room name is 1..MaxRoomLen bytes and never contains 0x00 (Arena's room
// names are 1..200 bytes of [A-Za-z0-9:_-.@/]), so 0x00 ends the room in a
// key: the prefix 'm' | room | 0x00 belongs to exactly one room, and room
// "a" never shares a prefix with room "a/b".
//
//	message   'm' | room | 0x00 | epoch (8) | seq (8)
//	          value: ts (8) | uvarint len(from) | from | uvarint len(key) | key | data
//
//	room      'r' | room
//	          value: epoch (8), the room's current epoch (latest SetEpoch)
//
//	hot       'h' | room
//	          value: epoch (8), the epoch the room was marked hot in
//	          (MarkHot). MarkCold deletes the key. A mark whose epoch is not
//	          the room's current one is stale and means nothing; retention
//	          never deletes hot keys.
//
//	key index 'K' | start^(1<<63) (8) | width (4) | room | 0x00 | key
//	          value: epoch (8) | seq (8) | ts (8), where key was first used.
//	          Only for keys their message no longer vouches for: those the
//	          router evicted from memory (IndexKeys) and those of messages
//	          retention deleted inside the dedup window. Every other key is
//	          found in its message (RecentKeys), which keeps a publish at
//	          one Pebble key instead of two. Entries sit in buckets of time
//	          (keyindex.go): ts is in [start, start+width) ms, start is a
//	          multiple of width, width > 0. Retention deletes a bucket with
//	          one range deletion once start+width is older than the dedup
//	          window.
//
//	dedup     'k' | room | 0x00 | key
//	          value: as the key index's. The key index before buckets:
//	          still read and swept, no longer written.
//
//	receipt   'u' | len(user) (2) | user | room  (see state.go)
//
//	setting   'M' | name  (see setting.go)
//
//	expiry    'x' | ts^(1<<63) (8) | room | 0x00 | key
//	          value: empty. One per 'k' entry, ordered by the entry's ts, so
//	          that the sweeper finds expired 'k' entries by a range scan
//	          instead of reading the whole index. The sign bit is flipped so
//	          that negative timestamps sort before positive ones (so is
//	          the key index's start). No longer written.
//
// ts is milliseconds since the Unix epoch (Record.TS), stored as the
// two's-complement bits of the int64 in values. Uvarints are minimal: a
// decoder rejects a longer encoding of the same number, so every decoded
// value re-encodes to the same bytes.
const (
	kindMessage byte = 'm'
	kindRoom    byte = 'r'
	kindHot     byte = 'h'
	kindBucket  byte = 'K'
	kindDedup   byte = 'k'
	kindExpiry  byte = 'x'

	// roomEnd follows the room name in message, dedup and expiry keys.
	roomEnd byte = 0x00

	// messageKeyOverhead is a message key's length besides the room name:
	// kind, roomEnd, epoch and seq.
	messageKeyOverhead = 1 + 1 + 8 + 8

	// tsBias maps int64 timestamps to uint64 keeping their order.
	tsBias = 1 << 63
)

// MaxRoomLen is the longest room name the log accepts. Arena's own limit
// (200 bytes) is lower; this one only keeps keys bounded.
const MaxRoomLen = 1024

// MaxKeyLen is the longest idempotency key the log accepts (Arena's own
// limit is 64 bytes).
const MaxKeyLen = 1024

// validRoom reports whether room can be used in a key: non-empty, bounded,
// and free of the 0x00 that ends it.
func validRoom(room string) bool {
	return len(room) > 0 && len(room) <= MaxRoomLen && !containsZero(room)
}

func containsZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == roomEnd {
			return true
		}
	}
	return false
}

// messageKeyLen is the length of a message key of room.
func messageKeyLen(room string) int { return messageKeyOverhead + len(room) }

// putMessageKey writes the message key of (room, epoch, seq) into dst,
// which must be messageKeyLen(room) long.
func putMessageKey(dst []byte, room string, epoch, seq uint64) {
	dst[0] = kindMessage
	n := 1 + copy(dst[1:], room)
	dst[n] = roomEnd
	binary.BigEndian.PutUint64(dst[n+1:], epoch)
	binary.BigEndian.PutUint64(dst[n+9:], seq)
}

// appendMessageKey appends the message key of (room, epoch, seq) to dst.
func appendMessageKey(dst []byte, room string, epoch, seq uint64) []byte {
	dst = append(dst, kindMessage)
	dst = append(dst, room...)
	dst = append(dst, roomEnd)
	dst = binary.BigEndian.AppendUint64(dst, epoch)
	return binary.BigEndian.AppendUint64(dst, seq)
}

// appendEpochEnd appends the smallest key above every message key of
// (room, epoch): the key of seq MaxUint64 followed by one more byte. Used
// as an exclusive upper bound so that no seq needs epoch+1 (which could
// overflow).
func appendEpochEnd(dst []byte, room string, epoch uint64) []byte {
	return append(appendMessageKey(dst, room, epoch, math.MaxUint64), 0)
}

// appendRoomMessagesEnd appends the smallest key above every message key
// of room: 'm' | room | 0x01.
func appendRoomMessagesEnd(dst []byte, room string) []byte {
	dst = append(dst, kindMessage)
	dst = append(dst, room...)
	return append(dst, roomEnd+1)
}

// putRoomKey writes the room key of room into dst (1+len(room) bytes).
func putRoomKey(dst []byte, room string) {
	dst[0] = kindRoom
	copy(dst[1:], room)
}

// appendRoomKey appends the room (meta) key of room.
func appendRoomKey(dst []byte, room string) []byte {
	dst = append(dst, kindRoom)
	return append(dst, room...)
}

// hotKeyLen is the length of the hot key of room.
func hotKeyLen(room string) int { return 1 + len(room) }

// putHotKey writes the hot key of room into dst (hotKeyLen(room) bytes).
func putHotKey(dst []byte, room string) {
	dst[0] = kindHot
	copy(dst[1:], room)
}

// appendHotKey appends the hot key of room.
func appendHotKey(dst []byte, room string) []byte {
	dst = append(dst, kindHot)
	return append(dst, room...)
}

// dedupKeyLen is the length of the dedup key of (room, key).
func dedupKeyLen(room, key string) int { return 1 + len(room) + 1 + len(key) }

// putDedupKey writes the dedup key of (room, key) into dst, which must be
// dedupKeyLen(room, key) long.
func putDedupKey(dst []byte, room, key string) {
	dst[0] = kindDedup
	n := 1 + copy(dst[1:], room)
	dst[n] = roomEnd
	copy(dst[n+1:], key)
}

// appendDedupKey appends the dedup key of (room, key) to dst.
func appendDedupKey(dst []byte, room, key string) []byte {
	dst = append(dst, kindDedup)
	dst = append(dst, room...)
	dst = append(dst, roomEnd)
	return append(dst, key...)
}

// expiryKeyLen is the length of the expiry key of (ts, room, key).
func expiryKeyLen(room, key string) int { return 1 + 8 + len(room) + 1 + len(key) }

// putExpiryKey writes the expiry key of (ts, room, key) into dst, which must
// be expiryKeyLen(room, key) long.
func putExpiryKey(dst []byte, ts int64, room, key string) {
	dst[0] = kindExpiry
	binary.BigEndian.PutUint64(dst[1:], uint64(ts)^tsBias)
	n := 9 + copy(dst[9:], room)
	dst[n] = roomEnd
	copy(dst[n+1:], key)
}

// appendExpiryBound appends the smallest expiry key of time ts: every
// expiry key of an earlier ts sorts below it.
func appendExpiryBound(dst []byte, ts int64) []byte {
	dst = append(dst, kindExpiry)
	return binary.BigEndian.AppendUint64(dst, uint64(ts)^tsBias)
}

// bucketPrefixLen is the length of a key index entry's key before the
// room: kind, start and width.
const bucketPrefixLen = 1 + 8 + 4

// bucketKeyLen is the length of the key index key of (room, key).
func bucketKeyLen(room, key string) int { return bucketPrefixLen + len(room) + 1 + len(key) }

// putBucketKey writes the key index key of (bk, room, key) into dst, which
// must be bucketKeyLen(room, key) long.
func putBucketKey(dst []byte, bk dedupBucket, room, key string) {
	dst[0] = kindBucket
	binary.BigEndian.PutUint64(dst[1:], uint64(bk.start)^tsBias)
	binary.BigEndian.PutUint32(dst[9:], bk.width)
	n := bucketPrefixLen + copy(dst[bucketPrefixLen:], room)
	dst[n] = roomEnd
	copy(dst[n+1:], key)
}

// appendBucketKey appends the key index key of (bk, room, key) to dst.
func appendBucketKey(dst []byte, bk dedupBucket, room, key string) []byte {
	dst = appendBucketPrefix(dst, bk)
	dst = append(dst, room...)
	dst = append(dst, roomEnd)
	return append(dst, key...)
}

// appendBucketPrefix appends the prefix every key of bucket bk starts with.
func appendBucketPrefix(dst []byte, bk dedupBucket) []byte {
	dst = append(dst, kindBucket)
	dst = binary.BigEndian.AppendUint64(dst, uint64(bk.start)^tsBias)
	return binary.BigEndian.AppendUint32(dst, bk.width)
}

// appendBucketEnd appends the smallest key above every key of bucket bk:
// its prefix plus one.
func appendBucketEnd(dst []byte, bk dedupBucket) []byte {
	n := len(dst)
	dst = appendBucketPrefix(dst, bk)
	for i := len(dst) - 1; i > n; i-- { // the kind byte never carries
		dst[i]++
		if dst[i] != 0 {
			break
		}
	}
	return dst
}

// keyParts is a decoded key. Which fields are set depends on Kind:
// message: Room, Epoch, Seq; room and hot: Room; key index: TS (the
// bucket's start), Width, Room, Key; dedup: Room, Key; expiry: TS, Room,
// Key; setting: Key (its name). The byte slices alias the decoded key.
type keyParts struct {
	Kind  byte
	Room  []byte
	Epoch uint64
	Seq   uint64
	Key   []byte
	TS    int64
	Width uint32
}

// decodeKey splits a stored key into its parts, rejecting anything that
// encodeKey would not have produced with an error wrapping ErrCorrupt.
func decodeKey(k []byte) (keyParts, error) {
	if len(k) == 0 {
		return keyParts{}, corruptf("empty key")
	}
	p := keyParts{Kind: k[0]}
	switch p.Kind {
	case kindMessage:
		room, rest, err := splitRoom(k[1:])
		if err != nil {
			return keyParts{}, fmt.Errorf("message key: %w", err)
		}
		if len(rest) != 16 {
			return keyParts{}, corruptf("message key: %d bytes after room, want 16", len(rest))
		}
		p.Room = room
		p.Epoch = binary.BigEndian.Uint64(rest)
		p.Seq = binary.BigEndian.Uint64(rest[8:])
	case kindRoom, kindHot:
		// The room is the rest of the key, so it is not ended by 0x00.
		room := k[1:]
		if len(room) == 0 || len(room) > MaxRoomLen || bytes.IndexByte(room, roomEnd) >= 0 {
			name := "room"
			if p.Kind == kindHot {
				name = "hot"
			}
			return keyParts{}, corruptf("%s key: bad room name", name)
		}
		p.Room = room
	case kindBucket:
		if len(k) < bucketPrefixLen {
			return keyParts{}, corruptf("key index key: %d bytes, too short", len(k))
		}
		p.TS = int64(binary.BigEndian.Uint64(k[1:]) ^ tsBias)
		p.Width = binary.BigEndian.Uint32(k[9:])
		if p.Width == 0 || p.TS%int64(p.Width) != 0 {
			return keyParts{}, corruptf("key index key: bucket start %d, width %d", p.TS, p.Width)
		}
		room, key, err := splitRoom(k[bucketPrefixLen:])
		if err != nil {
			return keyParts{}, fmt.Errorf("key index key: %w", err)
		}
		if len(key) == 0 || len(key) > MaxKeyLen {
			return keyParts{}, corruptf("key index key: idempotency key of %d bytes", len(key))
		}
		p.Room, p.Key = room, key
	case kindDedup:
		room, key, err := splitRoom(k[1:])
		if err != nil {
			return keyParts{}, fmt.Errorf("dedup key: %w", err)
		}
		if len(key) == 0 || len(key) > MaxKeyLen {
			return keyParts{}, corruptf("dedup key: idempotency key of %d bytes", len(key))
		}
		p.Room, p.Key = room, key
	case kindExpiry:
		if len(k) < 9 {
			return keyParts{}, corruptf("expiry key: %d bytes, too short", len(k))
		}
		room, key, err := splitRoom(k[9:])
		if err != nil {
			return keyParts{}, fmt.Errorf("expiry key: %w", err)
		}
		if len(key) == 0 || len(key) > MaxKeyLen {
			return keyParts{}, corruptf("expiry key: idempotency key of %d bytes", len(key))
		}
		p.TS = int64(binary.BigEndian.Uint64(k[1:]) ^ tsBias)
		p.Room, p.Key = room, key
	case kindSetting:
		if !validSettingName(k[1:]) {
			return keyParts{}, corruptf("setting key: bad name")
		}
		p.Key = k[1:]
	default:
		return keyParts{}, corruptf("unknown key kind 0x%02x", p.Kind)
	}
	return p, nil
}

// splitRoom splits room | 0x00 | rest.
func splitRoom(b []byte) (room, rest []byte, err error) {
	i := bytes.IndexByte(b, roomEnd)
	if i < 0 {
		return nil, nil, corruptf("room name not terminated")
	}
	if i == 0 || i > MaxRoomLen {
		return nil, nil, corruptf("room name of %d bytes", i)
	}
	return b[:i], b[i+1:], nil
}

// encodeKey is the inverse of decodeKey.
func encodeKey(p keyParts) []byte {
	switch p.Kind {
	case kindMessage:
		return appendMessageKey(nil, string(p.Room), p.Epoch, p.Seq)
	case kindRoom:
		return appendRoomKey(nil, string(p.Room))
	case kindHot:
		return appendHotKey(nil, string(p.Room))
	case kindBucket:
		return appendBucketKey(nil, dedupBucket{start: p.TS, width: p.Width}, string(p.Room), string(p.Key))
	case kindDedup:
		return appendDedupKey(nil, string(p.Room), string(p.Key))
	case kindSetting:
		return appendSettingKey(nil, string(p.Key))
	case kindExpiry:
		k := make([]byte, expiryKeyLen(string(p.Room), string(p.Key)))
		putExpiryKey(k, p.TS, string(p.Room), string(p.Key))
		return k
	}
	return nil
}
