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
// the lock makes the wal's queue order the room's seq order. The wal then
// calls back twice, on its own goroutine:
//
//   - written (applied to Pebble, survives a process crash): the message
//     joins the room's ring, the room's written head advances, and every
//     subscription without a pending notification gets Sink.Notify;
//   - durable (fsynced, group commit): the publisher's Publish returns its
//     Ack, as do duplicates that waited for it.
//
// So subscribers never see a message that kill -9 can lose, and the
// publisher is acked only once the message is on disk.
//
// PublishAsync splits the two points a publisher cares about: it returns
// once the message is sequenced (queued to the wal under the room lock,
// or, for a room homed elsewhere, once the forward frame is queued in
// order to the home), and calls its done function when the message is
// durable. A connection can so pipeline its publishes to a room, which
// keep their send order, instead of waiting for one fsync per message.
// Publish is PublishAsync waiting for done.
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
//   - The first local Subscribe registers interest at the home and builds
//     a replica: a local room whose ring the home's pushed messages fill,
//     in seq order, so Subscription and Pull work unchanged. Gaps are
//     detected by seq and fetched from the home; so are resume (Since),
//     catch-ups behind the ring, History and Head. The last local
//     Subscription's Close drops the interest.
//   - Fan-out is direct: the home pushes each message once to every
//     interested node (cross-region relaying is not done yet).
//
// When membership changes, only rooms whose home changed are touched: the
// old room object ends (its subscribers get ErrRoomRestarted after
// pulling what they have, and resume), and the new home starts the room
// with a new epoch, since logs are not handed over yet (MembersChanged).
//
// Wiring: the mesh takes its Handler and OnChange at mesh.New, before the
// router exists; MeshHooks bridges them.
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
