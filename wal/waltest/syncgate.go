// Package waltest has test doubles for code built on the wal: faults
// injected under a real Pebble through its errorfs filesystem, never a
// mock of the log itself.
package waltest

import (
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// SyncGate is a filesystem for wal.Config.FS that can hold the next fsync
// of Pebble's WAL until released. Records applied meanwhile are readable
// but none becomes durable, which shows what publishers and subscribers
// see before durability (no ack; live delivery only from rooms that
// deliver before the fsync).
//
// Use: pass FS() to the wal, call Hold, publish, wait on Held (the held
// fsync has started), check, then Release. A gate can hold again after a
// Release. Register Release with t.Cleanup before the log is closed, so a
// failing test never leaves the fsync (and Close) hanging.
type SyncGate struct {
	mu       sync.Mutex
	hold     bool          // guarded by mu: the next WAL fsync waits for released
	released chan struct{} // guarded by mu: closed by Release
	held     chan struct{}
	fs       vfs.FS
}

// NewSyncGate returns a gate over the OS filesystem, open until Hold.
func NewSyncGate() *SyncGate { return NewSyncGateOver(vfs.Default) }

// NewSyncGateOver returns a gate over fs (for example a
// vfs.NewCrashableMem, to crash while an fsync is held), open until Hold.
func NewSyncGateOver(fs vfs.FS) *SyncGate {
	g := &SyncGate{held: make(chan struct{}, 1), released: make(chan struct{})}
	close(g.released)
	g.fs = errorfs.Wrap(fs, errorfs.InjectorFunc(func(op errorfs.Op) error {
		switch op.Kind {
		case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
			if !strings.HasSuffix(op.Path, ".log") {
				return nil
			}
			g.mu.Lock()
			hold, released := g.hold, g.released
			g.hold = false
			g.mu.Unlock()
			if hold {
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
func (g *SyncGate) Hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold = true
	select {
	case <-g.released:
		g.released = make(chan struct{})
	default: // still held from an earlier Hold
	}
}

// Held receives once the held fsync has started.
func (g *SyncGate) Held() <-chan struct{} { return g.held }

// Release lets the held fsync (and every later one until the next Hold)
// finish. Idempotent.
func (g *SyncGate) Release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold = false
	select {
	case <-g.released:
	default:
		close(g.released)
	}
}
