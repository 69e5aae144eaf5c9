// Package wsframe reads the header of an RFC 6455 WebSocket frame. Edge
// and client each follow the frame boundaries of their socket's byte
// stream beside coder/websocket (to write, respectively read, session
// messages without its per-message overhead); this is the one place that
// decodes a header's lengths.
package wsframe

import (
	"encoding/binary"
	"math"
)

// MaxHeaderLen is the longest frame header: 2 bytes, an 8-byte extended
// payload length and a 4-byte masking key.
const MaxHeaderLen = 14

// HeaderLen is the length of the frame header that starts with h[0:2].
func HeaderLen(h []byte) int {
	n := 2
	switch h[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if h[1]&0x80 != 0 {
		n += 4 // masking key
	}
	return n
}

// PayloadLen is the payload length of the complete header h, capped at
// math.MaxInt64 (RFC 6455 requires the top bit to be zero; a peer that
// sets it has its frame fail later on, at its length).
func PayloadLen(h []byte) uint64 {
	switch l := h[1] & 0x7f; l {
	case 126:
		return uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		return min(binary.BigEndian.Uint64(h[2:10]), math.MaxInt64)
	default:
		return uint64(l)
	}
}
