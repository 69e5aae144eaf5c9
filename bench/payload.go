package bench

import (
	"encoding/json"
	"errors"
	"strconv"
)

// Payload is what the harness puts in every message it publishes. It is a
// JSON object so that Arena (which carries JSON values) and a peer system
// (which carries bytes) get the same bytes:
//
//	{"p":3,"n":1042,"t":5000000000,"s":5000012345,"x":"......"}
//
// p is the publisher's stream id, n the message's number in that stream
// (1, 2, 3, ... in schedule order), t the intended send time and s the
// actual send time (both Clock nanoseconds), and x padding up to the
// configured size.
type Payload struct {
	Stream   uint32 // p
	N        uint64 // n
	Intended int64  // t: when the fixed-rate schedule meant to send it
	Sent     int64  // s: when the publisher handed it to the driver
}

// errPayload reports a message that the harness did not write.
var errPayload = errors.New("bench: not a bench payload")

// AppendPayload appends the encoding of p padded with 'x' so the whole
// object is at least size bytes, and returns the extended buffer.
func AppendPayload(b []byte, p Payload, size int) []byte {
	start := len(b)
	b = append(b, `{"p":`...)
	b = strconv.AppendUint(b, uint64(p.Stream), 10)
	b = append(b, `,"n":`...)
	b = strconv.AppendUint(b, p.N, 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, p.Intended, 10)
	b = append(b, `,"s":`...)
	b = strconv.AppendInt(b, p.Sent, 10)
	b = append(b, `,"x":"`...)
	for len(b)-start < size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// ParsePayload decodes a payload written by AppendPayload. It reads the
// fixed layout without reflection (receivers parse every message, and a
// slow harness would measure itself), and falls back to encoding/json for
// any other spelling of the same object, such as one a server re-encoded
// with its keys in another order.
func ParsePayload(b []byte) (Payload, error) {
	if p, ok := parseFast(b); ok {
		return p, nil
	}
	var v struct {
		P *uint32 `json:"p"`
		N *uint64 `json:"n"`
		T *int64  `json:"t"`
		S *int64  `json:"s"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.P == nil || v.N == nil || v.T == nil || v.S == nil {
		return Payload{}, errPayload
	}
	return Payload{Stream: *v.P, N: *v.N, Intended: *v.T, Sent: *v.S}, nil
}

func parseFast(b []byte) (Payload, bool) {
	var p Payload
	var ok bool
	var u uint64
	var i int64
	if b, ok = expect(b, `{"p":`); !ok {
		return p, false
	}
	if u, b, ok = readUint(b); !ok || u > 1<<32-1 {
		return p, false
	}
	p.Stream = uint32(u)
	if b, ok = expect(b, `,"n":`); !ok {
		return p, false
	}
	if p.N, b, ok = readUint(b); !ok {
		return p, false
	}
	if b, ok = expect(b, `,"t":`); !ok {
		return p, false
	}
	if i, b, ok = readInt(b); !ok {
		return p, false
	}
	p.Intended = i
	if b, ok = expect(b, `,"s":`); !ok {
		return p, false
	}
	if i, b, ok = readInt(b); !ok {
		return p, false
	}
	p.Sent = i
	// The padding is not read: ',"x":"xxx..."}' or the end of the object.
	if len(b) == 0 || (b[0] != ',' && b[0] != '}') {
		return p, false
	}
	return p, true
}

func expect(b []byte, s string) ([]byte, bool) {
	if len(b) < len(s) || string(b[:len(s)]) != s {
		return b, false
	}
	return b[len(s):], true
}

func readUint(b []byte) (uint64, []byte, bool) {
	var v uint64
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		if n == 19 { // beyond what the harness writes; let encoding/json decide
			return 0, b, false
		}
		v = v*10 + uint64(b[n]-'0')
		n++
	}
	return v, b[n:], n > 0
}

func readInt(b []byte) (int64, []byte, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	v, rest, ok := readUint(b)
	if !ok || v > 1<<63-1 {
		return 0, b, false
	}
	if neg {
		return -int64(v), rest, true
	}
	return int64(v), rest, true
}
