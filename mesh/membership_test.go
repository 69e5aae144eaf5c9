package mesh

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestLeaveAndFailureDetection(t *testing.T) {
	ms, _ := cluster(t, 3, nil)
	a, b, c := ms[0], ms[1], ms[2]

	if err := b.Leave(t.Context()); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if err := b.Leave(t.Context()); err != nil {
		t.Fatalf("second leave: %v", err)
	}
	for _, m := range []*Mesh{a, c} {
		waitFor(t, converge, string(m.LocalID())+" sees n2 leave", func() bool { return sees(m, "n1", "n3") })
	}
	waitFor(t, converge, "n1 drops peer n2", func() bool {
		return errors.Is(a.Send(t.Context(), "n2", "k", []byte("x")), ErrUnknownPeer)
	})
	if err := b.Close(); err != nil {
		t.Fatalf("close after leave: %v", err)
	}

	// Killed: no leave broadcast, so only failure detection can tell.
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	waitFor(t, converge, "n1 declares n3 dead", func() bool { return sees(a, "n1") })
	waitFor(t, converge, "n1 drops peer n3", func() bool {
		return errors.Is(a.Send(t.Context(), "n3", "k", []byte("x")), ErrUnknownPeer)
	})
}

func TestPartitionHeals(t *testing.T) {
	wan := NewWAN(1)
	regions := map[NodeID]string{"n1": "east", "n2": "west", "n3": "west"}
	ms, recs := cluster(t, 3, func(c *Config) {
		c.WAN = wan
		c.Region = regions[c.NodeID]
	})
	a, b, c := ms[0], ms[1], ms[2]

	wan.SetBoth("east", "west", Link{Drop: 1})
	waitFor(t, converge, "n1 alone", func() bool { return sees(a, "n1") })
	for _, m := range []*Mesh{b, c} {
		waitFor(t, converge, string(m.LocalID())+" sees only the west", func() bool { return sees(m, "n2", "n3") })
	}

	wan.SetBoth("east", "west", Link{})
	for _, m := range ms {
		waitFor(t, converge, string(m.LocalID())+" sees all after heal", func() bool { return sees(m, ids(3)...) })
	}
	if v := counterValue(a.metrics.rejoins) + counterValue(b.metrics.rejoins) + counterValue(c.metrics.rejoins); v == 0 {
		t.Errorf("healed without a counted rejoin")
	}
	// The QUIC links come back too: frames cross the healed link.
	for i := range 10 {
		if err := a.Send(t.Context(), "n2", "room", fmt.Appendf(nil, "after-heal-%d", i)); err != nil {
			t.Fatalf("send after heal: %v", err)
		}
	}
	// Frames Sent once membership lists the peer again never go to the
	// connection from before the partition (which n2 may have torn down),
	// so none is lost; at most once and in order per key.
	waitFor(t, converge, "n2 receives frames from n1 after heal", func() bool {
		return len(afterHeal(recs[1].from("n1"))) >= 10
	})
	got := afterHeal(recs[1].from("n1"))
	for i, f := range got {
		if want := fmt.Sprintf("after-heal-%d", i); f != want {
			t.Fatalf("frame %d after heal = %q, want %q (all: %q)", i, f, want, got)
		}
	}
}

// afterHeal returns the frames of TestPartitionHeals sent after the heal.
func afterHeal(frames [][]byte) []string {
	var out []string
	for _, f := range frames {
		if s := string(f); strings.HasPrefix(s, "after-heal-") {
			out = append(out, s)
		}
	}
	return out
}
