// Package edge terminates Arena's clients: WebSocket sessions speaking the
// protocol of PROTOCOL.md (package protocol), Server-Sent Events streams,
// MQTT 3.1.1 and 5 connections (see "MQTT" below), and the HTTP API (publish, history, presence, edges, cluster, metrics,
// health and readiness). It authenticates with edge/auth, rate-limits
// publishes per user, and hands messages to the router, which sequences,
// stores and fans them out.
//
// # Sessions
//
// Each WebSocket connection is a session with at most two goroutines,
// both owned by the Server (tracked, stopped by Drain and Close):
//
//   - the reader (started by the HTTP handler, which returns once the
//     connection is upgraded) reads messages, splits them into frames
//     ('\n'-separated) and handles each in order;
//   - the writer writes everything ready as ONE WebSocket message of
//     '\n'-joined frames (up to about 64 KiB): queued control frames
//     (replies, acks, errors) first, then messages pulled from the
//     session's dirty subscriptions. It is started when work comes and
//     exits after a second without any.
//
// An idle connection is what a node holds most of, so it is kept small
// (about 8.5 KiB in BenchmarkIdleConnMemory): one goroutine whose stack
// the GC shrinks to 4 KiB, no buffers between messages (reads and writes
// use pooled buffers, and the socket's own buffers are 16 bytes, see
// wsconn.go), no per-session logger or context.
//
// A publish is checked on the reader (permission, size, the user's rate
// limit shared by all of the user's connections and the HTTP API) and
// handed to router.PublishAsync inline: it returns once the message is
// sequenced (or queued in order to the room's home), so the reader goes
// on with the next frame and a session's publishes to a room get seqs in
// the order they were sent, pipelined into the same group commits. The
// ack is queued by the router's done callback once the message is
// durable; acks of different rooms may come in any order. At most
// Config.MaxInFlight publishes per session are in flight, past which the
// reader waits (back-pressure through TCP).
//
// Fan-out never queues messages per subscriber. Each subscription's
// router.Sink.Notify only marks it dirty and wakes the writer (it runs on
// the publish path and never blocks); the writer pulls from the router's
// ring (or the wal when it fell behind) with Subscription.Pull. Each
// message is encoded once (router.Message.Encoded with protocol.AppendMsg)
// and the bytes are shared by every subscriber. A client that does not
// read costs a cursor, not memory; if its cursor falls out of the wal's
// retention it is closed with 4010. The subscribed reply of a sub always
// precedes the messages of that subscription.
//
// The control-frame queue holds at most Config.SendQueue frames; when it
// is full the reader waits for the writer before queueing a reply or
// starting a publish. Publish results never wait (they run on the
// router's goroutines); each in-flight publish adds at most one, so the
// queue holds at most SendQueue+MaxInFlight frames. Every write has a timeout (Config.WriteTimeout), so a peer that
// stopped reading is eventually cut.
//
// # Choices where PROTOCOL.md is silent
//
//   - A bad token in the Authorization header of the upgrade is refused
//     with HTTP 401 and an error body. A bad token in the connect frame
//     gets an unauthorized error frame and close 4001.
//   - connect is required even when the token came in the header; any
//     other frame before it gets bad_request ("send connect first").
//   - The subprotocol arena.v1.json is selected when offered; clients that
//     offer none are served all the same.
//   - A disallowed browser Origin is accepted and then closed with 1008
//     (not refused with 403), so browsers can see why.
//   - Frames without an id get no reply unless they fail; this includes
//     connect and ping.
//   - A second sub of a room replaces the first subscription.
//   - refresh needs a token for the same user; it moves the expiry and
//     its permissions apply to later frames (existing subscriptions stay).
//     A failed refresh leaves the connection as it was.
//   - Token expiry sends an unauthorized error frame, then close 4001.
//   - More than 100 bad frames within 10 s close with 1008; more than
//     1000 rate-limited publishes within 10 s close with 4008.
//   - history with before=0 returns no messages; after=0 returns the
//     oldest retained messages (from wherever retention made the room
//     start, not necessarily seq 1).
//   - A room whose home node cannot be reached gets unavailable (HTTP
//     503) on pub, sub, history and SSE; the client may retry.
//   - Every WebSocket subscription makes its user present in the room
//     (SSE streams do not); "presence": true on sub also delivers join,
//     leave and every receipt of the room. A connection the client
//     closes (or an unsub) leaves at once; one that drops, is drained or
//     is cut keeps its user present for the router's PresenceGrace
//     (default 15 s). Events come in batches per router.EventInterval; a
//     session that lets more than maxQueuedEvents of them queue up is
//     closed with 4010. See presence.go.
//   - recv and read have no reply (unless refused). A receipt frame
//     reaches the publisher's connections subscribed to the room (on any
//     edge) and presence subscribers; delivered receipts are sent when
//     the user's highest delivered seq advances, read receipts are
//     cumulative.
//   - rooms (an Arena addition) and GET /v1/users/{user}/rooms list the
//     user's rooms with read positions: {"room","head","read","unread"},
//     by room name. Only the user itself or an admin API key may ask; a
//     user sees only the rooms it may subscribe to.
//   - SSE streams start with an "event: subscribed" event carrying the
//     subscribed frame (head, reset, oldest); msg events have only data
//     and id lines. The token may also be given as ?token= and the resume
//     position as ?since=EPOCH:SEQ, because EventSource cannot set
//     headers. A stream whose position leaves retention ends.
//   - Drain and Close send reconnect (reason "draining" or "closing") and
//     then close 1001.
//
// # MQTT
//
// Server.ServeMQTT serves MQTT 3.1.1 and 5 clients on a listener the node
// gives it (the packet codec is mochi-mqtt's packets package; the session
// loop is Arena's, so Arena stays the source of truth). An MQTT
// connection is a session like a WebSocket one (a reader, a writer that
// pulls, the same limits), and MQTT and WebSocket clients share rooms:
//
//   - CONNECT: the password is the token (JWT or API key); the user name
//     is ignored; in dev mode no password is needed. A bad or missing
//     token gets CONNACK 5 (3.1.1) or 0x86 (5). No session state is kept
//     after a connection ends (session present is always 0); a second
//     connection of the same user and client id takes over (0x8E).
//   - Topics are room names: a topic that is not a valid room name is
//     refused (0x90). Filters must be exact room names: the router cannot
//     subscribe to a set of rooms, so every wildcard filter is refused
//     (SUBACK 0x80 in 3.1.1, 0xA2 in 5; shared subscriptions 0x9E), and
//     CONNACK says so to MQTT 5 clients. (With prefix subscriptions,
//     "a/b/#" would mean the room "a/b" and every room under "a/b/".)
//   - Payload to data: valid JSON is the data (compacted); other UTF-8
//     text becomes a JSON string; binary (not UTF-8) is refused (0x99).
//     Data to payload: a JSON string is delivered as its text, any other
//     value as its JSON. So MQTT clients get back what they sent, except
//     that a payload that was a JSON string literal loses its quotes. An
//     MQTT 5 user property "key" is the publish's idempotency key.
//   - PUBLISH goes through router.PublishAsync with the checks of a
//     WebSocket pub (permission, MaxDataBytes); PUBACK (QoS 1) or PUBREC
//     (QoS 2, exactly once per connection) is sent once the message is
//     durable. Over the user's rate a publish waits for the bucket instead
//     of being refused: MQTT cannot say "later". A refused QoS 1/2 publish
//     gets a negative ack in MQTT 5 (0x87 forbidden, 0x97 too large);
//     3.1.1 has none, so the connection is closed, as it is for a refused
//     QoS 0 publish (MQTT 5: DISCONNECT with the reason). Retained
//     messages are not supported (MQTT 5 retain: DISCONNECT 0x9A; the
//     3.1.1 retain flag is ignored).
//   - SUBSCRIBE grants QoS 0 or 1 (2 is served as 1); forbidden rooms get
//     0x80 (3.1.1) or 0x87 (5). QoS 1 deliveries carry packet ids, at most
//     min(Receive Maximum, MaxInFlight) unacknowledged; past that the
//     subscription's cursor waits for PUBACKs (unacknowledged messages are
//     not resent).
//   - The Will Message is published when a connection drops without
//     DISCONNECT (permission checked at CONNECT), not on drain, takeover
//     or token expiry. Token expiry, drain and close end the connection
//     (MQTT 5: DISCONNECT 0x87, 0x8B); a malformed packet ends it too.
//
// # Example
//
//	srv, err := edge.New(edge.Config{NodeID: "n1", Region: "eu", Router: rt, Auth: a})
//	if err != nil { ... }
//	hs := &http.Server{Addr: "127.0.0.1:8080", Handler: srv.Handler()}
//	go hs.ListenAndServe()
//	...
//	_ = srv.Drain(ctx) // SIGTERM: clients move to other edges
//	_ = srv.Close()
//	_ = hs.Shutdown(shutdownCtx)
package edge
