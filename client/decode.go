package client

import (
	"bytes"
	"math"
	"unicode/utf8"

	"github.com/arena-mesh/arena/protocol"
)

// The reader decodes a msg frame, by far the most frequent server frame,
// without encoding/json when it has the exact layout protocol.AppendMsg
// writes (and the server sends):
//
//	{"op":"msg","room":"R","epoch":E,"seq":S,"ts":T,"from":"F"[,"key":"K"],"data":D}
//
// with strings free of escapes. Anything else, or anything this parser
// is unsure of, falls back to encoding/json, which gives the same result
// (FuzzDecodeMsg checks it).
//
// D, the rest of the frame but its closing brace, is taken as it is, not
// validated again: the server accepts only valid JSON data at publish
// (PROTOCOL.md), and checking it here (with jsontext, at half the cost of
// encoding/json.Valid) was a quarter of a busy subscriber's CPU. The
// envelope is checked byte by byte; a server that broke the data would
// get it delivered unchanged, where encoding/json would have dropped the
// whole frame.

const msgPrefix = `{"op":"msg","room":"`

// rawMsg is a msg frame's fields, aliasing the frame's bytes.
type rawMsg struct {
	room, from, key, data []byte
	epoch, seq            uint64
	ts                    int64
}

// decodeMsg parses line if it is a msg frame in the layout above, and
// reports whether it did.
func decodeMsg(line []byte) (m rawMsg, ok bool) {
	p, ok := bytes.CutPrefix(line, []byte(msgPrefix))
	if !ok {
		return m, false
	}
	if m.room, p, ok = plainString(p); !ok {
		return m, false
	}
	if m.epoch, p, ok = field(p, `,"epoch":`); !ok {
		return m, false
	}
	if m.seq, p, ok = field(p, `,"seq":`); !ok {
		return m, false
	}
	if m.ts, p, ok = signedField(p, `,"ts":`); !ok {
		return m, false
	}
	if p, ok = bytes.CutPrefix(p, []byte(`,"from":"`)); !ok {
		return m, false
	}
	if m.from, p, ok = plainString(p); !ok {
		return m, false
	}
	if rest, found := bytes.CutPrefix(p, []byte(`,"key":"`)); found {
		if m.key, p, ok = plainString(rest); !ok {
			return m, false
		}
	}
	if p, ok = bytes.CutPrefix(p, []byte(`,"data":`)); !ok || len(p) < 2 || p[len(p)-1] != '}' {
		return m, false
	}
	m.data = p[:len(p)-1]
	if m.data[0] <= ' ' || m.data[len(m.data)-1] <= ' ' {
		return m, false // leave data with whitespace around it to encoding/json
	}
	return m, true
}

const ackPrefix = `{"op":"ack","id":`

// decodeAck parses line into f if it is an ack frame in the layout the
// server writes,
//
//	{"op":"ack","id":I,"room":"R","epoch":E,"seq":S,"ts":T[,"dup":true]}
//
// with a room free of escapes, and reports whether it did; f.ID then
// points to *id. Like decodeMsg, it leaves anything else to encoding/json
// (FuzzDecodeAck checks that both agree): a publisher gets an ack per
// message, and encoding/json took a tenth of a publishing client's CPU.
func decodeAck(line []byte, f *protocol.Frame, id *int64) bool {
	p, ok := bytes.CutPrefix(line, []byte(ackPrefix))
	if !ok {
		return false
	}
	var i int64
	if i, p, ok = signedField(p, ""); !ok {
		return false
	}
	if p, ok = bytes.CutPrefix(p, []byte(`,"room":"`)); !ok {
		return false
	}
	var room []byte
	if room, p, ok = plainString(p); !ok {
		return false
	}
	var epoch, seq uint64
	if epoch, p, ok = field(p, `,"epoch":`); !ok {
		return false
	}
	if seq, p, ok = field(p, `,"seq":`); !ok {
		return false
	}
	var ts int64
	if ts, p, ok = signedField(p, `,"ts":`); !ok {
		return false
	}
	p, dup := bytes.CutPrefix(p, []byte(`,"dup":true`))
	if len(p) != 1 || p[0] != '}' {
		return false
	}
	*id = i
	*f = protocol.Frame{Op: protocol.OpAck, ID: id, Room: string(room), Epoch: epoch, Seq: seq, TS: ts, Dup: dup}
	return true
}

// signedField reads `name` followed by a JSON integer that fits in an
// int64.
func signedField(p []byte, name string) (int64, []byte, bool) {
	p, ok := bytes.CutPrefix(p, []byte(name))
	if !ok {
		return 0, nil, false
	}
	neg := false
	if len(p) > 0 && p[0] == '-' {
		neg, p = true, p[1:]
	}
	v, p, ok := number(p)
	if !ok || v > 1<<63 || (!neg && v == 1<<63) {
		return 0, nil, false
	}
	if neg {
		return -int64(v), p, true // -(1<<63) wraps to itself: math.MinInt64
	}
	return int64(v), p, true
}

// plainString reads the rest of a JSON string whose opening quote was
// consumed, if it has no escape and no control character, and is valid
// UTF-8 (so that encoding/json would decode it to the same bytes).
func plainString(p []byte) (s, rest []byte, ok bool) {
	ascii := true
	for i, c := range p {
		if plainByte[c] {
			continue
		}
		switch {
		case c == '"':
			if !ascii && !utf8.Valid(p[:i]) {
				return nil, nil, false
			}
			return p[:i], p[i+1:], true
		case c >= utf8.RuneSelf:
			ascii = false
		default: // a backslash or a control character
			return nil, nil, false
		}
	}
	return nil, nil, false
}

// plainByte is true for the ASCII bytes that stand for themselves in a
// JSON string: all but the quote, the backslash and control characters.
// One table load per byte is what the room, sender and key of every
// message cost.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// field reads `name` followed by an unsigned JSON integer.
func field(p []byte, name string) (uint64, []byte, bool) {
	p, ok := bytes.CutPrefix(p, []byte(name))
	if !ok {
		return 0, nil, false
	}
	return number(p)
}

// number reads an unsigned JSON integer: digits without a leading zero
// (unless it is just 0), that fit in a uint64, followed by ',' or '}'.
func number(p []byte) (uint64, []byte, bool) {
	var v uint64
	n := 0
	for ; n < len(p) && p[n] >= '0' && p[n] <= '9'; n++ {
		d := uint64(p[n] - '0')
		if n >= 19 && v > (math.MaxUint64-d)/10 {
			return 0, nil, false // overflows uint64 (19 digits never do)
		}
		v = v*10 + d
	}
	if n == 0 || n < len(p) && p[n] != ',' && p[n] != '}' || n > 1 && p[0] == '0' {
		return 0, nil, false
	}
	return v, p[n:], true
}
