package bench

import (
	"math/bits"
	"slices"
)

// SeqSet is a set of message numbers 1, 2, 3, ... that is cheap when the
// numbers arrive mostly in order, as they do: it keeps the longest run
// 1..prefix that is complete as a single number, and only the numbers
// above it in a sparse bitmap of fixed-size chunks. In-order arrival
// costs no memory at all; a gap costs one bit per number that arrived
// after it until the gap is filled. A chunk that fills up is replaced by a
// shared "full" marker so that a permanent gap (a lost message) does not
// keep a bitmap per chunk alive.
//
// The zero value is an empty set. A SeqSet is not safe for concurrent use.
type SeqSet struct {
	prefix uint64            // every n in 1..prefix is in the set
	chunks map[uint64]*chunk // chunk index ((n-1)/chunkBits) -> members above prefix
	count  uint64            // members in all
}

const (
	chunkWords = 16
	chunkBits  = chunkWords * 64
)

type chunk [chunkWords]uint64

// fullChunk stands for a chunk whose every bit is set. It is never
// written to.
var fullChunk = func() *chunk {
	var c chunk
	for i := range c {
		c[i] = ^uint64(0)
	}
	return &c
}()

// Add puts n in the set and reports whether it was new. Zero is never a
// member (numbering starts at 1) and is reported as not new.
func (s *SeqSet) Add(n uint64) bool {
	if n <= s.prefix {
		return false
	}
	if n == s.prefix+1 && len(s.chunks) == 0 {
		s.prefix++ // the common case: in order, nothing pending
		s.count++
		return true
	}
	idx, bit := (n-1)/chunkBits, (n-1)%chunkBits
	c := s.chunks[idx]
	if c == fullChunk || (c != nil && c[bit/64]&(1<<(bit%64)) != 0) {
		return false
	}
	if c == nil {
		if s.chunks == nil {
			s.chunks = make(map[uint64]*chunk)
		}
		c = new(chunk)
		s.chunks[idx] = c
	}
	c[bit/64] |= 1 << (bit % 64)
	s.count++
	if isFull(c) {
		s.chunks[idx] = fullChunk
	}
	if n == s.prefix+1 {
		s.advance()
	}
	return true
}

// advance moves prefix over the members just above it and drops the
// chunks it passes.
func (s *SeqSet) advance() {
	for {
		idx, bit := s.prefix/chunkBits, s.prefix%chunkBits // chunk of prefix+1
		c := s.chunks[idx]
		if c == nil {
			return
		}
		if c == fullChunk && bit == 0 {
			s.prefix += chunkBits
			delete(s.chunks, idx)
			continue
		}
		// Count the set bits from bit upwards.
		for bit < chunkBits && c[bit/64]&(1<<(bit%64)) != 0 {
			bit++
			s.prefix++
		}
		if bit < chunkBits {
			return
		}
		delete(s.chunks, idx)
	}
}

func isFull(c *chunk) bool {
	for _, w := range c {
		if w != ^uint64(0) {
			return false
		}
	}
	return true
}

// Has reports whether n is in the set.
func (s *SeqSet) Has(n uint64) bool {
	if n == 0 {
		return false
	}
	if n <= s.prefix {
		return true
	}
	c := s.chunks[(n-1)/chunkBits]
	bit := (n - 1) % chunkBits
	return c != nil && c[bit/64]&(1<<(bit%64)) != 0
}

// Len returns the number of members.
func (s *SeqSet) Len() uint64 { return s.count }

// Max returns the largest member, 0 for an empty set.
func (s *SeqSet) Max() uint64 {
	max := s.prefix
	for idx, c := range s.chunks {
		for w := chunkWords - 1; w >= 0; w-- {
			if c[w] != 0 {
				n := idx*chunkBits + uint64(w)*64 + uint64(63-bits.LeadingZeros64(c[w])) + 1
				if n > max {
					max = n
				}
				break
			}
		}
	}
	return max
}

// Missing returns how many members of want are not in s.
func (s *SeqSet) Missing(want *SeqSet) uint64 {
	// The members of want are 1..want.prefix and the bits of its chunks
	// above want.prefix (a chunk the prefix has partly passed keeps its
	// lower bits until the prefix leaves it).
	have := s.countIn(0, want.prefix)
	for idx, c := range want.chunks {
		for w, word := range c {
			for word != 0 {
				b := uint64(bits.TrailingZeros64(word))
				word &= word - 1
				n := idx*chunkBits + uint64(w)*64 + b + 1
				if n > want.prefix && s.Has(n) {
					have++
				}
			}
		}
	}
	return want.count - have
}

// MissingFrom returns up to max members of want that are not in s,
// smallest first.
func (s *SeqSet) MissingFrom(want *SeqSet, max int) []uint64 {
	var out []uint64
	for n := uint64(1); n <= want.prefix && len(out) < max; n++ {
		if !s.Has(n) {
			out = append(out, n)
		}
	}
	if len(out) >= max {
		return out
	}
	idxs := make([]uint64, 0, len(want.chunks))
	for idx := range want.chunks {
		idxs = append(idxs, idx)
	}
	slices.Sort(idxs)
	for _, idx := range idxs {
		c := want.chunks[idx]
		for b := uint64(0); b < chunkBits && len(out) < max; b++ {
			n := idx*chunkBits + b + 1
			if n > want.prefix && c[b/64]&(1<<(b%64)) != 0 && !s.Has(n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// countIn returns how many members are in lo+1..hi.
func (s *SeqSet) countIn(lo, hi uint64) uint64 {
	if hi <= lo {
		return 0
	}
	var n uint64
	if s.prefix > lo {
		n = min(s.prefix, hi) - lo
	}
	// Chunk bits count only above the prefix.
	lo = max(lo, s.prefix)
	for idx, c := range s.chunks {
		first := idx*chunkBits + 1 // the number of the chunk's bit 0
		last := first + chunkBits - 1
		if last <= lo || first > hi {
			continue
		}
		if first > lo && last <= hi {
			n += uint64(popcount(c))
			continue
		}
		for v := max(first, lo+1); v <= min(last, hi); v++ {
			b := v - first
			if c[b/64]&(1<<(b%64)) != 0 {
				n++
			}
		}
	}
	return n
}

func popcount(c *chunk) int {
	n := 0
	for _, w := range c {
		n += bits.OnesCount64(w)
	}
	return n
}
