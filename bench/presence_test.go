package bench

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPresenceSpawn churns presence on a spawned node, closed loop and
// paced: the churn must be measured, the server's CPU reported, and no
// alarm raised (every watcher's view matched the room's presence, joins
// and leaves alternated, no subscribe failed).
func TestPresenceSpawn(t *testing.T) {
	bin := buildArena(t)
	tests := []struct {
		name string
		args []string
	}{
		{"closed loop", []string{"--watchers", "3", "--churners", "4"}},
		// 40 ops/s over 4 churners: each holds its subscription 100 ms,
		// long enough that most subscribes make a join.
		{"paced two rooms", []string{"--watchers", "4", "--churners", "4", "--rooms", "2", "--rate", "40"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"presence", "--spawn", "--server-bin", bin, "--duration", "1s", "--warmup", "200ms", "--settle", "200ms"}, tt.args...)
			res, _, err := runBench(t, args...)
			if err != nil {
				t.Fatalf("run failed: %v", err)
			}
			if len(res.Alarms) > 0 {
				t.Fatalf("alarms: %v", res.Alarms)
			}
			if churn := figure(t, res, "presence churn"); churn <= 0 {
				t.Fatalf("presence churn %v, want > 0", churn)
			}
			for _, name := range []string{"churn errors", "presence out of alternation", "rooms with wrong presence", "watcher views wrong"} {
				if v := figure(t, res, name); v != 0 {
					t.Fatalf("%s = %v, want 0", name, v)
				}
			}
			if figure(t, res, "server cpu") <= 0 {
				t.Fatal("server cpu not measured")
			}
			figure(t, res, "presence events received")
			figure(t, res, "views settled after")
			if len(res.Latencies) != 2 || res.Latencies[1].Count == 0 {
				t.Fatalf("latencies: %+v", res.Latencies)
			}
		})
	}
}

func TestPresenceRefusals(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"nats", []string{"presence", "--driver", "nats", "--url", "ws://127.0.0.1:1"}, "presence has no NATS equivalent"},
		{"one token", []string{"presence", "--url", "ws://127.0.0.1:1", "--token", "x"}, "a user per connection"},
		{"no churners", []string{"presence", "--url", "ws://127.0.0.1:1", "--churners", "0"}, "--churners >= 1"},
		{"negative rate", []string{"presence", "--url", "ws://127.0.0.1:1", "--rate", "-1"}, "--rate >= 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			err := Main(t.Context(), tt.args, &out, &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one saying %q", err, tt.want)
			}
		})
	}
}

func TestChurnerJoinLatency(t *testing.T) {
	c := &churner{}
	c.begin(100)
	c.acked(110)
	c.begin(200) // not acknowledged yet
	tests := []struct {
		name  string
		seen  int64
		lat   int64
		early bool
		ok    bool
	}{
		{"before any subscribe", 50, 0, false, false},
		{"before the first ack", 105, 0, true, true},
		{"after the first ack", 150, 40, false, true},
		{"before the second ack", 250, 0, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lat, early, ok := c.joinLatency(tt.seen)
			if lat != tt.lat || early != tt.early || ok != tt.ok {
				t.Fatalf("joinLatency(%d) = %d, %v, %v; want %d, %v, %v", tt.seen, lat, early, ok, tt.lat, tt.early, tt.ok)
			}
		})
	}
	c.acked(210)
	if lat, early, ok := c.joinLatency(260); lat != 50 || early || !ok {
		t.Fatalf("after the second ack: %d, %v, %v", lat, early, ok)
	}
}

func TestChurnerRingWraps(t *testing.T) {
	c := &churner{}
	for i := range int64(3 * churnRing) {
		c.begin(1000 * (i + 1))
		c.acked(1000*(i+1) + 10)
	}
	last := int64(1000 * 3 * churnRing)
	if lat, early, ok := c.joinLatency(last + 15); lat != 5 || early || !ok {
		t.Fatalf("latest cycle: %d, %v, %v", lat, early, ok)
	}
	// Older than the ring holds: no match rather than a wrong one.
	if _, _, ok := c.joinLatency(1500); ok {
		t.Fatal("a cycle that left the ring was matched")
	}
}

func TestWatcherApply(t *testing.T) {
	w := &watcher{view: make(map[string]bool)}
	w.addAll([]string{"w1"})
	steps := []struct {
		ev   PresenceEvent
		alt  bool
		want []string
	}{
		{PresenceEvent{Join: true, User: "a"}, true, []string{"a", "w1"}},
		{PresenceEvent{Join: true, User: "a"}, false, []string{"a", "w1"}},
		{PresenceEvent{User: "a"}, true, []string{"w1"}},
		{PresenceEvent{User: "a"}, false, []string{"w1"}},
		{PresenceEvent{User: "w1"}, true, nil},
	}
	for i, s := range steps {
		if alt := w.apply(s.ev); alt != s.alt {
			t.Fatalf("step %d %+v: alternates %v, want %v", i, s.ev, alt, s.alt)
		}
		if got := w.members(); !slices.Equal(got, s.want) && !(len(got) == 0 && len(s.want) == 0) {
			t.Fatalf("step %d: view %v, want %v", i, got, s.want)
		}
	}
}

func TestSetDiff(t *testing.T) {
	tests := []struct {
		name           string
		got, want      []string
		extra, missing []string
		text           string
	}{
		{"equal", []string{"a", "b"}, []string{"a", "b"}, nil, nil, ""},
		{"both empty", nil, nil, nil, nil, ""},
		{"extra", []string{"a", "b", "c"}, []string{"b"}, []string{"a", "c"}, nil, "2 extra [a c]"},
		{"missing", nil, []string{"x"}, nil, []string{"x"}, "1 missing [x]"},
		{"both", []string{"a", "c"}, []string{"b", "c"}, []string{"a"}, []string{"b"}, "1 extra [a], 1 missing [b]"},
		{"long", []string{"a", "b", "c", "d", "e"}, nil, []string{"a", "b", "c", "d", "e"}, nil, "5 extra [a b c and 2 more]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extra, missing := setDiff(tt.got, tt.want)
			if !slices.Equal(extra, tt.extra) || !slices.Equal(missing, tt.missing) {
				t.Fatalf("setDiff = %v, %v; want %v, %v", extra, missing, tt.extra, tt.missing)
			}
			if text := diffText(extra, missing); text != tt.text {
				t.Fatalf("diffText = %q, want %q", text, tt.text)
			}
		})
	}
}

// TestPresenceCheckCatches sets up a presence run on a real node and
// makes the room's presence and a watcher's view wrong on purpose: the
// check the scenario ends with must see both.
func TestPresenceCheckCatches(t *testing.T) {
	bin := buildArena(t)
	node, err := StartNode(t.Context(), NodeConfig{Bin: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Close)
	p := &Params{Scenario: "presence", Driver: "arena", Rooms: 1, Watchers: 2, Churners: 1, Drain: Duration(30 * time.Second)}
	r := newRun(p, arenaDriver{}, io.Discard)
	r.setURLs([]string{node.URL()})
	t.Cleanup(r.closeAll)
	pr := newPresenceRun(r)
	if err := pr.setup(t.Context()); err != nil {
		t.Fatal(err)
	}
	if chk := pr.check(t.Context(), true); chk.bad != 0 {
		t.Fatalf("right after setup: %+v", chk)
	}

	// A view with a user nobody announced.
	pr.watchers[0].apply(PresenceEvent{Join: true, User: "ghost"})
	chk := pr.check(t.Context(), true)
	if chk.views != 1 || chk.rooms != 0 || !strings.Contains(strings.Join(chk.detail, " "), "1 extra [ghost]") {
		t.Fatalf("a ghost in a view: %+v", chk)
	}
	pr.watchers[0].apply(PresenceEvent{User: "ghost"})

	// A churner left subscribed: the room's presence is no longer its
	// watchers, once the server has it.
	c := pr.churners[0]
	if err := pr.churnOp(t.Context(), 0, c, true, r.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(t.Context(), 30*time.Second, func() bool { return pr.check(t.Context(), false).rooms == 1 }) {
		t.Fatalf("a churner still in the room was not seen: %+v", pr.check(t.Context(), false))
	}
	// Unsubscribed again, everything must come back.
	if err := pr.churnOp(t.Context(), 0, c, false, r.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(t.Context(), 30*time.Second, func() bool { return pr.check(t.Context(), true).bad == 0 }) {
		t.Fatalf("after the churner left: %+v", pr.check(t.Context(), true))
	}
	if pr.ops.Load() != 2 || pr.opErrors.Load() != 0 || pr.violations.Load() != 0 {
		t.Fatalf("ops %d, errors %d, violations %d", pr.ops.Load(), pr.opErrors.Load(), pr.violations.Load())
	}
}
