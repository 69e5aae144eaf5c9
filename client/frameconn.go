package client

import (
	"context"
	"net"
	"sync/atomic"

	"github.com/arena-mesh/arena/internal/wsframe"
)

// Reading session messages straight off the socket.
//
// coder/websocket costs a receiving client about a microsecond per
// message on top of the read syscall: a channel-based lock taken three
// times, a byte-at-a-time header parse through a bufio.Reader, and a
// second Read to learn that the message ended. A subscriber of a busy
// room spent an eighth of its CPU there. frameConn sits under
// coder/websocket as the connection it reads from, follows the frame
// boundaries of the byte stream, and hands each whole, unfragmented,
// unmasked text frame of up to maxTakenFrame bytes to the session itself
// (take), in order, without coder/websocket seeing it. Everything else
// (control frames, so pings are still answered and closes still
// handshaken; binary and fragmented messages; frames over maxTakenFrame
// or the read limit; anything a server must not send) is handed to
// coder/websocket unchanged, and never past the end of the frame, so that
// coder/websocket's buffer never holds the start of a frame frameConn
// could take.
//
// Until the upgrade completes the stream is HTTP: frameConn hands it out
// only up to the end of each response header, so the response that
// switched protocols leaves no frame bytes in net/http's buffer, and
// beginFrames marks where frames start. A stream that does not start as
// plain HTTP (TLS to a proxy, say) is passed through untouched.

const (
	// frameBufSize is the size frameConn's buffer starts at.
	frameBufSize = 8 << 10
	// maxTakenFrame bounds the frames frameConn takes, and so its buffer,
	// which grows to the largest frame taken: a server batches the
	// messages of a busy subscriber into frames of 64 KiB and more. Larger
	// frames (a long history reply) go through coder/websocket, whose
	// message buffer the reader also keeps only up to 1 MiB.
	maxTakenFrame = 1 << 20
)

// frameConn is a net.Conn whose reads follow WebSocket frames; see above.
// Read is called by one goroutine at a time (net/http's during the
// upgrade, then the session's reader).
type frameConn struct {
	net.Conn
	buf  []byte // buf[r:w] read from the socket, not yet handed out or taken
	r, w int
	err  error // the socket's read error, returned once buf is drained

	state frameState
	begun bool   // httpHeader: the first bytes were handed out
	crlf  int    // httpHeader: how much of "\r\n\r\n" the bytes handed out end with
	left  uint64 // frames: bytes of the frame being handed out still to hand out
	frag  bool   // frames: a fragmented data message is being handed out

	// take receives the payload of each frame frameConn takes, and must
	// not keep it: the bytes are reused. nil hands every frame out.
	take  func(payload []byte)
	limit int64 // the largest payload take gets: the session's read limit

	taken atomic.Uint64 // frames take has returned from, for tests and debugging
}

type frameState uint8

const (
	httpHeader  frameState = iota // the upgrade's response
	frames                        // WebSocket frames
	passThrough                   // not ours to follow: every byte is handed out
)

func newFrameConn(conn net.Conn) *frameConn {
	return &frameConn{Conn: conn, buf: make([]byte, frameBufSize)}
}

// beginFrames marks the end of the upgrade: the bytes that follow are
// WebSocket frames. Called once the upgrade returned, when no Read runs.
func (c *frameConn) beginFrames() {
	if c.state == httpHeader {
		c.state = frames
	}
}

// takeText makes c give whole text frames of at most limit bytes to take
// from now on. Called before the session's reader starts.
func (c *frameConn) takeText(limit int64, take func(payload []byte)) {
	if c.state == frames {
		c.take, c.limit = take, limit
	}
}

// Read implements net.Conn.
func (c *frameConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if c.r == c.w {
			if c.err != nil {
				return 0, c.err
			}
			c.r, c.w = 0, 0
			if c.state == passThrough {
				return c.Conn.Read(p)
			}
			c.fill()
			continue
		}
		switch c.state {
		case passThrough:
			return c.handOut(p, c.w-c.r), nil
		case httpHeader:
			return c.handOutHeader(p), nil
		}
		if c.left > 0 {
			return c.handOut(p, int(min(c.left, uint64(c.w-c.r)))), nil
		}
		// At a frame boundary: its header decides.
		h := c.buf[c.r:c.w]
		hl := 0
		if len(h) >= 2 {
			hl = wsframe.HeaderLen(h)
		}
		if hl == 0 || len(h) < hl {
			if !c.more() {
				return 0, c.err
			}
			continue
		}
		n := wsframe.PayloadLen(h)
		if c.take != nil && !c.frag && h[0] == 0x81 && h[1]&0x80 == 0 && n <= uint64(c.limit) && uint64(hl)+n <= maxTakenFrame {
			end := hl + int(n)
			if end > len(c.buf) {
				c.grow(end)
				continue
			}
			if len(h) < end {
				if !c.more() {
					return 0, c.err
				}
				continue
			}
			c.r += end
			c.take(h[hl:end])
			c.taken.Add(1)
			continue
		}
		switch op, fin := h[0]&0x0f, h[0]&0x80 != 0; {
		case op == 0x1 || op == 0x2:
			c.frag = !fin
		case op == 0x0 && fin:
			c.frag = false
		}
		c.left = uint64(hl) + n
	}
}

// handOut copies up to n buffered bytes to p.
func (c *frameConn) handOut(p []byte, n int) int {
	n = copy(p, c.buf[c.r:c.r+n])
	c.r += n
	if c.state == frames {
		c.left -= uint64(n)
	}
	return n
}

// handOutHeader copies buffered bytes to p up to the end of an HTTP
// header, or all of them when none ends there.
func (c *frameConn) handOutHeader(p []byte) int {
	b := c.buf[c.r:min(c.w, c.r+len(p))]
	if !c.begun {
		c.begun = true
		if !startsHTTP(b) {
			c.state = passThrough
			return c.handOut(p, len(b))
		}
	}
	n := len(b)
	for i, x := range b {
		switch {
		case x == "\r\n\r\n"[c.crlf]:
			c.crlf++
		case x == '\r':
			c.crlf = 1
		default:
			c.crlf = 0
		}
		if c.crlf == 4 {
			c.crlf, n = 0, i+1
			break
		}
	}
	copy(p, b[:n])
	c.r += n
	return n
}

// startsHTTP reports whether b, the first bytes read from the socket, can
// be the start of an HTTP/1 response.
func startsHTTP(b []byte) bool {
	const prefix = "HTTP/"
	n := min(len(b), len(prefix))
	return string(b[:n]) == prefix[:n]
}

// grow makes buf hold at least n bytes, keeping buf[r:w].
func (c *frameConn) grow(n int) {
	buf := make([]byte, max(n, 2*len(c.buf)))
	c.w = copy(buf, c.buf[c.r:c.w])
	c.r = 0
	c.buf = buf
}

// more reads more of the frame that starts at buf[r], moving it to the
// front of buf first; false when the socket has failed before.
func (c *frameConn) more() bool {
	if c.err != nil {
		return false
	}
	if c.r > 0 {
		c.w = copy(c.buf, c.buf[c.r:c.w])
		c.r = 0
	}
	c.fill()
	return true
}

// fill reads once from the socket into buf[w:].
func (c *frameConn) fill() {
	n, err := c.Conn.Read(c.buf[c.w:])
	c.w += n
	if err != nil {
		c.err = err
	}
}

// dialSlot carries the frameConn made for one upgrade from the transport's
// dial back to connect.
type dialSlot struct{ conn atomic.Pointer[frameConn] }

type dialSlotKey struct{}

// frameDial wraps dial so that a connection dialed for an upgrade whose
// context carries a dialSlot is a frameConn, stored in the slot.
func frameDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		slot, ok := ctx.Value(dialSlotKey{}).(*dialSlot)
		if !ok {
			return conn, nil
		}
		fc := newFrameConn(conn)
		if !slot.conn.CompareAndSwap(nil, fc) {
			return conn, nil // not the first dial for this upgrade: leave it alone
		}
		return fc, nil
	}
}
