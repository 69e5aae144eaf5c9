package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/protocol"
)

// session is one WebSocket connection of a Client: its writer goroutine,
// its requests waiting for a reply, and the dispatch of the frames read.
// The reader is the Client's supervisor goroutine (see Client.run), so a
// session has exactly one reader and one writer.
type session struct {
	c    *Client
	conn *websocket.Conn
	info SessionInfo
	log  zerolog.Logger

	ctx    context.Context // ends with the session; cancelling it closes conn
	cancel context.CancelFunc

	wmu     sync.Mutex    // guards wbuf, wspace and wclosed
	wbuf    []byte        // frames waiting for the writer, '\n'-separated
	wspace  chan struct{} // closed when the writer takes wbuf; nil when nobody waits for room
	wclosed bool          // the writer is gone: sends fail with errConnLost
	wsignal chan struct{} // capacity 1: wbuf has frames
	wdone   chan struct{} // closed when the writer goroutine returns

	pmu     sync.Mutex // guards pending and pdead
	pending map[int64]replyFunc
	pdead   bool // the session ended: no request can be added

	lastRead atomic.Int64 // UnixNano of the last message read, for keep-alive

	// Owned by the reader goroutine.
	scratch   protocol.Frame
	scratchID int64    // scratch.ID of an ack decoded by decodeAck
	lastFrom  string   // the sender of the last message: runs of one sender share the string
	edges     []string // from a reconnect frame: where to go next

	frames *frameConn // under conn over plain ws://, nil otherwise
}

// replyFunc receives the reply to a request, or errConnLost when the
// session ended first. It runs on the reader goroutine (or on the
// supervisor as the session ends), must not block, and must copy what it
// keeps of f: f is reused for the next frame.
type replyFunc func(f *protocol.Frame, err error)

// connect opens a connection to the WebSocket URL u and completes the
// connect handshake. Server refusals come back as *protocol.Error.
func (c *Client) connect(ctx context.Context, u string) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ConnectTimeout)
	defer cancel()
	slot := new(dialSlot)
	if strings.HasPrefix(u, "ws://") {
		ctx = context.WithValue(ctx, dialSlotKey{}, slot) // see frameConn
	}
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient:   c.http,
		HTTPHeader:   c.opts.Header,
		Subprotocols: []string{protocol.Subprotocol},
	})
	if err != nil {
		if e := refusal(resp); e != nil {
			return nil, e
		}
		return nil, fmt.Errorf("dial %s: %w", u, err)
	}
	conn.SetReadLimit(c.opts.ReadLimit)
	fc := slot.conn.Load()
	if fc != nil {
		fc.beginFrames()
	}
	info, err := c.handshake(ctx, conn)
	if err != nil {
		conn.CloseNow()
		return nil, fmt.Errorf("connect to %s: %w", u, err)
	}
	info.URL = u
	sctx, scancel := context.WithCancel(c.ctx)
	s := &session{
		c:       c,
		conn:    conn,
		info:    info,
		log:     c.log.With().Str("remote", u).Str("node", info.Node).Logger(),
		ctx:     sctx,
		cancel:  scancel,
		wsignal: make(chan struct{}, 1),
		wdone:   make(chan struct{}),
		pending: make(map[int64]replyFunc),
	}
	s.lastRead.Store(time.Now().UnixNano())
	if fc != nil {
		s.frames = fc
		fc.takeText(c.opts.ReadLimit, s.takeMessage)
	}
	return s, nil
}

// refusal turns a refused upgrade into a protocol error when the server
// said why (the HTTP API's {"error": {"code", "message"}} body) or the
// status is one of the protocol's.
func refusal(resp *http.Response) error {
	if resp == nil || resp.StatusCode < 400 {
		return nil
	}
	var body protocol.HTTPError
	if resp.Body != nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		if json.Unmarshal(b, &body) == nil && body.Error.Code != "" {
			return &protocol.Error{Code: body.Error.Code, Message: body.Error.Message, RetryMS: body.Error.RetryMS}
		}
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return protocol.Errorf(protocol.CodeUnauthorized, "upgrade refused with HTTP %d", resp.StatusCode)
	case http.StatusForbidden:
		return protocol.Errorf(protocol.CodeForbidden, "upgrade refused with HTTP %d", resp.StatusCode)
	}
	return nil
}

// handshake sends connect on a fresh connection and waits for connected.
func (c *Client) handshake(ctx context.Context, conn *websocket.Conn) (SessionInfo, error) {
	id := c.newID()
	b, err := json.Marshal(&protocol.Frame{Op: protocol.OpConnect, ID: &id, Token: c.currentToken(), Name: c.opts.Name})
	if err != nil {
		return SessionInfo{}, fmt.Errorf("encode connect: %w", err)
	}
	if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
		return SessionInfo{}, fmt.Errorf("send connect: %w", closeCause(err))
	}
	for {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			return SessionInfo{}, fmt.Errorf("wait for connected: %w", closeCause(err))
		}
		for line := range protocol.Lines(msg) {
			var f protocol.Frame
			if json.Unmarshal(line, &f) != nil {
				continue
			}
			switch {
			case f.Op == protocol.OpConnected && f.ID != nil && *f.ID == id:
				info := SessionInfo{Session: f.Session, User: f.User, Node: f.Node, Region: f.Region}
				if f.Expires > 0 {
					info.Expires = time.UnixMilli(f.Expires)
				}
				return info, nil
			case f.Op == protocol.OpError && (f.ID == nil || *f.ID == id):
				return SessionInfo{}, frameError(&f)
			}
		}
	}
}

// closeCause turns the error of a connection the server closed with an
// unauthorized close code into the protocol error it stands for.
func closeCause(err error) error {
	var ce websocket.CloseError
	if errors.As(err, &ce) && ce.Code == protocol.CloseUnauthorized {
		msg := ce.Reason
		if msg == "" {
			msg = "closed by the server"
		}
		return fmt.Errorf("%w (%w)", protocol.Errorf(protocol.CodeUnauthorized, "%s", msg), err)
	}
	return err
}

// frameError returns the *protocol.Error an error frame carries.
func frameError(f *protocol.Frame) *protocol.Error {
	return &protocol.Error{Code: f.Code, Message: f.Message, RetryMS: f.RetryMS}
}

// addPending registers fn for the reply to request id. It reports false
// when the session already ended.
func (s *session) addPending(id int64, fn replyFunc) bool {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if s.pdead {
		return false
	}
	s.pending[id] = fn
	return true
}

// takePending removes and returns the reply function of request id.
func (s *session) takePending(id int64) replyFunc {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	fn := s.pending[id]
	delete(s.pending, id)
	return fn
}

// failPending ends every request waiting on the session with errConnLost
// and refuses new ones.
func (s *session) failPending() {
	s.pmu.Lock()
	pending := s.pending
	s.pending = nil
	s.pdead = true
	s.pmu.Unlock()
	for _, fn := range pending {
		fn(nil, errConnLost)
	}
}

// sendAbsorbed sends a request whose answer nobody waits for; its id
// makes sure an error answer is taken for it rather than logged.
func (s *session) sendAbsorbed(enc func(b []byte, id int64) []byte) {
	id := s.c.newID()
	if !s.addPending(id, func(*protocol.Frame, error) {}) {
		return
	}
	if s.send(s.ctx, false, func(b []byte) []byte { return enc(b, id) }) != nil {
		s.takePending(id)
	}
}

// send appends a frame, written by enc, to the write buffer. With wait,
// it first waits (until ctx ends) while the buffer is over its limit;
// frames sent on behalf of the reader never wait, so the reader cannot
// stall on its own writer. It fails with errConnLost once the session ended.
func (s *session) send(ctx context.Context, wait bool, enc func([]byte) []byte) error {
	s.wmu.Lock()
	for wait && len(s.wbuf) >= s.c.opts.WriteBuffer && !s.wclosed {
		if s.wspace == nil {
			s.wspace = make(chan struct{})
		}
		space := s.wspace
		s.wmu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.ctx.Done():
			return errConnLost
		}
		s.wmu.Lock()
	}
	if s.wclosed {
		s.wmu.Unlock()
		return errConnLost
	}
	if len(s.wbuf) > 0 {
		s.wbuf = append(s.wbuf, '\n')
	}
	s.wbuf = enc(s.wbuf)
	s.wmu.Unlock()
	select {
	case s.wsignal <- struct{}{}:
	default:
	}
	return nil
}

// writeLoop is the session's writer: it takes every frame waiting and
// writes them as few WebSocket messages as MaxBatch allows, and sends
// keep-alive pings. It returns when the session ends or a write fails.
func (s *session) writeLoop() {
	defer s.c.wg.Done()
	defer close(s.wdone)
	var tick <-chan time.Time
	if ka := s.c.opts.KeepAlive; ka > 0 {
		t := time.NewTicker(ka)
		defer t.Stop()
		tick = t.C
	}
	var spare []byte
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick:
			s.keepAlive()
			continue
		case <-s.wsignal:
		}
		// Let the goroutines that are ready to run first, as the
		// publishers woken by one batch of acks are: their frames then
		// go out in this write rather than one write each. A write is a
		// syscall and a TCP segment; with nothing else to run this
		// returns at once.
		runtime.Gosched()
		s.wmu.Lock()
		out := s.wbuf
		s.wbuf = spare[:0]
		if s.wspace != nil {
			close(s.wspace)
			s.wspace = nil
		}
		s.wmu.Unlock()
		for rest := out; len(rest) > 0; {
			var msg []byte
			msg, rest = nextBatch(rest, s.c.opts.MaxBatch)
			if err := s.write(msg); err != nil {
				if s.ctx.Err() == nil {
					s.log.Debug().Err(err).Msg("write failed")
				}
				// The reader sees the connection fail and ends the session.
				s.conn.CloseNow()
				return
			}
		}
		if cap(out) <= 4*s.c.opts.WriteBuffer {
			spare = out
		} else {
			spare = nil
		}
	}
}

// write writes one WebSocket message. With keep-alive on, a write may
// take two keep-alive periods: a peer that reads nothing for that long is
// as good as gone, and the failed write makes the client reconnect.
func (s *session) write(msg []byte) error {
	ka := s.c.opts.KeepAlive
	if ka <= 0 {
		return s.conn.Write(s.ctx, websocket.MessageText, msg)
	}
	ctx, cancel := context.WithTimeout(s.ctx, 2*ka)
	defer cancel()
	return s.conn.Write(ctx, websocket.MessageText, msg)
}

// nextBatch splits off the longest run of whole frames of at most max
// bytes (or the first frame alone if it is longer) from buf.
func nextBatch(buf []byte, max int) (msg, rest []byte) {
	if len(buf) <= max {
		return buf, nil
	}
	if i := bytes.LastIndexByte(buf[:max+1], '\n'); i >= 0 {
		return buf[:i], buf[i+1:]
	}
	if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		return buf[:i], buf[i+1:]
	}
	return buf, nil
}

// keepAlive pings a quiet connection and closes one that stayed silent
// for two periods: the reader then sees it fail and the client reconnects.
func (s *session) keepAlive() {
	ka := s.c.opts.KeepAlive
	idle := time.Since(time.Unix(0, s.lastRead.Load()))
	switch {
	case idle >= 2*ka:
		s.log.Info().Dur("idle", idle).Msg("connection silent, reconnecting")
		s.conn.CloseNow()
	case idle >= ka:
		s.sendAbsorbed(func(b []byte, id int64) []byte {
			return appendFrame(b, &protocol.Frame{Op: protocol.OpPing, ID: &id})
		})
	}
}

// readLoop reads and dispatches frames until the connection fails. Over
// plain ws:// most messages never reach coder/websocket's Reader: the
// frameConn under it hands them to takeMessage from within the read.
//
// Its reads take no context: coder/websocket registers (and then
// removes) a context.AfterFunc on every read whose context can end, which
// was an eighth of a receiving client's CPU when messages arrive one by
// one (fan-out). The session's end closes the connection once instead,
// and the read in progress fails.
func (s *session) readLoop() error {
	stop := context.AfterFunc(s.ctx, func() { s.conn.CloseNow() })
	defer stop()
	var buf bytes.Buffer
	for {
		_, r, err := s.conn.Reader(context.Background())
		if err != nil {
			return err
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return err
		}
		s.takeMessage(buf.Bytes())
		if buf.Cap() > 1<<20 {
			buf = bytes.Buffer{} // do not keep a large history reply's buffer
		}
	}
}

// takeMessage handles one WebSocket message from the server, read by
// coder/websocket or taken by the frameConn under it: one or more frames,
// one per line. It runs on the reader goroutine.
func (s *session) takeMessage(payload []byte) {
	s.lastRead.Store(time.Now().UnixNano())
	for line := range protocol.Lines(payload) {
		s.dispatch(line)
	}
}

// dispatch handles one frame from the server.
func (s *session) dispatch(line []byte) {
	if m, ok := decodeMsg(line); ok {
		s.c.deliverRaw(s, &m)
		return
	}
	f := &s.scratch
	if !decodeAck(line, f, &s.scratchID) {
		*f = protocol.Frame{} // Unmarshal leaves absent fields alone
		if err := json.Unmarshal(line, f); err != nil {
			s.log.Debug().Err(err).Msg("undecodable frame from server")
			return
		}
	}
	switch f.Op {
	case protocol.OpMsg:
		s.c.deliverMsg(s, f)
	case protocol.OpJoin, protocol.OpLeave, protocol.OpReceipt:
		s.c.deliverNotice(f)
	case protocol.OpReconnect:
		s.edges = f.Edges
		s.log.Info().Str("reason", f.Reason).Strs("edges", f.Edges).Msg("server asked to reconnect")
	default:
		if f.ID != nil {
			if fn := s.takePending(*f.ID); fn != nil {
				fn(f, nil)
			}
			return
		}
		if f.Op == protocol.OpError {
			s.log.Warn().Str("code", string(f.Code)).Str("message", f.Message).Msg("server reported an error")
		}
	}
}

// shutdown ends the session after its reader returned: it stops the
// writer, closes the connection and fails what was waiting on it.
func (s *session) shutdown() {
	s.cancel()
	<-s.wdone
	s.conn.CloseNow()
	s.wmu.Lock()
	s.wclosed = true
	if s.wspace != nil {
		close(s.wspace)
		s.wspace = nil
	}
	s.wmu.Unlock()
	s.failPending()
}
