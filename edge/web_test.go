package edge_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/arena-mesh/arena/edge"
	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/protocol"
)

// TestWebSDKServed: every node serves the browser SDK and its
// declarations, importable from any origin, revalidated by ETag.
func TestWebSDKServed(t *testing.T) {
	n := edgetest.Start(t) // not dev, Web off: the SDK is served regardless
	for _, tc := range []struct {
		path, ctype, contains string
	}{
		{"/sdk/arena.js", "text/javascript; charset=utf-8", "export class Arena"},
		{"/sdk/arena.d.ts", "text/plain; charset=utf-8", "export class Arena"},
	} {
		t.Run(strings.TrimPrefix(tc.path, "/sdk/"), func(t *testing.T) {
			status, h, body := httpDo(t, "GET", n.URL+tc.path, "", "")
			if status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", tc.path, status, body)
			}
			if got := h.Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if got := h.Get("Access-Control-Allow-Origin"); got != "*" {
				t.Errorf("Access-Control-Allow-Origin %q, want *", got)
			}
			if !strings.Contains(string(body), tc.contains) {
				t.Errorf("body does not contain %q", tc.contains)
			}
			etag := h.Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			req, err := http.NewRequest("GET", n.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("If-None-Match", etag)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotModified {
				t.Errorf("revalidation: %d, want 304", resp.StatusCode)
			}
		})
	}
	status, _, body := httpDo(t, "GET", n.URL+"/sdk/nothing.js", "", "")
	if status != http.StatusNotFound || httpErrorCode(t, body) != protocol.CodeNotFound {
		t.Errorf("unknown SDK file: %d %s", status, body)
	}
}

// TestWebPagesGating: the demo and the dashboard are served with dev
// access or Config.Web, and are unknown endpoints otherwise.
func TestWebPagesGating(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  []edgetest.Option
		serve bool
	}{
		{"production", nil, false},
		{"dev", []edgetest.Option{edgetest.WithDev()}, true},
		{"web", []edgetest.Option{edgetest.WithConfig(func(c *edge.Config) { c.Web = true })}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := edgetest.Start(t, tc.opts...)
			for _, p := range []struct{ path, ctype string }{
				{"/", "text/html; charset=utf-8"},
				{"/dashboard", "text/html; charset=utf-8"},
				{"/web/demo.js", "text/javascript; charset=utf-8"},
				{"/web/dashboard.js", "text/javascript; charset=utf-8"},
				{"/web/style.css", "text/css; charset=utf-8"},
			} {
				status, h, body := httpDo(t, "GET", n.URL+p.path, "", "")
				if !tc.serve {
					if status != http.StatusNotFound || httpErrorCode(t, body) != protocol.CodeNotFound {
						t.Errorf("GET %s: %d %s, want 404 not_found", p.path, status, body)
					}
					continue
				}
				if status != http.StatusOK || h.Get("Content-Type") != p.ctype {
					t.Errorf("GET %s: %d %q, want 200 %q", p.path, status, h.Get("Content-Type"), p.ctype)
				}
				if strings.HasSuffix(p.ctype, "html; charset=utf-8") && !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") {
					t.Errorf("GET %s: no CSP keeping scripts to the page's own", p.path)
				}
			}
			// Unknown paths stay unknown even with the pages on.
			for _, p := range []string{"/nothing", "/web/index.html", "/web/nothing.js"} {
				if status, _, body := httpDo(t, "GET", n.URL+p, "", ""); status != http.StatusNotFound {
					t.Errorf("GET %s: %d %s, want 404", p, status, body)
				}
			}
		})
	}
}

// statsBody is the part of GET /v1/stats the tests read.
type statsBody struct {
	Node               string `json:"node"`
	Region             string `json:"region"`
	URL                string `json:"url"`
	State              string `json:"state"`
	Time               int64  `json:"time"`
	Connections        int    `json:"connections"`
	PublishesTotal     uint64 `json:"publishes_total"`
	PublishErrorsTotal uint64 `json:"publish_errors_total"`
	DeliveriesTotal    uint64 `json:"deliveries_total"`
	Rooms              *int64 `json:"rooms"`
	Latency            map[string]struct {
		Count   uint64  `json:"count"`
		P50MS   float64 `json:"p50_ms"`
		P99MS   float64 `json:"p99_ms"`
		Buckets []struct {
			LE float64 `json:"le"`
			N  uint64  `json:"n"`
		} `json:"buckets"`
	} `json:"latency"`
}

func getStats(t *testing.T, base string) statsBody {
	t.Helper()
	status, h, body := httpDo(t, "GET", base+"/v1/stats", "", "")
	if status != http.StatusOK {
		t.Fatalf("GET /v1/stats: %d %s", status, body)
	}
	if got := h.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("/v1/stats Access-Control-Allow-Origin %q, want *", got)
	}
	var st statsBody
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("stats %s: %v", body, err)
	}
	return st
}

// TestWebStats: /v1/stats counts connections, publishes (accepted and
// refused) and deliveries, and summarizes the wal's fsync latency from the
// node's registry.
func TestWebStats(t *testing.T) {
	n := edgetest.Start(t)
	before := getStats(t, n.URL)
	if before.Node != "test" || before.Region != "local" || before.State != "alive" || before.URL != n.URL {
		t.Fatalf("stats identify the node as %+v", before)
	}
	if before.Connections != 0 || before.PublishesTotal != 0 || before.DeliveriesTotal != 0 {
		t.Fatalf("fresh node: %+v", before)
	}

	sub := connectWS(t, n, n.AllToken("sub"))
	sub.sub("stats:room", nil)
	const pubs = 5
	for i := range pubs {
		status, _, body := httpDo(t, "POST", n.URL+"/v1/rooms/stats:room/messages", n.AllToken("pub"), fmt.Sprintf(`{"data":%d}`, i))
		if status != http.StatusCreated {
			t.Fatalf("publish: %d %s", status, body)
		}
	}
	sub.msgs(pubs)
	// A publish without the permission is refused and counted as such.
	if status, _, _ := httpDo(t, "POST", n.URL+"/v1/rooms/stats:room/messages", n.Token("ro", nil, all), `{"data":0}`); status != http.StatusForbidden {
		t.Fatalf("forbidden publish: %d", status)
	}

	var st statsBody
	waitFor(t, "deliveries counted", func() bool {
		st = getStats(t, n.URL)
		return st.DeliveriesTotal >= pubs
	})
	if st.Connections != 1 || st.PublishesTotal != pubs || st.PublishErrorsTotal != 1 || st.DeliveriesTotal != pubs {
		t.Errorf("after %d publishes to one subscriber: %+v", pubs, st)
	}
	if st.Time < before.Time {
		t.Errorf("time went back: %d then %d", before.Time, st.Time)
	}
	if st.Rooms == nil || *st.Rooms < 1 {
		t.Errorf("rooms %v, want at least 1", st.Rooms)
	}
	fsync, ok := st.Latency["arena_wal_fsync_seconds"]
	if !ok || fsync.Count == 0 || len(fsync.Buckets) == 0 {
		t.Fatalf("no fsync latency summary: %+v", st.Latency)
	}
	if fsync.P50MS <= 0 || fsync.P99MS < fsync.P50MS {
		t.Errorf("fsync percentiles p50 %v p99 %v", fsync.P50MS, fsync.P99MS)
	}
	last := fsync.Buckets[len(fsync.Buckets)-1]
	if last.N > fsync.Count {
		t.Errorf("cumulative bucket %d above count %d", last.N, fsync.Count)
	}
}

// TestWebCORS: the endpoints a page on another node's origin reads allow
// any origin.
func TestWebCORS(t *testing.T) {
	n := edgetest.Start(t)
	for _, p := range []string{"/v1/edges", "/v1/stats", "/sdk/arena.js"} {
		req, err := http.NewRequest("GET", n.URL+p, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", "http://elsewhere.example")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); resp.StatusCode != http.StatusOK || got != "*" {
			t.Errorf("GET %s: %d, Access-Control-Allow-Origin %q", p, resp.StatusCode, got)
		}
	}
}
