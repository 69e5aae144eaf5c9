package wal

import (
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Defaults filled in by Open for zero Config fields.
const (
	DefaultMaxBatch      = 4096
	DefaultMaxCount      = 100_000
	DefaultMaxAge        = 7 * 24 * time.Hour
	DefaultDedupWindow   = 10 * time.Minute
	DefaultSweepInterval = time.Minute

	// DefaultMemTableSize is Config.MemTableSize's default.
	DefaultMemTableSize = 128 << 20
	// MinMemTableSize and MaxMemTableSize bound Config.MemTableSize.
	MinMemTableSize = 4 << 20
	MaxMemTableSize = 1 << 30

	// MaxSyncInterval caps Config.SyncInterval: beyond it acks would wait
	// longer than any client should, and Close waits for the delayed
	// fsync of whatever is still queued.
	MaxSyncInterval = 100 * time.Millisecond
)

// Retention bounds what the log keeps of each room. The sweeper deletes
// the oldest messages beyond either bound, but always keeps the newest
// message of a room's current epoch, so that the room's head (the last
// seq handed out) survives a restart and seqs are never reused.
type Retention struct {
	// MaxCount is the number of messages kept per room, newest first,
	// counted across the room's epochs; 0 means DefaultMaxCount.
	MaxCount int
	// MaxAge is how long a message is kept after its TS; 0 means
	// DefaultMaxAge.
	MaxAge time.Duration
}

// Config configures a Log.
type Config struct {
	// Dir is the data directory (required). It is created if missing.
	Dir string
	// FS is the filesystem; nil means the OS filesystem (with Pebble's disk
	// health checks, which report stalled writes as warnings). Tests pass
	// vfs.NewCrashableMem() or an errorfs wrapper.
	FS vfs.FS
	// Logger receives lifecycle and Pebble messages; the zero value logs
	// nothing (a zero zerolog.Logger is disabled, like zerolog.Nop()).
	Logger zerolog.Logger
	// Registerer gets the log's metrics; nil means they are not registered.
	Registerer prometheus.Registerer
	// MaxBatch is the most records in one group commit; 0 means
	// DefaultMaxBatch. It is also the capacity of the append queue.
	MaxBatch int
	// Retention bounds what is kept per room; zero fields take defaults.
	Retention Retention
	// DedupWindow is how long an idempotency key is remembered; 0 means
	// DefaultDedupWindow.
	DedupWindow time.Duration
	// SweepInterval is how often retention runs; 0 means
	// DefaultSweepInterval.
	SweepInterval time.Duration
	// SyncInterval is the least time from the end of one fsync of the log
	// to the start of the next (Pebble's WALMinSyncInterval). A sync asked
	// for sooner waits, and then one fsync covers every group applied
	// meanwhile. Under a steady stream of small appends that cuts the
	// fsyncs, and the CPU each costs, to at most one per interval, at the
	// price of up to the interval more before a group is durable. 0 means
	// every group is synced as soon as the previous fsync ends; at most
	// MaxSyncInterval.
	SyncInterval time.Duration
	// MemTableSize is the size of Pebble's memtable, the part of the log
	// in memory that takes new records; a full one is flushed to an
	// sstable on disk. Every room appends at its own place in the key
	// space, so each flush overlaps nearly all that is already on disk,
	// and the compaction that follows rewrites it: the larger the
	// memtable, the fewer flushes, and the less of the node's CPU goes to
	// rewriting the same messages (README, "Benchmarks", round 10). The
	// log holds up to two memtables (one filling, one flushing) and a block
	// cache of twice this plus 64 MiB, in which Pebble counts the
	// memtables. 0 means DefaultMemTableSize; at least MinMemTableSize, at
	// most MaxMemTableSize.
	MemTableSize int64
	// Now is the clock used by retention and the dedup window; nil means
	// time.Now.
	Now func() time.Time
}

// ErrInvalid is wrapped by errors about bad arguments or configuration.
var ErrInvalid = errors.New("wal: invalid argument")

// withDefaults validates cfg and fills its zero fields.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Dir == "" {
		return cfg, fmt.Errorf("%w: Config.Dir is required", ErrInvalid)
	}
	if cfg.MaxBatch < 0 || cfg.Retention.MaxCount < 0 || cfg.Retention.MaxAge < 0 ||
		cfg.DedupWindow < 0 || cfg.SweepInterval < 0 || cfg.SyncInterval < 0 || cfg.MemTableSize < 0 {
		return cfg, fmt.Errorf("%w: negative Config value", ErrInvalid)
	}
	if cfg.SyncInterval > MaxSyncInterval {
		return cfg, fmt.Errorf("%w: Config.SyncInterval %v is above %v", ErrInvalid, cfg.SyncInterval, MaxSyncInterval)
	}
	if cfg.MemTableSize != 0 && (cfg.MemTableSize < MinMemTableSize || cfg.MemTableSize > MaxMemTableSize) {
		return cfg, fmt.Errorf("%w: Config.MemTableSize %d is outside [%d, %d]", ErrInvalid, cfg.MemTableSize, MinMemTableSize, MaxMemTableSize)
	}
	if cfg.MemTableSize == 0 {
		cfg.MemTableSize = DefaultMemTableSize
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.Retention.MaxCount == 0 {
		cfg.Retention.MaxCount = DefaultMaxCount
	}
	if cfg.Retention.MaxAge == 0 {
		cfg.Retention.MaxAge = DefaultMaxAge
	}
	if cfg.DedupWindow == 0 {
		cfg.DedupWindow = DefaultDedupWindow
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = DefaultSweepInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg, nil
}
