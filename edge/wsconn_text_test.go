package edge

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/arena-mesh/arena/internal/testwait"
	"github.com/arena-mesh/arena/internal/wsframe"
)

// readFrames parses n unmasked frames from r and returns their first
// bytes (FIN and opcode) and payloads.
func readFrames(r io.Reader, n int) (firsts []byte, payloads [][]byte, err error) {
	br := bufio.NewReader(r)
	for range n {
		var hdr [10]byte
		if _, err := io.ReadFull(br, hdr[:2]); err != nil {
			return firsts, payloads, err
		}
		hl := wsframe.HeaderLen(hdr[:2])
		if hdr[1]&0x80 != 0 {
			return firsts, payloads, errors.New("masked frame from the server")
		}
		if _, err := io.ReadFull(br, hdr[2:hl]); err != nil {
			return firsts, payloads, err
		}
		n := wsframe.PayloadLen(hdr[:hl])
		if n > 1<<20 {
			return firsts, payloads, fmt.Errorf("frame of %d bytes: the stream is garbled", n)
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			return firsts, payloads, err
		}
		firsts = append(firsts, hdr[0])
		payloads = append(payloads, p)
	}
	return firsts, payloads, nil
}

// pattern is a payload of n bytes counting up from seed.
func pattern(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed + byte(i)
	}
	return p
}

// TestLeanConnWriteText: WriteText writes exactly the frame coder/websocket
// would, for every header form.
func TestLeanConnWriteText(t *testing.T) {
	client, server := tcpPair(t)
	lc := newLeanConn(server, bufio.NewReader(server))
	var want []byte
	for i, n := range frameSizes {
		want = append(want, wsFrame(n, false, byte(i))...)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(client, int64(len(want))))
		got <- b
	}()
	for i, n := range frameSizes {
		if err := lc.WriteText(pattern(n, byte(i))); err != nil {
			t.Fatalf("WriteText of %d bytes: %v", n, err)
		}
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("client read %d bytes, differing from the %d expected", len(b), len(want))
	}
}

// TestLeanConnWriteTextTakesTurns: text messages written while
// coder/websocket writes frames of its own (as it does pongs) never land
// inside one of its frames, although its frames reach the socket in
// pieces.
func TestLeanConnWriteTextTakesTurns(t *testing.T) {
	const rounds = 200
	client, server := tcpPair(t)
	lc := newLeanConn(server, bufio.NewReader(server))
	sizes := []int{0, 5, 125, 300, 70000}

	type result struct {
		firsts   []byte
		payloads [][]byte
		err      error
	}
	got := make(chan result, 1)
	go func() {
		f, p, err := readFrames(client, 2*rounds)
		got <- result{f, p, err}
		_, _ = io.Copy(io.Discard, client) // writers of a garbled stream must not block
	}()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // coder/websocket's way: a 16-byte bufio.Writer, payload in pieces
		defer wg.Done()
		bw := bufio.NewWriterSize(lc, leanBufio)
		for i := range rounds {
			frame := wsFrame(sizes[i%len(sizes)], false, byte(i))
			frame[0] = 0x82 // binary: tells its frames from WriteText's
			for rest := frame; len(rest) > 0; {
				k := min(len(rest), 1+i%40)
				if _, err := bw.Write(rest[:k]); err != nil {
					t.Error(err)
					return
				}
				rest = rest[k:]
			}
			if err := bw.Flush(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := range rounds {
			if err := lc.WriteText(pattern(sizes[(i+2)%len(sizes)], byte(i))); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	lc.Close() // the reader ends, at EOF if the frames written were garbled
	r := <-got
	if r.err != nil {
		t.Fatalf("after %d frames: %v", len(r.firsts), r.err)
	}
	var nText, nBinary int
	for k, first := range r.firsts {
		var i, size int
		switch first {
		case 0x81:
			i, size = nText, sizes[(nText+2)%len(sizes)]
			nText++
		case 0x82:
			i, size = nBinary, sizes[nBinary%len(sizes)]
			nBinary++
		default:
			t.Fatalf("frame %d starts with %#x", k, first)
		}
		if !bytes.Equal(r.payloads[k], pattern(size, byte(i))) {
			t.Fatalf("frame %d (%#x, number %d of its kind) has a payload of %d bytes that is not the one written", k, first, i, len(r.payloads[k]))
		}
	}
}

// TestLeanConnWriteTextStops: no text message follows a close frame, and
// a text message waiting for a frame left unfinished gives up when the
// connection closes.
func TestLeanConnWriteTextStops(t *testing.T) {
	t.Run("after close frame", func(t *testing.T) {
		_, server := tcpPair(t)
		lc := newLeanConn(server, bufio.NewReader(server))
		if _, err := lc.Write([]byte{0x88, 2, 0x03, 0xe8}); err != nil { // close 1000
			t.Fatal(err)
		}
		if err := lc.WriteText([]byte(`{}`)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("WriteText after a close frame: %v, want net.ErrClosed", err)
		}
	})
	t.Run("unfinished frame", func(t *testing.T) {
		_, server := tcpPair(t)
		lc := newLeanConn(server, bufio.NewReader(server))
		frame := wsFrame(300, false, 1)
		if _, err := lc.Write(frame[:100]); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- lc.WriteText([]byte(`{}`)) }()
		testwait.For(t, 10*time.Second, "WriteText waiting for its turn", func() bool {
			lc.wmu.Lock()
			defer lc.wmu.Unlock()
			return lc.wturn != nil
		})
		if err := lc.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("WriteText waiting when the connection closed: %v, want net.ErrClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("WriteText still waiting 10 s after the connection closed")
		}
	})
}
