package router

import (
	"fmt"
	"testing"

	"github.com/arena-mesh/arena/mesh"
)

func members(spec ...string) []mesh.Member {
	var ms []mesh.Member
	for i := 0; i+1 < len(spec); i += 2 {
		ms = append(ms, mesh.Member{ID: mesh.NodeID(spec[i]), Region: spec[i+1]})
	}
	return ms
}

func TestPlacementRegion(t *testing.T) {
	p := Placement{
		Rules: []PlacementRule{
			{Prefix: "eu:", Region: "eu"},
			{Prefix: "eu:us:", Region: "us"},
			{Prefix: "ap", Region: "ap"},
		},
		DefaultRegion: "us",
	}
	tests := []struct{ room, want string }{
		{"eu:lobby", "eu"},
		{"eu:us:lobby", "us"}, // longest prefix wins
		{"apple", "ap"},
		{"chat", "us"},
		{"", "us"},
	}
	for _, tt := range tests {
		t.Run(tt.room, func(t *testing.T) {
			if got := p.Region(tt.room); got != tt.want {
				t.Fatalf("Region(%q) = %q, want %q", tt.room, got, tt.want)
			}
		})
	}
	var zero Placement
	if got := zero.Region("x"); got != "" {
		t.Fatalf("zero Placement Region = %q, want none", got)
	}
}

func TestHome(t *testing.T) {
	ms := members("a", "eu", "b", "eu", "c", "us", "d", "us")
	tests := []struct {
		name    string
		region  string
		members []mesh.Member
		inSet   []mesh.NodeID
	}{
		{"no members", "", nil, []mesh.NodeID{""}},
		{"single", "", members("a", "eu"), []mesh.NodeID{"a"}},
		{"region eu", "eu", ms, []mesh.NodeID{"a", "b"}},
		{"region us", "us", ms, []mesh.NodeID{"c", "d"}},
		{"empty region falls back to all", "ap", ms, []mesh.NodeID{"a", "b", "c", "d"}},
		{"no region", "", ms, []mesh.NodeID{"a", "b", "c", "d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[mesh.NodeID]bool{}
			for i := range 200 {
				room := fmt.Sprintf("room-%d", i)
				h := Home(room, tt.region, tt.members)
				ok := false
				for _, want := range tt.inSet {
					ok = ok || h == want
				}
				if !ok {
					t.Fatalf("Home(%q, %q) = %q, want one of %v", room, tt.region, h, tt.inSet)
				}
				// Pure: same answer whatever the member order.
				rev := make([]mesh.Member, len(tt.members))
				for j, m := range tt.members {
					rev[len(rev)-1-j] = m
				}
				if h2 := Home(room, tt.region, rev); h2 != h {
					t.Fatalf("Home(%q) depends on member order: %q vs %q", room, h, h2)
				}
				seen[h] = true
			}
			if len(seen) != len(tt.inSet) {
				t.Fatalf("200 rooms used homes %v, want all of %v", seen, tt.inSet)
			}
		})
	}
}

// TestHomeMinimalMovement: adding a node moves only the rooms the new node
// wins (about 1/N of them), and removing it moves them back.
func TestHomeMinimalMovement(t *testing.T) {
	const rooms = 10000
	for _, n := range []int{1, 3, 8} {
		t.Run(fmt.Sprintf("%d+1 nodes", n), func(t *testing.T) {
			var before []mesh.Member
			for i := range n {
				before = append(before, mesh.Member{ID: mesh.NodeID(fmt.Sprintf("node-%d", i))})
			}
			after := append(append([]mesh.Member(nil), before...), mesh.Member{ID: "new"})
			moved := 0
			for i := range rooms {
				room := fmt.Sprintf("chat:%d", i)
				h0, h1 := Home(room, "", before), Home(room, "", after)
				if h0 != h1 {
					if h1 != "new" {
						t.Fatalf("room %q moved from %q to %q, not to the new node", room, h0, h1)
					}
					moved++
				}
			}
			want := rooms / (n + 1)
			if moved < want*8/10 || moved > want*12/10 {
				t.Fatalf("%d of %d rooms moved to the new node, want about %d", moved, rooms, want)
			}
		})
	}
}

func BenchmarkHome(b *testing.B) {
	ms := members("a", "eu", "b", "eu", "c", "us", "d", "us", "e", "ap")
	b.ReportAllocs()
	for b.Loop() {
		_ = Home("chat:lobby:1234", "eu", ms)
	}
}
