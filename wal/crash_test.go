package wal

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestPowerLoss appends from many goroutines to a log on a crashable
// in-memory filesystem and, at a cut point, takes the state a power loss
// would leave: everything synced, plus (UnsyncedPercent) a random part of
// what was not. A log reopened on that state must hold every record whose
// durable(nil) had fired before the cut, under its seq, and each room must
// hold a gap-free prefix of what was appended.
//
// Pebble v2.1.7 has no vfs.NewStrictMem / SetIgnoreSyncs /
// ResetToSyncedState (Pebble v1's API); vfs.NewCrashableMem and
// MemFS.CrashClone replace them and are what Pebble's own crash tests use.
func TestPowerLoss(t *testing.T) {
	tests := []struct {
		name            string
		cutAfter        int64 // durable records before the cut
		unsyncedPercent int
		seed            int64
	}{
		{"before any append", 0, 0, 1},
		{"early synced only", 30, 0, 2},
		{"early half unsynced", 30, 50, 3},
		{"middle synced only", 400, 0, 4},
		{"middle half unsynced", 400, 50, 5},
		{"late all unsynced kept", 1500, 100, 6},
		{"late some unsynced", 1500, 20, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			cfg := testConfig(t)
			cfg.Dir, cfg.FS = "/arena/wal", fs
			cfg.MaxBatch = 128
			l, err := Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			const rooms, appenders = 8, 16
			for r := range rooms {
				setEpochWait(t, l, roomName(r), 7)
			}

			var (
				roomMu  [rooms]sync.Mutex // seq assignment + Append per room, as the router does
				nextSeq [rooms]uint64     // guarded by roomMu
				acked   [rooms]atomic.Uint64
				durable atomic.Int64
				stop    = make(chan struct{})
				wg      sync.WaitGroup
			)
			for g := range appenders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(tt.seed), uint64(g)))
					for i := 0; i < 400; i++ {
						select {
						case <-stop:
							return
						default:
						}
						r := rng.IntN(rooms)
						roomMu[r].Lock()
						nextSeq[r]++
						seq := nextSeq[r]
						err := l.Append(crashRecord(r, seq), nil, func(err error) {
							if err == nil {
								acked[r].Store(seq) // durable runs in order: seq only grows
								durable.Add(1)
							}
						})
						roomMu[r].Unlock()
						if err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			waitFor(t, "records durable before the cut", func() bool { return durable.Load() >= tt.cutAfter })
			var ackedAtCut [rooms]uint64
			for r := range rooms {
				ackedAtCut[r] = acked[r].Load()
			}
			crashed := fs.CrashClone(vfs.CrashCloneCfg{
				UnsyncedDataPercent: tt.unsyncedPercent,
				RNG:                 rand.New(rand.NewPCG(uint64(tt.seed), 0)),
			})
			close(stop)
			wg.Wait()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}

			cfg.FS = crashed
			l2 := openLog(t, cfg)
			states, err := l2.Rooms()
			if err != nil {
				t.Fatal(err)
			}
			if len(states) != rooms {
				t.Fatalf("%d rooms after the crash, want %d", len(states), rooms)
			}
			total := 0
			for _, s := range states {
				r := int(s.Room[len("room-")] - 'a')
				recs, err := l2.Read(s.Room, 7, 1, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				total += len(recs)
				for i, got := range recs {
					want := crashRecord(r, uint64(i+1))
					if got.Seq != want.Seq || got.TS != want.TS || !bytes.Equal(got.Data, want.Data) {
						t.Fatalf("room %s: record %d is %d/%s, want a gap-free prefix (%d/%s)",
							s.Room, i, got.Seq, got.Data, want.Seq, want.Data)
					}
				}
				if n := uint64(len(recs)); n < ackedAtCut[r] {
					t.Fatalf("room %s holds 1..%d after the crash, but %d was durable before it", s.Room, n, ackedAtCut[r])
				}
				if s.Epoch != 7 || s.Head != uint64(len(recs)) || (len(recs) > 0 && s.First != 1) {
					t.Fatalf("Rooms() says %+v, but the room holds 1..%d", s, len(recs))
				}
			}
			t.Logf("%d durable at the cut, %d records survived", sum(ackedAtCut[:]), total)
		})
	}
}

func crashRecord(room int, seq uint64) *Record {
	r := rec(roomName(room), 7, seq, int64(seq)*10, "")
	r.Key = "k-" + itoa(seq) // keyed, like a publisher's message
	return r
}

func sum(xs []uint64) uint64 {
	var s uint64
	for _, x := range xs {
		s += x
	}
	return s
}
