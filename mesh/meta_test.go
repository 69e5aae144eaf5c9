package mesh

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestMetaWireExample(t *testing.T) {
	got := appendMeta(nil, nodeMeta{Load: 7, Region: "eu"})
	if want := []byte{0x01, 0x07, 0x02, 0x65, 0x75, 0x00, 0x00}; !bytes.Equal(got, want) {
		t.Fatalf("encoding % x, want % x", got, want)
	}
	got = appendMeta(nil, nodeMeta{Load: 7, Region: "eu", Waiting: true})
	if want := []byte{0x01, 0x07, 0x02, 0x65, 0x75, 0x00, 0x01}; !bytes.Equal(got, want) {
		t.Fatalf("encoding, waiting: % x, want % x", got, want)
	}
	// Builds before the flags byte: not waiting.
	if m, err := decodeMeta([]byte{0x01, 0x07, 0x02, 0x65, 0x75, 0x00}); err != nil || m != (nodeMeta{Load: 7, Region: "eu"}) {
		t.Fatalf("decode without flags: %+v, %v", m, err)
	}
	// Reserved flag bits are ignored.
	if m, err := decodeMeta([]byte{0x01, 0x07, 0x02, 0x65, 0x75, 0x00, 0xfe}); err != nil || m.Waiting {
		t.Fatalf("decode with reserved flags: %+v, %v", m, err)
	}
}

func TestMetaRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		m    nodeMeta
	}{
		{"minimal", nodeMeta{Region: "r"}},
		{"waiting", nodeMeta{Region: "r", Waiting: true}},
		{"full", nodeMeta{Load: 1<<32 - 1, Region: "eu-west", ClientURL: "wss://eu.example.com/v1/ws"}},
		{"longest fields", nodeMeta{Load: 12345, Region: strings.Repeat("r", maxRegionLen), ClientURL: strings.Repeat("u", maxClientURLLen)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := appendMeta(nil, tt.m)
			if len(b) > memberlist.MetaMaxSize {
				t.Fatalf("encoded %d bytes, over memberlist's %d", len(b), memberlist.MetaMaxSize)
			}
			got, err := decodeMeta(b)
			if err != nil || got != tt.m {
				t.Fatalf("decode: %+v, %v; want %+v", got, err, tt.m)
			}
			// Trailing bytes are a later minor version's fields.
			if got, err := decodeMeta(append(b, 0xAA, 0xBB)); err != nil || got != tt.m {
				t.Fatalf("decode with trailing fields: %+v, %v", got, err)
			}
		})
	}
}

func TestMetaRejects(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"unknown version", []byte{2, 0, 1, 'r', 0}},
		{"no load", []byte{1}},
		{"load over uint32", append([]byte{1}, 0x80, 0x80, 0x80, 0x80, 0x10, 1, 'r', 0)},
		{"empty region", []byte{1, 0, 0, 0}},
		{"region too long", append([]byte{1, 0, 65}, bytes.Repeat([]byte("r"), 65)...)},
		{"region past the end", []byte{1, 0, 5, 'r'}},
		{"region not utf-8", []byte{1, 0, 1, 0xff, 0}},
		{"no url length", []byte{1, 0, 1, 'r'}},
		{"url past the end", []byte{1, 0, 1, 'r', 3, 'h'}},
		{"url too long", append([]byte{1, 0, 1, 'r', 0x91, 0x03}, bytes.Repeat([]byte("u"), 401)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if m, err := decodeMeta(tt.in); !errors.Is(err, ErrBadMeta) {
				t.Fatalf("decode % x: %+v, %v; want ErrBadMeta", tt.in, m, err)
			}
		})
	}
}

func FuzzMetaDecode(f *testing.F) {
	f.Add(appendMeta(nil, nodeMeta{Region: "r"}))
	f.Add(appendMeta(nil, nodeMeta{Load: 99, Region: "eu-west", ClientURL: "wss://eu.example.com/v1/ws"}))
	f.Add(append(appendMeta(nil, nodeMeta{Load: 1, Region: "x"}), 1, 2, 3))
	f.Add([]byte{1, 0x80, 0x80, 0x80, 0x80, 0x10})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeMeta(data)
		if err != nil {
			if !errors.Is(err, ErrBadMeta) {
				t.Fatalf("error %v does not wrap ErrBadMeta", err)
			}
			return
		}
		enc := appendMeta(nil, m)
		if len(enc) > memberlist.MetaMaxSize {
			t.Fatalf("decoded meta re-encodes to %d bytes", len(enc))
		}
		again, err := decodeMeta(enc)
		if err != nil || again != m {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, m)
		}
	})
}
