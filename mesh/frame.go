package mesh

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Peer stream wire format, version 1.
//
// A node sends frames to a peer on unidirectional QUIC streams it opens on
// the connection between them (one stream per lane, see Lanes). Each stream
// starts with a two-byte header:
//
//	byte 0     streamVersion (0x01); any other value: the reader cancels the stream
//	byte 1     lane index, 0..Lanes-1 (informational: logs and metrics)
//
// followed by frames until the stream ends:
//
//	uvarint    n, the payload length: unsigned LEB128 exactly as
//	           encoding/binary.AppendUvarint writes it (7 bits per byte,
//	           least significant group first, high bit set on every byte
//	           but the last), minimal length (no trailing 0x00 group),
//	           n <= the receiver's MaxFrameSize
//	n bytes    the payload, opaque to the mesh; n may be 0
//
// Example: a stream on lane 3 carrying the frames "hi" and "" is
//
//	01 03  02 68 69  00
//
// A length over the limit, a non-minimal or overlong uvarint, or a stream
// ending inside a frame is ErrBadFrame: the reader cancels the stream with
// codeBadFrame and counts it; the connection and the other lanes go on.
const (
	streamVersion   byte = 0x01
	streamHeaderLen      = 2

	// DefaultMaxFrameSize is the frame size limit when Config.MaxFrameSize is 0.
	DefaultMaxFrameSize = 1 << 20
	// maxFrameSizeLimit bounds Config.MaxFrameSize so a length always fits
	// an int and a 4-byte uvarint.
	maxFrameSizeLimit = 1<<28 - 1
	// maxLenBytes is the longest frame length field: 4 bytes hold
	// maxFrameSizeLimit, so a fifth is always over it.
	maxLenBytes = 5
)

// appendFrame appends the envelope of payload to b.
func appendFrame(b, payload []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(payload)))
	return append(b, payload...)
}

// readStreamHeader reads and checks a stream header, returning the lane.
func readStreamHeader(r io.Reader) (int, error) {
	var h [streamHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, fmt.Errorf("%w: truncated stream header", ErrBadFrame)
		}
		return 0, err
	}
	if h[0] != streamVersion {
		return 0, fmt.Errorf("%w: stream version %d", ErrBadFrame, h[0])
	}
	return int(h[1]), nil
}

// frameReader decodes the frames of one stream. It hands out payloads that
// point into its buffer, so a payload is valid only until the next call to
// next: the receive path makes no copy and no allocation per frame.
type frameReader struct {
	br      *bufio.Reader
	max     int
	pending int    // bytes of the previous payload still to discard from br
	big     []byte // buffer for payloads larger than br's buffer
}

func newFrameReader(r io.Reader, bufSize, max int) *frameReader {
	return &frameReader{br: bufio.NewReaderSize(r, bufSize), max: max}
}

// next returns the next payload. It returns io.EOF when the stream ends
// cleanly between frames, an error wrapping ErrBadFrame for a malformed
// envelope, and the stream's error otherwise.
func (r *frameReader) next() ([]byte, error) {
	if r.pending > 0 {
		// Cannot fail: Peek already buffered these bytes.
		_, _ = r.br.Discard(r.pending)
		r.pending = 0
	}
	n, err := r.readLen()
	if err != nil {
		return nil, err
	}
	if n <= r.br.Size() {
		b, err := r.br.Peek(n)
		if err != nil {
			return nil, truncated(err)
		}
		r.pending = n
		return b, nil
	}
	if cap(r.big) < n {
		r.big = make([]byte, n)
	}
	b := r.big[:n]
	if _, err := io.ReadFull(r.br, b); err != nil {
		return nil, truncated(err)
	}
	// Large buffers are not kept: a burst of big frames must not pin
	// memory on every idle stream afterwards.
	r.big = nil
	return b, nil
}

// readLen reads a minimal uvarint length no larger than r.max.
func (r *frameReader) readLen() (int, error) {
	var n uint64
	for i := 0; ; i++ {
		if i == maxLenBytes {
			// Only continuation bytes of zero got here: more of them
			// would shift a last byte's bits out of n unseen.
			return 0, fmt.Errorf("%w: length longer than %d bytes", ErrBadFrame, maxLenBytes)
		}
		c, err := r.br.ReadByte()
		if err != nil {
			if i == 0 {
				return 0, err // io.EOF between frames is a clean end
			}
			return 0, truncated(err)
		}
		if i > 0 && c == 0 {
			return 0, fmt.Errorf("%w: non-minimal length", ErrBadFrame)
		}
		n |= uint64(c&0x7f) << (7 * i)
		if n > uint64(r.max) {
			return 0, fmt.Errorf("%w: frame over %d bytes", ErrBadFrame, r.max)
		}
		if c < 0x80 {
			return int(n), nil
		}
	}
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: stream ends inside a frame", ErrBadFrame)
	}
	return err
}
