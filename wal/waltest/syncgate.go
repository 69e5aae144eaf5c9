// Package waltest has test doubles for code built on the wal: faults
// injected under a real Pebble through its errorfs filesystem, never a
// mock of the log itself.
package waltest

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// SyncGate is a filesystem for wal.Config.FS that can hold the next fsync
// of Pebble's WAL until released. Records applied meanwhile are readable
// but none becomes durable, which shows what publishers and subscribers
// see before durability (no ack, and no live delivery).
//
// Use: pass FS() to the wal, call Hold, publish, wait on Held (the held
// fsync has started), check, then Release. Register Release with
// t.Cleanup before the log is closed, so a failing test never leaves the
// fsync (and Close) hanging.
type SyncGate struct {
	hold    atomic.Bool
	held    chan struct{}
	release func()
	fs      vfs.FS
}

// NewSyncGate returns a gate over the OS filesystem, open until Hold.
func NewSyncGate() *SyncGate {
	g := &SyncGate{held: make(chan struct{}, 1)}
	released := make(chan struct{})
	g.release = sync.OnceFunc(func() { close(released) })
	g.fs = errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		switch op.Kind {
		case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
			if strings.HasSuffix(op.Path, ".log") && g.hold.CompareAndSwap(true, false) {
				g.held <- struct{}{}
				<-released
			}
		}
		return nil
	}))
	return g
}

// FS is the filesystem to give the wal.
func (g *SyncGate) FS() vfs.FS { return g.fs }

// Hold makes the next WAL fsync wait until Release.
func (g *SyncGate) Hold() { g.hold.Store(true) }

// Held receives once the held fsync has started.
func (g *SyncGate) Held() <-chan struct{} { return g.held }

// Release lets the held fsync (and every later one) finish. Idempotent.
func (g *SyncGate) Release() { g.release() }
