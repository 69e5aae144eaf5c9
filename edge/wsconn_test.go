package edge

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/arena-mesh/arena/internal/wsframe"
)

// wsFrame encodes one WebSocket frame with payload length n (filled with
// a pattern), masked as a client's when masked is set.
func wsFrame(n int, masked bool, seed byte) []byte {
	var b []byte
	b = append(b, 0x81) // fin, text
	mask := byte(0)
	if masked {
		mask = 0x80
	}
	switch {
	case n > 65535:
		b = append(b, mask|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	case n > 125:
		b = append(b, mask|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, mask|byte(n))
	}
	if masked {
		b = append(b, 1, 2, 3, 4)
	}
	for i := range n {
		b = append(b, seed+byte(i))
	}
	return b
}

// frameSizes covers every header form: 7-bit, 16-bit and 64-bit lengths,
// empty frames and frames larger than a read chunk.
var frameSizes = []int{0, 1, 5, 125, 126, 300, readChunkSize - 1, readChunkSize + 7, 65535, 65536, 70000}

// wsStream is frames of frameSizes (twice, shuffled) and where each ends.
func wsStream(masked bool, rng *rand.Rand) (stream []byte, ends []int) {
	sizes := append(append([]int(nil), frameSizes...), frameSizes...)
	rng.Shuffle(len(sizes), func(i, j int) { sizes[i], sizes[j] = sizes[j], sizes[i] })
	for i, n := range sizes {
		stream = append(stream, wsFrame(n, masked, byte(i))...)
		ends = append(ends, len(stream))
	}
	return stream, ends
}

func TestFrameScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, masked := range []bool{false, true} {
		stream, ends := wsStream(masked, rng)
		for _, chunk := range []int{1, 2, 3, 7, 14, 16, 100, 4096, len(stream)} {
			t.Run(fmt.Sprintf("masked=%v/chunk=%d", masked, chunk), func(t *testing.T) {
				if got := scanBoundaries(t, stream, chunk); fmt.Sprint(got) != fmt.Sprint(ends) {
					t.Fatalf("boundaries at %v, want %v", got, ends)
				}
			})
		}
	}
}

// scanBoundaries feeds data to a frameScan in pieces of step bytes, as
// reads deliver it, and returns the offsets where frames ended.
func scanBoundaries(t *testing.T, data []byte, step int) []int {
	t.Helper()
	var f frameScan
	var at []int
	for off := 0; off < len(data); {
		p := data[off:min(off+step, len(data))]
		n := f.advanceFrame(p)
		if n < 1 || n > len(p) {
			t.Fatalf("advanceFrame consumed %d of %d", n, len(p))
		}
		off += n
		if f.boundary() {
			at = append(at, off)
		}
	}
	return at
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		c, err := ln.AcceptTCP()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	client, err = net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.FailNow()
	}
	t.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

// TestLeanConnReads: whatever the client's write pattern and the reader's
// read sizes, a lean connection delivers the stream unchanged, starting
// with the bytes net/http had buffered, never returns bytes of two frames
// in one Read, and holds no chunk once everything is read.
func TestLeanConnReads(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	stream, ends := wsStream(true, rng)
	const preLen = 1000 // sent before the connection is made lean
	client, server := tcpPair(t)
	if _, err := client.Write(stream[:preLen]); err != nil {
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() {
		// The rest in writes of random sizes.
		wrng := rand.New(rand.NewPCG(5, 6))
		for off := preLen; off < len(stream); {
			n := min(1+wrng.IntN(9000), len(stream)-off)
			if _, err := client.Write(stream[off : off+n]); err != nil {
				wrote <- err
				return
			}
			off += n
		}
		wrote <- nil
	}()
	httpBuf := bufio.NewReader(server)
	if _, err := httpBuf.Peek(preLen); err != nil { // as if net/http read past the request
		t.Fatal(err)
	}
	lc := newLeanConn(server, httpBuf)
	if lc == nil {
		t.Fatal("a TCP connection was not made lean")
	}

	var got []byte
	next := 0 // index in ends of the frame being read
	for len(got) < len(stream) {
		p := make([]byte, 1+rng.IntN(2*readChunkSize))
		n, err := lc.Read(p)
		if err != nil {
			t.Fatalf("read at %d: %v", len(got), err)
		}
		if len(got)+n > ends[next] {
			t.Fatalf("a read of %d at %d crosses the frame end at %d", n, len(got), ends[next])
		}
		got = append(got, p[:n]...)
		if len(got) == ends[next] {
			next++
		}
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, stream) {
		t.Fatal("stream changed")
	}
	lc.rmu.Lock()
	held := lc.chunk != nil
	lc.rmu.Unlock()
	if held {
		t.Error("a drained connection still holds a read chunk")
	}

	// awaitData returns once more bytes come, and they are then read.
	awaited := make(chan struct{})
	go func() {
		if lc.awaitData(0) {
			t.Error("awaitData without a linger reported idle")
		}
		close(awaited)
	}()
	if _, err := client.Write([]byte("more")); err != nil {
		t.Fatal(err)
	}
	<-awaited
	p := make([]byte, 16)
	if n, err := io.ReadFull(lc, p[:4]); err != nil || string(p[:n]) != "more" {
		t.Fatalf("after awaitData: %q, %v", p[:n], err)
	}

	client.Close()
	if lc.awaitData(time.Hour) { // returns at EOF too
		t.Error("awaitData at EOF reported idle")
	}
	if _, err := lc.Read(p); !errors.Is(err, io.EOF) {
		t.Fatalf("read after the peer closed: %v, want EOF", err)
	}
	if _, err := lc.Read(p); !errors.Is(err, io.EOF) {
		t.Fatalf("second read after the peer closed: %v, want EOF", err)
	}
}

// TestLeanConnIdleDeadline: awaitData with a linger reports an idle
// socket once the linger has passed without data, and the deadline it set
// does not fail the reads that follow, neither from the read-ahead chunk
// nor directly into a large payload: they wait for the data.
func TestLeanConnIdleDeadline(t *testing.T) {
	client, server := tcpPair(t)
	lc := newLeanConn(server, bufio.NewReader(server))
	if !lc.awaitData(20 * time.Millisecond) {
		t.Fatal("awaitData on a silent socket did not report idle")
	}

	// The deadline has expired: a read must wait for data all the same.
	frame := wsFrame(3*readChunkSize, true, 7)
	hdr := wsframe.HeaderLen(frame[:2])
	got := make(chan []byte, 1)
	go func() {
		p := make([]byte, hdr+10)
		n, err := lc.Read(p)
		if err != nil {
			t.Errorf("read after the idle deadline: %v", err)
		}
		got <- p[:n]
	}()
	if _, err := client.Write(frame[:hdr+10]); err != nil {
		t.Fatal(err)
	}
	start := <-got
	for len(start) > 0 && len(start) < hdr+10 { // the rest of what was sent
		p := make([]byte, hdr+10-len(start))
		n, err := lc.Read(p)
		if err != nil {
			t.Fatal(err)
		}
		start = append(start, p[:n]...)
	}
	if !bytes.Equal(start, frame[:hdr+10]) {
		t.Fatalf("read %q, want the frame's first %d bytes", start, hdr+10)
	}

	// Expire a deadline again, then read the rest of the large payload:
	// Read takes it directly from the socket.
	lc.rmu.Lock()
	lc.deadline = time.Now().Add(-time.Second)
	_ = lc.SetReadDeadline(lc.deadline)
	lc.rmu.Unlock()
	go func() {
		p := make([]byte, 2*readChunkSize)
		n, err := lc.Read(p)
		if err != nil {
			t.Errorf("payload read after the idle deadline: %v", err)
		}
		got <- p[:n]
	}()
	if _, err := client.Write(frame[hdr+10:]); err != nil {
		t.Fatal(err)
	}
	if p := <-got; len(p) == 0 {
		t.Fatal("payload read returned nothing")
	}
}

// TestLeanConnWrites: frames written the way coder/websocket writes them,
// through the 16-byte bufio.Writer, arrive unchanged, and nothing is held
// back once a frame is flushed.
func TestLeanConnWrites(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	stream, ends := wsStream(false, rng)
	client, server := tcpPair(t)
	lc := newLeanConn(server, bufio.NewReader(server))
	bw := bufio.NewWriterSize(lc, leanBufio)

	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(client, int64(len(stream))))
		got <- b // short on error, which the comparison reports
	}()
	start := 0
	for _, end := range ends {
		frame := stream[start:end]
		start = end
		// coder/websocket's writeFrameHeader and writeFramePayload.
		hl := wsframe.HeaderLen(frame)
		_ = bw.WriteByte(frame[0])
		_ = bw.WriteByte(frame[1])
		if _, err := bw.Write(frame[2:hl]); err != nil {
			t.Fatal(err)
		}
		if _, err := bw.Write(frame[hl:]); err != nil {
			t.Fatal(err)
		}
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		if lc.nheld != 0 {
			t.Fatalf("%d bytes held after a whole frame of %d", lc.nheld, len(frame))
		}
	}
	if b := <-got; !bytes.Equal(b, stream) {
		t.Fatalf("client read %d bytes, differing from the %d written", len(b), len(stream))
	}
}

// TestLeanConnOnlyTCP: other connections keep net/http's buffers.
func TestLeanConnOnlyTCP(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if lc := newLeanConn(a, bufio.NewReader(a)); lc != nil {
		t.Fatal("a net.Pipe was made lean")
	}
}

func TestSubSet(t *testing.T) {
	for _, n := range []int{1, maxSubList, maxSubList + 1, 3 * maxSubList} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var ss subSet
			want := map[string]*subState{}
			for i := range n {
				st := &subState{room: fmt.Sprint("r", i)}
				ss.put(st)
				want[st.room] = st
			}
			// Replacing keeps one per room.
			st := &subState{room: "r0"}
			ss.put(st)
			want["r0"] = st
			for i := 0; i < n; i += 2 {
				ss.remove(fmt.Sprint("r", i))
				delete(want, fmt.Sprint("r", i))
			}
			ss.remove("absent")
			got := map[string]*subState{}
			ss.each(func(st *subState) { got[st.room] = st })
			if len(got) != len(want) {
				t.Fatalf("each: %d subscriptions, want %d", len(got), len(want))
			}
			for i := range n + 1 {
				room := fmt.Sprint("r", i)
				if ss.get(room) != want[room] || got[room] != want[room] {
					t.Fatalf("%s: get %p, each %p, want %p", room, ss.get(room), got[room], want[room])
				}
			}
		})
	}
}

// FuzzFrameScan: on any byte stream (a client's frames are outside
// input) frameScan never panics, always makes progress, and finds the
// same frame boundaries however the stream is split.
func FuzzFrameScan(f *testing.F) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, masked := range []bool{false, true} {
		stream, _ := wsStream(masked, rng)
		f.Add(stream[:min(len(stream), 600)], uint8(7))
	}
	f.Add([]byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, uint8(1))
	f.Add([]byte{0x81, 0x7e}, uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		whole := scanBoundaries(t, data, len(data)+1)
		if split := scanBoundaries(t, data, int(chunk%32)+1); fmt.Sprint(split) != fmt.Sprint(whole) {
			t.Fatalf("boundaries %v in pieces, %v whole", split, whole)
		}
	})
}
