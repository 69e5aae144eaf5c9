package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"
)

// ErrCorrupt is wrapped by the error returned for a stored key or value
// that does not decode: the log's files were damaged or written by
// something else.
var ErrCorrupt = errors.New("wal: corrupt data")

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// Value lengths of the fixed-size values (see layout.go).
const (
	roomValueLen  = 8
	hotValueLen   = 8
	dedupValueLen = 24
)

// messageValueLen is the encoded length of rec's message value.
func messageValueLen(rec *Record) int {
	return 8 + uvarintLen(uint64(len(rec.From))) + len(rec.From) +
		uvarintLen(uint64(len(rec.Key))) + len(rec.Key) + len(rec.Data)
}

// putMessageValue writes rec's message value into dst, which must be
// messageValueLen(rec) long.
func putMessageValue(dst []byte, rec *Record) {
	binary.BigEndian.PutUint64(dst, uint64(rec.TS))
	n := 8
	n += binary.PutUvarint(dst[n:], uint64(len(rec.From)))
	n += copy(dst[n:], rec.From)
	n += binary.PutUvarint(dst[n:], uint64(len(rec.Key)))
	n += copy(dst[n:], rec.Key)
	copy(dst[n:], rec.Data)
}

// messageValue is a decoded message value; the slices alias the input.
type messageValue struct {
	TS   int64
	From []byte
	Key  []byte
	Data []byte
}

// decodeMessageValue decodes a message value without copying. It rejects
// short input, lengths past the end and non-minimal uvarints with an error
// wrapping ErrCorrupt.
func decodeMessageValue(v []byte) (messageValue, error) {
	if len(v) < 8 {
		return messageValue{}, corruptf("message value of %d bytes, want at least 8", len(v))
	}
	m := messageValue{TS: int64(binary.BigEndian.Uint64(v))}
	rest := v[8:]
	var err error
	if m.From, rest, err = lengthPrefixed(rest); err != nil {
		return messageValue{}, fmt.Errorf("message value from: %w", err)
	}
	if m.Key, rest, err = lengthPrefixed(rest); err != nil {
		return messageValue{}, fmt.Errorf("message value key: %w", err)
	}
	m.Data = rest
	return m, nil
}

// lengthPrefixed splits uvarint len | bytes | rest.
func lengthPrefixed(b []byte) (field, rest []byte, err error) {
	n, w := binary.Uvarint(b)
	if w <= 0 {
		return nil, nil, corruptf("bad length")
	}
	if w != uvarintLen(n) {
		return nil, nil, corruptf("non-minimal length")
	}
	b = b[w:]
	if n > uint64(len(b)) {
		return nil, nil, corruptf("length %d past the end (%d bytes left)", n, len(b))
	}
	return b[:n], b[n:], nil
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// appendMessageValue is putMessageValue appending to dst.
func appendMessageValue(dst []byte, rec *Record) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, messageValueLen(rec))...)
	putMessageValue(dst[n:], rec)
	return dst
}

// recordFromValue builds the Record stored under (room, epoch, seq) from its
// value, which is only valid until the iterator moves. It copies v once
// into a single allocation that Data, From and Key share: From and Key are
// strings over bytes that nothing else can reach, and Data is the tail,
// capped so that appending to it reallocates instead of overwriting them.
func recordFromValue(room string, epoch, seq uint64, v []byte) (Record, error) {
	m, err := decodeMessageValue(v)
	if err != nil {
		return Record{}, err
	}
	buf := make([]byte, len(m.From)+len(m.Key)+len(m.Data))
	n := copy(buf, m.From)
	n += copy(buf[n:], m.Key)
	copy(buf[n:], m.Data)
	rec := Record{Room: room, Epoch: epoch, Seq: seq, TS: m.TS}
	if len(m.From) > 0 {
		rec.From = unsafe.String(&buf[0], len(m.From))
	}
	if len(m.Key) > 0 {
		rec.Key = unsafe.String(&buf[len(m.From)], len(m.Key))
	}
	d := buf[len(m.From)+len(m.Key):]
	rec.Data = d[:len(d):len(d)]
	return rec, nil
}

// putDedupValue writes a dedup value into dst (dedupValueLen bytes).
func putDedupValue(dst []byte, e DedupEntry) {
	binary.BigEndian.PutUint64(dst, e.Epoch)
	binary.BigEndian.PutUint64(dst[8:], e.Seq)
	binary.BigEndian.PutUint64(dst[16:], uint64(e.TS))
}

// decodeDedupValue decodes a dedup value.
func decodeDedupValue(v []byte) (DedupEntry, error) {
	if len(v) != dedupValueLen {
		return DedupEntry{}, corruptf("dedup value of %d bytes, want %d", len(v), dedupValueLen)
	}
	return DedupEntry{
		Epoch: binary.BigEndian.Uint64(v),
		Seq:   binary.BigEndian.Uint64(v[8:]),
		TS:    int64(binary.BigEndian.Uint64(v[16:])),
	}, nil
}

// putRoomValue writes a room value (the epoch) into dst (roomValueLen bytes).
func putRoomValue(dst []byte, epoch uint64) {
	binary.BigEndian.PutUint64(dst, epoch)
}

// decodeRoomValue decodes a room value: the room's epoch.
func decodeRoomValue(v []byte) (uint64, error) {
	if len(v) != roomValueLen {
		return 0, corruptf("room value of %d bytes, want %d", len(v), roomValueLen)
	}
	return binary.BigEndian.Uint64(v), nil
}

// putHotValue writes a hot value (the epoch marked hot) into dst
// (hotValueLen bytes).
func putHotValue(dst []byte, epoch uint64) {
	binary.BigEndian.PutUint64(dst, epoch)
}

// decodeHotValue decodes a hot value: the epoch the room was marked hot in.
func decodeHotValue(v []byte) (uint64, error) {
	if len(v) != hotValueLen {
		return 0, corruptf("hot value of %d bytes, want %d", len(v), hotValueLen)
	}
	return binary.BigEndian.Uint64(v), nil
}
