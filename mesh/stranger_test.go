package mesh

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

func TestStrangerCannotJoinOrConnect(t *testing.T) {
	ms, _ := cluster(t, 2, nil)
	a, b := ms[0], ms[1]

	scfg := testConfig(t, "stranger", "r1", a.Addr())
	scfg.ClusterKey = []byte("another cluster's key, 32 bytes!")
	s := startMesh(t, scfg)

	// Gossip: a join with the wrong key is rejected on both ends (the
	// stranger's own join loop keeps trying in the background too).
	if n, err := s.list.Join([]string{a.Addr()}); n != 0 || err == nil {
		t.Fatalf("stranger join: reached %d, err %v; want rejection", n, err)
	}
	// A legitimate node joining afterwards is the barrier: once everyone
	// sees it, anything the stranger's attempt could have spread has too.
	ccfg := testConfig(t, "n3", "r1", a.Addr())
	c := startMesh(t, ccfg)
	for _, m := range []*Mesh{a, b, c} {
		waitFor(t, converge, string(m.LocalID())+" sees n1..n3", func() bool { return sees(m, ids(3)...) })
	}
	if !sees(s, "stranger") {
		t.Errorf("stranger sees %v, want only itself", s.Members())
	}
	if s.HasJoined() {
		t.Errorf("stranger reports joined")
	}

	// QUIC, through the mesh's own dialer: the stranger rejects n1's
	// certificate (and would be rejected by n1) and counts it.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if c, err := s.dial(ctx, a.LocalID(), a.advertise); err == nil {
		_ = c.CloseWithError(0, "")
		t.Fatalf("stranger's mesh dial to n1 succeeded")
	}
	if v := counterValue(s.metrics.handshakeFailures.WithLabelValues(tlsClientLabel)); v != 1 {
		t.Errorf("stranger counted %v client handshake failures, want 1", v)
	}

	// QUIC, by an attacker who does not check n1's certificate: n1 must
	// reject it, count it, and never take it for a peer.
	otherCA, err := deriveCA([]byte("yet another key, also 32 bytes!!"))
	if err != nil {
		t.Fatal(err)
	}
	evilCert, err := otherCA.issue("evil", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		certs []tls.Certificate
	}{
		{"certificate from another cluster", []tls.Certificate{evilCert}},
		{"no certificate", nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := &tls.Config{InsecureSkipVerify: true, Certificates: tt.certs, NextProtos: []string{alpn}}
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			conn, err := quic.DialAddr(ctx, a.Addr(), tc, &quic.Config{})
			if err == nil {
				// TLS 1.3 lets the client finish before the server has
				// checked its certificate; the server then closes.
				if s, serr := conn.OpenUniStreamSync(ctx); serr == nil {
					_, _ = s.Write([]byte{streamVersion, 0, 1, 'x'})
				}
				select {
				case <-conn.Context().Done():
				case <-ctx.Done():
					t.Fatalf("attacker's connection still open")
				}
				var te *quic.TransportError
				if cause := context.Cause(conn.Context()); !errors.As(cause, &te) {
					t.Errorf("attacker's connection ended with %v, want a TLS transport error", cause)
				}
			}
			want := float64(i + 1)
			waitFor(t, 5*time.Second, "n1 counts the rejected handshake", func() bool {
				return counterValue(a.metrics.handshakeFailures.WithLabelValues(tlsServerLabel)) == want
			})
			if p := (*a.peers.Load())["evil"]; p != nil {
				t.Errorf("n1 has a peer for the attacker")
			}
		})
	}
}
