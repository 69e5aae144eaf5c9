package edge

import (
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/coder/websocket"

	"github.com/arena-mesh/arena/edge/auth"
	"github.com/arena-mesh/arena/protocol"
)

// serveWS upgrades GET /v1/ws to a WebSocket session.
//
// The session runs on a goroutine of its own and the handler returns at
// once: the HTTP connection's goroutine has a deep stack and keeps the
// request, the response and their headers alive for as long as it runs,
// several KiB that an idle connection has no use for. The hijacked
// connection is lean (see leanWriter).
//
// A bad token in the Authorization header is refused before the upgrade
// with 401 and an HTTP error body: the client learns why without having to
// open a socket. A bad token in the connect frame gets an error frame and
// close 4001. A disallowed browser Origin is accepted and then closed with
// 1008, as PROTOCOL.md says, so browsers (which see no HTTP status of a
// failed upgrade) can tell why.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !s.accepting() {
		s.httpError(w, protocol.Errorf(protocol.CodeUnavailable, "node is draining; try another edge"))
		return
	}
	var header *auth.Principal
	if cred := bearer(r); cred != "" {
		p, err := s.cfg.Auth.Authenticate(cred)
		if err != nil {
			s.httpError(w, err)
			return
		}
		header = p
	}
	originErr := checkOrigin(r, s.cfg.AllowedOrigins)
	lw := &leanWriter{ResponseWriter: w}
	conn, err := websocket.Accept(lw, r, &websocket.AcceptOptions{
		Subprotocols: []string{protocol.Subprotocol},
		// The session's messages go out as plain text frames
		// (leanConn.WriteText).
		CompressionMode: websocket.CompressionDisabled,
		// The origin is checked above, so that a refusal can be a 1008
		// close rather than a bare 403.
		InsecureSkipVerify: true,
	})
	if err != nil {
		// Accept has written the HTTP error response.
		s.log.Debug().Err(err).Str("remote", r.RemoteAddr).Msg("websocket upgrade failed")
		return
	}
	if originErr != "" {
		s.m.errorSent(protocol.CodeForbidden)
		_ = conn.Close(closePolicy, originErr)
		return
	}
	conn.SetReadLimit(s.cfg.readLimit())
	sess := newSession(s, conn, header, r.RemoteAddr)
	sess.lean, sess.sock = lw.conn, lw.sock
	if !s.track(sess) {
		// Drain began during the upgrade.
		_ = conn.Close(closeGoingAway, "node is draining")
		return
	}
	go sess.run() // untracks the session when it ends
}

// checkOrigin mirrors websocket.Accept's origin check (same host always
// allowed; patterns matched with path.Match against the origin host, or
// against scheme://host when the pattern has a scheme). Requests without
// an Origin header come from non-browser clients and are allowed. It
// returns "" when allowed, else the close reason.
func checkOrigin(r *http.Request, patterns []string) string {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return ""
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return "origin not allowed"
	}
	if strings.EqualFold(r.Host, u.Host) {
		return ""
	}
	for _, p := range patterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, err := path.Match(strings.ToLower(p), strings.ToLower(target)); err == nil && ok {
			return ""
		}
	}
	return "origin not allowed"
}

// bearer returns the credential of an "Authorization: Bearer" header, or
// "" when there is none.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) >= 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return strings.TrimSpace(h)
}
