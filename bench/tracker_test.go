package bench

import (
	"testing"

	"github.com/arena-mesh/arena/protocol"
)

// delivery is one delivery fed to a Tracker in a test: stream, n, and
// the room position (seq 0: the driver gives none).
type delivery struct {
	stream uint32
	n      uint64
	seq    uint64
	epoch  uint64
}

func TestTrackerCounts(t *testing.T) {
	tests := []struct {
		name    string
		streams []uint32
		acked   map[uint32][]uint64 // what each publisher had acknowledged
		got     []delivery
		want    Counts
	}{
		{
			name:    "clean",
			streams: []uint32{0},
			acked:   map[uint32][]uint64{0: seq(1, 5)},
			got:     []delivery{{0, 1, 0, 0}, {0, 2, 0, 0}, {0, 3, 0, 0}, {0, 4, 0, 0}, {0, 5, 0, 0}},
			want:    Counts{Expected: 5, Received: 5},
		},
		{
			name:    "lossy",
			streams: []uint32{0},
			acked:   map[uint32][]uint64{0: seq(1, 6)},
			got:     []delivery{{0, 1, 0, 0}, {0, 3, 0, 0}, {0, 4, 0, 0}, {0, 6, 0, 0}},
			want:    Counts{Expected: 6, Received: 4, Lost: 2},
		},
		{
			name:    "duplicated",
			streams: []uint32{0},
			acked:   map[uint32][]uint64{0: seq(1, 3)},
			got:     []delivery{{0, 1, 0, 0}, {0, 2, 0, 0}, {0, 2, 0, 0}, {0, 3, 0, 0}, {0, 1, 0, 0}, {0, 3, 0, 0}},
			want:    Counts{Expected: 3, Received: 3, Duplicated: 3},
		},
		{
			name:    "reordered by n without positions",
			streams: []uint32{0},
			acked:   map[uint32][]uint64{0: seq(1, 5)},
			got:     []delivery{{0, 2, 0, 0}, {0, 1, 0, 0}, {0, 5, 0, 0}, {0, 3, 0, 0}, {0, 4, 0, 0}},
			want:    Counts{Expected: 5, Received: 5, OutOfOrder: 3},
		},
		{
			// Concurrent publishes may be sequenced in any order: n going
			// back is fine as long as the room's seq goes forward.
			name:    "n out of order but seq in order",
			streams: []uint32{0},
			acked:   map[uint32][]uint64{0: seq(1, 3)},
			got:     []delivery{{0, 2, 1, 7}, {0, 1, 2, 7}, {0, 3, 3, 7}},
			want:    Counts{Expected: 3, Received: 3},
		},
		{
			name:    "seq going back",
			streams: []uint32{0},
			acked:   map[uint32][]uint64{0: seq(1, 3)},
			got:     []delivery{{0, 1, 1, 7}, {0, 3, 3, 7}, {0, 2, 2, 7}},
			want:    Counts{Expected: 3, Received: 3, OutOfOrder: 1},
		},
		{
			name:    "new epoch",
			streams: []uint32{0},
			acked:   map[uint32][]uint64{0: seq(1, 3)},
			got:     []delivery{{0, 1, 1, 7}, {0, 2, 1, 9}, {0, 3, 2, 9}},
			want:    Counts{Expected: 3, Received: 3, Epochs: 1},
		},
		{
			// A message delivered but whose publish failed (never acked)
			// is neither expected nor lost; an unacked one that never came
			// is not lost either.
			name:    "unacknowledged messages",
			streams: []uint32{0},
			acked:   map[uint32][]uint64{0: {1, 2, 4}},
			got:     []delivery{{0, 1, 0, 0}, {0, 3, 0, 0}, {0, 4, 0, 0}},
			want:    Counts{Expected: 3, Received: 3, Lost: 1},
		},
		{
			name:    "several streams and a stranger",
			streams: []uint32{0, 1},
			acked:   map[uint32][]uint64{0: seq(1, 3), 1: seq(1, 2), 2: seq(1, 9)},
			got:     []delivery{{0, 1, 0, 0}, {1, 1, 0, 0}, {0, 2, 0, 0}, {2, 1, 0, 0}, {0, 3, 0, 0}},
			want:    Counts{Expected: 5, Received: 4, Lost: 1, Unexpected: 1},
		},
		{
			name:    "nothing arrived",
			streams: []uint32{0},
			acked:   map[uint32][]uint64{0: seq(1, 4)},
			want:    Counts{Expected: 4, Lost: 4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker(tt.streams...)
			for _, d := range tt.got {
				tr.Observe(Payload{Stream: d.stream, N: d.n}, protocol.Position{Epoch: d.epoch, Seq: d.seq})
			}
			sets := map[uint32]*SeqSet{}
			for s, ns := range tt.acked {
				sets[s] = new(SeqSet)
				for _, n := range ns {
					sets[s].Add(n)
				}
			}
			got := tr.Counts(func(s uint32) *SeqSet { return sets[s] })
			if got != tt.want {
				t.Fatalf("counts = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestTrackerVerdicts(t *testing.T) {
	tr := NewTracker(0)
	steps := []struct {
		n    uint64
		want Verdict
	}{{1, New}, {3, New}, {2, Late}, {3, Duplicate}, {4, New}}
	for _, s := range steps {
		if got := tr.Observe(Payload{N: s.n}, protocol.Position{}); got != s.want {
			t.Fatalf("Observe(%d) = %v, want %v", s.n, got, s.want)
		}
	}
	if got := tr.Observe(Payload{Stream: 5, N: 1}, protocol.Position{}); got != Unexpected {
		t.Fatalf("stream 5: %v, want Unexpected", got)
	}
}
