// Package router holds the rooms homed on this node: it orders each room's
// messages, stores them in the wal, fans them out to subscribers, and serves
// resume and history.
//
// # The life of a message
//
// Publish looks the room up (creating it with a new epoch, recorded in the
// wal, if it is unknown) and, under the room's lock: checks the idempotency
// key (in memory, then in the wal's key index when memory cannot tell),
// assigns the next seq, and hands the record to wal.Append. Appending under
// the lock makes the wal's queue order the room's seq order. The message
// is delivered (on a wal goroutine, in seq order): it joins the room's
// ring, the room's head advances, every subscription without a pending
// notification gets Sink.Notify, and interested nodes are pushed it (see
// below). Once the wal has fsynced the group commit holding the record,
// its durable callback completes the publisher's PublishAsync (its Ack),
// and duplicates that waited for it.
//
// By default a message is delivered once durable. With Config.HotIdle
// set, when depends on the room (hot.go): a hot room
// delivers as soon as the wal has applied the record, before its fsync,
// which takes the fsync off the delivery path; a cold room (its first
// messages after HotIdle without a publish) delivers once the record is
// durable, while its hot mark, queued before the message, becomes durable
// with it. The mark is what makes early delivery safe: a message
// delivered and then lost to kill -9 before its fsync would otherwise see
// its seq given to another message after the restart; a room still marked
// hot after an unclean stop restarts in a new epoch instead, so no
// position ever names two messages.
//
// Subscriptions are cursors, not queues: a Subscription remembers the last
// seq pulled, and Pull copies message pointers from the ring, or reads the
// wal when the cursor has fallen behind the ring (a catch-up). A subscriber
// that stops reading costs no memory and delays nobody; if it falls behind
// the wal's retention, Pull returns ErrTooSlow.
//
// Rooms idle for a DedupWindow with no subscriber leave memory (their epoch
// and head are kept, a few words) and come back on next use.
//
// # Several nodes
//
// With Config.Mesh set, every room has one home: the rendezvous-hash
// winner among the live members of its home region (Placement, Home).
// The home does all of the above for its rooms. On any other node:
//
//   - Publish forwards the request to the home (a peer frame, see
//     peerframe.go) and returns the home's ack, durable there; dedup and
//     sequencing stay on the home, which sequences the frames of a room
//     in arrival order (the mesh keeps one sender's frames of a room in
//     send order). An unreachable home is ErrUnavailable.
//   - The first local Subscribe registers interest at the room's feed
//     (see below) and builds a replica: a local room whose ring the
//     feed's pushed messages fill, in seq order, so Subscription and Pull
//     work unchanged. Gaps are detected by seq and fetched from the home
//     itself (never from a relay); so are resume (Since), catch-ups
//     behind the ring, History and Head. The last local Subscription's
//     Close drops the interest (unless the node relays the room).
//   - Fan-out is relayed across regions (Router.sourceOf): a node in the
//     home's region takes the room from the home (its feed is the home).
//     A node in another region takes it from its region's relay, the
//     rendezvous winner for the room among that region's placed members
//     (Home(room, region, ...)). The relay itself takes it from the home
//     like any edge; it keeps its replica while a local client or an
//     interested node of its region uses it, and its replica's ring
//     pushes each message, in seq order, on to them. So the home pushes
//     each message once per interested node of its region plus once per
//     other region with interest (arena_router_peer_msgs_sent_total).
//     A relay whose replica ends (its epoch is over, or it cannot be
//     made whole) tells its nodes (ended frame), which register again.
//     A relay that does not take an interest in time (its view of the
//     members lags) is given up for the home, and asked again after a
//     PeerTimeout. A node answers a push from a node that is not its
//     feed for the room with a drop, so an interest whose drop was lost
//     (a dropped frame, or one that overtook its registration) does not
//     double the fan-out for the life of the room.
//
// When membership changes, only rooms whose home changed are touched
// (MembersChanged). A planned move keeps the room's epoch:
//
//   - Leaving: on drain the node calls Handoff before mesh.Leave. It tells
//     every peer it leaves (they place rooms without it from then on),
//     then freezes each of its rooms, waits for the room's in-flight
//     publishes to be durable and sends the new home a handoff frame:
//     epoch, head, the newest messages (up to RingSize and
//     MaxHistoryLimit, what fits in one frame) and the idempotency keys
//     still in the window. The new home writes them to its wal (SetEpoch,
//     then the records at their seqs) and serves the room from head+1 in
//     the same epoch. Rooms move 8 at a time (handoffParallelism): each
//     waits unserved until its own handoff is done, and one at a time a
//     move across a WAN took a round trip per room. Keys beyond the
//     handoff frame go first in handoffKeys frames, one room at a time
//     (a very busy room's can be tens of MB); a new home that does not
//     take them (an older build drops them) is waited on once per batch.
//   - Joining: a node that sees a new member hands over, the same way,
//     the rooms the new member wins, then says so (handedOver frame).
//     The joining node itself loads and starts no room until its mesh
//     has joined (mesh.Joined) and its view holds what the join brought:
//     the mesh learns the seed's (or the first member's) members one at a
//     time, and a view taken in between would place a room held by a
//     member it lacks as if it came from a node with nothing to hand over
//     (the room would start anew beside the live one). Publishes
//     meanwhile wait, as below. With mesh.Config.BootstrapExpect, Joined
//     also waits, in a mesh starting up, for that many members, so that
//     a whole cluster started at once places each room on its own home.
//   - A node that becomes a room's home does not load or start the room
//     while the room's previous home (the winner without this node) may
//     still hand it over: until that node's handoff or handedOver arrives,
//     it leaves the mesh, or 6 PeerTimeouts pass without a handoff from
//     it (each handoff or handoffKeys frame restarts that wait, so a
//     node moving thousands of rooms is waited for to the last one).
//     Publishes meanwhile wait (local ones, up to PeerTimeout) or are
//     answered "retry" and re-sent by the forwarding node; so are
//     publishes that reach the old home after it stopped sequencing the
//     room. Only when the previous home is
//     truly gone (crash, or the handoff failed) does the room start a new
//     epoch, as before.
//   - Replicas on other nodes re-register their interest at their new
//     feed (the new home, or their region's relay, unchanged or not) and
//     continue the same stream; what the old feed did not push is
//     fetched from the new home. So do the nodes of a region whose relay
//     for a room changed (a relay left, died or joined; a leaving relay
//     counts as gone once it announced leaving), with no gap.
//     Subscriptions on the old home itself (and a replica on the new
//     home) end with ErrRoomMoved: the client resumes from its position,
//     without Reset.
//   - History: the new home has the handed-over messages only; older
//     messages stay in the old home's wal and are not served any more.
//     The newest keys ride in the handoff frame; those beyond its budget
//     and those the old home's memory evicted into its wal's index go
//     before it in handoffKeys frames, which the new home indexes in its
//     wal and looks misses up in until the handoff's until (a new home
//     that does not answer them, an older build, gets none, and the
//     batch's other rooms do not wait on it again). Keys of an
//     older epoch relearnt after a restart are not handed over (the new
//     home takes handed-over seqs as positions in the room's current
//     epoch). Rooms recovered from the wal at start and not
//     used since are not handed over (they may be stale). A room handed
//     away stays marked in the old home's wal until it is handed back;
//     if the old home serves it from the wal without a handback, it
//     starts a new epoch (hot.go). After several
//     membership changes in a row, only the runner-up is waited for.
//     Per-publisher order of pipelined publishes that were re-sent during
//     a move is not kept (each is acked with its real position).
//
// When a home dies, its rooms restart on their new homes with a new epoch
// (their subscribers get ErrRoomRestarted, and a Reset on resume).
//
// Wiring: the mesh takes its Handler and OnChange at mesh.New, before the
// router exists; MeshHooks bridges them.
//
// # Presence and receipts
//
// Enter makes a connection present in a room (the edge calls it for
// every subscription) and PresenceConn.Leave ends it, at once or, for a
// connection that dropped, after Config.PresenceGrace. Each node counts
// its connections per room and user (presence.go, a pure state machine)
// and reports changed counts to the room's home, which holds the member
// set, turns it into joins and leaves, and coalesces them per
// Config.EventInterval before sending them to every node with
// connections in the room (EventSink). Receipt records recv and read at
// the home (receipts.go): positions are cached, stored in the wal's
// receipt store once per interval, and become receipt events for the
// publishers and presence watchers. Presence answers who is in a room;
// UserRooms lists a user's read positions with unread counts, asking
// every node. Peer frames: peerframe_presence.go; the multi-node part:
// presence_remote.go; the event loop: events.go.
//
// # Concurrency
//
// Every Router method is safe for concurrent use. Per room, sequencing is
// serialized by the room's lock; rooms never wait on each other. The ring
// and the subscriber list have their own locks, which the wal callbacks take
// (never the room lock: a publisher may hold it while wal.Append waits for
// queue space). Sink.Notify runs on the publish path and must not block;
// neither may PublishAsync's done, which runs on the wal's or the mesh's
// goroutines.
// A Subscription's Pull must be called by one goroutine at a time; Close,
// Position and Room by any. Messages are shared and immutable.
//
// The sequencing logic itself (seq assignment, idempotency window) is a pure
// state machine without I/O or clock (sequencer.go), tested with tables.
//
// # Example
//
//	log, _ := wal.Open(wal.Config{Dir: dir})
//	r, _ := router.New(router.Config{Log: log})
//	defer log.Close()
//	defer r.Close()
//
//	res, _ := r.Subscribe(ctx, router.SubscribeRequest{Room: "chat:1", Sink: sink})
//	ack, _ := r.Publish(ctx, router.PublishRequest{Room: "chat:1", From: "ann", Key: "k1", Data: []byte(`"hi"`)})
//	// sink.Notify(res.Sub) has been called; the connection's writer pulls:
//	msgs, err := res.Sub.Pull(nil, 64) // msgs[0].Seq == ack.Seq
package router
