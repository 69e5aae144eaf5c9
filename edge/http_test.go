package edge_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/arena-mesh/arena/edge"
	"github.com/arena-mesh/arena/edge/auth"
	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/protocol"
)

func TestHTTPPublishAndHistory(t *testing.T) {
	n := edgetest.Start(t)
	tok := n.AllToken("alice")
	base := n.URL + "/v1/rooms/"
	var epoch uint64
	for i := 1; i <= 30; i++ {
		code, _, body := httpDo(t, http.MethodPost, base+"h:1/messages", tok, `{"data": {"n": `+strconv.Itoa(i)+`,
			"text": "line\nbreak"}}`)
		var r struct {
			Epoch, Seq uint64
			TS         int64
			Dup        *bool
		}
		if err := json.Unmarshal(body, &r); err != nil || code != http.StatusCreated || r.Seq != uint64(i) || r.TS == 0 || r.Dup != nil {
			t.Fatalf("publish %d: %d %s", i, code, body)
		}
		epoch = r.Epoch
	}
	tests := []struct {
		query        string
		first, count uint64
	}{
		{"", 1, 30},
		{"?limit=5", 26, 5},
		{"?after=10&limit=3", 11, 3},
		{"?before=10&limit=3", 7, 3},
		{"?after=0&limit=2", 1, 2},
		{"?after=30", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			code, _, body := httpDo(t, http.MethodGet, base+"h:1/messages"+tt.query, tok, "")
			var r struct {
				Epoch uint64
				Msgs  []protocol.Msg
			}
			if err := json.Unmarshal(body, &r); err != nil || code != http.StatusOK {
				t.Fatalf("%d %s", code, body)
			}
			if r.Epoch != epoch || uint64(len(r.Msgs)) != tt.count || r.Msgs == nil {
				t.Fatalf("epoch %d, %d msgs; want %d, %d", r.Epoch, len(r.Msgs), epoch, tt.count)
			}
			for i, m := range r.Msgs {
				want := `{"n":` + strconv.FormatUint(m.Seq, 10) + `,"text":"line\nbreak"}`
				if m.Seq != tt.first+uint64(i) || string(m.Data) != want || m.From != "alice" || m.Room != "h:1" {
					t.Fatalf("msg %d = %+v %s", i, m, m.Data)
				}
			}
		})
	}
}

func TestHTTPErrors(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithConfig(func(c *edge.Config) { c.MaxDataBytes = 100 }))
	tok := n.Token("alice", []string{"ok:*"}, []string{"ok:*"})
	msgs := n.URL + "/v1/rooms/ok:1/messages"
	tests := []struct {
		name, method, url, token, body string
		status                         int
		code                           protocol.Code
	}{
		{"no token", "POST", msgs, "", `{"data":1}`, 401, protocol.CodeUnauthorized},
		{"bad token", "POST", msgs, "x.y.z", `{"data":1}`, 401, protocol.CodeUnauthorized},
		{"forbidden room", "POST", n.URL + "/v1/rooms/no:1/messages", tok, `{"data":1}`, 403, protocol.CodeForbidden},
		{"forbidden history", "GET", n.URL + "/v1/rooms/no:1/messages", tok, "", 403, protocol.CodeForbidden},
		{"bad room", "POST", n.URL + "/v1/rooms/a%20b/messages", tok, `{"data":1}`, 400, protocol.CodeBadRequest},
		{"empty body", "POST", msgs, tok, ``, 400, protocol.CodeBadRequest},
		{"not JSON", "POST", msgs, tok, `data=1`, 400, protocol.CodeBadRequest},
		{"array body", "POST", msgs, tok, `[1]`, 400, protocol.CodeBadRequest},
		{"unknown field", "POST", msgs, tok, `{"data":1,"extra":2}`, 400, protocol.CodeBadRequest},
		{"no data", "POST", msgs, tok, `{"key":"k"}`, 400, protocol.CodeBadRequest},
		{"trailing data", "POST", msgs, tok, `{"data":1} {"data":2}`, 400, protocol.CodeBadRequest},
		{"key wrong type", "POST", msgs, tok, `{"data":1,"key":5}`, 400, protocol.CodeBadRequest},
		{"key too long", "POST", msgs, tok, `{"data":1,"key":"` + strings.Repeat("k", 65) + `"}`, 400, protocol.CodeBadRequest},
		{"data too large", "POST", msgs, tok, `{"data":"` + strings.Repeat("x", 200) + `"}`, 413, protocol.CodeTooLarge},
		{"body too large", "POST", msgs, tok, `{"data":"` + strings.Repeat("x", 10000) + `"}`, 413, protocol.CodeTooLarge},
		{"before and after", "GET", msgs + "?before=3&after=1", tok, "", 400, protocol.CodeBadRequest},
		{"limit zero", "GET", msgs + "?limit=0", tok, "", 400, protocol.CodeBadRequest},
		{"limit too big", "GET", msgs + "?limit=1001", tok, "", 400, protocol.CodeBadRequest},
		{"limit not a number", "GET", msgs + "?limit=x", tok, "", 400, protocol.CodeBadRequest},
		{"after negative", "GET", msgs + "?after=-1", tok, "", 400, protocol.CodeBadRequest},
		{"forbidden presence", "GET", n.URL + "/v1/rooms/no:1/presence", tok, "", 403, protocol.CodeForbidden},
		{"other user's rooms", "GET", n.URL + "/v1/users/bob/rooms", tok, "", 403, protocol.CodeForbidden},
		{"rooms without token", "GET", n.URL + "/v1/users/alice/rooms", "", "", 401, protocol.CodeUnauthorized},
		{"unknown action", "GET", n.URL + "/v1/rooms/ok:1/nothing", tok, "", 404, protocol.CodeNotFound},
		{"unknown path", "GET", n.URL + "/v2/whatever", tok, "", 404, protocol.CodeNotFound},
		{"cluster without admin", "GET", n.URL + "/v1/cluster", tok, "", 403, protocol.CodeForbidden},
		{"bad event id", "GET", n.URL + "/v1/rooms/ok:1/events?since=x", tok, "", 400, protocol.CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, hdr, body := httpDo(t, tt.method, tt.url, tt.token, tt.body)
			if code != tt.status || httpErrorCode(t, body) != tt.code {
				t.Fatalf("%d %s, want %d %s", code, body, tt.status, tt.code)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
		})
	}
}

// TestHTTPRoomWithSlash: room names may contain '/', raw or escaped.
func TestHTTPRoomWithSlash(t *testing.T) {
	n := edgetest.Start(t)
	tok := n.AllToken("alice")
	c := connectWS(t, n, tok)
	c.sub("team/alpha", nil)
	publishHTTP(t, n, tok, "team/alpha", `1`)
	publishHTTP(t, n, tok, url.PathEscape("team/alpha"), `2`)
	msgs := c.msgs(2)
	if msgs[0].Room != "team/alpha" || msgs[1].Seq != 2 {
		t.Fatalf("msgs %+v", msgs)
	}
}

func TestRateLimit(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithConfig(func(c *edge.Config) {
		c.PublishRate = 0.5
		c.PublishBurst = 2
	}))
	tok := n.AllToken("alice")
	c := connectWS(t, n, tok)
	c.pub("rl", "", `1`)
	c.pub("rl", "", `2`)
	r := c.call(protocol.Frame{Op: protocol.OpPub, Room: "rl", Data: json.RawMessage(`3`)})
	if r.Code != protocol.CodeRateLimited || r.RetryMS <= 0 || r.RetryMS > 2000 {
		t.Fatalf("third publish: %+v, want rate_limited with retry_ms in (0, 2000]", r)
	}
	c.ping()

	// The same user over HTTP shares the bucket.
	code, hdr, body := httpDo(t, http.MethodPost, n.URL+"/v1/rooms/rl/messages", tok, `{"data":4}`)
	if code != http.StatusTooManyRequests || httpErrorCode(t, body) != protocol.CodeRateLimited {
		t.Fatalf("HTTP publish: %d %s, want 429", code, body)
	}
	if ra, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || ra < 1 || ra > 2 {
		t.Fatalf("Retry-After %q", hdr.Get("Retry-After"))
	}
	// Another user has a bucket of its own.
	other := connectWS(t, n, n.AllToken("bob"))
	other.pub("rl", "", `5`)
}

func TestRateLimitAbuseCloses4008(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithConfig(func(c *edge.Config) {
		c.PublishRate = 0.001
		c.PublishBurst = 1
	}))
	c := connectWS(t, n, n.AllToken("alice"))
	var b strings.Builder
	for range 1100 {
		b.WriteString(`{"op":"pub","room":"r","data":1}` + "\n")
	}
	c.sendRaw([]byte(b.String()))
	c.expectClose(4008)
}

func TestOpsEndpoints(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithAPIKeys(auth.APIKey{Name: "ops", Key: "opskey0123456789abcdef", Admin: true}))
	c := connectWS(t, n, n.AllToken("alice"))
	c.ping()

	code, _, body := httpDo(t, http.MethodGet, n.URL+"/healthz", "", "")
	if code != http.StatusOK {
		t.Errorf("/healthz: %d %s", code, body)
	}
	code, _, body = httpDo(t, http.MethodGet, n.URL+"/readyz", "", "")
	if code != http.StatusOK {
		t.Errorf("/readyz: %d %s", code, body)
	}
	code, _, body = httpDo(t, http.MethodGet, n.URL+"/v1/edges", "", "")
	var edges struct{ Edges []edge.Edge }
	if err := json.Unmarshal(body, &edges); err != nil || code != http.StatusOK || len(edges.Edges) != 1 ||
		edges.Edges[0] != (edge.Edge{Node: "test", Region: "local", URL: n.URL}) {
		t.Errorf("/v1/edges: %d %s", code, body)
	}
	code, _, body = httpDo(t, http.MethodGet, n.URL+"/v1/cluster", "opskey0123456789abcdef", "")
	var cl struct {
		Node    string
		Members []struct {
			Node, State string
			Connections int
		}
	}
	if err := json.Unmarshal(body, &cl); err != nil || code != http.StatusOK || len(cl.Members) != 1 ||
		cl.Members[0].Connections != 1 || cl.Members[0].State != "alive" {
		t.Errorf("/v1/cluster: %d %s", code, body)
	}
	code, _, body = httpDo(t, http.MethodGet, n.URL+"/metrics", "", "")
	for _, name := range []string{
		"arena_edge_connections 1", "arena_edge_frames_in_total{op=\"ping\"}", "arena_edge_frames_out_total",
		"arena_edge_ws_writes_total", "arena_router_", "arena_wal_",
	} {
		if code != http.StatusOK || !strings.Contains(string(body), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

func TestReadyFunc(t *testing.T) {
	var ready atomic.Bool
	n := edgetest.Start(t, edgetest.WithConfig(func(c *edge.Config) { c.Ready = ready.Load }))
	if code, _, _ := httpDo(t, http.MethodGet, n.URL+"/readyz", "", ""); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while not ready: %d", code)
	}
	ready.Store(true)
	if code, _, _ := httpDo(t, http.MethodGet, n.URL+"/readyz", "", ""); code != http.StatusOK {
		t.Errorf("/readyz when ready: %d", code)
	}
}

func containsLine(text, line string) bool {
	for l := range strings.Lines(text) {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}
