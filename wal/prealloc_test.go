package wal

import (
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"
)

// preallocRecorder is a filesystem whose files record what they are asked
// to preallocate.
type preallocRecorder struct {
	vfs.FS
	mu      sync.Mutex
	lengths []int64 // guarded by mu
}

func (r *preallocRecorder) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := r.FS.Create(name, cat)
	return recordingFile{f, r}, err
}

func (r *preallocRecorder) ReuseForWrite(oldname, newname string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := r.FS.ReuseForWrite(oldname, newname, cat)
	return recordingFile{f, r}, err
}

type recordingFile struct {
	vfs.File
	r *preallocRecorder
}

func (f recordingFile) Preallocate(offset, length int64) error {
	f.r.mu.Lock()
	f.r.lengths = append(f.r.lengths, length)
	f.r.mu.Unlock()
	return f.File.Preallocate(offset, length)
}

// TestPreallocateCapped: files created or reused through the log's
// filesystem preallocate at most maxPreallocate per call, whatever Pebble
// asks for (110% of the memtable for a WAL file), and smaller requests
// pass unchanged.
func TestPreallocateCapped(t *testing.T) {
	rec := &preallocRecorder{FS: vfs.NewMem()}
	fs := preallocCapFS{rec}
	f, err := fs.Create("a", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Preallocate(0, DefaultMemTableSize*11/10); err != nil {
		t.Fatal(err)
	}
	if err := f.Preallocate(0, 4096); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g, err := fs.ReuseForWrite("a", "b", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Preallocate(0, 1<<30); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	want := []int64{maxPreallocate, 4096, maxPreallocate}
	if len(rec.lengths) != len(want) || rec.lengths[0] != want[0] || rec.lengths[1] != want[1] || rec.lengths[2] != want[2] {
		t.Fatalf("preallocated %v, want %v", rec.lengths, want)
	}

	// The OS filesystem the log uses by default goes through the cap.
	cfg, err := Config{Dir: t.TempDir()}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for fs := pebbleOptions(cfg, zerolog.Nop()).FS; fs != nil && !found; fs = fs.Unwrap() {
		_, found = fs.(preallocCapFS)
	}
	if !found {
		t.Fatal("the default filesystem does not cap preallocation")
	}
}
