package bench

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSeqSetMatchesMap adds numbers in several orders and checks every
// answer of SeqSet against a plain map.
func TestSeqSetMatchesMap(t *testing.T) {
	const n = 5000
	orders := map[string]func(r *rand.Rand) []uint64{
		"in order": func(*rand.Rand) []uint64 { return seq(1, n) },
		"reversed": func(*rand.Rand) []uint64 {
			s := seq(1, n)
			for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
				s[i], s[j] = s[j], s[i]
			}
			return s
		},
		"shuffled": func(r *rand.Rand) []uint64 {
			s := seq(1, n)
			r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
			return s
		},
		"gaps and repeats": func(r *rand.Rand) []uint64 {
			var s []uint64
			for i := 0; i < 2*n; i++ {
				s = append(s, uint64(r.IntN(n))+1)
			}
			return s
		},
		"nearly in order": func(r *rand.Rand) []uint64 {
			s := seq(1, n)
			for i := 0; i+1 < len(s); i += 1 + r.IntN(5) {
				s[i], s[i+1] = s[i+1], s[i]
			}
			return s[:len(s)-7] // a permanent gap at the end
		},
	}
	for name, order := range orders {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			var s SeqSet
			ref := map[uint64]bool{}
			for _, v := range order(r) {
				if got, want := s.Add(v), !ref[v]; got != want {
					t.Fatalf("Add(%d) = %v, want %v", v, got, want)
				}
				ref[v] = true
			}
			if s.Len() != uint64(len(ref)) {
				t.Fatalf("Len = %d, want %d", s.Len(), len(ref))
			}
			var max uint64
			for v := uint64(0); v <= n+chunkBits; v++ {
				if s.Has(v) != ref[v] {
					t.Fatalf("Has(%d) = %v, want %v", v, s.Has(v), ref[v])
				}
				if ref[v] {
					max = v
				}
			}
			if s.Max() != max {
				t.Fatalf("Max = %d, want %d", s.Max(), max)
			}
			// Missing against a second set built in another order.
			var want SeqSet
			refWant := map[uint64]bool{}
			for _, v := range orders["shuffled"](rand.New(rand.NewPCG(3, 4))) {
				if r.IntN(3) > 0 {
					want.Add(v)
					refWant[v] = true
				}
			}
			var missing uint64
			for v := range refWant {
				if !ref[v] {
					missing++
				}
			}
			if got := s.Missing(&want); got != missing {
				t.Fatalf("Missing = %d, want %d", got, missing)
			}
			var first []uint64
			for v := uint64(1); v <= n && len(first) < 10; v++ {
				if refWant[v] && !ref[v] {
					first = append(first, v)
				}
			}
			if got := s.MissingFrom(&want, 10); !slices.Equal(got, first) {
				t.Fatalf("MissingFrom = %v, want %v", got, first)
			}
		})
	}
}

func TestSeqSetZeroIsNeverAMember(t *testing.T) {
	var s SeqSet
	if s.Add(0) || s.Has(0) || s.Len() != 0 {
		t.Fatal("0 was taken as a member")
	}
}

// TestSeqSetInOrderKeepsNoChunks checks the point of the design: in-order
// numbers, and filled gaps, leave no bitmap behind.
func TestSeqSetInOrderKeepsNoChunks(t *testing.T) {
	var s SeqSet
	for v := uint64(1); v <= 10*chunkBits; v++ {
		s.Add(v)
	}
	for v := uint64(20 * chunkBits); v > 10*chunkBits; v-- {
		s.Add(v)
	}
	if len(s.chunks) != 0 || s.prefix != 20*chunkBits {
		t.Fatalf("after filling the gap: %d chunks, prefix %d", len(s.chunks), s.prefix)
	}
}

func seq(from, to uint64) []uint64 {
	s := make([]uint64, 0, to-from+1)
	for v := from; v <= to; v++ {
		s = append(s, v)
	}
	return s
}
