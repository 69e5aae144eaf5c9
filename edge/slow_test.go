package edge_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/arena-mesh/arena/edge"
	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/protocol"
	"github.com/arena-mesh/arena/wal"
)

// dialSmallBuffer dials with a 4 KiB socket receive buffer, so that a
// client that stops reading stalls the server's writes quickly instead
// of after the kernel buffered tens of megabytes.
func dialSmallBuffer(t *testing.T, n *edgetest.Node, token string) *wsClient {
	t.Helper()
	d := &net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	conn, _, err := websocket.Dial(t.Context(), n.WSURL, &websocket.DialOptions{
		HTTPClient: hc,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + token}},
	})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(-1)
	t.Cleanup(func() { _ = conn.CloseNow() })
	c := &wsClient{t: t, conn: conn}
	c.mustCall(protocol.Frame{Op: protocol.OpConnect}, protocol.OpConnected)
	return c
}

// heapOutsidePebble returns the bytes in use on the heap by objects not
// allocated by Pebble. Pebble is excluded because under the race detector
// it randomly puts its memtables on the Go heap, and the memtable is the
// wal's business, not a per-subscriber queue. Needs
// runtime.MemProfileRate = 1 to be exact.
func heapOutsidePebble() int64 {
	runtime.GC()
	runtime.GC()
	n, _ := runtime.MemProfile(nil, false)
	var recs []runtime.MemProfileRecord
	for {
		recs = make([]runtime.MemProfileRecord, n+64)
		var ok bool
		if n, ok = runtime.MemProfile(recs, false); ok {
			recs = recs[:n]
			break
		}
	}
	var total int64
	for _, r := range recs {
		frames := runtime.CallersFrames(r.Stack())
		pebble := false
		for {
			f, more := frames.Next()
			if strings.Contains(f.Function, "cockroachdb/pebble") {
				pebble = true
				break
			}
			if !more {
				break
			}
		}
		if !pebble {
			total += r.InUseBytes()
		}
	}
	return total
}

// TestSlowSubscriber: one subscriber stops reading while another in the
// same room reads everything. The fast one gets every message (far more
// than the ring holds) without waiting for the slow one; memory does not
// grow with the slow one's backlog (nothing is queued per subscriber);
// and when the slow one reads again it gets every message with no gap.
func TestSlowSubscriber(t *testing.T) {
	const (
		total      = 4000
		dataBytes  = 4 << 10
		publishers = 4
		room       = "slow:1"
	)
	n := edgetest.Start(t, edgetest.WithRingSize(64), edgetest.WithConfig(func(c *edge.Config) {
		c.PublishRate = 1e6
		c.WriteTimeout = 5 * time.Minute // the stall must not end in a write timeout
	}))
	tok := n.AllToken("alice")

	slow := dialSmallBuffer(t, n, tok)
	epoch := slow.sub(room, nil).Head.Epoch
	fast := connectWS(t, n, tok)
	fast.sub(room, nil)

	var fastGot atomic.Int64
	fastDone := make(chan error, 1)
	go func() {
		for i := 1; i <= total; i++ {
			f, err := fast.readErr()
			if err != nil {
				fastDone <- err
				return
			}
			if f.Op != protocol.OpMsg || f.Seq != uint64(i) || f.Epoch != epoch {
				fastDone <- fmt.Errorf("fast subscriber: got %s seq %d, want msg %d", f.Op, f.Seq, i)
				return
			}
			fastGot.Store(int64(i))
		}
		fastDone <- nil
	}()

	pubs := make([]*wsClient, publishers)
	for i := range pubs {
		pubs[i] = connectWS(t, n, tok)
	}
	payload := json.RawMessage(`"` + strings.Repeat("x", dataBytes) + `"`)
	// publish sends count messages from each publisher and waits for the
	// acks and for the fast subscriber to have them all.
	publish := func(count int) {
		var wg sync.WaitGroup
		errs := make(chan error, publishers)
		for p, c := range pubs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < count; i += 50 {
					batch := make([]protocol.Frame, 0, 50)
					for range min(count-i, 50) {
						batch = append(batch, protocol.Frame{Op: protocol.OpPub, ID: c.id(), Room: room, Data: payload})
					}
					c.send(batch...)
				}
				for acks := 0; acks < count; acks++ {
					f, err := c.readErr()
					if err != nil {
						errs <- fmt.Errorf("publisher %d: %w", p, err)
						return
					}
					if f.Op != protocol.OpAck {
						errs <- fmt.Errorf("publisher %d: %s %s %s", p, f.Op, f.Code, f.Message)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}

	// Two equal halves: fixed costs (buffers, the ring, the wal's
	// memtable) show in the first; a per-subscriber backlog would grow
	// the heap in the second as much again.
	rate := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	t.Cleanup(func() { runtime.MemProfileRate = rate })
	half := total / publishers / 2
	publish(half)
	waitFor(t, "the fast subscriber to get the first half", func() bool { return fastGot.Load() == total/2 })
	mid := heapOutsidePebble()
	publish(half)
	if err := <-fastDone; err != nil {
		t.Fatal(err)
	}
	end := heapOutsidePebble()
	halfBytes := int64(total / 2 * dataBytes)
	growth := end - mid
	t.Logf("heap in use: %d KiB after the first half, %d KiB after the second; %d KiB per half", mid>>10, end>>10, halfBytes>>10)
	if growth > halfBytes/2 {
		t.Errorf("heap grew by %d KiB while %d KiB were published to a stalled subscriber", growth>>10, halfBytes>>10)
	}

	// The slow subscriber reads again: everything, in order, or a 4010.
	for i := 1; i <= total; i++ {
		f, err := slow.readErr()
		if err != nil {
			if code := websocket.CloseStatus(err); code != websocket.StatusCode(protocol.CloseTooSlow) {
				t.Fatalf("slow subscriber closed with %d at msg %d: %v", code, i, err)
			}
			t.Logf("slow subscriber closed with 4010 at msg %d", i)
			return
		}
		if f.Op != protocol.OpMsg || f.Seq != uint64(i) {
			t.Fatalf("slow subscriber: got %s seq %d, want msg %d", f.Op, f.Seq, i)
		}
	}
	slow.ping()
}

// TestBurstBackPressure: a burst of frames larger than the send queue is
// answered in full (the reader waits for the writer), not cut.
func TestBurstBackPressure(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithConfig(func(c *edge.Config) { c.SendQueue = 8 }))
	c := connectWS(t, n, n.AllToken("alice"))
	const burst = 2000
	var b strings.Builder
	for i := range burst {
		fmt.Fprintf(&b, "{\"op\":\"ping\",\"id\":%d}\n", i+1)
	}
	c.sendRaw([]byte(b.String()))
	for i := range burst {
		f := c.read()
		if f.Op != protocol.OpPong || f.ID == nil || *f.ID != int64(i+1) {
			t.Fatalf("reply %d = %+v", i, f)
		}
	}
}

// TestFallOutOfRetentionCloses4010: a subscriber that stops reading while
// its position leaves the wal's retention gets, when it reads again, the
// messages still on their way (in order, no gap) and then close 4010.
func TestFallOutOfRetentionCloses4010(t *testing.T) {
	const (
		total = 2000
		room  = "gone:1"
	)
	n := edgetest.Start(t,
		edgetest.WithRingSize(16),
		edgetest.WithRetention(wal.Retention{MaxCount: 10}),
		edgetest.WithWALConfig(func(c *wal.Config) { c.SweepInterval = 10 * time.Millisecond }),
		edgetest.WithConfig(func(c *edge.Config) {
			c.PublishRate = 1e6
			c.WriteTimeout = 5 * time.Minute
		}),
	)
	tok := n.AllToken("alice")
	slow := dialSmallBuffer(t, n, tok)
	epoch := slow.sub(room, nil).Head.Epoch
	payload := `"` + strings.Repeat("y", 8<<10) + `"`
	for i := 0; i < total; i += 100 {
		var wg sync.WaitGroup
		for j := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				publishHTTP(t, n, tok, room, payload[:len(payload)-1]+fmt.Sprint(i+j)+`"`)
			}()
		}
		wg.Wait()
	}
	waitFor(t, "retention to drop old messages", func() bool {
		first, err := n.WAL().First(room, epoch)
		return err == nil && first > total-100
	})
	var next uint64 = 1
	for {
		f, err := slow.readErr()
		if err != nil {
			if code := websocket.CloseStatus(err); code != websocket.StatusCode(protocol.CloseTooSlow) {
				t.Fatalf("closed with %d after %d msgs: %v", code, next-1, err)
			}
			break
		}
		if f.Op != protocol.OpMsg || f.Seq != next {
			t.Fatalf("got %s seq %d, want msg %d", f.Op, f.Seq, next)
		}
		next++
	}
	if next > total {
		t.Fatalf("received all %d messages; the subscriber never fell behind retention", total)
	}
	t.Logf("received %d messages before 4010", next-1)
}

// TestWriteTimeoutCutsStalledReader: a subscriber that stops reading
// altogether is cut once a write to it has gone on for WriteTimeout (the
// writer's write watch), not closed as too slow; its publisher goes on.
func TestWriteTimeoutCutsStalledReader(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithConfig(func(c *edge.Config) {
		c.PublishRate = 1e6
		c.WriteTimeout = 300 * time.Millisecond
	}))
	tok := n.AllToken("alice")
	slow := dialSmallBuffer(t, n, tok)
	slow.sub("stall", nil)
	pub := connectWS(t, n, tok)
	data := `"` + strings.Repeat("x", 16<<10) + `"`
	// Each look publishes one more message, until the socket's buffers
	// are full, a write blocks, and the watch cuts the socket.
	waitFor(t, "the stalled subscriber to be cut", func() bool {
		pub.pub("stall", "", data)
		return metricValue(t, n, "arena_edge_connections") == 1
	})
	if got := metricValue(t, n, "arena_edge_slow_closes_total"); got != 0 {
		t.Fatalf("%v sessions closed as too slow, want the write timeout to cut it", got)
	}
	if ack := pub.pub("stall", "", `{"after":1}`); ack.Op != protocol.OpAck {
		t.Fatalf("publish after the cut: %+v", ack)
	}
}
