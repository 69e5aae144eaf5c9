// Package wal is Arena's per-room message log: every message a room's home
// sequences is appended here before its publisher is acknowledged, and
// read back for history, for subscribers that fell behind the in-memory
// ring, and for recovery at start. It is a layer over Pebble (one DB per
// node, the key layout is in layout.go) and knows nothing of the network
// or of other Arena packages.
//
// # Durability contract
//
// An appended record goes through two stages, each reported by a callback:
//
//   - written: the record is applied to Pebble. It is visible to Read and
//     survives the process being killed as soon as Pebble's WAL flusher
//     has handed it to the OS, which it does with the next fsync (see the
//     caveat below). The router fans a message out at this point.
//   - durable: the WAL fsync covering the record completed; it survives
//     power loss. The publisher is acknowledged at this point. If the
//     write or fsync failed, durable gets the error instead (and written
//     may not have run).
//
// Group commit: the committer goroutine puts everything queued (up to
// Config.MaxBatch records) in one Pebble batch and applies it without
// waiting for the fsync (pebble.DB.ApplyNoSyncWait); the syncer goroutine
// waits for each batch's fsync (pebble.Batch.SyncWait). While one fsync is
// in flight the next batches are applied and queue behind it, and Pebble
// covers them all with its next single fsync, so the fsync rate adapts to
// the disk and not to the publish rate.
//
// Caveat: Pebble's WAL writer buffers an applied batch in process memory
// until its flusher writes it out, right before the fsync it then runs.
// Pebble offers no "written to the OS" point to wait for, so a record is
// exposed to a kill -9 between written and that write(2), a window of at
// most one fsync in flight. Power loss and kill -9 never lose a durable
// record.
//
// A failed write or fsync of Pebble's WAL is not recoverable in-process
// (Pebble keeps the error): every later append gets durable(err) with an
// error wrapping ErrFailed, and the process should restart.
//
// Retention (Config.Retention, Config.DedupWindow) runs on a sweeper
// goroutine every Config.SweepInterval; see retention.go. It never deletes
// the newest message of a room's current epoch, so recovery always finds
// the head.
//
// Idempotency keys are stored in their messages. The index that
// LookupKey reads (layout.go) holds only the keys the caller asks for with
// IndexKeys, the ones it no longer remembers, and the keys of messages
// retention deletes while they are inside the dedup window. It keeps them
// in buckets of time, so retention drops a quarter window of keys with
// one range deletion (keyindex.go). After a restart the caller relearns
// the rest from the messages with RecentKeys: together they cover every
// key used within the window. IndexedKeys lists a room's index entries in
// the window, so that a restarted caller knows which keys are worth a
// LookupKey. SetKeptKeys records how many keys per room the caller keeps
// unindexed in memory, so that it relearns as many after a restart under
// a smaller number (setting.go).
//
// Receipt positions (how far each user received and read each room) live
// in the same DB under their own keys (state.go): PutReceipts writes a
// batch of them with one fsync, Receipt and Receipts read them. They are
// not part of the append queue and retention never deletes them.
//
// Hot marks (hot.go) make delivery before durability safe across a
// crash. A room that fans messages out on written rather than durable is
// first marked hot (MarkHot, for its current epoch) and marked cold again
// (MarkCold) once everything it delivered is durable. A crash may take
// delivered messages only from a hot room, and then their seqs must not
// be handed out again: Rooms reports RoomState.Hot for a room still marked
// in its current epoch, and the router restarts such a room in a new
// epoch. A mark of an older epoch is stale and ignored. Both ops go
// through the append queue, so their durable callbacks are ordered with
// the appends'.
//
// # Concurrency contract
//
// All methods are safe for concurrent use. Append, IndexKeys, SetEpoch,
// MarkHot and MarkCold return at once (blocking only while the bounded
// queue is full); their callbacks run on the log's two goroutines, written
// callbacks in queue order on one and durable callbacks in queue order on
// the other, and must neither block nor call back into Append, IndexKeys,
// SetEpoch, MarkHot, MarkCold or Close. Reads see every written record and never wait for
// appends. Close lets queued appends finish (their callbacks run) and is
// idempotent; calls after it return ErrClosed.
//
// # Example
//
//	l, err := wal.Open(wal.Config{Dir: "data/wal", Logger: logger})
//	if err != nil {
//		return err
//	}
//	defer l.Close()
//	epoch := uint64(time.Now().UnixMicro())
//	if err := l.SetEpoch("chat:lobby", epoch, nil); err != nil {
//		return err
//	}
//	rec := &wal.Record{Room: "chat:lobby", Epoch: epoch, Seq: 1,
//		TS: time.Now().UnixMilli(), From: "alice", Key: "k1", Data: []byte(`{"text":"hi"}`)}
//	acked := make(chan error, 1)
//	err = l.Append(rec,
//		func() { fanOut(rec) },                 // written: readable, fan out
//		func(err error) { acked <- err })       // durable: ack the publisher
//	...
//	recs, err := l.Read("chat:lobby", epoch, 1, 100)
package wal
