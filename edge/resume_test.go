package edge_test

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/protocol"
	"github.com/arena-mesh/arena/wal"
)

// publishHTTP publishes data to room over the HTTP API.
func publishHTTP(t testing.TB, n *edgetest.Node, token, room, data string) {
	t.Helper()
	code, _, body := httpDo(t, http.MethodPost, n.URL+"/v1/rooms/"+room+"/messages", token, `{"data":`+data+`}`)
	if code != http.StatusCreated {
		t.Fatalf("publish: %d %s", code, body)
	}
}

// checkSeqs fails unless msgs are exactly seqs from..to of epoch with data
// equal to the seq.
func checkSeqs(t testing.TB, msgs []protocol.Frame, epoch, from, to uint64) {
	t.Helper()
	if uint64(len(msgs)) != to-from+1 {
		t.Fatalf("%d msgs, want %d..%d", len(msgs), from, to)
	}
	for i, m := range msgs {
		want := from + uint64(i)
		if m.Epoch != epoch || m.Seq != want || string(m.Data) != strconv.FormatUint(want, 10) {
			t.Fatalf("msg %d = (%d,%d) %s, want (%d,%d)", i, m.Epoch, m.Seq, m.Data, epoch, want)
		}
	}
}

// TestResume: a subscriber gets N messages, disconnects, M more are
// published, and it resumes with since: exactly the M missed arrive, then
// the live ones, with no gap and no duplicate.
func TestResume(t *testing.T) {
	const N, M, live = 20, 30, 5
	n := edgetest.Start(t)
	tok := n.AllToken("alice")
	room := "resume:1"

	c := connectWS(t, n, tok)
	epoch := c.sub(room, nil).Head.Epoch
	for i := 1; i <= N; i++ {
		publishHTTP(t, n, tok, room, strconv.Itoa(i))
	}
	got := c.msgs(N)
	checkSeqs(t, got, epoch, 1, N)
	last := got[N-1]
	c.conn.CloseNow()

	for i := N + 1; i <= N+M; i++ {
		publishHTTP(t, n, tok, room, strconv.Itoa(i))
	}
	c = connectWS(t, n, tok)
	r := c.sub(room, &protocol.Position{Epoch: last.Epoch, Seq: last.Seq})
	if r.Reset || r.Head.Seq != N+M || r.Head.Epoch != epoch {
		t.Fatalf("resume subscribed = %+v", r)
	}
	checkSeqs(t, c.msgs(M), epoch, N+1, N+M)
	for i := N + M + 1; i <= N+M+live; i++ {
		publishHTTP(t, n, tok, room, strconv.Itoa(i))
	}
	checkSeqs(t, c.msgs(live), epoch, N+M+1, N+M+live)
	c.ping()
	if len(c.backlog) != 0 {
		t.Fatalf("extra frames: %+v", c.backlog)
	}
}

// TestResumeFromWAL resumes from further back than the ring holds, so the
// missed messages come from the wal.
func TestResumeFromWAL(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithRingSize(8))
	tok := n.AllToken("alice")
	c := connectWS(t, n, tok)
	epoch := c.sub("deep", nil).Head.Epoch
	for i := 1; i <= 100; i++ {
		c.pub("deep", "", strconv.Itoa(i))
	}
	s := connectWS(t, n, tok)
	s.sub("deep", &protocol.Position{Epoch: epoch, Seq: 3})
	checkSeqs(t, s.msgs(97), epoch, 4, 100)
}

// TestResumeAcrossRestart: the node restarts on the same data; a client
// resumes in the same epoch with no gap.
func TestResumeAcrossRestart(t *testing.T) {
	n := edgetest.Start(t)
	tok := n.AllToken("alice")
	room := "restart:1"
	c := connectWS(t, n, tok)
	epoch := c.sub(room, nil).Head.Epoch
	for i := 1; i <= 10; i++ {
		c.pub(room, "k"+strconv.Itoa(i), strconv.Itoa(i))
	}
	checkSeqs(t, c.msgs(10), epoch, 1, 10)

	n.Restart()
	// The old connection was told to go away.
	for {
		f, err := c.readErr()
		if err != nil {
			break
		}
		if f.Op != protocol.OpReconnect {
			t.Fatalf("before the close: %+v", f)
		}
	}

	for i := 11; i <= 15; i++ {
		publishHTTP(t, n, tok, room, strconv.Itoa(i))
	}
	c = connectWS(t, n, tok)
	r := c.sub(room, &protocol.Position{Epoch: epoch, Seq: 7})
	if r.Reset || r.Head.Epoch != epoch || r.Head.Seq != 15 {
		t.Fatalf("subscribed after restart = %+v, want head (%d,15) without reset", r, epoch)
	}
	checkSeqs(t, c.msgs(8), epoch, 8, 15)
	// Idempotency keys survived the restart too.
	if a := c.pub(room, "k3", `"again"`); !a.Dup || a.Seq != 3 {
		t.Fatalf("repeat of a key from before the restart: %+v", a)
	}
}

// TestResumeReset covers the positions a room can no longer resume from:
// another epoch, beyond the head, and older than retention.
func TestResumeReset(t *testing.T) {
	n := edgetest.Start(t,
		edgetest.WithRingSize(4),
		edgetest.WithRetention(wal.Retention{MaxCount: 10}),
		edgetest.WithWALConfig(func(c *wal.Config) { c.SweepInterval = 20 * time.Millisecond }),
	)
	tok := n.AllToken("alice")
	room := "reset:1"
	c := connectWS(t, n, tok)
	epoch := c.sub(room, nil).Head.Epoch
	for i := 1; i <= 50; i++ {
		c.pub(room, "", strconv.Itoa(i))
	}
	// Until retention has settled on the newest 10, a sweep can still
	// delete messages under a reset subscriber's catch-up, which then
	// (correctly) falls out of retention with 4010.
	waitFor(t, "retention to keep only the newest 10 messages", func() bool {
		first, err := n.WAL().First(room, epoch)
		return err == nil && first == 41
	})
	first, err := n.WAL().First(room, epoch)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		since protocol.Position
	}{
		{"other epoch", protocol.Position{Epoch: epoch - 1, Seq: 45}},
		{"newer epoch", protocol.Position{Epoch: epoch + 1, Seq: 1}},
		{"beyond head", protocol.Position{Epoch: epoch, Seq: 51}},
		{"older than retention", protocol.Position{Epoch: epoch, Seq: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := connectWS(t, n, tok)
			since := tt.since
			r := s.sub(room, &since)
			if !r.Reset || r.Oldest == nil || r.Oldest.Epoch != epoch || r.Oldest.Seq < first || r.Head.Seq != 50 {
				t.Fatalf("subscribed = %+v (oldest %+v), want reset with oldest >= %d", r, r.Oldest, first)
			}
			checkSeqs(t, s.msgs(int(50-r.Oldest.Seq+1)), epoch, r.Oldest.Seq, 50)
			s.ping()
		})
	}
	t.Run("within retention", func(t *testing.T) {
		s := connectWS(t, n, tok)
		r := s.sub(room, &protocol.Position{Epoch: epoch, Seq: 45})
		if r.Reset {
			t.Fatalf("resume within retention reset: %+v", r)
		}
		checkSeqs(t, s.msgs(5), epoch, 46, 50)
	})
}

// TestSubscribedBeforeMsgs: the subscribed reply arrives before any msg
// of its subscription, even when the backlog is ready at once.
func TestSubscribedBeforeMsgs(t *testing.T) {
	n := edgetest.Start(t)
	tok := n.AllToken("alice")
	p := connectWS(t, n, tok)
	var epoch uint64
	for i := 1; i <= 20; i++ {
		epoch = p.pub("order:sub", "", strconv.Itoa(i)).Epoch
	}
	for round := range 20 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			s := connectWS(t, n, tok)
			id := int64(99)
			s.send(protocol.Frame{Op: protocol.OpSub, ID: &id, Room: "order:sub", Since: &protocol.Position{Epoch: epoch, Seq: 0}})
			if f := s.read(); f.Op != protocol.OpSubscribed {
				t.Fatalf("first frame %+v, want subscribed", f)
			}
			checkSeqs(t, s.msgs(20), epoch, 1, 20)
		})
	}
}
