package wal

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/rs/zerolog"
)

// Record is one message of a room as stored in the log.
type Record struct {
	Room  string
	Epoch uint64
	Seq   uint64
	TS    int64  // ms since the Unix epoch
	From  string // publisher user id or API key name
	Key   string // idempotency key, "" if none (kept in the message; see IndexKeys)
	Data  []byte // the JSON value, verbatim
}

// DedupEntry is where an idempotency key was first used.
type DedupEntry struct {
	Epoch, Seq uint64
	TS         int64
}

// KeyUse is an idempotency key of a room and where it was used.
type KeyUse struct {
	Key string
	DedupEntry
}

// RoomState is what the log knows of a room, for recovery at start.
type RoomState struct {
	Room        string
	Epoch       uint64 // current epoch (latest SetEpoch)
	First, Head uint64 // oldest retained and newest seq in that epoch; 0, 0 when empty
	// Hot: the room was marked hot (MarkHot) in its current epoch and not
	// marked cold since, so messages of that epoch after Head may have
	// been delivered before a crash took them.
	Hot bool
}

var (
	// ErrClosed is returned by calls on a closed Log.
	ErrClosed = errors.New("wal: closed")
	// ErrFailed is wrapped by the error given to durable callbacks once a
	// write or fsync of Pebble's WAL has failed. Pebble cannot continue
	// after that (its WAL writer keeps the error), so neither can the log:
	// every later append fails the same way until the process reopens it.
	ErrFailed = errors.New("wal: failed after a write error")
)

// Log is a per-room message log on Pebble with two-stage group commit. See
// the package documentation for its contracts.
type Log struct {
	cfg     Config
	log     zerolog.Logger
	db      *pebble.DB
	metrics *metrics

	// mu guards closed, and is held for reading by the queuing calls
	// (Append, IndexKeys, SetEpoch, MarkHot, MarkCold, retention tasks)
	// while they queue and by readers while they use db, so that Close
	// neither closes queue under a sender nor db under a reader.
	mu     sync.RWMutex
	closed bool

	queue chan op     // appenders -> committer
	syncQ chan *group // committer -> syncer

	// failure is the first write or fsync error, set once; after it no
	// batch is applied (Pebble's commit pipeline may be unusable).
	failure atomic.Pointer[error]
	// pipelineBroken is set when Pebble failed inside the commit pipeline
	// (not just the fsync): it may then hold a batch it never finished, and
	// closing the DB could block, so Close leaves it to the process exit.
	pipelineBroken atomic.Bool

	// groups counts group commits (Pebble batches), for tests.
	groups atomic.Uint64

	// The key index (keyindex.go): the width of the buckets written, the
	// buckets held (sorted; replaced whole by the committer), and whether
	// 'k' entries of the layout before buckets were found at Open.
	width      uint32
	buckets    atomic.Pointer[[]dedupBucket]
	legacyKeys bool

	stopSweep context.CancelFunc
	sweepDone chan struct{}
	wg        sync.WaitGroup // committer and syncer

	closeOnce sync.Once
	closeErr  error
}

// Open opens (or creates) the log in cfg.Dir and starts its goroutines.
func Open(cfg Config) (*Log, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger.With().Str("component", "wal").Logger()
	db, err := pebble.Open(cfg.Dir, pebbleOptions(cfg, logger))
	if err != nil {
		return nil, fmt.Errorf("open pebble in %q: %w", cfg.Dir, err)
	}
	buckets, legacy, err := loadKeyIndex(db)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open pebble in %q: read key index: %w", cfg.Dir, err)
	}
	m := newMetrics()
	if err := m.register(cfg.Registerer); err != nil {
		_ = db.Close()
		return nil, err
	}
	l := &Log{
		cfg:     cfg,
		log:     logger,
		db:      db,
		metrics: m,
		queue:   make(chan op, cfg.MaxBatch),
		// syncQ bounds the groups applied but not yet durable. Pebble
		// merges their fsyncs; the bound only limits memory when the disk
		// stalls, after which Append blocks (back-pressure).
		syncQ:      make(chan *group, 256),
		sweepDone:  make(chan struct{}),
		width:      bucketWidth(cfg.DedupWindow),
		legacyKeys: legacy,
	}
	l.buckets.Store(&buckets)
	ctx, cancel := context.WithCancel(context.Background())
	l.stopSweep = cancel
	l.wg.Add(2)
	go l.runCommitter()
	go l.runSyncer()
	go l.runSweeper(ctx)
	logger.Info().Str("dir", cfg.Dir).Msg("wal opened")
	return l, nil
}

// Append queues rec for the next group commit. It returns at once,
// blocking only while the queue is full (back-pressure). written runs once
// rec is applied to Pebble (readable) and before its fsync; durable runs
// once rec is fsynced, or with the error that prevented it (then written
// may not have run). Both run on the log's own goroutines, in Append order;
// they must not block nor call Append, SetEpoch, MarkHot, MarkCold or
// Close, and either may be nil. rec.Key, if set, is recorded in the
// idempotency index in the same batch. The log does not modify rec; the
// caller must not either until written or durable has run.
//
// Append returns ErrClosed after Close, or an error wrapping ErrInvalid
// for a record the key layout cannot hold (empty room or one with 0x00,
// seq 0, oversized key); then no callback runs.
func (l *Log) Append(rec *Record, written func(), durable func(error)) error {
	if err := validRecord(rec); err != nil {
		return err
	}
	return l.enqueue(op{kind: opAppend, rec: rec, written: written, durable: durable})
}

// SetEpoch durably records that room now uses epoch (room creation or
// restart). It is queued and ordered like Append: durable runs in order
// with the appends' durable callbacks. Moving a room to a new epoch makes
// a hot mark of its old epoch stale (see MarkHot).
func (l *Log) SetEpoch(room string, epoch uint64, durable func(error)) error {
	if !validRoom(room) {
		return fmt.Errorf("%w: room name %q", ErrInvalid, room)
	}
	return l.enqueue(op{kind: opSetEpoch, room: room, epoch: epoch, durable: durable})
}

// IndexKeys queues entries in room's idempotency index for keys of
// messages already appended, so that LookupKey finds them for DedupWindow
// after their TS. Append does not index a record's key (the key is stored
// in the message, where RecentKeys finds it): the caller indexes the keys
// it can no longer remember in memory. Queue order makes this safe across
// a crash: an index op queued before an append is durable whenever that
// append is. durable runs in order with the appends' durable callbacks.
func (l *Log) IndexKeys(room string, keys []KeyUse, durable func(error)) error {
	if !validRoom(room) {
		return fmt.Errorf("%w: room name %q", ErrInvalid, room)
	}
	for _, k := range keys {
		if k.Key == "" || len(k.Key) > MaxKeyLen {
			return fmt.Errorf("%w: idempotency key of %d bytes", ErrInvalid, len(k.Key))
		}
	}
	return l.enqueue(op{kind: opIndexKeys, room: room, keys: keys, durable: durable})
}

func validRecord(rec *Record) error {
	switch {
	case rec == nil:
		return fmt.Errorf("%w: nil record", ErrInvalid)
	case !validRoom(rec.Room):
		return fmt.Errorf("%w: room name %q", ErrInvalid, rec.Room)
	case rec.Seq == 0:
		return fmt.Errorf("%w: seq 0 in room %q", ErrInvalid, rec.Room)
	case len(rec.Key) > MaxKeyLen:
		return fmt.Errorf("%w: idempotency key of %d bytes", ErrInvalid, len(rec.Key))
	}
	return nil
}

// enqueue hands o to the committer. The read lock keeps Close from closing
// the queue during the send; a send blocked on a full queue still ends
// because the committer drains it without taking mu.
func (l *Log) enqueue(o op) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	l.queue <- o
	return nil
}

// fail records err as the log's failure, once, and returns the failure.
func (l *Log) fail(err error) error {
	wrapped := fmt.Errorf("%w: %w", ErrFailed, err)
	if l.failure.CompareAndSwap(nil, &wrapped) {
		l.log.Error().Err(err).Msg("wal write failed; appends fail until restart")
		return wrapped
	}
	return *l.failure.Load()
}

// failed returns the log's failure, or nil.
func (l *Log) failed() error {
	if p := l.failure.Load(); p != nil {
		return *p
	}
	return nil
}

// Close stops accepting appends, lets the queued ones finish (their
// callbacks run), stops the goroutines and closes Pebble. It is idempotent:
// later calls return the first call's result.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		// The sweeper queues its deletes like appends, so it stops first.
		l.stopSweep()
		<-l.sweepDone

		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		close(l.queue)
		l.wg.Wait()

		l.metrics.unregister(l.cfg.Registerer)
		if l.pipelineBroken.Load() {
			l.closeErr = fmt.Errorf("close: %w", l.failed())
			l.log.Warn().Msg("wal closed without closing pebble after a commit pipeline failure")
			return
		}
		err := l.db.Close()
		if failure := l.failed(); failure != nil {
			// Pebble's WAL writer keeps the write error and reports it
			// again while closing; the failure is the useful one.
			l.closeErr = fmt.Errorf("close: %w", failure)
			return
		}
		if err != nil {
			l.closeErr = fmt.Errorf("close pebble: %w", err)
			return
		}
		l.log.Info().Msg("wal closed")
	})
	return l.closeErr
}

// readDB runs fn with the database unless the log is closed.
func (l *Log) readDB(fn func(db *pebble.DB) error) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	return fn(l.db)
}
