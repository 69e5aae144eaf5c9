package edge_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/protocol"
)

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	id, event, data string
}

// sseStream reads events from an open SSE response.
type sseStream struct {
	t    *testing.T
	resp *http.Response
	r    *bufio.Reader
}

func openSSE(t *testing.T, url, token, lastID string) *sseStream {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("SSE: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return &sseStream{t: t, resp: resp, r: bufio.NewReader(resp.Body)}
}

// next returns the next event, skipping comments; ok is false at the end
// of the stream.
func (s *sseStream) next() (sseEvent, bool) {
	s.t.Helper()
	var ev sseEvent
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return ev, false
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.data != "" || ev.event != "" {
				return ev, true
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.data += line[6:]
		default:
			s.t.Fatalf("unexpected SSE line %q", line)
		}
	}
}

// msg reads the next event and decodes it as a msg.
func (s *sseStream) msg() (sseEvent, protocol.Frame) {
	s.t.Helper()
	ev, ok := s.next()
	if !ok {
		s.t.Fatal("SSE stream ended")
	}
	var f protocol.Frame
	if err := json.Unmarshal([]byte(ev.data), &f); err != nil || f.Op != protocol.OpMsg || ev.event != "" {
		s.t.Fatalf("event %+v: %v", ev, err)
	}
	if want := fmt.Sprintf("%d:%d", f.Epoch, f.Seq); ev.id != want {
		s.t.Fatalf("event id %q, want %q", ev.id, want)
	}
	return ev, f
}

func TestSSE(t *testing.T) {
	n := edgetest.Start(t)
	tok := n.AllToken("alice")
	url := n.URL + "/v1/rooms/sse:1/events"
	s := openSSE(t, url, tok, "")
	hello, ok := s.next()
	var sub protocol.Frame
	if !ok || hello.event != "subscribed" || json.Unmarshal([]byte(hello.data), &sub) != nil || sub.Head == nil {
		t.Fatalf("first event %+v", hello)
	}
	for i := 1; i <= 3; i++ {
		publishHTTP(t, n, tok, "sse:1", strconv.Itoa(i))
	}
	var ids []string
	for i := 1; i <= 3; i++ {
		ev, m := s.msg()
		if m.Seq != uint64(i) || string(m.Data) != strconv.Itoa(i) || m.From != "alice" {
			t.Fatalf("msg %d = %+v", i, m)
		}
		ids = append(ids, ev.id)
	}

	// Resume after the second event: the third, then live ones.
	r := openSSE(t, url, tok, ids[1])
	if ev, _ := r.next(); ev.event != "subscribed" {
		t.Fatalf("first event on resume %+v", ev)
	}
	if _, m := r.msg(); m.Seq != 3 {
		t.Fatalf("resumed at %d, want 3", m.Seq)
	}
	publishHTTP(t, n, tok, "sse:1", `4`)
	if _, m := r.msg(); m.Seq != 4 {
		t.Fatalf("live after resume: %d, want 4", m.Seq)
	}

	// ?since= and ?token= work for EventSource, which cannot set headers.
	q := openSSE(t, url+"?token="+tok+"&since="+ids[2], "", "")
	q.next()
	if _, m := q.msg(); m.Seq != 4 {
		t.Fatalf("since=%s gave %d, want 4", ids[2], m.Seq)
	}
}

func TestSSEForbidden(t *testing.T) {
	n := edgetest.Start(t)
	code, _, body := httpDo(t, http.MethodGet, n.URL+"/v1/rooms/x/events", n.Token("alice", nil, []string{"y"}), "")
	if code != http.StatusForbidden || httpErrorCode(t, body) != protocol.CodeForbidden {
		t.Fatalf("%d %s", code, body)
	}
}
