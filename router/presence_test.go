package router

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/arena-mesh/arena/mesh"
)

func TestLocalPresence(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	k := presenceKey{room: "r", user: "ann"}
	type step struct {
		op      string // enter, close (graceful exit), drop, expire
		at      time.Duration
		changed bool // enter/close/drop: reported a change; expire: k expired
		count   int  // k's count after the step
	}
	tests := []struct {
		name  string
		grace time.Duration
		steps []step
	}{
		{"enter and close", 15 * time.Second, []step{
			{"enter", 0, true, 1},
			{"close", 1 * time.Second, true, 0},
		}},
		{"drop keeps the user for the grace period", 15 * time.Second, []step{
			{"enter", 0, true, 1},
			{"drop", 1 * time.Second, false, 1},
			{"expire", 15 * time.Second, false, 1},
			{"expire", 16 * time.Second, true, 0},
		}},
		{"reconnect within grace takes the dropped one's place", 15 * time.Second, []step{
			{"enter", 0, true, 1},
			{"drop", 1 * time.Second, false, 1},
			{"enter", 2 * time.Second, false, 1},
			{"expire", 20 * time.Second, false, 1},
			{"close", 21 * time.Second, true, 0},
		}},
		{"two connections, one dropped", 15 * time.Second, []step{
			{"enter", 0, true, 1},
			{"enter", 0, true, 2},
			{"drop", 1 * time.Second, false, 2},
			{"close", 2 * time.Second, true, 1},
			{"expire", 16 * time.Second, true, 0},
		}},
		{"two drops, one reconnect", 15 * time.Second, []step{
			{"enter", 0, true, 1},
			{"enter", 0, true, 2},
			{"drop", 0, false, 2},
			{"drop", 10 * time.Second, false, 2},
			{"enter", 11 * time.Second, false, 2},
			{"expire", 15 * time.Second, false, 2}, // the reclaimed one
			{"expire", 25 * time.Second, true, 1},
			{"close", 26 * time.Second, true, 0},
		}},
		{"no grace", 0, []step{
			{"enter", 0, true, 1},
			{"drop", 1 * time.Second, true, 0},
		}},
		{"exit without enter", 15 * time.Second, []step{
			{"close", 0, false, 0},
			{"drop", 0, false, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newLocalPresence(tt.grace)
			for i, s := range tt.steps {
				now := t0.Add(s.at)
				var changed bool
				switch s.op {
				case "enter":
					changed = p.enter(k)
				case "close":
					changed = p.exit(k, now, true)
				case "drop":
					changed = p.exit(k, now, false)
				case "expire":
					changed = slices.Contains(p.expire(now, nil), k)
				}
				if changed != s.changed || p.count(k) != s.count {
					t.Fatalf("step %d (%s at %v): changed %v count %d, want %v %d", i, s.op, s.at, changed, p.count(k), s.changed, s.count)
				}
			}
			// Everything expired: no bookkeeping is left behind.
			p.expire(t0.Add(time.Hour), nil)
			if p.count(k) == 0 && (len(p.conns) != 0 || len(p.graced) != 0 || len(p.reclaimed) != 0 || len(p.pendingGrace) != 0) {
				t.Fatalf("left over: conns %v graced %v reclaimed %v pending %v", p.conns, p.graced, p.reclaimed, p.pendingGrace)
			}
		})
	}
}

func TestHomePresence(t *testing.T) {
	type op struct {
		set   bool // set user on node to conns; else drop node
		user  string
		node  mesh.NodeID
		conns int
	}
	tests := []struct {
		name    string
		ops     []op
		want    []PresenceChange // flush after ops
		members []Member
	}{
		{"join", []op{{true, "ann", "a", 1}}, []PresenceChange{{"ann", true}}, []Member{{"ann", 1}}},
		{"join on two nodes sums", []op{{true, "ann", "a", 1}, {true, "ann", "b", 2}},
			[]PresenceChange{{"ann", true}}, []Member{{"ann", 3}}},
		{"join and leave in one interval cancel", []op{{true, "ann", "a", 1}, {true, "ann", "a", 0}}, nil, []Member{}},
		{"moves between nodes without change", []op{{true, "ann", "b", 1}, {true, "ann", "a", 0}}, nil, []Member{{"ann", 1}, {"bob", 2}, {"cy", 1}}},
		{"node dies", []op{{false, "", "a", 0}}, []PresenceChange{{"ann", false}, {"bob", false}}, []Member{{"cy", 1}}},
		{"sorted joins", []op{{true, "zed", "b", 1}, {true, "dan", "b", 1}}, []PresenceChange{{"dan", true}, {"zed", true}},
			[]Member{{"ann", 1}, {"bob", 2}, {"cy", 1}, {"dan", 1}, {"zed", 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHomePresence()
			if tt.name != "join" && tt.name != "join on two nodes sums" && tt.name != "join and leave in one interval cancel" {
				// A room with ann and bob on a, cy on b, announced.
				h.set("r", "ann", "a", 1)
				h.set("r", "bob", "a", 2)
				h.set("r", "cy", "b", 1)
				if got := h.flush("r", 100); len(got) != 3 {
					t.Fatalf("initial flush = %v", got)
				}
			}
			for _, o := range tt.ops {
				if o.set {
					h.set("r", o.user, o.node, o.conns)
				} else {
					h.dropNode(o.node)
				}
			}
			if got := h.flush("r", 100); !slices.Equal(got, tt.want) {
				t.Fatalf("flush = %v, want %v", got, tt.want)
			}
			if got := h.flush("r", 100); got != nil {
				t.Fatalf("second flush = %v, want nothing", got)
			}
			if got := h.members("r"); !slices.Equal(got, tt.members) {
				t.Fatalf("members = %v, want %v", got, tt.members)
			}
		})
	}
}

func TestHomePresenceFlushLimit(t *testing.T) {
	h := newHomePresence()
	for _, u := range []string{"a", "b", "c"} {
		h.set("r", u, "n", 1)
	}
	if got := h.flush("r", 2); len(got) != 2 {
		t.Fatalf("flush(2) = %v", got)
	}
	if rooms := h.dirtyRooms(nil); !slices.Equal(rooms, []string{"r"}) {
		t.Fatalf("dirty rooms = %v, want [r]", rooms)
	}
	if got := h.flush("r", 2); !slices.Equal(got, []PresenceChange{{"c", true}}) {
		t.Fatalf("second flush = %v", got)
	}
	if got := h.nodes("r", nil); !slices.Equal(got, []mesh.NodeID{"n"}) {
		t.Fatalf("nodes = %v", got)
	}
}

func TestHomeReceipts(t *testing.T) {
	h := newHomeReceipts()
	type step struct {
		user     string
		epoch    uint64
		seq      uint64
		read     bool
		from     uint64
		advanced bool
	}
	for i, s := range []step{
		{"ann", 7, 3, false, 3, true},
		{"ann", 7, 2, false, 0, false}, // not an advance
		{"ann", 7, 2, true, 1, true},   // read 1..2
		{"ann", 7, 5, true, 3, true},   // read 3..5, delivered follows
		{"ann", 7, 4, false, 0, false}, // delivered is 5 already
		{"ann", 8, 1, false, 1, true},  // a new epoch starts over
	} {
		from, adv := h.apply(s.user, "r", s.epoch, s.seq, s.read)
		if from != s.from || adv != s.advanced {
			t.Fatalf("step %d: apply = %d, %v; want %d, %v", i, from, adv, s.from, s.advanced)
		}
	}
	st, _ := h.get("ann", "r")
	if *st != (receiptState{epoch: 8, delivered: 1}) {
		t.Fatalf("state = %+v", *st)
	}
	dirty := h.takeDirty()
	if len(dirty) != 1 || dirty[0].Epoch != 8 || dirty[0].Delivered != 1 {
		t.Fatalf("takeDirty = %+v", dirty)
	}

	// Coalescing: one event per reader and kind, with the highest seq and
	// every publisher.
	h.addPending("r", "ann", EventRead, 3, []string{"bob"})
	h.addPending("r", "ann", EventRead, 5, []string{"cy", "bob"})
	h.addPending("r", "ann", EventDelivered, 5, []string{"cy"})
	evs := h.flush("r", nil, 100)
	want := []Event{
		{Kind: EventDelivered, Room: "r", User: "ann", Seq: 5, To: []string{"cy"}},
		{Kind: EventRead, Room: "r", User: "ann", Seq: 5, To: []string{"bob", "cy"}},
	}
	if len(evs) != len(want) {
		t.Fatalf("flush = %+v, want %+v", evs, want)
	}
	for i := range want {
		if evs[i].Kind != want[i].Kind || evs[i].User != want[i].User || evs[i].Seq != want[i].Seq || !slices.Equal(evs[i].To, want[i].To) {
			t.Fatalf("flush[%d] = %+v, want %+v", i, evs[i], want[i])
		}
	}
	if rooms := h.pendingRooms(nil); len(rooms) != 0 {
		t.Fatalf("pending rooms after flush = %v", rooms)
	}

	// Leaving the room keeps the positions not stored yet.
	h.apply("bob", "r", 8, 4, true)
	h.apply("cy", "r", 8, 1, true)
	h.takeDirty()
	h.apply("bob", "r", 8, 5, true)
	h.dropRoom("r")
	if _, ok := h.get("cy", "r"); ok {
		t.Fatal("dropRoom kept a stored position cached")
	}
	if d := h.takeDirty(); len(d) != 1 || d[0].User != "bob" || d[0].Read != 5 {
		t.Fatalf("takeDirty after dropRoom = %+v, want bob's position", d)
	}

	// Per-publisher limit: the rest waits for the next flush.
	for i := range maxReceiptsPerPublisher + 10 {
		h.addPending("r", string(rune('A'+i)), EventRead, 1, []string{"pub"})
	}
	if evs := h.flush("r", nil, 1000); len(evs) != maxReceiptsPerPublisher {
		t.Fatalf("first flush sent %d receipts to one publisher, want %d", len(evs), maxReceiptsPerPublisher)
	}
	if evs := h.flush("r", nil, 1000); len(evs) != 10 {
		t.Fatalf("second flush sent %d, want 10", len(evs))
	}
}

// homeUser keeps one node's count inline and the others in a map; any
// sequence of counts must read back as a plain map of them would.
func TestHomeUserCounts(t *testing.T) {
	nodes := []mesh.NodeID{"a", "b", "c"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var u homeUser
		want := map[mesh.NodeID]int{}
		for range 20 {
			node, n := nodes[rng.IntN(len(nodes))], rng.IntN(4)-1 // -1: removed, as 0
			u.setCount(node, n)
			if n > 0 {
				want[node] = n
			} else {
				delete(want, node)
			}
			total := 0
			for _, node := range nodes {
				if got := u.count(node); got != want[node] {
					t.Fatalf("count(%s) = %d, want %d (%+v)", node, got, want[node], u)
				}
				total += want[node]
			}
			if u.total != total {
				t.Fatalf("total = %d, want %d (%+v)", u.total, total, u)
			}
			got := u.appendNodes(nil)
			slices.Sort(got)
			wantNodes := slices.Sorted(maps.Keys(want))
			if !slices.Equal(got, wantNodes) {
				t.Fatalf("nodes = %v, want %v (%+v)", got, wantNodes, u)
			}
		}
	}
}
