package edge

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"

	arenajs "github.com/arena-mesh/arena/client/js"
	"github.com/arena-mesh/arena/protocol"
)

// webFS holds the demo page, the dashboard and their scripts and styles.
//
//go:embed web
var webFS embed.FS

// webCSP keeps the pages to their own scripts and styles; connect-src is
// open because the SDK talks to every edge of the cluster (fetch for
// /v1/edges, /v1/stats and /healthz, and WebSockets).
const webCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' http: https: ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// registerWeb adds the browser-facing routes to mux:
//
//   - GET /sdk/arena.js and /sdk/arena.d.ts: the browser SDK (package
//     client/js), always, with CORS open so any site can import it;
//   - GET /v1/stats: this node's counters for the dashboard (see
//     serveStats), always, CORS open;
//   - GET / (the demo chat), GET /dashboard and GET /web/...: only when
//     Config.Web is set or dev access is on (an empty credential
//     authenticates).
func (s *Server) registerWeb(mux *http.ServeMux) {
	mux.HandleFunc("GET /sdk/{file}", func(w http.ResponseWriter, r *http.Request) {
		a, ok := sdkAssets()[r.PathValue("file")]
		if !ok {
			s.httpError(w, protocol.Errorf(protocol.CodeNotFound, "no such file"))
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", "*")
		a.serve(w, r)
	})
	mux.HandleFunc("GET /v1/stats", s.statsHandler())
	if !s.webEnabled() {
		return
	}
	page := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			a := pageAssets()[name]
			w.Header().Set("Content-Security-Policy", webCSP)
			w.Header().Set("Referrer-Policy", "no-referrer")
			a.serve(w, r)
		}
	}
	mux.HandleFunc("GET /{$}", page("index.html"))
	mux.HandleFunc("GET /dashboard", page("dashboard.html"))
	mux.HandleFunc("GET /web/{file}", func(w http.ResponseWriter, r *http.Request) {
		a, ok := pageAssets()[r.PathValue("file")]
		if !ok || strings.HasSuffix(r.PathValue("file"), ".html") {
			s.httpError(w, protocol.Errorf(protocol.CodeNotFound, "no such file"))
			return
		}
		a.serve(w, r)
	})
}

// webEnabled reports whether the demo page and the dashboard are served:
// Config.Web, or dev access (the authenticator accepts an empty
// credential), where a local playground is what the user wants.
func (s *Server) webEnabled() bool {
	if s.cfg.Web {
		return true
	}
	_, err := s.cfg.Auth.Authenticate("")
	return err == nil
}

// asset is one embedded file, ready to serve.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// serve writes the asset; a matching If-None-Match gets 304. Clients
// revalidate every time (no-cache), so a node upgrade is seen at once.
func (a asset) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	if inm := r.Header.Get("If-None-Match"); inm != "" && strings.Contains(inm, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(a.body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(a.body)
}

// sdkAssets and pageAssets load the embedded files once.
var (
	sdkAssets  = sync.OnceValue(func() map[string]asset { return loadAssets(arenajs.FS, ".") })
	pageAssets = sync.OnceValue(func() map[string]asset { return loadAssets(webFS, "web") })
)

// loadAssets reads every file of dir in fsys. The files are compiled in,
// so a read error is a build bug: the file is left out (and answers 404).
func loadAssets(fsys fs.FS, dir string) map[string]asset {
	out := make(map[string]asset)
	entries, _ := fs.ReadDir(fsys, dir)
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		sum := sha256.Sum256(b)
		out[e.Name()] = asset{
			body:  b,
			ctype: contentType(e.Name()),
			etag:  `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`,
		}
	}
	return out
}

// contentType is the Content-Type of an embedded file by its name.
func contentType(name string) string {
	switch {
	case strings.HasSuffix(name, ".d.ts"):
		return "text/plain; charset=utf-8"
	case strings.HasSuffix(name, ".js"):
		return "text/javascript; charset=utf-8"
	case strings.HasSuffix(name, ".html"):
		return "text/html; charset=utf-8"
	case strings.HasSuffix(name, ".css"):
		return "text/css; charset=utf-8"
	case strings.HasSuffix(name, ".svg"):
		return "image/svg+xml"
	}
	return "application/octet-stream"
}
