package edge

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/arena-mesh/arena/edge/auth"
	"github.com/arena-mesh/arena/mesh"
	"github.com/arena-mesh/arena/protocol"
)

// routes builds the HTTP mux of every client-facing endpoint.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ws", s.serveWS)
	// Room names may contain '/', so the room routes take the rest of the
	// path and split the action off its end (an escaped %2F works too).
	mux.HandleFunc("GET /v1/rooms/{path...}", s.serveRoomGet)
	mux.HandleFunc("POST /v1/rooms/{path...}", s.serveRoomPost)
	mux.HandleFunc("GET /v1/users/{user}/rooms", s.serveUserRooms)
	mux.HandleFunc("GET /v1/edges", s.serveEdges)
	mux.HandleFunc("GET /v1/cluster", s.serveCluster)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.serveReady)
	s.registerWeb(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.httpError(w, protocol.Errorf(protocol.CodeNotFound, "no such endpoint"))
	})
	return mux
}

// roomAction splits "ROOM/ACTION" (the {path...} of a room route).
func roomAction(r *http.Request) (room, action string, err error) {
	p := r.PathValue("path")
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", "", protocol.Errorf(protocol.CodeNotFound, "no such endpoint")
	}
	room, action = p[:i], p[i+1:]
	if err := protocol.CheckRoom(room); err != nil {
		return "", "", err
	}
	return room, action, nil
}

func (s *Server) serveRoomGet(w http.ResponseWriter, r *http.Request) {
	room, action, err := roomAction(r)
	if err != nil {
		s.httpError(w, err)
		return
	}
	switch action {
	case "messages":
		s.serveHistory(w, r, room)
	case "events":
		s.serveEvents(w, r, room)
	case "presence":
		s.servePresenceHTTP(w, r, room)
	default:
		s.httpError(w, protocol.Errorf(protocol.CodeNotFound, "no such endpoint"))
	}
}

func (s *Server) serveRoomPost(w http.ResponseWriter, r *http.Request) {
	room, action, err := roomAction(r)
	if err != nil {
		s.httpError(w, err)
		return
	}
	if action != "messages" {
		s.httpError(w, protocol.Errorf(protocol.CodeNotFound, "no such endpoint"))
		return
	}
	s.servePublish(w, r, room)
}

// publishResult is the body of a successful POST .../messages.
type publishResult struct {
	Epoch uint64 `json:"epoch"`
	Seq   uint64 `json:"seq"`
	TS    int64  `json:"ts"`
	Dup   bool   `json:"dup,omitempty"`
}

// servePublish handles POST /v1/rooms/{room}/messages: 201 once durable,
// 200 with "dup":true for a repeated key.
func (s *Server) servePublish(w http.ResponseWriter, r *http.Request, room string) {
	p, err := s.authHTTP(r, false)
	if err != nil {
		s.httpError(w, err)
		return
	}
	body := http.MaxBytesReader(w, r.Body, s.maxBodyBytes())
	req, err := decodePublishBody(body, s.maxBodyBytes())
	if err != nil {
		s.m.published(false, err)
		s.httpError(w, err)
		return
	}
	req.Room, req.From = room, p.User
	if err := s.checkPublish(p, req); err != nil {
		s.m.published(false, err)
		s.httpError(w, err)
		return
	}
	ack, err := s.cfg.Router.Publish(r.Context(), req)
	if err != nil {
		err = s.routerError(err)
		s.m.published(false, err)
		s.httpError(w, err)
		return
	}
	s.m.published(ack.Dup, nil)
	status := http.StatusCreated
	if ack.Dup {
		status = http.StatusOK
	}
	writeJSON(w, status, publishResult{Epoch: ack.Epoch, Seq: ack.Seq, TS: ack.TS, Dup: ack.Dup})
}

// maxBodyBytes bounds a publish body: the data plus room for the key,
// the field names and whitespace.
func (s *Server) maxBodyBytes() int64 { return int64(s.cfg.MaxDataBytes) + 4096 }

// historyResult is the body of GET .../messages.
type historyResult struct {
	Epoch uint64         `json:"epoch"`
	Msgs  []protocol.Msg `json:"msgs"`
}

// serveHistory handles GET /v1/rooms/{room}/messages?after=S|before=S&limit=N.
func (s *Server) serveHistory(w http.ResponseWriter, r *http.Request, room string) {
	p, err := s.authHTTP(r, false)
	if err != nil {
		s.httpError(w, err)
		return
	}
	if !p.CanSubscribe(room) {
		s.httpError(w, errForbidden(room))
		return
	}
	before, after, limit, err := parseHistoryQuery(r)
	if err != nil {
		s.httpError(w, err)
		return
	}
	epoch, msgs, err := s.history(r.Context(), room, before, after, limit)
	if err != nil {
		s.httpError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, historyResult{Epoch: epoch, Msgs: msgs})
}

// parseHistoryQuery reads before, after and limit like the history frame:
// at most one of before and after, limit 1..1000 (absent: 50).
func parseHistoryQuery(r *http.Request) (before, after *uint64, limit int, err error) {
	q := r.URL.Query()
	seq := func(name string) (*uint64, error) {
		v, ok := q[name]
		if !ok {
			return nil, nil
		}
		n, err := strconv.ParseUint(v[0], 10, 64)
		if err != nil || len(v) > 1 {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "%s must be one seq (a non-negative integer)", name)
		}
		return &n, nil
	}
	if before, err = seq("before"); err != nil {
		return nil, nil, 0, err
	}
	if after, err = seq("after"); err != nil {
		return nil, nil, 0, err
	}
	if before != nil && after != nil {
		return nil, nil, 0, protocol.Errorf(protocol.CodeBadRequest, "history takes before or after, not both")
	}
	limit = protocol.DefaultLimit
	if v := q.Get("limit"); v != "" || q.Has("limit") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > protocol.MaxLimit {
			return nil, nil, 0, protocol.Errorf(protocol.CodeBadRequest, "limit must be between 1 and %d", protocol.MaxLimit)
		}
		limit = n
	}
	return before, after, limit, nil
}

// serveEdges handles GET /v1/edges.
func (s *Server) serveEdges(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*") // public; browsers pick the nearest edge
	writeJSON(w, http.StatusOK, map[string][]Edge{"edges": s.edges(selfURL(r))})
}

// clusterMember is one node in GET /v1/cluster.
type clusterMember struct {
	Node        string `json:"node"`
	Region      string `json:"region"`
	URL         string `json:"url"`
	State       string `json:"state"`
	Connections int    `json:"connections"`
	Streams     int    `json:"sse_streams"`
}

// serveCluster handles GET /v1/cluster (admin API keys only): this node
// and, with a mesh, every member the router places rooms over.
func (s *Server) serveCluster(w http.ResponseWriter, r *http.Request) {
	p, err := s.authHTTP(r, false)
	if err != nil {
		s.httpError(w, err)
		return
	}
	if !p.Admin {
		s.httpError(w, protocol.Errorf(protocol.CodeForbidden, "the cluster view needs an admin API key"))
		return
	}
	conns, streams := s.load()
	state := "alive"
	if !s.accepting() {
		state = "draining"
	}
	self := clusterMember{
		Node: s.cfg.NodeID, Region: s.cfg.Region, URL: selfURL(r),
		State: state, Connections: conns, Streams: streams,
	}
	members := []clusterMember{self}
	regions := map[string]bool{s.cfg.Region: true}
	// With a mesh, every live member as gossiped: its client URL, whether
	// it is suspected of failure, and its load (its client connections).
	for _, m := range s.cfg.Router.Members() {
		if string(m.ID) == s.cfg.NodeID {
			continue
		}
		st := "alive"
		if m.State != mesh.StateAlive {
			st = "suspect"
		}
		members = append(members, clusterMember{
			Node: string(m.ID), Region: m.Region, URL: m.ClientURL,
			State: st, Connections: int(m.Load),
		})
		regions[m.Region] = true
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"node":    s.cfg.NodeID,
		"regions": slices.Sorted(maps.Keys(regions)),
		"members": members,
	})
}

// Connections returns the number of connected clients (WebSocket sessions
// and SSE streams): the load a node gossips to its peers.
func (s *Server) Connections() int {
	sessions, streams := s.load()
	return sessions + streams
}

// serveReady handles /readyz: 200 while accepting clients and
// Config.Ready says so, else 503.
func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	if !s.accepting() {
		s.httpError(w, protocol.Errorf(protocol.CodeUnavailable, "draining"))
		return
	}
	if !s.cfg.Ready() {
		s.httpError(w, protocol.Errorf(protocol.CodeUnavailable, "not ready"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// authHTTP authenticates a request by its Bearer credential (a user token
// or an API key); with allowQuery, a ?token= parameter too (EventSource
// cannot set headers).
func (s *Server) authHTTP(r *http.Request, allowQuery bool) (*auth.Principal, error) {
	cred := bearer(r)
	if cred == "" && allowQuery {
		cred = r.URL.Query().Get("token")
	}
	return s.cfg.Auth.Authenticate(cred)
}

// httpError writes err as {"error":{"code","message"}} with its status;
// rate limits also get Retry-After (whole seconds, rounded up).
func (s *Server) httpError(w http.ResponseWriter, err error) {
	e := protocol.AsError(err)
	s.m.errorSent(e.Code)
	if e.Code == protocol.CodeRateLimited {
		secs := max(1, (e.RetryMS+999)/1000)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	writeJSON(w, e.Code.HTTPStatus(), protocol.HTTPError{Error: protocol.HTTPErrorBody{
		Code: e.Code, Message: e.Message, RetryMS: e.RetryMS,
	}})
}

// writeJSON writes v as a JSON response with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// selfURL is this node's client URL as the request reached it.
func selfURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
