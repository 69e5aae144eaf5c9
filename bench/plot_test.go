package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestPlotLatencies(t *testing.T) {
	h := newHist()
	for i := int64(1); i <= 10000; i++ {
		_ = h.RecordValue(i * 1000) // 1 µs .. 10 ms
	}
	s := Summarize("delivery", h)
	if len(s.Dist) < 10 || s.Dist[0].P != 0 {
		t.Fatalf("curve has %d points starting at %v", len(s.Dist), s.Dist)
	}
	for i := 1; i < len(s.Dist); i++ {
		if s.Dist[i].P <= s.Dist[i-1].P || s.Dist[i].MS < s.Dist[i-1].MS {
			t.Fatalf("curve not increasing at %d: %v then %v", i, s.Dist[i-1], s.Dist[i])
		}
	}
	if last := s.Dist[len(s.Dist)-1]; last.MS != s.Max {
		t.Fatalf("curve ends at %v, max is %v", last, s.Max)
	}
	path := filepath.Join(t.TempDir(), "p.svg")
	if err := PlotLatencies(path, "test", []Series{{Name: "delivery", Points: s.Dist}}); err != nil {
		t.Fatal(err)
	}
	assertSVG(t, path)
	if err := PlotLatencies(path, "empty", nil); err == nil {
		t.Fatal("plotting nothing succeeded")
	}
}

func assertSVG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("<svg")) || !bytes.Contains(b, []byte("99%")) {
		t.Fatalf("%s is not the expected SVG (%d bytes)", path, len(b))
	}
}
