package protocol

import (
	"bytes"
	"encoding/json"
	"math/bits"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// Client frames are decoded on two paths.
//
// encoding/json (decodeClientJSON) defines the result: case-insensitive
// and Unicode-folded field names, escapes in names, the last of duplicate
// names winning, null leaving fields alone, unknown fields ignored, type
// errors reported once the whole frame is read. It is also slow, about
// 1.7 µs and 11 allocations for a pub, because it goes through reflection
// and validates the input twice; on a busy node that is a tenth of the CPU.
//
// decodeFast handles only the shape every real client sends: an object
// whose names are spelled exactly as in PROTOCOL.md, each at most once,
// with values of the field's type and strings without escapes, plus
// ASCII names that are no field's at all (ignored). Tokenizing
// and validation are jsontext's (go-json-experiment), a strict RFC 8259
// parser that returns raw values without copying; everything else is
// plain code that decodes exactly as encoding/json would. On anything it
// does not handle, decodeFast declines and DecodeClient uses encoding/json,
// so unusual input costs what it always did and gets the same answer. A
// differential fuzz target (FuzzDecodeClientFast) holds the two together.
//
// Equivalence relies on these facts:
//   - jsontext rejects everything encoding/json rejects as syntax (same
//     grammar, same maximum depth of 10000) and more (invalid UTF-8 in
//     strings), and a stream of several values is refused below by
//     requiring only whitespace after the object.
//   - With no earlier duplicate, null leaves a field at its zero value; only
//     data keeps it, as the raw value "null".
//   - Integers are parsed with the strconv calls encoding/json makes, so
//     fractions, exponents, signs on unsigned fields and overflow fail in
//     the same places (and then decodeFast declines).

// fastField is one bit per Frame field decodeFast handles; the string
// fields come first, so a string field's bit index is its slot in strs.
type fastField uint16

const (
	fieldOp fastField = 1 << iota
	fieldToken
	fieldName
	fieldRoom
	fieldKey
	fieldID
	fieldSince
	fieldPresence
	fieldData
	fieldSeq
	fieldBefore
	fieldAfter
	fieldLimit

	numStrs = 5 // op, token, name, room, key
)

// fastNames are the raw (quoted) names of the fields, in bit order.
var fastNames = [...]string{`"op"`, `"token"`, `"name"`, `"room"`, `"key"`, `"id"`, `"since"`,
	`"presence"`, `"data"`, `"seq"`, `"before"`, `"after"`, `"limit"`}

// fieldOf maps a raw object name to its field, or 0 for a name that is
// not spelled exactly like one decodeFast handles.
func fieldOf(name []byte) fastField {
	for i, n := range fastNames {
		if string(name) == n {
			return 1 << i
		}
	}
	return 0
}

// ignored reports whether encoding/json surely ignores the object name
// name (raw, quoted): plain ASCII that matches no Frame field in any case.
// Names with escapes or other bytes may fold onto a field ("\u212Aey" is
// "key"), so decodeFast declines on them.
func ignored(name []byte) bool {
	s := name[1 : len(name)-1]
	for _, c := range s {
		if c < ' ' || c > '~' || c == '\\' {
			return false
		}
	}
	for _, field := range frameNames {
		if len(field) == len(s) && strings.EqualFold(field, string(s)) {
			return false
		}
	}
	return true
}

// frameNames holds the JSON name of every Frame field. For an ASCII name,
// encoding/json's case folding is ASCII case folding, as in EqualFold.
var frameNames = func() (names []string) {
	t := reflect.TypeFor[Frame]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names = append(names, name)
	}
	return names
}()

// clientOps are the client ops, most frequent first. A known op decodes to
// one of these constants rather than to a new string.
var clientOps = [...]string{OpPub, OpRecv, OpRead, OpPing, OpSub, OpUnsub, OpHistory,
	OpPresence, OpConnect, OpRefresh, OpRooms}

// span is where a value sits in the input, b[start:end].
type span struct{ start, end int }

// fastDecoder is the reusable state of decodeFast. jsontext parses
// directly from a bytes.Buffer's contents, without copying them. Between
// uses it keeps a reference to the last input; a pool holds few decoders
// and drops them at garbage collection, so that costs little.
type fastDecoder struct {
	in, subIn bytes.Buffer
	dec, sub  jsontext.Decoder // sub reads the since object

	// What the last input held: the fields with a value other than null
	// (fields not in got keep values from earlier inputs), where strings
	// and data sit in it, and numbers and bools.
	got                fastField
	strs               [numStrs]span
	data               span
	id                 int64
	seq, before, after uint64
	limit              int
	presence           bool
	since              Position
}

var fastDecoders = sync.Pool{New: func() any { return new(fastDecoder) }}

// fastOpts lets jsontext skip its duplicate-name bookkeeping: decodeFast
// declines on a repeated name itself, which is cheaper.
var fastOpts = jsontext.AllowDuplicateNames(true)

// decodeFast decodes b as encoding/json would decode it into a Frame, and
// reports false, with no frame, when b is not in the shape it handles (see
// the top of this file). It does not check the frame (see CheckClient).
func decodeFast(b []byte) (*Frame, bool) {
	return decodeFastInto(b, nil)
}

// decodeFastInto is decodeFast building the frame in box, or in a new
// one if box is nil.
func decodeFastInto(b []byte, box *frameBox) (*Frame, bool) {
	fd := fastDecoders.Get().(*fastDecoder)
	f, ok := fd.decodeInto(b, box)
	fastDecoders.Put(fd)
	return f, ok
}

// decode is decodeFast with a given fastDecoder.
func (fd *fastDecoder) decode(b []byte) (*Frame, bool) {
	return fd.decodeInto(b, nil)
}

// decodeInto is decodeFastInto with a given fastDecoder.
func (fd *fastDecoder) decodeInto(b []byte, box *frameBox) (*Frame, bool) {
	fd.in = *bytes.NewBuffer(b)
	fd.dec.Reset(&fd.in, fastOpts)
	if !fd.object(b) {
		return nil, false
	}
	return fd.frame(b, box), true
}

// object reads the top-level object of b into fd.
func (fd *fastDecoder) object(b []byte) bool {
	d := &fd.dec
	fd.got = 0
	if d.PeekKind() != '{' {
		return false
	}
	if _, err := d.ReadToken(); err != nil {
		return false
	}
	seen := fastField(0)
	for d.PeekKind() == '"' {
		name, err := d.ReadValue()
		if err != nil {
			return false
		}
		field := fieldOf(name)
		if field == 0 && !ignored(name) || seen&field != 0 {
			return false
		}
		seen |= field
		v, err := d.ReadValue()
		if err != nil {
			return false
		}
		kind := v.Kind()
		if field == 0 || kind == 'n' && field != fieldData {
			continue // null leaves the field as it is: at its zero value
		}
		end := int(d.InputOffset())
		if !fd.value(field, kind, v, span{end - len(v), end}) {
			return false
		}
		fd.got |= field
	}
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '}' {
		return false
	}
	// jsontext reads a stream of values; a frame is one value.
	for _, c := range b[d.InputOffset():] {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// value stores the value v of kind kind, at sp in the input, into field.
func (fd *fastDecoder) value(field fastField, kind jsontext.Kind, v []byte, sp span) bool {
	var ok bool
	switch field {
	case fieldOp, fieldToken, fieldName, fieldRoom, fieldKey:
		if kind != '"' || bytes.IndexByte(v, '\\') >= 0 {
			return false
		}
		fd.strs[bits.TrailingZeros16(uint16(field))] = span{sp.start + 1, sp.end - 1}
		return true
	case fieldData:
		fd.data = sp
		return true
	case fieldPresence:
		fd.presence = kind == 't'
		return kind == 't' || kind == 'f'
	case fieldSince:
		return kind == '{' && fd.position(v)
	case fieldID:
		fd.id, ok = parseInt(kind, v, 64)
	case fieldLimit:
		var n int64
		n, ok = parseInt(kind, v, strconv.IntSize)
		fd.limit = int(n)
	case fieldSeq:
		fd.seq, ok = parseUint(kind, v)
	case fieldBefore:
		fd.before, ok = parseUint(kind, v)
	case fieldAfter:
		fd.after, ok = parseUint(kind, v)
	}
	return ok
}

// position reads v, a since object, {"epoch":E,"seq":S} with either name
// optional, into fd.since.
func (fd *fastDecoder) position(v []byte) bool {
	d := &fd.sub
	fd.subIn = *bytes.NewBuffer(v)
	d.Reset(&fd.subIn, fastOpts)
	fd.since = Position{}
	if _, err := d.ReadToken(); err != nil { // '{', as jsontext checked v
		return false
	}
	seen := 0
	for d.PeekKind() == '"' {
		name, err := d.ReadValue()
		if err != nil {
			return false
		}
		bit, dst := 1, &fd.since.Epoch
		switch string(name) {
		case `"epoch"`:
		case `"seq"`:
			bit, dst = 2, &fd.since.Seq
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		v, err := d.ReadValue()
		if err != nil {
			return false
		}
		if kind := v.Kind(); kind != 'n' {
			n, ok := parseUint(kind, v)
			if !ok {
				return false
			}
			*dst = n
		}
	}
	tok, err := d.ReadToken()
	return err == nil && tok.Kind() == '}'
}

// parseInt and parseUint decode a JSON number into an integer field with
// the strconv calls encoding/json makes, so they accept exactly what it
// accepts. string(v) does not allocate: strconv copies the string into
// any error it returns, so v does not escape.
func parseInt(kind jsontext.Kind, v []byte, bitSize int) (int64, bool) {
	if kind != '0' {
		return 0, false
	}
	n, err := strconv.ParseInt(string(v), 10, bitSize)
	return n, err == nil
}

func parseUint(kind jsontext.Kind, v []byte) (uint64, bool) {
	if kind != '0' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	return n, err == nil
}

// frameBox holds a frame and the values its pointer fields point at, so
// that the frame and those values are one allocation.
type frameBox struct {
	f             Frame
	id            int64
	since         Position
	before, after uint64
}

// frame builds the decoded frame in box (a new one if nil: one more
// allocation) and two allocations: one string that the string fields
// share, and data.
func (fd *fastDecoder) frame(b []byte, box *frameBox) *Frame {
	if box == nil {
		box = new(frameBox)
	}
	*box = frameBox{id: fd.id, since: fd.since, before: fd.before, after: fd.after}
	f := &box.f
	got := fd.got
	if got&fieldID != 0 {
		f.ID = &box.id
	}
	if got&fieldSince != 0 {
		f.Since = &box.since
	}
	if got&fieldBefore != 0 {
		f.Before = &box.before
	}
	if got&fieldAfter != 0 {
		f.After = &box.after
	}
	if got&fieldSeq != 0 {
		f.Seq = fd.seq
	}
	if got&fieldLimit != 0 {
		f.Limit = fd.limit
	}
	f.Presence = got&fieldPresence != 0 && fd.presence
	if got&fieldData != 0 {
		// A copy, as encoding/json makes: callers may reuse b.
		f.Data = append(json.RawMessage(nil), b[fd.data.start:fd.data.end]...)
	}

	// A known op is a constant; the other strings share one allocation.
	if got&fieldOp != 0 {
		op := b[fd.strs[0].start:fd.strs[0].end]
		for _, known := range clientOps {
			if string(op) == known {
				f.Op, got = known, got&^fieldOp
				break
			}
		}
	}
	n := 0
	for i, sp := range fd.strs {
		if got&(1<<i) != 0 {
			n += sp.end - sp.start
		}
	}
	var sb strings.Builder
	sb.Grow(n)
	for i, sp := range fd.strs {
		if got&(1<<i) != 0 {
			sb.Write(b[sp.start:sp.end])
		}
	}
	all := sb.String()
	dst := [numStrs]*string{&f.Op, &f.Token, &f.Name, &f.Room, &f.Key}
	for i, sp := range fd.strs {
		if got&(1<<i) != 0 {
			*dst[i], all = all[:sp.end-sp.start], all[sp.end-sp.start:]
		}
	}
	return f
}
