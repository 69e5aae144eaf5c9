package edge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/arena-mesh/arena/client"
	"github.com/arena-mesh/arena/edge/edgetest"
)

// pageWait bounds one wait for a page condition.
const pageWait = 20 * time.Second

// chatSay types text into a demo page and sends it.
func (p *page) chatSay(text string) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx,
		chromedp.SendKeys(chromedp.ID("text"), text),
		chromedp.Click(chromedp.ID("sendbtn")),
	); err != nil {
		p.t.Fatalf("%s: send %q: %v", p.name, text, err)
	}
}

// chatSees waits until a demo page shows text as a live message with its
// measured delivery latency.
func (p *page) chatSees(text string) {
	p.t.Helper()
	p.wait("message "+text, fmt.Sprintf(`[...document.querySelectorAll('#messages li.msg')].some((li) =>
		li.querySelector('.text').textContent === %s &&
		li.querySelector('.lat') !== null && Number(li.querySelector('.lat').dataset.ms) >= 0 &&
		/^\d+ ms$/.test(li.querySelector('.lat').textContent))`, jsString(text)), pageWait)
}

// chatReady waits until a demo page is connected and has joined its rooms,
// and returns the node it shows it is connected to.
func (p *page) chatReady() string {
	p.t.Helper()
	p.wait("demo ready", `document.body.dataset.ready === 'true' && document.body.dataset.state === 'connected'`, pageWait)
	var node string
	p.eval(`document.getElementById('node').textContent`, &node)
	return node
}

// TestBrowserChatSingleNode: two demo pages on one node (dev access) chat
// through the SDK in both directions, each message showing its latency;
// presence lists both users and the sender sees the read receipt.
func TestBrowserChatSingleNode(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithDev())
	b := newBrowser(t)
	alice := newPage(t, b, "alice", n.URL+"/?room=chat:e2e&name=alice")
	bob := newPage(t, b, "bob", n.URL+"/?room=chat:e2e&name=bob")
	for _, p := range []*page{alice, bob} {
		if node := p.chatReady(); node != "test" {
			t.Fatalf("%s shows node %q, want test", p.name, node)
		}
	}
	alice.chatSay("hello from alice")
	bob.chatSees("hello from alice")
	alice.chatSees("hello from alice") // her own message comes back through the room
	bob.chatSay("hi alice")
	alice.chatSees("hi alice")
	// Presence lists both users (or says the node does not offer it);
	// bob read alice's message, and her page shows the read receipt.
	alice.wait("presence of two users", `(() => {
		const t = document.getElementById('presence').textContent;
		return t === 'not offered by this node' || t.split(', ').length === 2;
	})()`, pageWait)
	alice.wait("read receipt on her message", `[...document.querySelectorAll('#messages li.msg')].some((li) =>
		li.querySelector('.text').textContent === 'hello from alice' && /^✓✓ read by anonymous-/.test(li.querySelector('.rcpt').textContent))`, pageWait)

	// A late joiner gets the room's history before the live stream.
	carol := newPage(t, b, "carol", n.URL+"/?room=chat:e2e&name=carol")
	carol.chatReady()
	carol.wait("history", `[...document.querySelectorAll('#messages li.msg .text')].map((e) => e.textContent).join('|') === 'hello from alice|hi alice'`, pageWait)
	alice.screenshot("chat.png")
}

// TestBrowserChatAcrossNodes: demo pages connected to two different nodes
// of a real mesh (in two regions) chat with each other.
func TestBrowserChatAcrossNodes(t *testing.T) {
	wc := startWebCluster(t, 2, "eu", "us")
	b := newBrowser(t)
	var pages []*page
	for i, name := range []string{"alice", "bob"} {
		nd := wc.nodes[i]
		q := url.Values{"edge": {nd.URL}, "room": {"chat:mesh"}, "name": {name}, "token": {wc.token(t, name)}}
		p := newPage(t, b, name, nd.URL+"/?"+q.Encode())
		if got := p.chatReady(); got != nd.id {
			t.Fatalf("%s is connected to %q, want %q", name, got, nd.id)
		}
		var region string
		p.eval(`document.body.dataset.region`, &region)
		if region != nd.region {
			t.Errorf("%s shows region %q, want %q", name, region, nd.region)
		}
		pages = append(pages, p)
	}
	pages[0].chatSay("from eu")
	pages[1].chatSees("from eu")
	pages[1].chatSay("from us")
	pages[0].chatSees("from us")
}

// received is one message a test page got: its position and data.
type received struct {
	Epoch uint64          `json:"e"`
	Seq   uint64          `json:"s"`
	Data  json.RawMessage `json:"d"`
}

// jsSubscribe subscribes the harness's client to a room, recording
// messages in T.got and resets in T.resets.
const jsSubscribe = `(async () => {
  T.sub = await T.arena.subscribe(%s, {
    onMessage: (m) => T.got.push({ e: m.epoch, s: m.seq, d: m.data }),
    onReset: (e) => T.resets.push(e),
  });
  return true;
})()`

// jsPublish publishes {n: i} for i in [from, to) and waits for each ack.
const jsPublish = `(async () => {
  for (let i = %d; i < %d; i++) await T.arena.publish(%s, { n: i });
  return true;
})()`

// checkNoGap fails unless got is one run of consecutive seqs of one epoch
// with each data value once, and returns the data values in order.
func checkNoGap(t *testing.T, got []received) []string {
	t.Helper()
	var data []string
	seen := make(map[string]bool)
	for i, m := range got {
		if i > 0 && (m.Epoch != got[0].Epoch || m.Seq != got[i-1].Seq+1) {
			t.Fatalf("message %d at (%d, %d) after (%d, %d): a gap or a duplicate", i, m.Epoch, m.Seq, got[i-1].Epoch, got[i-1].Seq)
		}
		d := string(m.Data)
		if seen[d] {
			t.Fatalf("data %s delivered twice", d)
		}
		seen[d] = true
		data = append(data, d)
	}
	return data
}

// TestBrowserFailover: a page connected to the nearest edge X (by measured
// round trip) subscribes to a room whose home is another node Y. X
// crashes; while the page cannot reconnect, more messages are published
// on Y and the page publishes one itself. Once it may reconnect it fails
// over to Y, resumes from its last position with no gap and no duplicate,
// and its publish takes effect once.
func TestBrowserFailover(t *testing.T) {
	wc := startWebCluster(t, 2, "eu", "us")
	b := newBrowser(t)

	p1 := newPage(t, b, "p1", wc.nodes[0].URL+"/healthz")
	// T.gate holds reconnections back (the SDK takes a WebSocket
	// constructor), so that messages are surely published while the page
	// is away.
	xID := p1.connect(fmt.Sprintf(`connectNearest(%s, {
		token: %s, reconnectMin: 50, reconnectMax: 400,
		WebSocket: function (u, p) { if (window.T && T.gate) throw new Error('gated by the test'); return new WebSocket(u, p); },
	})`, jsString(wc.nodes[0].URL), jsString(wc.token(t, "p1"))))
	x := wc.byID(t, xID)
	y := wc.nodes[1-x.idx]
	var measured []struct {
		Node string  `json:"node"`
		RTT  float64 `json:"rtt"`
	}
	p1.eval(`T.arena.measured.map((e) => ({ node: e.node, rtt: Number.isFinite(e.rtt) ? e.rtt : -1 }))`, &measured)
	if len(measured) != 2 || measured[0].Node != xID || measured[0].RTT < 0 || measured[1].RTT < measured[0].RTT {
		t.Fatalf("connectNearest measured %+v and chose %s", measured, xID)
	}

	room := wc.c.RoomHomedOn("failover:", y.idx)
	p2 := newPage(t, b, "p2", y.URL+"/healthz")
	if got := p2.connect(fmt.Sprintf(`connect(%s, { token: %s })`, jsString(y.URL), jsString(wc.token(t, "p2")))); got != y.id {
		t.Fatalf("p2 connected to %s, want %s", got, y.id)
	}
	p1.eval(fmt.Sprintf(jsSubscribe, jsString(room)), nil)
	p2.eval(fmt.Sprintf(jsPublish, 0, 10, jsString(room)), nil)
	p1.wait("the first 10 messages", `T.got.length === 10`, pageWait)

	p1.eval(`T.gate = true`, nil)
	wc.kill(x)
	p1.wait("the page to see its connection drop", `!T.arena.connected && T.events.some((e) => e.startsWith('disconnect'))`, pageWait)
	p2.eval(fmt.Sprintf(jsPublish, 10, 20, jsString(room)), nil)
	// Published while disconnected: sent once a connection is back.
	p1.eval(fmt.Sprintf(`T.arena.publish(%s, { n: 'p1' }).then((a) => { T.p1ack = a; }, (e) => { T.errors.push('publish: ' + e.message); }); true`, jsString(room)), nil)
	p1.eval(`T.gate = false`, nil)

	p1.wait("failover to "+y.id, fmt.Sprintf(`T.arena.connected && T.arena.info.node === %s`, jsString(y.id)), pageWait)
	p1.wait("all 21 messages", `T.got.length >= 21 && T.p1ack !== undefined`, pageWait)
	var got []received
	p1.eval(`T.got`, &got)
	var resets int
	p1.eval(`T.resets.length`, &resets)
	if resets != 0 {
		t.Errorf("%d resets: the room's position should have survived the failover", resets)
	}
	data := checkNoGap(t, got)
	if len(data) != 21 {
		t.Fatalf("got %d messages, want 21: %v", len(data), data)
	}
	for i := range 20 {
		if want := fmt.Sprintf(`{"n":%d}`, i); !contains(data, want) {
			t.Errorf("message %s missing from %v", want, data)
		}
	}
	var ack struct {
		Seq uint64 `json:"seq"`
		Dup bool   `json:"dup"`
	}
	p1.eval(`T.p1ack`, &ack)
	if !contains(data, `{"n":"p1"}`) || ack.Seq == 0 {
		t.Errorf("the page's own publish: ack %+v, messages %v", ack, data)
	}
	// p2 saw the page's publish once too: the history holds it once.
	var hist struct {
		Msgs []received `json:"msgs"`
	}
	p2.eval(fmt.Sprintf(`T.arena.history(%s, { after: 0, limit: 100 }).then((h) => ({ msgs: h.msgs.map((m) => ({ e: m.epoch, s: m.seq, d: m.data })) }))`, jsString(room)), &hist)
	if d := checkNoGap(t, hist.Msgs); len(d) != 21 {
		t.Errorf("history has %d messages, want 21: %v", len(d), d)
	}
}

// TestBrowserDrainMovesToNextEdge: a node that drains sends its clients a
// reconnect frame listing the other edges; the page moves there and
// resumes with no gap.
func TestBrowserDrainMovesToNextEdge(t *testing.T) {
	wc := startWebCluster(t, 2, "eu", "eu")
	b := newBrowser(t)
	x, y := wc.nodes[0], wc.nodes[1]
	p1 := newPage(t, b, "p1", x.URL+"/healthz")
	if got := p1.connect(fmt.Sprintf(`connect(%s, { token: %s, reconnectMin: 50, reconnectMax: 400 })`, jsString(x.URL), jsString(wc.token(t, "p1")))); got != x.id {
		t.Fatalf("p1 connected to %s, want %s", got, x.id)
	}
	room := wc.c.RoomHomedOn("drain:", y.idx)
	p1.eval(fmt.Sprintf(jsSubscribe, jsString(room)), nil)
	p1.eval(fmt.Sprintf(jsPublish, 0, 5, jsString(room)), nil)
	p1.wait("5 messages", `T.got.length === 5`, pageWait)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := x.srv.Drain(ctx); err != nil {
		t.Fatalf("drain %s: %v", x.id, err)
	}
	p1.wait("the move to "+y.id, fmt.Sprintf(`T.arena.connected && T.arena.info.node === %s && T.events.includes('reconnect draining')`, jsString(y.id)), pageWait)
	p1.eval(fmt.Sprintf(jsPublish, 5, 10, jsString(room)), nil)
	p1.wait("10 messages", `T.got.length === 10`, pageWait)
	var got []received
	p1.eval(`T.got`, &got)
	checkNoGap(t, got)
}

// TestBrowserDashboard: the dashboard of a two-region cluster under load
// lists both nodes by region and draws all four plots; a screenshot is
// kept as a test artifact.
func TestBrowserDashboard(t *testing.T) {
	wc := startWebCluster(t, 2, "eu", "us")

	// Load: on each node a client subscribed to a room and publishing to
	// it until the test ends.
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	for i, nd := range wc.nodes {
		c, err := client.Dial(ctx, nd.URL, client.Options{Token: wc.token(t, fmt.Sprint("load", i))})
		if err != nil {
			t.Fatal(err)
		}
		room := wc.c.RoomHomedOn("dash:", i) // every node's wal works: both have latencies
		sub, err := c.Subscribe(ctx, room, client.SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			defer c.Close()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				if _, err := c.Publish(ctx, room, json.RawMessage(`{"load":true}`), client.PublishOptions{}); err != nil {
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range sub.C() {
			}
		}()
	}

	b := newBrowser(t)
	p := newPage(t, b, "dashboard", wc.nodes[0].URL+"/dashboard?interval=250&window=30")
	p.wait("both nodes with rates and four drawn plots", `
		document.querySelectorAll('#nodes tr.node').length === 2 &&
		document.querySelectorAll('#nodes tr.region').length === 2 &&
		['plot-pub', 'plot-del', 'plot-conn', 'plot-lat'].every((id) => Number(document.getElementById(id).dataset.points) >= 6) &&
		Number(document.getElementById('plot-pub').dataset.max) > 0 &&
		Number(document.getElementById('plot-del').dataset.max) > 0`, pageWait)

	// The plots are drawn, not just counted: each canvas differs from a
	// blank one, and has pixels of the node colours inside the plot area.
	var drawn map[string]struct {
		Blank   bool `json:"blank"`
		Colored int  `json:"colored"`
	}
	p.eval(`(() => {
		const out = {};
		const palette = [[0x4f, 0xb3, 0xff], [0x5a, 0xd1, 0x8b]];
		for (const id of ['plot-pub', 'plot-del', 'plot-conn', 'plot-lat']) {
			const c = document.getElementById(id);
			const blank = document.createElement('canvas');
			blank.width = c.width;
			blank.height = c.height;
			const ctx = c.getContext('2d');
			const top = Math.ceil(22 * (window.devicePixelRatio || 1)) + 1;
			const img = ctx.getImageData(0, top, c.width, c.height - top).data;
			let colored = 0;
			for (let i = 0; i < img.length; i += 4) {
				if (palette.some(([r, g, b]) => Math.abs(img[i] - r) < 24 && Math.abs(img[i + 1] - g) < 24 && Math.abs(img[i + 2] - b) < 24 && img[i + 3] > 200)) colored++;
			}
			out[id] = { blank: c.toDataURL() === blank.toDataURL(), colored };
		}
		return out;
	})()`, &drawn)
	for id, d := range drawn {
		if d.Blank || d.Colored == 0 {
			t.Errorf("%s: blank %v, %d pixels of a node's colour in the plot area", id, d.Blank, d.Colored)
		}
	}
	if len(drawn) != 4 {
		t.Errorf("checked %d plots, want 4", len(drawn))
	}
	var rows []string
	p.eval(`[...document.querySelectorAll('#nodes tbody tr')].map((tr) => tr.textContent)`, &rows)
	t.Logf("dashboard rows: %s", strings.Join(rows, " | "))
	p.screenshot("dashboard.png")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
