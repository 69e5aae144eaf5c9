package edge_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/arena-mesh/arena/edge/edgetest"
)

// TestBrowserSDKSemantics drives the SDK in a page against one node: a
// resume from an unknown epoch resets to the oldest message, idempotency
// keys make a repeated publish a duplicate, server refusals reject with
// their code, presence reports unavailable, and an expired token stops the
// client with close 4001 instead of reconnecting.
func TestBrowserSDKSemantics(t *testing.T) {
	n := edgetest.Start(t)
	tok := n.Token("ann", []string{"sdk:*"}, []string{"sdk:*"})
	b := newBrowser(t)
	p := newPage(t, b, "sdk", n.URL+"/healthz")
	p.connect(fmt.Sprintf(`connect(%s, { token: %s })`, jsString(n.URL), jsString(tok)))

	t.Run("reset to oldest", func(t *testing.T) {
		p.eval(`(async () => { for (let i = 1; i <= 3; i++) await T.arena.publish('sdk:reset', { n: i }); return true; })()`, nil)
		// Epoch 1 is not the room's (epochs are creation times in µs).
		var r struct {
			Got    []received `json:"got"`
			Resets []struct {
				From struct{ Epoch, Seq uint64 } `json:"from"`
				To   struct{ Epoch, Seq uint64 } `json:"to"`
			} `json:"resets"`
		}
		p.eval(`(async () => {
			const got = [], resets = [];
			const sub = await T.arena.subscribe('sdk:reset', {
				since: { epoch: 1, seq: 2 },
				onMessage: (m) => got.push({ e: m.epoch, s: m.seq, d: m.data }),
				onReset: (e) => resets.push(e),
			});
			const deadline = Date.now() + 10000;
			while (got.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
			await sub.unsubscribe();
			return { got, resets };
		})()`, &r)
		if len(r.Resets) != 1 || r.Resets[0].From.Epoch != 1 || r.Resets[0].From.Seq != 2 || r.Resets[0].To.Seq != 1 || r.Resets[0].To.Epoch <= 1 {
			t.Fatalf("resets %+v, want one from (1, 2) to (E, 1)", r.Resets)
		}
		if d := checkNoGap(t, r.Got); len(d) != 3 || r.Got[0].Seq != 1 || r.Got[0].Epoch != r.Resets[0].To.Epoch {
			t.Fatalf("after the reset got %+v, want seqs 1..3 of epoch %d", r.Got, r.Resets[0].To.Epoch)
		}
	})

	t.Run("idempotency key", func(t *testing.T) {
		var acks []struct {
			Seq uint64 `json:"seq"`
			Dup bool   `json:"dup"`
			Key string `json:"key"`
		}
		p.eval(`(async () => [
			await T.arena.publish('sdk:keys', { n: 1 }, { key: 'k-1' }),
			await T.arena.publish('sdk:keys', { n: 1 }, { key: 'k-1' }),
			await T.arena.publish('sdk:keys', { n: 2 }),
			await T.arena.publish('sdk:keys', { n: 3 }),
		])()`, &acks)
		if len(acks) != 4 || acks[0].Dup || !acks[1].Dup || acks[1].Seq != acks[0].Seq || acks[0].Key != "k-1" {
			t.Fatalf("acks %+v: the repeated key should be a duplicate of the first", acks)
		}
		if acks[2].Key == "" || acks[2].Key == acks[3].Key || acks[2].Dup || acks[3].Seq != acks[2].Seq+1 {
			t.Fatalf("acks %+v: generated keys should be fresh", acks)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		var codes map[string]string
		p.eval(`(async () => {
			const code = (p) => p.then(() => 'ok', (e) => e.code);
			return {
				sub: await code(T.arena.subscribe('other:room')),
				pub: await code(T.arena.publish('other:room', 1)),
				history: await code(T.arena.history('other:room')),
				badRoom: await code(T.arena.publish('bad room', 1)),
				ping: await code(T.arena.ping()),
			};
		})()`, &codes)
		want := map[string]string{"sub": "forbidden", "pub": "forbidden", "history": "forbidden", "badRoom": "bad_request", "ping": "ok"}
		for k, w := range want {
			if codes[k] != w {
				t.Errorf("%s: %q, want %q", k, codes[k], w)
			}
		}
		var connected bool
		p.eval(`T.arena.connected`, &connected)
		if !connected {
			t.Error("refusals cost the connection")
		}
	})

	t.Run("presence and receipts", func(t *testing.T) {
		// ann subscribes with presence; a second user marks her message
		// read. Nodes without presence answer unavailable, which the SDK
		// reports as such.
		other := newPage(t, b, "cy", n.URL+"/healthz")
		other.connect(fmt.Sprintf(`connect(%s, { token: %s })`, jsString(n.URL), jsString(n.Token("cy", []string{"sdk:*"}, []string{"sdk:*"}))))
		var offered bool
		p.eval(`(async () => {
			T.notices = [];
			T.psub = await T.arena.subscribe('sdk:presence', { presence: true, onEvent: (e) => T.notices.push(e) });
			T.pack = await T.arena.publish('sdk:presence', { hello: 'cy' });
			return T.arena.presence('sdk:presence').then(() => true, (e) => { if (e.code !== 'unavailable') throw e; return false; });
		})()`, &offered)
		if !offered {
			t.Log("this node does not offer presence: only the unavailable answer is checked")
			return
		}
		other.eval(`(async () => {
			T.osub = await T.arena.subscribe('sdk:presence', { since: { epoch: 1, seq: 0 }, onMessage: (m) => T.arena.markRead(m.room, m.seq) });
			return true;
		})()`, nil)
		p.wait("cy's join and read receipt", `T.notices.some((e) => e.type === 'join' && e.user === 'cy') &&
			T.notices.some((e) => e.type === 'receipt' && e.user === 'cy' && e.status === 'read' && e.seq === T.pack.seq)`, pageWait)
		p.wait("presence listing both", `(async () => {
			const m = await T.arena.presence('sdk:presence');
			return m.map((x) => x.user).sort().join(',') === 'ann,cy';
		})()`, pageWait)
		var rooms []struct {
			Room   string `json:"room"`
			Unread int    `json:"unread"`
		}
		other.eval(`T.arena.rooms()`, &rooms)
		if len(rooms) != 1 || rooms[0].Room != "sdk:presence" || rooms[0].Unread != 0 {
			t.Errorf("cy's rooms %+v, want sdk:presence with nothing unread", rooms)
		}
	})

	t.Run("expired token", func(t *testing.T) {
		// Long enough to connect on a loaded machine (page load and module
		// import come first), short enough to expire within pageWait.
		short := n.TokenTTL("bea", []string{"sdk:*"}, []string{"sdk:*"}, 4*time.Second)
		q := newPage(t, b, "expiring", n.URL+"/healthz")
		q.connect(fmt.Sprintf(`connect(%s, { token: %s, reconnectMin: 20, reconnectMax: 50 })`, jsString(n.URL), jsString(short)))
		q.wait("the client to stop", `T.arena.closed && T.arena.error !== null && T.arena.error.code === 'unauthorized' && T.errors.length > 0`, pageWait)
		var state struct {
			Closed bool     `json:"closed"`
			Events []string `json:"events"`
			Code   string   `json:"code"`
		}
		q.eval(`({ closed: T.arena.closed, events: T.events, code: T.arena.error && T.arena.error.code })`, &state)
		if !state.Closed || state.Code != "unauthorized" || len(state.Events) != 1 || state.Events[0] != "disconnect 4001" {
			t.Fatalf("after expiry: %+v, want closed by a 4001 and no reconnection", state)
		}
		var err struct {
			Code string `json:"code"`
		}
		q.eval(`T.arena.publish('sdk:keys', 1).then(() => ({ code: 'ok' }), (e) => ({ code: e.code }))`, &err)
		if err.Code != "unauthorized" {
			t.Errorf("publish on the stopped client: %q, want unauthorized", err.Code)
		}
	})
}
