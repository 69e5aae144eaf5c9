package mesh

import (
	"testing"
	"time"
)

const converge = 20 * time.Second

// cluster starts n nodes joined into one mesh, each recording what it
// receives, and waits until all see all.
func cluster(t *testing.T, n int, tweak func(*Config)) ([]*Mesh, []*recorder) {
	t.Helper()
	var ms []*Mesh
	var recs []*recorder
	for i, id := range ids(n) {
		cfg := testConfig(t, string(id), "r1")
		if i > 0 {
			cfg.Join = []string{ms[0].Addr()}
		}
		rec := newRecorder()
		cfg.Handler = rec.handle
		if tweak != nil {
			tweak(&cfg)
		}
		ms = append(ms, startMesh(t, cfg))
		recs = append(recs, rec)
	}
	for _, m := range ms {
		waitFor(t, converge, string(m.LocalID())+" sees all", func() bool { return sees(m, ids(n)...) })
	}
	return ms, recs
}
