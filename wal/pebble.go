package wal

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"
)

// Pebble tuning for this workload: many small appends, each fsynced in a
// group, read back mostly while still recent, deleted in prefixes by
// retention.
const (
	// blockCacheBlocks is what the block cache holds for sstable blocks
	// (history reads and recovery) beyond the memtables. Pebble charges
	// memtables to the block cache (DB.newMemTable reserves their size in
	// it), so the cache is sized for one mutable and one flushing memtable
	// plus this: a cache no larger than the memtables caches nothing and
	// makes every seek a disk read.
	blockCacheBlocks = 64 << 20
	// targetFileSize is the L0 sstable size, doubled per level. Larger
	// files than Pebble's 2 MiB default keep the file count, and so the
	// descriptors the table cache holds, low.
	targetFileSize = 16 << 20
	// maxPreallocate caps the space Pebble preallocates in one call. For
	// every new WAL file it preallocates 110% of the memtable size, 140 MiB
	// with the default memtable, in the write path of the commit that
	// opened the file: 5 ms on this machine's ext4 and 45 ms on tmpfs,
	// where preallocating means zeroing memory. Until Pebble recycles WAL
	// files (from the fifth or so), a fresh node paid that on each of its
	// first memtable rotations, in its ack and delivery latency.
	maxPreallocate = 4 << 20
	// maxOpenFiles caps the table cache. The process runs with a cap of
	// 20,000 descriptors shared with client connections.
	maxOpenFiles = 500
)

// pebbleOptions builds the Pebble options for cfg.
func pebbleOptions(cfg Config, log zerolog.Logger) *pebble.Options {
	pl := pebbleLogger{log: log}
	opts := &pebble.Options{
		FS:                          cfg.FS,
		Logger:                      pl,
		MemTableSize:                uint64(cfg.MemTableSize),
		MemTableStopWritesThreshold: 4,
		CacheSize:                   2*cfg.MemTableSize + blockCacheBlocks,
		MaxOpenFiles:                maxOpenFiles,
		// FormatNewest writes WAL sync offsets, which lets recovery tell a
		// torn tail (expected after power loss) from corruption earlier in
		// the log.
		FormatMajorVersion: pebble.FormatNewest,
		EventListener: &pebble.EventListener{
			DiskSlow: func(info pebble.DiskSlowInfo) {
				log.Warn().Str("path", info.Path).Dur("duration", info.Duration).Msg("disk slow")
			},
			WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
				log.Warn().Str("reason", info.Reason).Msg("pebble write stall")
			},
			WriteStallEnd: func() {
				log.Info().Msg("pebble write stall ended")
			},
			// Pebble's default calls Logger.Fatalf. The read that found
			// the corruption returns an error anyway; one bad block should
			// fail the reads that touch it, not end the node.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				log.Error().Err(info.Details).Str("path", info.Path).Msg("pebble data corruption")
			},
		},
	}
	opts.TargetFileSizes[0] = targetFileSize
	if cfg.FS == nil {
		// The OS filesystem with the middleware Pebble puts on it by
		// default (disk health checks), over a cap on preallocation.
		opts.FS = preallocCapFS{vfs.Default}
		opts.WithFSDefaults()
	}
	if d := cfg.SyncInterval; d > 0 {
		opts.WALMinSyncInterval = func() time.Duration { return d }
	}
	return opts
}

// preallocCapFS is a filesystem whose files preallocate at most
// maxPreallocate bytes per call (see maxPreallocate).
type preallocCapFS struct{ vfs.FS }

func (fs preallocCapFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, cat)
	if err != nil {
		return nil, err
	}
	return preallocCapFile{f}, nil
}

func (fs preallocCapFS) ReuseForWrite(oldname, newname string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, cat)
	if err != nil {
		return nil, err
	}
	return preallocCapFile{f}, nil
}

func (fs preallocCapFS) Unwrap() vfs.FS { return fs.FS }

// preallocCapFile is a file of a preallocCapFS.
type preallocCapFile struct{ vfs.File }

func (f preallocCapFile) Preallocate(offset, length int64) error {
	return f.File.Preallocate(offset, min(length, maxPreallocate))
}

// pebbleLogger routes Pebble's log lines to zerolog: informational ones at
// Debug (Pebble is chatty about WAL recovery and file operations), errors at
// Error.
type pebbleLogger struct{ log zerolog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	if e := p.log.Debug(); e.Enabled() {
		e.Str("detail", fmt.Sprintf(format, args...)).Msg("pebble")
	}
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	if e := p.log.Error(); e.Enabled() {
		e.Str("detail", fmt.Sprintf(format, args...)).Msg("pebble error")
	}
}

// Fatalf is called by Pebble when it cannot continue (a failed WAL write in
// the commit pipeline, a corrupt sstable). Pebble's own logger exits the
// process; this one panics with a pebbleFatal instead, which the committer
// recovers from to fail the affected records and put the log in its failed
// state. Anywhere else the panic ends the process, as Pebble intends.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.log.Error().Str("detail", msg).Msg("pebble fatal")
	panic(pebbleFatal(msg))
}

// pebbleFatal is the panic value of pebbleLogger.Fatalf.
type pebbleFatal string

func (f pebbleFatal) Error() string { return string(f) }
