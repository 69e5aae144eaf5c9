package client

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/arena-mesh/arena/protocol"
)

// dataOpts skips jsontext's duplicate-name bookkeeping, which
// encoding/json does not do either.
var dataOpts = jsontext.AllowDuplicateNames(true)

// Client frames are appended straight into the connection's write buffer.
// The publish frame, sent once per message, is written by hand; the rare
// ones go through encoding/json. No frame may contain a '\n': frames are
// batched one per line.

// appendPub appends a pub frame. room has been checked (so it needs no
// escaping), key is valid UTF-8 and data is compact, valid JSON.
func appendPub(b []byte, id int64, room, key string, data []byte) []byte {
	b = append(b, `{"op":"pub","id":`...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, `,"room":"`...)
	b = append(b, room...)
	b = append(b, '"')
	if key != "" {
		b = append(b, `,"key":`...)
		b = appendString(b, key)
	}
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return append(b, '}')
}

// appendString appends s, valid UTF-8, as a JSON string. Only what JSON
// requires is escaped: the server decodes with encoding/json.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		if c == '"' || c == '\\' {
			b = append(b, '\\', c)
		} else {
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendFrame appends f encoded by encoding/json, whose output is compact
// (data included) and so holds no '\n'.
func appendFrame(b []byte, f *protocol.Frame) []byte {
	enc, err := json.Marshal(f)
	if err != nil {
		// Only data could fail to encode, and it was checked before.
		return b
	}
	return append(b, enc...)
}

// checkData returns data ready to be sent: valid JSON, on one line.
func checkData(data json.RawMessage) ([]byte, error) {
	if len(data) == 0 {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "data is empty")
	}
	// jsontext first, at about half encoding/json.Valid's cost; what it
	// refuses (also invalid UTF-8, which encoding/json lets through) is
	// judged by encoding/json as before.
	if !jsontext.Value(data).IsValid(dataOpts) && !json.Valid(data) {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "data is not valid JSON")
	}
	if bytes.IndexByte(data, '\n') >= 0 || bytes.IndexByte(data, '\r') >= 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, data); err != nil {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "data is not valid JSON")
		}
		return buf.Bytes(), nil
	}
	return data, nil
}
