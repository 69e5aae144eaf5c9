package wal

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestKeptKeys: the setting reads 0 until recorded, then what was
// recorded last, across a reopen.
func TestKeptKeys(t *testing.T) {
	cfg := testConfig(t)
	l, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := l.KeptKeys(); err != nil || n != 0 {
		t.Fatalf("KeptKeys of a new log = %d, %v; want 0", n, err)
	}
	for _, n := range []int{20000, 500} {
		if err := l.SetKeptKeys(n); err != nil {
			t.Fatal(err)
		}
		if got, err := l.KeptKeys(); err != nil || got != n {
			t.Fatalf("KeptKeys = %d, %v; want %d", got, err, n)
		}
	}
	if err := l.SetKeptKeys(-1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("SetKeptKeys(-1) = %v, want ErrInvalid", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.Registerer = prometheus.NewRegistry()
	l = openLog(t, cfg)
	if n, err := l.KeptKeys(); err != nil || n != 500 {
		t.Fatalf("KeptKeys after reopening = %d, %v; want 500", n, err)
	}
}
