package mesh

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestClusterCA(t *testing.T) {
	now := time.Now()
	ca1, err := deriveCA(testKey)
	if err != nil {
		t.Fatal(err)
	}
	ca2, err := deriveCA(testKey)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca1.cert.Raw, ca2.cert.Raw) {
		t.Errorf("same key derived different CA certificates")
	}
	other, err := deriveCA([]byte("some other key, also 32 bytes!!!"))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca2.issue("n1", now)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := other.issue("n1", now)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		certs   [][]byte
		expect  NodeID
		wantID  NodeID
		wantErr bool
	}{
		{"cluster leaf", leaf.Certificate, "", "n1", false},
		{"cluster leaf, expected id", leaf.Certificate, "n1", "n1", false},
		{"cluster leaf, other id expected", leaf.Certificate, "n2", "", true},
		{"other cluster's leaf", stranger.Certificate, "", "", true},
		{"no certificate", nil, "", "", true},
		{"garbage", [][]byte{[]byte("not a certificate")}, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := ca1.verify(tt.certs, tt.expect, now)
			if (err != nil) != tt.wantErr || id != tt.wantID {
				t.Fatalf("verify: %q, %v", id, err)
			}
			if err != nil && !errors.Is(err, errNotCluster) {
				t.Fatalf("error %v does not wrap errNotCluster", err)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	if len(DevClusterKey) != 32 {
		t.Fatalf("DevClusterKey is %d bytes", len(DevClusterKey))
	}
	tests := []struct {
		name string
		cfg  Config
		ok   bool
		want string // in the error
	}{
		{"no node id", Config{Bind: "127.0.0.1:0"}, false, "node id"},
		{"bad key length", Config{NodeID: "a", Bind: "127.0.0.1:0", ClusterKey: []byte("short")}, false, "cluster key is 5 bytes"},
		{"dev key on loopback", Config{NodeID: "a", Bind: "127.0.0.1:0"}, true, ""},
		{"dev key on all interfaces", Config{NodeID: "a", Bind: ":0"}, false, "cluster key is required"},
		{"dev key, advertised off loopback", Config{NodeID: "a", Bind: "127.0.0.1:0", Advertise: "10.1.2.3:7946"}, false, "cluster key is required"},
		{"region too long", Config{NodeID: "a", Bind: "127.0.0.1:0", Region: string(make([]byte, 65))}, false, "region"},
		{"negative timing", Config{NodeID: "a", Bind: "127.0.0.1:0", Timing: Timing{ProbeInterval: -1}}, false, "negative timing"},
		{"bad bind", Config{NodeID: "a", Bind: "nonsense"}, false, "cluster key"},
		{"bad bind with key", Config{NodeID: "a", Bind: "nonsense", ClusterKey: testKey}, false, "bind mesh port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(t.Context(), tt.cfg)
			if err == nil {
				_ = m.Close()
			}
			if (err == nil) != tt.ok || err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want ok=%v and an error containing %q", err, tt.ok, tt.want)
			}
		})
	}
}

func TestDevKeyMeshOnLoopback(t *testing.T) {
	rec := newRecorder()
	mk := func(id string, join ...string) *Mesh {
		cfg := testConfig(t, id, "r1", join...)
		cfg.ClusterKey = nil
		cfg.Handler = rec.handle
		return startMesh(t, cfg)
	}
	a := mk("n1")
	b := mk("n2", a.Addr())
	waitFor(t, converge, "dev mesh joins", func() bool { return sees(a, "n1", "n2") && sees(b, "n1", "n2") })
	if err := b.Send(t.Context(), "n1", "k", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, converge, "frame over the dev mesh", func() bool { return rec.count() == 1 })
}
