package router

import (
	"slices"
	"testing"
)

// seqs returns the seqs of msgs.
func seqs(msgs []*Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

// span returns from..to inclusive (nil when from > to).
func span(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// filledRing returns a ring of size starting at head start with messages
// start+1..start+n appended.
func filledRing(size int, start uint64, n int) *ring {
	g := newRing(size, start)
	for i := range n {
		g.append(&Message{Seq: start + uint64(i) + 1})
	}
	return g
}

func TestRingReadAfter(t *testing.T) {
	tests := []struct {
		name       string
		size       int
		start      uint64 // head before the appends (a recovered room)
		n          int    // messages appended
		after      uint64
		max        int
		want       []uint64
		wantHead   uint64
		wantInRing bool
	}{
		{name: "empty ring", size: 8, after: 0, max: 10, wantInRing: true},
		{name: "all from the start", size: 8, n: 5, after: 0, max: 10, want: span(1, 5), wantHead: 5, wantInRing: true},
		{name: "max limits", size: 8, n: 5, after: 1, max: 2, want: span(2, 3), wantHead: 5, wantInRing: true},
		{name: "at head", size: 8, n: 5, after: 5, max: 10, wantHead: 5, wantInRing: true},
		{name: "beyond head", size: 8, n: 5, after: 9, max: 10, wantHead: 5, wantInRing: true},
		{name: "wrapped keeps the newest", size: 8, n: 20, after: 12, max: 100, want: span(13, 20), wantHead: 20, wantInRing: true},
		{name: "wrapped, cursor behind the ring", size: 8, n: 20, after: 11, max: 100, wantHead: 20, wantInRing: false},
		{name: "grown past the initial buffer", size: 100, n: 90, after: 0, max: 100, want: span(1, 90), wantHead: 90, wantInRing: true},
		{name: "size not a power of two, wrapped", size: 37, n: 200, after: 163, max: 100, want: span(164, 200), wantHead: 200, wantInRing: true},
		{name: "recovered head, nothing held", size: 8, start: 40, after: 39, max: 10, wantHead: 40, wantInRing: false},
		{name: "recovered head, resumes live", size: 8, start: 40, n: 3, after: 40, max: 10, want: span(41, 43), wantHead: 43, wantInRing: true},
		{name: "zero max", size: 8, n: 3, after: 0, max: 0, wantHead: 3, wantInRing: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := filledRing(tt.size, tt.start, tt.n)
			got, head, ok := g.readAfter(nil, tt.after, tt.max)
			if ok != tt.wantInRing || head != tt.wantHead {
				t.Fatalf("readAfter(%d) head %d ok %v, want head %d ok %v", tt.after, head, ok, tt.wantHead, tt.wantInRing)
			}
			if !slices.Equal(seqs(got), tt.want) {
				t.Fatalf("readAfter(%d) = %v, want %v", tt.after, seqs(got), tt.want)
			}
		})
	}
}

func TestRingReadRange(t *testing.T) {
	tests := []struct {
		name     string
		size, n  int
		from, to uint64
		want     []uint64
		wantOK   bool
	}{
		{name: "inside", size: 8, n: 5, from: 2, to: 4, want: span(2, 4), wantOK: true},
		{name: "empty range", size: 8, n: 5, from: 4, to: 3, wantOK: true},
		{name: "beyond head", size: 8, n: 5, from: 4, to: 6, wantOK: false},
		{name: "older than the ring", size: 8, n: 20, from: 12, to: 20, wantOK: false},
		{name: "exactly the ring", size: 8, n: 20, from: 13, to: 20, want: span(13, 20), wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := filledRing(tt.size, 0, tt.n)
			got, ok := g.readRange(nil, tt.from, tt.to)
			if ok != tt.wantOK || !slices.Equal(seqs(got), tt.want) {
				t.Fatalf("readRange(%d, %d) = %v, %v; want %v, %v", tt.from, tt.to, seqs(got), ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestRingBoundsAndGap(t *testing.T) {
	g := filledRing(4, 0, 10)
	if head, oldest := g.bounds(); head != 10 || oldest != 7 {
		t.Fatalf("bounds = %d, %d; want 10, 7", head, oldest)
	}
	// A message missing (the wal failed to write seq 11): the ring restarts
	// at 12 rather than serving a gap.
	g.append(&Message{Seq: 12})
	if head, oldest := g.bounds(); head != 12 || oldest != 12 {
		t.Fatalf("bounds after gap = %d, %d; want 12, 12", head, oldest)
	}
	if _, _, ok := g.readAfter(nil, 10, 10); ok {
		t.Fatal("readAfter(10) served from the ring across a gap")
	}
}

func TestRingReadAfterAllocs(t *testing.T) {
	g := filledRing(64, 0, 200)
	buf := make([]*Message, 0, 64)
	allocs := testing.AllocsPerRun(100, func() {
		buf, _, _ = g.readAfter(buf[:0], 150, 64)
	})
	if allocs != 0 {
		t.Fatalf("readAfter allocates %.1f times per call, want 0", allocs)
	}
}
