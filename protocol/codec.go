package protocol

import (
	"bytes"
	"encoding/json"
	"iter"
	"strconv"
	"unicode/utf8"
)

// Lines yields the frames of one WebSocket message: the pieces between
// '\n' separators, with surrounding spaces, tabs and '\r' trimmed and empty
// pieces skipped. The yielded slices alias msg.
func Lines(msg []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for len(msg) > 0 {
			var line []byte
			if i := bytes.IndexByte(msg, '\n'); i >= 0 {
				line, msg = msg[:i], msg[i+1:]
			} else {
				line, msg = msg, nil
			}
			line = trimFrame(line)
			if len(line) == 0 {
				continue
			}
			if !yield(line) {
				return
			}
		}
	}
}

// trimFrame trims the spaces, tabs and '\r' around a frame. It is
// bytes.Trim(b, " \t\r") without building the cut set for every frame of
// every message.
func trimFrame(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// DecodeClient parses and checks one client frame. On failure the returned
// error is an *Error with CodeBadRequest, and the returned frame still
// carries whatever id could be read, so the error reply can echo it.
//
// It checks everything that does not depend on configuration: a known op,
// the fields that op requires, room names, key length, history limits. The
// data size limit is configurable, so the caller checks it (see DataTooLarge).
//
// The result is always the one encoding/json gives (decodeClientJSON); a
// faster path handles the frames real clients send (see decodeFast).
func DecodeClient(b []byte) (*Frame, error) {
	if f, ok := decodeFast(b); ok {
		return f, f.CheckClient()
	}
	return decodeClientJSON(b)
}

// FrameBuf is storage for decoded client frames that a reader reuses from
// one frame to the next, so that the frame struct (hundreds of bytes, as
// it has every field of every frame) is not allocated per frame. Its
// zero value is ready to use; it is not safe for concurrent use.
type FrameBuf struct{ box frameBox }

// Decode is DecodeClient with the frame built in buf: the *Frame it
// returns, and the values its pointer fields (ID, Since, Before, After)
// point at, are valid until buf's next Decode, so copy what must outlive
// that. Its strings and Data are fresh and may be kept. Frames in shapes
// the fast path declines are decoded into a new Frame, as DecodeClient
// does.
func (buf *FrameBuf) Decode(b []byte) (*Frame, error) {
	if f, ok := decodeFastInto(b, &buf.box); ok {
		return f, f.CheckClient()
	}
	return decodeClientJSON(b)
}

// decodeClientJSON is DecodeClient through encoding/json: the reference
// the fast path must match, and the path for every frame it declines.
func decodeClientJSON(b []byte) (*Frame, error) {
	f := new(Frame)
	if err := json.Unmarshal(b, f); err != nil {
		// A frame that is JSON but whose fields have the wrong types
		// still tells us its id if that part parsed.
		var idOnly struct {
			ID *int64 `json:"id"`
		}
		if json.Unmarshal(b, &idOnly) == nil {
			f = &Frame{ID: idOnly.ID}
		} else {
			f = &Frame{}
		}
		return f, Errorf(CodeBadRequest, "malformed frame: %s", jsonProblem(err))
	}
	return f, f.CheckClient()
}

// CheckClient reports whether f is a well-formed client frame (see
// DecodeClient).
func (f *Frame) CheckClient() error {
	switch f.Op {
	case OpConnect, OpPing, OpRooms:
		return nil
	case OpRefresh:
		if f.Token == "" {
			return Errorf(CodeBadRequest, "refresh needs a token")
		}
		return nil
	case OpSub:
		if err := CheckRoom(f.Room); err != nil {
			return err
		}
		if f.Since != nil && f.Since.Epoch == 0 {
			return Errorf(CodeBadRequest, "since needs an epoch")
		}
		return nil
	case OpUnsub, OpPresence:
		return CheckRoom(f.Room)
	case OpPub:
		if err := CheckRoom(f.Room); err != nil {
			return err
		}
		if len(f.Data) == 0 {
			return Errorf(CodeBadRequest, "pub needs data")
		}
		return CheckKey(f.Key)
	case OpRecv, OpRead:
		if err := CheckRoom(f.Room); err != nil {
			return err
		}
		if f.Seq == 0 {
			return Errorf(CodeBadRequest, "%s needs a seq of at least 1", f.Op)
		}
		return nil
	case OpHistory:
		if err := CheckRoom(f.Room); err != nil {
			return err
		}
		if f.Before != nil && f.After != nil {
			return Errorf(CodeBadRequest, "history takes before or after, not both")
		}
		if f.Limit < 0 || f.Limit > MaxLimit {
			return Errorf(CodeBadRequest, "limit must be between 1 and %d", MaxLimit)
		}
		return nil
	case "":
		return Errorf(CodeBadRequest, "frame has no op")
	default:
		return Errorf(CodeBadRequest, "unknown op %q", truncate(f.Op, 32))
	}
}

// CheckRoom reports whether name is a valid room name: 1 to 200 bytes of
// A-Z a-z 0-9 : _ - . @ /.
func CheckRoom(name string) error {
	if name == "" {
		return Errorf(CodeBadRequest, "room name is empty")
	}
	if len(name) > MaxRoomLen {
		return Errorf(CodeBadRequest, "room name is longer than %d bytes", MaxRoomLen)
	}
	for i := 0; i < len(name); i++ {
		if !roomByte[name[i]] {
			return Errorf(CodeBadRequest, "room name has a character outside A-Z a-z 0-9 : _ - . @ /")
		}
	}
	return nil
}

// CheckKey reports whether key is a valid idempotency key: empty (none),
// or 1 to 64 bytes of valid UTF-8.
func CheckKey(key string) error {
	if len(key) > MaxKeyLen {
		return Errorf(CodeBadRequest, "key is longer than %d bytes", MaxKeyLen)
	}
	if !utf8.ValidString(key) {
		return Errorf(CodeBadRequest, "key is not valid UTF-8")
	}
	return nil
}

// DataTooLarge returns a CodeTooLarge error if data is longer than max
// bytes, and nil otherwise.
func DataTooLarge(data []byte, max int) error {
	if len(data) > max {
		return Errorf(CodeTooLarge, "data is %d bytes, the limit is %d", len(data), max)
	}
	return nil
}

var roomByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range ":_-.@/" {
		t[c] = true
	}
	return t
}()

// Encode marshals one frame (any of the frame types, or a Frame) to JSON
// without a trailing newline.
func Encode(v any) ([]byte, error) {
	return json.Marshal(v)
}

// msgOverhead is the most AppendMsg writes besides m's strings and data:
// its fixed text (with a key) and three numbers of at most 20 digits or
// sign.
const msgOverhead = len(`{"op":"msg","room":"","epoch":,"seq":,"ts":,"from":"","key":"","data":}`) + 3*20

// MsgCap returns a capacity that holds m's msg frame (AppendMsg) without
// growing when none of its strings or data needs an escape, which is
// nearly always: a buffer one size too small costs a second allocation
// and copy per message.
func MsgCap(m *Msg) int {
	return len(m.Room) + len(m.From) + len(m.Key) + len(m.Data) + msgOverhead
}

// AppendMsg appends the live msg frame for m to b and returns the extended
// buffer. It writes byte for byte the JSON encoding/json writes for a Msg
// with "op":"msg" first, without going through reflection: the hot path
// encodes each message once and shares the bytes among all subscribers.
// m.Data must be valid JSON (the server only stores data that decoded as
// JSON); like encoding/json it is compacted on the way out, so the frame
// never contains a '\n' and can be batched with others (see Lines).
func AppendMsg(b []byte, m *Msg) []byte {
	b = append(b, `{"op":"msg","room":`...)
	b = appendString(b, m.Room)
	b = append(b, `,"epoch":`...)
	b = strconv.AppendUint(b, m.Epoch, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, m.Seq, 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, m.TS, 10)
	b = append(b, `,"from":`...)
	b = appendString(b, m.From)
	if m.Key != "" {
		b = append(b, `,"key":`...)
		b = appendString(b, m.Key)
	}
	b = append(b, `,"data":`...)
	b = appendData(b, m.Data)
	return append(b, '}')
}

// appendData appends the JSON value data as encoding/json re-emits a
// json.RawMessage: without whitespace outside strings, and with <, >, &,
// U+2028 and U+2029 escaped. Compacting matters beyond byte identity: a
// client may send data spread over several lines, and a raw '\n' in a msg
// frame would split it when frames are batched. Valid JSON can hold a raw
// '\t', '\n' or '\r' only as whitespace between tokens, and <, >, & and
// U+2028/U+2029 only inside strings, so one pass that tracks whether it is
// inside a string is enough. Nil data is null, as for a nil RawMessage.
func appendData(b, data []byte) []byte {
	if len(data) == 0 {
		return append(b, "null"...)
	}
	inString := false
	start := 0
	for i := 0; i < len(data); i++ {
		c := data[i]
		if !dataSpecial[c] {
			continue
		}
		switch c {
		case '"':
			inString = !inString
		case '\\':
			i++ // only inside a string: the escaped byte may be a '"'
		case ' ', '\t', '\n', '\r':
			if inString {
				continue
			}
			b = append(b, data[start:i]...)
			start = i + 1
		case '<', '>', '&':
			b = append(b, data[start:i]...)
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			start = i + 1
		case 0xE2: // first byte of U+2028 and U+2029 (E2 80 A8, E2 80 A9)
			if i+2 < len(data) && data[i+1] == 0x80 && data[i+2]&^1 == 0xA8 {
				b = append(b, data[start:i]...)
				b = append(b, '\\', 'u', '2', '0', '2', hexDigits[data[i+2]&0xF])
				i += 2
				start = i + 1
			}
		}
	}
	return append(b, data[start:]...)
}

// dataSpecial marks the bytes appendData must look at; all others are
// copied as they are.
var dataSpecial = func() (t [256]bool) {
	for _, c := range []byte{'"', '\\', ' ', '\t', '\n', '\r', '<', '>', '&', 0xE2} {
		t[c] = true
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaping as encoding/json does
// (including <, > and & and invalid UTF-8, which becomes U+FFFD).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// jsonProblem turns an encoding/json error into a short message that does
// not echo the client's input back at length.
func jsonProblem(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return "invalid JSON at byte " + strconv.FormatInt(e.Offset, 10)
	case *json.UnmarshalTypeError:
		if e.Field != "" {
			return "field " + truncate(e.Field, 32) + " has the wrong type"
		}
		return "a frame must be a JSON object"
	default:
		return "invalid JSON"
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
