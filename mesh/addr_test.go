package mesh

import (
	"context"
	"net/netip"
	"testing"
)

// TestIsSelf: which seeds name the node itself, for a node bound to one
// address, one bound to all interfaces, and one advertising another
// address and port (behind a NAT).
func TestIsSelf(t *testing.T) {
	ap := netip.MustParseAddrPort
	cases := []struct {
		bound, advertise string
		seeds            map[string]bool
	}{
		{"127.0.0.1:7000", "127.0.0.1:7000", map[string]bool{
			"127.0.0.1:7000":          true,
			"localhost:7000":          true,
			"[::ffff:127.0.0.1]:7000": true,
			"127.0.0.1:7001":          false,
			"127.0.0.2:7000":          false,
			"localhost:7001":          false,
			"nohost.invalid:7000":     false,
			"127.0.0.1":               false,
			":7000":                   false,
		}},
		{"0.0.0.0:7000", "10.1.2.3:7000", map[string]bool{
			"10.1.2.3:7000":   true,
			"127.0.0.1:7000":  true,
			"127.0.0.9:7000":  true,
			"127.0.0.1:7001":  false,
			"10.1.2.3:7001":   false,
			"192.0.2.1:7000":  false, // TEST-NET-1: no interface has it
			"198.51.100.7:70": false,
		}},
		{"127.0.0.1:7000", "203.0.113.5:9000", map[string]bool{
			"203.0.113.5:9000": true,
			"127.0.0.1:7000":   true,
			"203.0.113.5:7000": false,
			"127.0.0.1:9000":   false,
		}},
	}
	for _, c := range cases {
		m := &Mesh{bound: ap(c.bound), advertise: ap(c.advertise)}
		for seed, want := range c.seeds {
			if got := m.isSelf(context.Background(), seed); got != want {
				t.Errorf("bound %s, advertising %s: isSelf(%q) = %v, want %v", c.bound, c.advertise, seed, got, want)
			}
		}
	}
}
