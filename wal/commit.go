package wal

import (
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Group commit runs in two stages, each on one goroutine owned by the Log:
//
//  1. The committer takes everything queued (up to MaxBatch records or
//     maxGroupBytes) into ONE Pebble batch, applies it with
//     DB.ApplyNoSyncWait(batch, pebble.Sync) — the batch is then in the
//     memtable (readable) and queued in Pebble's WAL writer — runs the
//     written callbacks in order and hands the group to the syncer.
//  2. The syncer waits for the group's fsync (Batch.SyncWait) and runs the
//     durable callbacks in order.
//
// The committer never waits for an fsync, so while one is in flight it
// keeps applying the groups that arrive, and Pebble's WAL flusher covers
// all of them with its next single fsync (cockroachdb/pebble
// record/log_writer.go: one sync for every waiter queued meanwhile). So
// there is at most one fsync per group, usually far fewer.

// maxGroupBytes caps a group's batch so that a burst of large records does
// not make one huge batch (Pebble turns batches above half a memtable into
// flushable batches, which cost a flush each).
const maxGroupBytes = 8 << 20

type opKind uint8

const (
	opAppend opKind = iota
	opSetEpoch
	opMarkHot
	opMarkCold
	opIndexKeys
	opSweep
)

// op is one queued request. It travels by value through the queue so that
// queuing allocates nothing.
type op struct {
	kind    opKind
	rec     *Record  // opAppend
	room    string   // opSetEpoch, opMarkHot, opMarkCold, opIndexKeys
	epoch   uint64   // opSetEpoch, opMarkHot
	keys    []KeyUse // opIndexKeys
	sweep   *sweepTask
	written func()
	durable func(error)
}

// sweepTask is retention work that must be ordered with appends: build
// reads the current state and adds deletes to b. It runs on the committer
// after every earlier group is applied, so it sees their writes and no
// append can slip in between its reads and its deletes. done gets the
// result of applying b.
type sweepTask struct {
	build func(db *pebble.DB, b *pebble.Batch) error
	done  func(error)
}

// group is one group commit: the ops of one Pebble batch.
type group struct {
	ops     []op
	records int
	batch   *pebble.Batch
	applied time.Time
	err     error // set when the batch was not applied or failed
}

var groupPool = sync.Pool{New: func() any { return new(group) }}

// runCommitter is stage 1. It owns the write side of Pebble: every batch,
// including retention's deletes, is applied here, so that a Pebble failure
// is seen by one goroutine which then stops writing.
func (l *Log) runCommitter() {
	defer l.wg.Done()
	defer close(l.syncQ)
	var (
		next    op
		hasNext bool
	)
	for {
		o := next
		if hasNext {
			next, hasNext = op{}, false
		} else {
			var ok bool
			if o, ok = <-l.queue; !ok {
				return
			}
		}
		if o.kind == opSweep {
			l.runSweepTask(o.sweep)
			continue
		}
		g := groupPool.Get().(*group)
		g.batch = l.db.NewBatch()
		l.add(g, o)
	fill:
		for len(g.ops) < l.cfg.MaxBatch && g.batch.Len() < maxGroupBytes {
			select {
			case o, ok := <-l.queue:
				if !ok {
					break fill // closed: commit this group; the next receive ends the loop
				}
				if o.kind == opSweep {
					next, hasNext = o, true
					break fill
				}
				l.add(g, o)
			default:
				break fill
			}
		}
		l.commit(g)
	}
}

// add encodes o into g's batch. Only the committer touches a group until
// it is handed to the syncer, so no lock is needed.
func (l *Log) add(g *group, o op) {
	g.ops = append(g.ops, o)
	b := g.batch
	switch o.kind {
	case opAppend:
		g.records++
		rec := o.rec
		d := b.SetDeferred(messageKeyLen(rec.Room), messageValueLen(rec))
		putMessageKey(d.Key, rec.Room, rec.Epoch, rec.Seq)
		putMessageValue(d.Value, rec)
		_ = d.Finish() // unindexed batch: Finish cannot fail
		// The key rides in the message value only; the idempotency index
		// gets it when the caller asks (IndexKeys) or retention deletes
		// the message inside the window. See layout.go.
	case opIndexKeys:
		g.records++
		cutoff := l.dedupCutoff()
		for _, k := range o.keys {
			l.putIndexEntry(b, o.room, k, cutoff)
		}
	case opSetEpoch:
		g.records++
		d := b.SetDeferred(1+len(o.room), roomValueLen)
		putRoomKey(d.Key, o.room)
		putRoomValue(d.Value, o.epoch)
		_ = d.Finish()
	case opMarkHot:
		g.records++
		d := b.SetDeferred(hotKeyLen(o.room), hotValueLen)
		putHotKey(d.Key, o.room)
		putHotValue(d.Value, o.epoch)
		_ = d.Finish()
	case opMarkCold:
		// A delete of a key that does not exist is fine: no mark stays
		// no mark.
		g.records++
		d := b.DeleteDeferred(hotKeyLen(o.room))
		putHotKey(d.Key, o.room)
		_ = d.Finish()
	}
}

// commit applies g without waiting for its fsync, runs the written
// callbacks and hands g to the syncer. A failed log applies nothing: the
// group goes to the syncer with the failure, so durable callbacks still
// run in order.
func (l *Log) commit(g *group) {
	if err := l.failed(); err != nil {
		g.err = err
		_ = g.batch.Close() // never applied: safe to release
		g.batch = nil
	} else if err := l.apply(g.batch, pebble.Sync, true); err != nil {
		g.err = l.fail(fmt.Errorf("apply batch of %d records: %w", g.records, err))
		g.batch = nil // Pebble may still reference it: do not release
	} else {
		g.applied = time.Now()
		l.groups.Add(1)
		l.metrics.batchRecords.Observe(float64(g.records))
		appends := 0
		for i := range g.ops {
			o := &g.ops[i]
			if o.kind != opAppend {
				continue
			}
			appends++
			if o.written != nil {
				o.written()
			}
		}
		l.metrics.appends.Add(float64(appends))
	}
	l.syncQ <- g
}

// apply applies b, turning Pebble's fatal commit errors (reported through
// pebbleLogger.Fatalf as a panic) into an error and marking the pipeline
// broken. Any other panic is Pebble's or ours and is not hidden.
func (l *Log) apply(b *pebble.Batch, opts *pebble.WriteOptions, noSyncWait bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(pebbleFatal)
			if !ok {
				panic(r)
			}
			l.pipelineBroken.Store(true)
			err = f
		}
	}()
	if noSyncWait {
		err = l.db.ApplyNoSyncWait(b, opts)
	} else {
		err = l.db.Apply(b, opts)
	}
	if err != nil {
		l.pipelineBroken.Store(true)
	}
	return err
}

// runSyncer is stage 2: it waits for each group's fsync in order and runs
// its durable callbacks. Groups applied while an fsync was in flight are
// covered by the next one, so their SyncWait calls return together.
func (l *Log) runSyncer() {
	defer l.wg.Done()
	for g := range l.syncQ {
		err := g.err
		if err == nil {
			if serr := g.batch.SyncWait(); serr != nil {
				err = l.fail(fmt.Errorf("wait for wal sync: %w", serr))
			} else {
				l.metrics.fsyncSeconds.Observe(time.Since(g.applied).Seconds())
			}
			_ = g.batch.Close()
		}
		for i := range g.ops {
			if d := g.ops[i].durable; d != nil {
				d(err)
			}
		}
		clear(g.ops) // drop references to records and callbacks
		*g = group{ops: g.ops[:0]}
		groupPool.Put(g)
	}
}

// runSweepTask runs a task queued by runTask (retention, a setting) on the
// committer.
func (l *Log) runSweepTask(t *sweepTask) {
	if err := l.failed(); err != nil {
		t.done(err)
		return
	}
	b := l.db.NewBatch()
	if err := t.build(l.db, b); err != nil {
		_ = b.Close()
		t.done(err)
		return
	}
	if b.Empty() {
		_ = b.Close()
		t.done(nil)
		return
	}
	// Deletes need no fsync of their own: if they are lost in a crash,
	// the next sweep deletes again.
	if err := l.apply(b, pebble.NoSync, false); err != nil {
		t.done(l.fail(fmt.Errorf("apply retention batch: %w", err)))
		return
	}
	_ = b.Close()
	t.done(nil)
}
