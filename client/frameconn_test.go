package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/internal/testwait"
	"github.com/arena-mesh/arena/internal/wsframe"
	"github.com/arena-mesh/arena/protocol"
)

// scriptConn is a net.Conn whose reads return stream in the given chunk
// sizes (cycled), then io.EOF.
type scriptConn struct {
	net.Conn
	stream []byte
	sizes  []int
	i      int
}

func (c *scriptConn) Read(p []byte) (int, error) {
	if len(c.stream) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.stream), max(1, c.sizes[c.i%len(c.sizes)]))
	c.i++
	copy(p, c.stream[:n])
	c.stream = c.stream[n:]
	return n, nil
}

// wsFrame encodes one server-to-client frame: first is its first byte
// (FIN, RSV, opcode); mask adds a masking key.
func wsFrame(first byte, payload []byte, mask bool) []byte {
	b := []byte{first, 0}
	switch n := len(payload); {
	case n < 126:
		b[1] = byte(n)
	case n <= 0xffff:
		b[1] = 126
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b[1] = 127
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if mask {
		b[1] |= 0x80
		b = append(b, 0, 0, 0, 0) // a zero key leaves the payload as it is
	}
	return append(b, payload...)
}

// frameEvent is what a reader of a frameConn sees: a payload given to
// take, or bytes handed out (consecutive hand-outs joined).
type frameEvent struct {
	taken bool
	b     []byte
}

func (e frameEvent) String() string {
	if e.taken {
		return fmt.Sprintf("take(%d: %.20q)", len(e.b), e.b)
	}
	return fmt.Sprintf("hand(%d: %.20q)", len(e.b), e.b)
}

func appendHanded(evs []frameEvent, b []byte) []frameEvent {
	if n := len(evs); n > 0 && !evs[n-1].taken {
		evs[n-1].b = append(evs[n-1].b, b...)
		return evs
	}
	return append(evs, frameEvent{b: bytes.Clone(b)})
}

// expectFrames is what frameConn must make of frames, the stream after
// the upgrade, when it takes text frames of up to limit bytes: parsed
// here in one piece, with no buffering, from the rules in frameconn.go.
// ends are the offsets in frames where each frame ends, or where frames
// ends, for a last frame cut short.
func expectFrames(frames []byte, limit int64) (evs []frameEvent, ends []int) {
	frag := false
	for off := 0; off < len(frames); {
		h := frames[off:]
		if len(h) < 2 || len(h) < wsframe.HeaderLen(h) {
			return evs, ends // an unfinished header is never handed out
		}
		hl, n := wsframe.HeaderLen(h), wsframe.PayloadLen(h)
		if !frag && h[0] == 0x81 && h[1]&0x80 == 0 && n <= uint64(limit) && uint64(hl)+n <= maxTakenFrame {
			if len(h) < hl+int(n) {
				return evs, ends // an unfinished frame it would take
			}
			evs = append(evs, frameEvent{taken: true, b: bytes.Clone(h[hl : hl+int(n)])})
			off += hl + int(n)
			ends = append(ends, off)
			continue
		}
		switch op, fin := h[0]&0x0f, h[0]&0x80 != 0; {
		case op == 1 || op == 2:
			frag = !fin
		case op == 0 && fin:
			frag = false
		}
		size := uint64(hl) + n
		if size >= uint64(len(h)) {
			return appendHanded(evs, h), append(ends, len(frames))
		}
		evs = appendHanded(evs, h[:size])
		off += int(size)
		ends = append(ends, off)
	}
	return evs, ends
}

// readFrames reads fc as net/http and then coder/websocket would: the
// upgrade's response header (hdrLen bytes, each response ending at one of
// headerEnds) with 4 KiB reads, then frames with reads of random sizes
// until the stream ends. It checks that no read of the header crosses the
// end of a response, and that no read of frames crosses the end of a
// frame (frameEnds, from expectFrames), and returns what the reader saw.
func readFrames(t testing.TB, fc *frameConn, hdrLen int, headerEnds, frameEnds []int, limit int64, rng *rand.Rand) []frameEvent {
	t.Helper()
	buf := make([]byte, 4096)
	got := 0
	for got < hdrLen {
		n, err := fc.Read(buf)
		if err != nil {
			t.Fatalf("read of the header at %d of %d: %v", got, hdrLen, err)
		}
		for _, e := range headerEnds {
			if got < e && e < got+n {
				t.Fatalf("a read of the header handed out bytes %d to %d, past a response's end at %d", got, got+n, e)
			}
		}
		got += n
	}
	if got != hdrLen {
		t.Fatalf("the header phase handed out %d bytes, want %d", got, hdrLen)
	}
	// pos is the offset in the frames of the next byte the reader sees;
	// frame is the index in frameEnds of the frame it belongs to.
	pos, frame := 0, 0
	advance := func(n int) {
		for frame < len(frameEnds) && pos >= frameEnds[frame] {
			frame++
		}
		if frame == len(frameEnds) || pos+n > frameEnds[frame] {
			t.Fatalf("%d bytes at frame offset %d cross the end of a frame (%v)", n, pos, frameEnds)
		}
		pos += n
	}
	var evs []frameEvent
	fc.beginFrames()
	fc.takeText(limit, func(p []byte) {
		evs = append(evs, frameEvent{taken: true, b: bytes.Clone(p)})
		for frame < len(frameEnds) && pos >= frameEnds[frame] {
			frame++
		}
		if frame == len(frameEnds) || frame > 0 && pos != frameEnds[frame-1] {
			t.Fatalf("took %q at frame offset %d, not at a frame's start", p, pos)
		}
		pos = frameEnds[frame] // a taken frame is taken whole
	})
	for {
		p := make([]byte, 1+rng.IntN(5000))
		n, err := fc.Read(p)
		if n > 0 {
			advance(n)
			evs = appendHanded(evs, p[:n])
		}
		if errors.Is(err, io.EOF) {
			return evs
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if n == 0 {
			t.Fatal("a read returned nothing and no error")
		}
	}
}

func TestFrameConnHandsOutAndTakes(t *testing.T) {
	hdrs := []string{
		"HTTP/1.1 103 Early Hints\r\nLink: </app.js>\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	}
	var frames []byte
	for _, f := range [][]byte{
		wsFrame(0x81, []byte(`{"op":"msg","n":1}`), false),
		wsFrame(0x89, []byte("ping"), false),                           // control: handed out
		wsFrame(0x81, bytes.Repeat([]byte("a"), 300), false),           // 16-bit length: taken
		wsFrame(0x81, []byte("masked"), true),                          // masked: handed out
		wsFrame(0x01, []byte("frag-"), false),                          // fragmented message...
		wsFrame(0x8a, []byte("pong"), false),                           // ...a control frame within it...
		wsFrame(0x80, []byte("end"), false),                            // ...its last frame
		wsFrame(0x81, []byte("after"), false),                          // taken again
		wsFrame(0x82, []byte{0, 1, 2}, false),                          // binary: handed out
		wsFrame(0x81, bytes.Repeat([]byte("b"), frameBufSize), false),  // larger than the buffer was: taken
		wsFrame(0x81, bytes.Repeat([]byte("e"), maxTakenFrame), false), // larger than any taken
		wsFrame(0xc1, []byte("rsv1"), false),                           // compressed: handed out
		wsFrame(0x81, bytes.Repeat([]byte("c"), 2000), false),          // over the limit below
		wsFrame(0x81, nil, false),                                      // empty: taken
		wsFrame(0x81, bytes.Repeat([]byte("d"), 70000), false),         // 64-bit length
		wsFrame(0x81, []byte("last"), false),
		wsFrame(0x88, []byte{0x03, 0xe8}, false), // close
	} {
		frames = append(frames, f...)
	}
	const limit = 1000
	want, frameEnds := expectFrames(frames, limit)
	if len(want) < 10 {
		t.Fatalf("the expected events are too few to test anything: %v", want)
	}
	var stream []byte
	var headerEnds []int
	for _, h := range hdrs {
		stream = append(stream, h...)
		headerEnds = append(headerEnds, len(stream))
	}
	hdrLen := len(stream)
	stream = append(stream, frames...)
	for _, sizes := range [][]int{{1}, {2}, {3}, {7}, {100}, {4096}, {1 << 20}, {5, 1, 4000, 13}} {
		t.Run(fmt.Sprint(sizes), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(sizes[0]), 7))
			fc := newFrameConn(&scriptConn{stream: stream, sizes: sizes})
			got := readFrames(t, fc, hdrLen, headerEnds, frameEnds, limit, rng)
			checkEvents(t, got, want)
		})
	}
}

func checkEvents(t testing.TB, got, want []frameEvent) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
	}
	for i := range want {
		if got[i].taken != want[i].taken || !bytes.Equal(got[i].b, want[i].b) {
			t.Fatalf("event %d is %v, want %v", i, got[i], want[i])
		}
	}
}

// TestFrameConnPassesThroughNonHTTP: a stream that does not start as an
// HTTP response (TLS to a proxy, say) is never followed as frames.
func TestFrameConnPassesThroughNonHTTP(t *testing.T) {
	stream := append([]byte{0x16, 0x03, 0x01, 0x00, 0x05}, wsFrame(0x81, []byte("looks like a frame"), false)...)
	stream = append(stream, "\r\n\r\n"...)
	stream = append(stream, wsFrame(0x81, []byte("and another"), false)...)
	fc := newFrameConn(&scriptConn{stream: stream, sizes: []int{3, 1000}})
	var got []byte
	buf := make([]byte, 4096)
	n, err := fc.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, buf[:n]...)
	fc.beginFrames()
	fc.takeText(1<<20, func(p []byte) { t.Errorf("took %q from a stream that is not HTTP", p) })
	for {
		n, err := fc.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, stream) {
		t.Fatalf("handed out %q, want the stream unchanged: %q", got, stream)
	}
}

// FuzzFrameConn: whatever a server sends after the upgrade, frameConn
// takes and hands out exactly what expectFrames says, whatever the
// socket's read sizes.
func FuzzFrameConn(f *testing.F) {
	f.Add([]byte{0x81, 0x02, 'h', 'i', 0x89, 0x00}, uint64(1), int64(100))
	f.Add(append(wsFrame(0x01, []byte("x"), false), wsFrame(0x81, []byte("y"), false)...), uint64(2), int64(100))
	f.Add(wsFrame(0x81, bytes.Repeat([]byte("z"), 200), false), uint64(3), int64(150))
	f.Add([]byte{0x81, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 'x'}, uint64(4), int64(1<<20))
	f.Add([]byte{0x81, 0x7e, 0x00}, uint64(5), int64(10))
	f.Fuzz(func(t *testing.T, frames []byte, seed uint64, limit int64) {
		hdr := "HTTP/1.1 101 Switching Protocols\r\n\r\n"
		rng := rand.New(rand.NewPCG(seed, 1))
		sizes := []int{1 + rng.IntN(64), 1 + rng.IntN(9000), 1 + rng.IntN(3)}
		stream := append([]byte(hdr), frames...)
		want, frameEnds := expectFrames(frames, limit)
		headerEnds := []int{len(hdr)}
		fc := newFrameConn(&scriptConn{stream: stream, sizes: sizes})
		got := readFrames(t, fc, len(hdr), headerEnds, frameEnds, limit, rng)
		checkEvents(t, got, want)
	})
}

// joinCollector gathers the users of the join notices a client gets
// outside any subscription (Options.OnEvent).
type joinCollector struct {
	mu    sync.Mutex
	users []string
}

func (j *joinCollector) onEvent(ev Event) {
	if ev.Kind == EventJoin {
		j.mu.Lock()
		j.users = append(j.users, ev.Notice.User)
		j.mu.Unlock()
	}
}

func (j *joinCollector) count() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.users)
}

// check waits for n joins and checks they came in order.
func (j *joinCollector) check(t *testing.T, n int) {
	t.Helper()
	testwait.For(t, 10*time.Second, fmt.Sprintf("%d join notices", n), func() bool { return j.count() >= n })
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.users) != n {
		t.Fatalf("%d join notices, want %d", len(j.users), n)
	}
	for i, u := range j.users {
		if u != joinUser(i) {
			t.Fatalf("join notice %d is of %q, want %q: %v", i, u, joinUser(i), j.users)
		}
	}
}

// joinUser is the user of the ith join notice. The "ā" (0xc4 0x81) puts
// the first byte of a text frame in the payloads: a frameConn that lost
// track of the frame boundaries would find frames in the middle of them.
func joinUser(i int) string { return fmt.Sprintf("user%d-\u0101", i) }

func joinFrame(i int) string { return fmt.Sprintf(`{"op":"join","room":"r","user":%q}`, joinUser(i)) }

// connectedFrame answers the connect frame b, "" if b is none.
func connectedFrame(b []byte) string {
	var f protocol.Frame
	if err := json.Unmarshal(b, &f); err != nil || f.Op != protocol.OpConnect || f.ID == nil {
		return ""
	}
	return fmt.Sprintf(`{"op":"connected","id":%d,"session":"s1","user":"u","node":"n1"}`, *f.ID)
}

// TestFrameConnLetsPingsThrough: a server's WebSocket pings, between
// messages the frameConn takes, still reach coder/websocket, which
// answers each with a pong.
func TestFrameConnLetsPingsThrough(t *testing.T) {
	const n = 300
	pings := make(chan error, n)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{protocol.Subprotocol}})
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Errorf("read connect: %v", err)
			return
		}
		if connectedFrame(b) == "" {
			t.Errorf("first frame %q is not a connect", b)
			return
		}
		if err := ws.Write(ctx, websocket.MessageText, []byte(connectedFrame(b))); err != nil {
			t.Errorf("write connected: %v", err)
			return
		}
		ctx = ws.CloseRead(ctx) // reads the pongs
		for i := range n {
			if err := ws.Write(ctx, websocket.MessageText, []byte(joinFrame(i))); err != nil {
				t.Errorf("write join %d: %v", i, err)
				return
			}
			if i%30 == 0 {
				pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				pings <- ws.Ping(pctx) // returns when the pong came back
				cancel()
			}
		}
		<-ctx.Done()
	}))
	defer srv.Close()

	var joins joinCollector
	c, err := Dial(t.Context(), "ws"+strings.TrimPrefix(srv.URL, "http"), Options{
		Logger:  zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
		OnEvent: joins.onEvent,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	joins.check(t, n)
	for range n / 30 {
		if err := <-pings; err != nil {
			t.Fatalf("a ping went unanswered: %v", err)
		}
	}
	s := c.currentSession()
	if s == nil || s.frames == nil {
		t.Fatal("the session over ws:// has no frameConn")
	}
	if got := s.frames.taken.Load(); got < n {
		t.Fatalf("the frameConn took %d frames, want the %d joins at least", got, n)
	}
}

// TestFrameConnAfterInterimResponse: a 103 response before the 101, and
// frames sent in the same segment as the 101 and with connected, are all
// read in order, and a ping among them is answered.
func TestFrameConnAfterInterimResponse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const n = 200
	served := make(chan error, 1)
	// The server holds the connection open until the test has looked at
	// the session: once it hangs up, the client starts another.
	hold := make(chan struct{})
	var holdOnce sync.Once
	release := func() { holdOnce.Do(func() { close(hold) }) }
	defer release()
	go func() { served <- serveRawUpgrade(ln, n, hold) }()

	var joins joinCollector
	c, err := Dial(t.Context(), "ws://"+ln.Addr().String()+"/v1/ws", Options{
		Logger:  zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
		OnEvent: joins.onEvent,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := c.currentSession() // before the server hangs up
	if s == nil || s.frames == nil {
		t.Fatal("the session over ws:// has no frameConn")
	}
	joins.check(t, n)
	if got := s.frames.taken.Load(); got < n {
		t.Errorf("the frameConn took %d frames, want the %d joins at least", got, n)
	}
	release()
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the raw server never got its pongs")
	}
}

// serveRawUpgrade accepts one connection and speaks WebSocket by hand, so
// that it controls which bytes share a write: a 103, the 101, a ping and
// the start of a frame in one; the rest of that frame, connected, and n
// joins with a ping in the middle in the next. It returns once both pings
// were answered and hold is closed.
func serveRawUpgrade(ln net.Listener, n int, hold <-chan struct{}) error {
	conn, err := ln.Accept()
	if err != nil {
		return err
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	req, err := http.ReadRequest(br)
	if err != nil {
		return fmt.Errorf("read upgrade request: %w", err)
	}
	sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	out := []byte("HTTP/1.1 103 Early Hints\r\nLink: </app.js>; rel=preload\r\n\r\n" +
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n" +
		"Sec-WebSocket-Protocol: " + protocol.Subprotocol + "\r\n\r\n")
	// A frame the handshake skips, cut after its header: the rest comes
	// with connected, so a frameConn that let the upgrade's reader buffer
	// frame bytes would lose track of the frames.
	early := wsFrame(0x81, []byte(`{"op":"join","room":"r","user":"early"}`), false)
	out = append(out, wsFrame(0x89, []byte("p1"), false)...)
	out = append(out, early[:3]...)
	if _, err := conn.Write(out); err != nil {
		return err
	}
	var connected string
	for connected == "" || out != nil {
		op, payload, err := readClientFrame(br)
		if err != nil {
			return fmt.Errorf("read client frame: %w", err)
		}
		switch {
		case op == 0xa && string(payload) == "p1":
			out = nil
		case op == 0x1:
			connected = connectedFrame(payload)
		}
	}
	out = append(early[3:], wsFrame(0x81, []byte(connected), false)...)
	for i := range n {
		if i == n/2 {
			out = append(out, wsFrame(0x89, []byte("p2"), false)...)
		}
		out = append(out, wsFrame(0x81, []byte(joinFrame(i)), false)...)
	}
	if _, err := conn.Write(out); err != nil {
		return err
	}
	for {
		op, payload, err := readClientFrame(br)
		if err != nil {
			return fmt.Errorf("wait for the second pong: %w", err)
		}
		if op == 0xa && string(payload) == "p2" {
			<-hold
			return nil
		}
	}
}

// readClientFrame reads one masked frame from a client.
func readClientFrame(br *bufio.Reader) (op byte, payload []byte, err error) {
	h := make([]byte, 2, wsframe.MaxHeaderLen)
	if _, err := io.ReadFull(br, h); err != nil {
		return 0, nil, err
	}
	h = h[:wsframe.HeaderLen(h)]
	if _, err := io.ReadFull(br, h[2:]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 == 0 {
		return 0, nil, errors.New("unmasked client frame")
	}
	payload = make([]byte, wsframe.PayloadLen(h))
	if _, err := io.ReadFull(br, payload); err != nil {
		return 0, nil, err
	}
	key := h[len(h)-4:]
	for i := range payload {
		payload[i] ^= key[i%4]
	}
	return h[0] & 0x0f, payload, nil
}

// TestFrameConnMixedSizes: against a node, messages larger than the
// frameConn's first buffer (which it grows) and small ones arrive in
// publish order.
func TestFrameConnMixedSizes(t *testing.T) {
	n := edgetest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	opts := Options{Token: n.AllToken("u"), Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)}
	sub, err := Dial(ctx, n.WSURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	pub, err := Dial(ctx, n.WSURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	s, err := sub.Subscribe(ctx, "mixed", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{10, 20000, 10, frameBufSize, 10, 9000, 3000, 10}
	for i, size := range sizes {
		data := fmt.Sprintf(`{"i":%d,"pad":%q}`, i, strings.Repeat("x", size))
		if _, err := pub.Publish(ctx, "mixed", json.RawMessage(data), PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i, size := range sizes {
		select {
		case ev := <-s.C():
			var d struct {
				I   int    `json:"i"`
				Pad string `json:"pad"`
			}
			if ev.Kind != EventMsg || json.Unmarshal(ev.Msg.Data, &d) != nil || d.I != i || len(d.Pad) != size {
				t.Fatalf("event %d: %+v, want message %d with %d bytes of padding", i, ev, i, size)
			}
		case <-ctx.Done():
			t.Fatalf("message %d never came", i)
		}
	}
	if got := sub.currentSession().frames.taken.Load(); got == 0 {
		t.Fatal("the frameConn took none of the small messages")
	}
}

// TestFrameConnCloseHandshake: a polite close through a frameConn that
// takes text frames completes: the server's close frame reaches
// coder/websocket, whose Close then returns no error.
func TestFrameConnCloseHandshake(t *testing.T) {
	closed := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer ws.CloseNow()
		for i := range 3 {
			if err := ws.Write(r.Context(), websocket.MessageText, []byte(joinFrame(i))); err != nil {
				t.Errorf("write: %v", err)
				return
			}
		}
		_, _, err = ws.Read(r.Context()) // answers the client's close
		closed <- err
	}))
	defer srv.Close()

	opts := Options{}
	hc, _ := opts.httpClient()
	slot := new(dialSlot)
	ctx := context.WithValue(t.Context(), dialSlotKey{}, slot)
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	fc := slot.conn.Load()
	if fc == nil {
		t.Fatal("the upgrade was not dialed through a frameConn")
	}
	fc.beginFrames()
	var got []string
	fc.takeText(1<<20, func(p []byte) { got = append(got, string(p)) })
	// Reader blocks inside the frameConn, which takes the three joins;
	// the server then reads, so the reader gets nothing more until the
	// close below.
	go ws.Reader(context.Background()) //nolint:errcheck // ends with the close
	testwait.For(t, 10*time.Second, "three joins taken", func() bool { return fc.taken.Load() == 3 })
	if err := ws.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
	if err := <-closed; websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("the server saw %v, want a normal close", err)
	}
	for i, s := range got {
		if s != joinFrame(i) {
			t.Fatalf("took %q, want %q", s, joinFrame(i))
		}
	}
}
