package edge

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/arena-mesh/arena/internal/wsframe"
)

// Lean sockets: an idle WebSocket connection should cost as little memory
// as possible (the goal is 10 KiB per idle subscribed connection).
// websocket.Accept keeps the bufio.Reader and bufio.Writer net/http hands
// over with the hijacked connection, 4 KiB each, for the connection's
// life, although an idle connection has nothing in them. leanWriter's
// Hijack gives it 16-byte ones (bufio's minimum) over a leanConn instead,
// which
//
//   - reads ahead into a pooled 4 KiB chunk that it holds only while it
//     has unread bytes, and waits for the socket to become readable
//     holding no buffer at all (syscall.RawConn), so a read syscall still
//     takes up to 4 KiB, as before;
//   - joins a frame's header (which the small bufio.Writer flushes early)
//     and its payload into one writev, so a message still costs one write
//     syscall, as before;
//   - writes the session's messages itself (WriteText), taking turns at
//     frame boundaries with the frames coder/websocket writes;
//   - never hands out bytes past the end of the current frame, so that
//     between messages every unread byte is in the leanConn and the
//     session's reader can wait there (awaitData) rather than deep inside
//     coder/websocket, which lets the GC shrink its stack to 4 KiB, and
//     can park after a while, its goroutine gone (idle_linux.go).
//
// Only plain TCP connections are made lean; anything else (TLS served by
// net/http, other platforms) keeps net/http's buffers.

const (
	// readChunkSize is the most one read syscall takes.
	readChunkSize = 4 << 10
	// leanBufio is the size of the bufio.Reader and bufio.Writer given
	// to coder/websocket: bufio.Reader's minimum.
	leanBufio = 16
	// maxHeld bounds the bytes of an unfinished frame Write holds back;
	// the small bufio.Writer flushes at most leanBufio at a time.
	maxHeld = 2 * leanBufio
)

// readChunks pools read-ahead chunks of all lean connections.
var readChunks = sync.Pool{New: func() any { return new([readChunkSize]byte) }}

// leanWriter is the http.ResponseWriter given to websocket.Accept: its
// Hijack makes the connection lean. conn is the lean connection made, nil
// when the connection could not be made lean; sock is the hijacked
// socket, lean or not.
type leanWriter struct {
	http.ResponseWriter
	conn *leanConn
	sock net.Conn
}

// Hijack implements http.Hijacker.
func (w *leanWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return conn, brw, err
	}
	w.sock = conn
	lc := newLeanConn(conn, brw.Reader)
	if lc == nil {
		return conn, brw, nil
	}
	w.conn = lc
	// net/http's buffers are dropped here: the handler returns soon and
	// nothing else refers to them.
	return lc, bufio.NewReadWriter(bufio.NewReaderSize(lc, leanBufio), bufio.NewWriterSize(lc, leanBufio)), nil
}

// leanConn is a TCP connection with pooled read-ahead and frame-joining
// writes. Writes come from coder/websocket (Write, one goroutine at a
// time under its frame write lock) and from the session's writer
// (WriteText), so wmu guards the write side. Reads come from
// coder/websocket under its read lock and from the session's reader
// (awaitData) outside it, so rmu guards the read side.
//
// A Read never returns bytes past the end of the frame it is in, so the
// bufio.Reader above never holds bytes of a frame coder/websocket has not
// started reading: once a message has been read to its end, every unread
// byte is here, which is what makes awaitData sound.
type leanConn struct {
	*net.TCPConn
	raw   syscall.RawConn
	ready func(fd uintptr) bool // c.readReady, bound once

	rmu      sync.Mutex           // guards the read side: the fields up to the blank line
	chunk    *[readChunkSize]byte // read-ahead; nil when drained
	off, end int                  // unread bytes: chunk[off:end]
	in       frameScan            // the frames read (handed out) so far
	rerr     error                // error of the last raw read
	final    error                // io.EOF or a read error: returned from then on
	deadline time.Time            // the read deadline awaitData set; zero when none

	watched bool // registered with the idle watch (guarded by idleWatch.mu)

	// The write side: coder/websocket's frames (Write) and the session's
	// text messages (WriteText) take turns under wmu.
	wmu   sync.Mutex
	wturn chan struct{} // made by a WriteText waiting for its turn, closed when it comes
	wstop error         // set once no more data frames may go out
	held  [maxHeld]byte // bytes of an unfinished frame, not yet written; WriteText's header
	nheld int
	out   frameScan // the frames written so far
	iov   [2][]byte
	bufs  net.Buffers
}

// newLeanConn wraps conn, or returns nil when conn cannot be lean. br is
// net/http's reader, whose buffered bytes are read first.
func newLeanConn(conn net.Conn, br *bufio.Reader) *leanConn {
	tc, ok := conn.(*net.TCPConn)
	if !ok || !leanSockets || br.Buffered() > readChunkSize {
		return nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	c := &leanConn{TCPConn: tc, raw: raw}
	c.ready = c.readReady
	if n := br.Buffered(); n > 0 {
		// The client sent frames right behind the upgrade request.
		c.chunk = readChunks.Get().(*[readChunkSize]byte)
		c.end, _ = io.ReadFull(br, c.chunk[:n]) // buffered: cannot fail
	}
	return c
}

// Read implements io.Reader from the read-ahead chunk, filling it when
// empty, and stops at the end of the current frame.
func (c *leanConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.chunk == nil {
		if c.final != nil {
			return 0, c.final
		}
		if left := c.in.payloadLeft(); left > 0 && len(p) >= readChunkSize {
			// Within a large payload: read it directly, up to its end.
			n, err := c.TCPConn.Read(p[:min(uint64(len(p)), left)])
			for n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
				c.clearDeadlineLocked()
				n, err = c.TCPConn.Read(p[:min(uint64(len(p)), left)])
			}
			c.in.advanceFrame(p[:max(n, 0)])
			return n, err
		}
		if err := c.fillLocked(); err != nil {
			return 0, err
		}
	}
	avail := c.chunk[c.off:c.end]
	if len(avail) > len(p) {
		avail = avail[:len(p)]
	}
	n := c.in.advanceFrame(avail)
	copy(p, avail[:n])
	c.off += n
	if c.off == c.end {
		readChunks.Put(c.chunk)
		c.chunk = nil
	}
	return n, nil
}

// awaitData blocks until there are bytes to read or the socket failed,
// holding no buffer while it waits. The session's reader calls it between
// messages, before coder/websocket's Reader, so that a connection without
// traffic waits on a shallow stack (which the GC then shrinks to 4 KiB);
// the error, if any, comes again from the next Read.
//
// With linger > 0 it gives up once the socket has had nothing to read for
// linger/2 to linger, and returns true: the reader then parks
// (session.parkReader). The deadline that bounds the wait is moved at
// most once per linger/2, not for every message.
func (c *leanConn) awaitData(linger time.Duration) (idle bool) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.chunk != nil || c.final != nil {
		return false
	}
	if linger > 0 {
		if now := time.Now(); c.deadline.Sub(now) < linger/2 {
			c.deadline = now.Add(linger)
			_ = c.TCPConn.SetReadDeadline(c.deadline)
		}
	}
	err := c.fillOnceLocked()
	return linger > 0 && errors.Is(err, os.ErrDeadlineExceeded)
}

// clearDeadlineLocked removes awaitData's deadline after it expired
// during a read of coder/websocket's: there, it only means that the peer
// was silent for a while.
func (c *leanConn) clearDeadlineLocked() {
	c.deadline = time.Time{}
	_ = c.TCPConn.SetReadDeadline(time.Time{})
}

// fillLocked waits until the socket is readable, holding no buffer
// meanwhile, then reads what is there (up to readChunkSize) into a pooled
// chunk. An expired idle deadline is removed and the wait goes on.
func (c *leanConn) fillLocked() error {
	for {
		err := c.fillOnceLocked()
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		c.clearDeadlineLocked()
	}
}

// fillOnceLocked is fillLocked, except that it returns
// os.ErrDeadlineExceeded when the deadline expires.
func (c *leanConn) fillOnceLocked() error {
	c.rerr = nil
	if err := c.raw.Read(c.ready); err != nil {
		return err // closed, or a deadline
	}
	switch {
	case c.rerr != nil:
		c.final = &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(),
			Err: os.NewSyscallError("read", c.rerr)}
		return c.final
	case c.chunk == nil:
		c.final = io.EOF
		return io.EOF
	}
	return nil
}

// readReady is the syscall.RawConn read callback (run with rmu held): it
// reads into a pooled chunk, or reports false (wait for readability) when
// there was nothing to read, having given the chunk back.
func (c *leanConn) readReady(fd uintptr) bool {
	ch := readChunks.Get().(*[readChunkSize]byte)
	n, err := rawRead(fd, ch[:])
	if err == errWouldBlock {
		readChunks.Put(ch)
		return false
	}
	if err != nil || n <= 0 {
		readChunks.Put(ch)
		c.rerr = err
		return true
	}
	c.chunk, c.off, c.end = ch, 0, n
	return true
}

// Write implements io.Writer for coder/websocket's frames. The small
// bufio.Writer above it flushes a frame's header with the first bytes of
// its payload, then writes the rest of the payload directly: Write holds
// bytes back until their frame is complete (or more than maxHeld are
// pending), so that a frame is written with one writev. coder/websocket
// writes every frame whole, so nothing is held past the end of its frame
// write.
func (c *leanConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for rest := p; len(rest) > 0; {
		rest = rest[c.out.advanceFrame(rest):]
	}
	if c.out.sawClose && c.wstop == nil {
		c.wstop = net.ErrClosed // no data frame may follow a close frame
	}
	var n int
	var err error
	switch {
	case !c.out.boundary() && c.nheld+len(p) <= len(c.held):
		c.nheld += copy(c.held[c.nheld:], p)
		return len(p), nil
	case c.nheld == 0:
		n, err = c.TCPConn.Write(p)
	default:
		n, err = c.writevLocked(c.held[:c.nheld], p)
		n = max(0, n-c.nheld)
		c.nheld = 0
	}
	if err != nil && c.wstop == nil {
		c.wstop = err
	}
	if c.wstop != nil || c.out.boundary() {
		c.giveTurnLocked()
	}
	return n, err
}

// giveTurnLocked wakes the WriteText calls waiting for their turn.
func (c *leanConn) giveTurnLocked() {
	if c.wturn != nil {
		close(c.wturn)
		c.wturn = nil
	}
}

// WriteText writes p as one unfragmented, unmasked text frame (RFC 6455
// section 5.2; a server's frames are never masked), header and payload in
// one writev. It is the session writer's path for its messages: the same
// bytes coder/websocket's Conn.Write would send, without its two
// channel-based locks, context checks and three calls through a 16-byte
// bufio.Writer per message, which were a tenth of a node's CPU in fan-out,
// where every delivery is a message of its own. Frames coder/websocket
// writes itself (pongs, the close frame) take turns with these at frame
// boundaries; after a close frame, or once a write failed or the
// connection closed, WriteText fails. Connections without
// permessage-deflate only (Accept never negotiates it here).
func (c *leanConn) WriteText(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for c.wstop == nil && (c.nheld > 0 || !c.out.boundary()) {
		if c.wturn == nil {
			c.wturn = make(chan struct{})
		}
		turn := c.wturn
		c.wmu.Unlock()
		<-turn
		c.wmu.Lock()
	}
	if c.wstop != nil {
		return c.wstop
	}
	h := c.held[:2]   // free: nothing is held at a frame boundary
	h[0] = 0x80 | 0x1 // FIN, text
	switch n := len(p); {
	case n < 126:
		h[1] = byte(n)
	case n <= math.MaxUint16:
		h[1] = 126
		h = binary.BigEndian.AppendUint16(h, uint16(n))
	default:
		h[1] = 127
		h = binary.BigEndian.AppendUint64(h, uint64(n))
	}
	if _, err := c.writevLocked(h, p); err != nil {
		c.wstop = err
		c.giveTurnLocked()
		return err
	}
	return nil
}

// writevLocked writes a and b with one writev.
func (c *leanConn) writevLocked(a, b []byte) (int, error) {
	c.iov = [2][]byte{a, b}
	c.bufs = c.iov[:]
	n, err := c.bufs.WriteTo(c.TCPConn)
	c.iov = [2][]byte{} // don't keep b
	c.bufs = nil
	return int(n), err
}

// Close closes the socket, then fails the writes waiting for their turn.
// (The socket goes first: a write blocked in the socket holds wmu.)
func (c *leanConn) Close() error {
	err := c.TCPConn.Close()
	c.wmu.Lock()
	if c.wstop == nil {
		c.wstop = net.ErrClosed
	}
	c.giveTurnLocked()
	c.wmu.Unlock()
	return err
}

// frameScan follows the frame boundaries of a WebSocket byte stream.
type frameScan struct {
	hdr      [wsframe.MaxHeaderLen]byte // the current frame's header bytes seen so far
	nh       uint8
	sawClose bool   // a close frame's header went by
	left     uint64 // payload bytes of the current frame still to come
}

// advanceFrame consumes p up to the end of the current frame and returns
// how many bytes it consumed: at least one when p is not empty.
func (f *frameScan) advanceFrame(p []byte) int {
	n := 0
	for n < len(p) {
		if f.left > 0 {
			k := min(f.left, uint64(len(p)-n))
			f.left -= k
			n += int(k)
			if f.left == 0 {
				return n
			}
			continue
		}
		f.hdr[f.nh] = p[n]
		f.nh++
		n++
		if f.nh >= 2 && int(f.nh) == wsframe.HeaderLen(f.hdr[:f.nh]) {
			f.left = wsframe.PayloadLen(f.hdr[:f.nh])
			if f.hdr[0]&0x0f == 0x8 {
				f.sawClose = true
			}
			f.nh = 0
			if f.left == 0 {
				return n
			}
		}
	}
	return n
}

// boundary reports whether the bytes consumed end a frame.
func (f *frameScan) boundary() bool { return f.left == 0 && f.nh == 0 }

// payloadLeft is the payload still to come of the current frame, 0 while
// in a header.
func (f *frameScan) payloadLeft() uint64 {
	if f.nh != 0 {
		return 0
	}
	return f.left
}
