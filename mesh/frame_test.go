package mesh

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// encodeStream builds a stream: header then frames.
func encodeStream(lane byte, frames ...[]byte) []byte {
	b := []byte{streamVersion, lane}
	for _, f := range frames {
		b = appendFrame(b, f)
	}
	return b
}

func TestFrameWireExample(t *testing.T) {
	// The example in frame.go's documentation.
	got := encodeStream(3, []byte("hi"), nil)
	if want := []byte{0x01, 0x03, 0x02, 0x68, 0x69, 0x00}; !bytes.Equal(got, want) {
		t.Fatalf("encoding % x, want % x", got, want)
	}
}

func TestFrameReader(t *testing.T) {
	big := bytes.Repeat([]byte("z"), 300) // larger than the reader's buffer below
	tests := []struct {
		name    string
		in      []byte
		want    []string
		wantErr error // after the frames; io.EOF for a clean end
	}{
		{"empty stream", encodeStream(0), nil, io.EOF},
		{"frames", encodeStream(1, []byte("a"), []byte(""), []byte("hello")), []string{"a", "", "hello"}, io.EOF},
		{"frame larger than the buffer", encodeStream(2, []byte("x"), big, []byte("y")), []string{"x", string(big), "y"}, io.EOF},
		{"at the limit", encodeStream(0, bytes.Repeat([]byte("m"), 512)), []string{strings.Repeat("m", 512)}, io.EOF},
		{"over the limit", encodeStream(0, bytes.Repeat([]byte("m"), 513)), nil, ErrBadFrame},
		{"huge length", append([]byte{1, 0}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), nil, ErrBadFrame},
		{"non-minimal length", []byte{1, 0, 0x81, 0x00, 'a'}, nil, ErrBadFrame},
		// Ten length bytes whose last one's bits shift out of 64: it
		// decoded as an empty frame (found by FuzzFrameDecode).
		{"length overflowing 64 bits", []byte{1, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x30}, nil, ErrBadFrame},
		{"length of 5 bytes", []byte{1, 0, 0x80, 0x80, 0x80, 0x80, 0x01}, nil, ErrBadFrame},
		{"truncated payload", []byte{1, 0, 0x05, 'a', 'b'}, nil, ErrBadFrame},
		{"truncated length", []byte{1, 0, 0x02, 'a', 'b', 0x80}, []string{"ab"}, ErrBadFrame},
		{"bad version", []byte{2, 0, 0x01, 'a'}, nil, ErrBadFrame},
		{"truncated header", []byte{1}, nil, ErrBadFrame},
		{"no header", nil, nil, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := newFrameReader(bytes.NewReader(tt.in), 16, 512)
			var got []string
			_, err := readStreamHeader(fr.br)
			for err == nil {
				var f []byte
				if f, err = fr.next(); err == nil {
					got = append(got, string(f))
				}
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("frames %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLaneOfSpreadsKeys(t *testing.T) {
	var used [Lanes]int
	for i := range 1000 {
		used[laneOf("room-"+string(rune('a'+i%26))+string(rune('a'+i/26)))]++
	}
	for l, n := range used {
		if n == 0 {
			t.Errorf("lane %d never used by 1000 keys", l)
		}
	}
	if laneOf("same") != laneOf("same") {
		t.Fatal("laneOf not deterministic")
	}
}

func FuzzFrameDecode(f *testing.F) {
	f.Add(encodeStream(0))
	f.Add(encodeStream(1, []byte("a"), []byte(""), []byte("hello")))
	f.Add(encodeStream(15, bytes.Repeat([]byte("q"), 200), []byte("tail")))
	f.Add(encodeStream(3, bytes.Repeat([]byte("m"), 1024)))
	f.Add([]byte{1, 0, 0x81, 0x00})
	f.Add([]byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := newFrameReader(bytes.NewReader(data), 16, 1024)
		if _, err := readStreamHeader(fr.br); err != nil {
			if !errors.Is(err, ErrBadFrame) && err != io.EOF {
				t.Fatalf("header error %v is neither ErrBadFrame nor EOF", err)
			}
			return
		}
		// Every decoded frame re-encodes to exactly the bytes it came from.
		off := streamHeaderLen
		for {
			p, err := fr.next()
			if err != nil {
				if !errors.Is(err, ErrBadFrame) && err != io.EOF {
					t.Fatalf("error %v is neither ErrBadFrame nor EOF", err)
				}
				if err == io.EOF && off != len(data) {
					t.Fatalf("clean EOF at %d of %d bytes", off, len(data))
				}
				return
			}
			if len(p) > 1024 {
				t.Fatalf("frame of %d bytes over the limit", len(p))
			}
			enc := appendFrame(nil, p)
			if !bytes.HasPrefix(data[off:], enc) {
				t.Fatalf("frame at %d re-encodes to % x, input has % x", off, enc, data[off:min(len(data), off+len(enc))])
			}
			off += len(enc)
		}
	})
}
