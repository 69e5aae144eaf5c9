package wal

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestReadRoundTrip(t *testing.T) {
	l := openLog(t, testConfig(t))
	const epoch = 1_700_000_000_000_000
	setEpochWait(t, l, "chat:lobby", epoch)
	setEpochWait(t, l, "chat:lobby/b", epoch)
	for seq := uint64(1); seq <= 20; seq++ {
		appendWait(t, l, rec("chat:lobby", epoch, seq, int64(1000+seq), ""))
	}
	// A neighbour whose name extends the first must not leak into it.
	appendWait(t, l, rec("chat:lobby/b", epoch, 1, 5000, ""))
	// The same room in another epoch must not either.
	appendWait(t, l, rec("chat:lobby", epoch+1, 1, 6000, ""))
	appendWait(t, l, rec("chat:lobby", epoch-1, 7, 6000, ""))

	tests := []struct {
		name     string
		read     func() ([]Record, error)
		wantSeqs []uint64
	}{
		{"read all", func() ([]Record, error) { return l.Read("chat:lobby", epoch, 1, 100) }, span(1, 20)},
		{"read from 0", func() ([]Record, error) { return l.Read("chat:lobby", epoch, 0, 3) }, span(1, 3)},
		{"read middle limited", func() ([]Record, error) { return l.Read("chat:lobby", epoch, 5, 4) }, span(5, 8)},
		{"read past head", func() ([]Record, error) { return l.Read("chat:lobby", epoch, 21, 10) }, nil},
		{"read limit 0", func() ([]Record, error) { return l.Read("chat:lobby", epoch, 1, 0) }, nil},
		{"read other epoch", func() ([]Record, error) { return l.Read("chat:lobby", epoch+1, 1, 10) }, []uint64{1}},
		{"read unknown room", func() ([]Record, error) { return l.Read("chat:none", epoch, 1, 10) }, nil},
		{"read before head+1", func() ([]Record, error) { return l.ReadBefore("chat:lobby", epoch, 21, 5) }, span(16, 20)},
		{"read before middle", func() ([]Record, error) { return l.ReadBefore("chat:lobby", epoch, 10, 3) }, span(7, 9)},
		{"read before start", func() ([]Record, error) { return l.ReadBefore("chat:lobby", epoch, 3, 10) }, span(1, 2)},
		{"read before 1", func() ([]Record, error) { return l.ReadBefore("chat:lobby", epoch, 1, 10) }, nil},
		{"read before 0", func() ([]Record, error) { return l.ReadBefore("chat:lobby", epoch, 0, 10) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.read()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(seqs(got), tt.wantSeqs) {
				t.Fatalf("seqs = %v, want %v", seqs(got), tt.wantSeqs)
			}
			for _, r := range got {
				want := rec(r.Room, r.Epoch, r.Seq, r.TS, "")
				if r.Room != "chat:lobby" || r.From != want.From || !bytes.Equal(r.Data, want.Data) {
					t.Fatalf("record %+v, want room chat:lobby, from %q, data %s", r, want.From, want.Data)
				}
			}
		})
	}

	t.Run("records are independent copies", func(t *testing.T) {
		got, err := l.Read("chat:lobby", epoch, 1, 2)
		if err != nil {
			t.Fatal(err)
		}
		got[0].Data[0] = 'X'
		got[0].Data = append(got[0].Data, "more"...)
		again, err := l.Read("chat:lobby", epoch, 1, 2)
		if err != nil {
			t.Fatal(err)
		}
		if again[0].Data[0] != '{' || got[0].From != "user-chat:lobby" {
			t.Fatalf("stored record changed through a returned one: %q, from %q", again[0].Data, got[0].From)
		}
	})

	t.Run("first", func(t *testing.T) {
		for _, tt := range []struct {
			room  string
			epoch uint64
			want  uint64
		}{
			{"chat:lobby", epoch, 1},
			{"chat:lobby", epoch - 1, 7},
			{"chat:lobby", epoch + 2, 0},
			{"chat:lobby/b", epoch, 1},
			{"chat:none", epoch, 0},
		} {
			got, err := l.First(tt.room, tt.epoch)
			if err != nil || got != tt.want {
				t.Errorf("First(%s, %d) = %d, %v; want %d", tt.room, tt.epoch, got, err, tt.want)
			}
		}
	})
}

func span(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func TestRecordFieldsRoundTrip(t *testing.T) {
	l := openLog(t, testConfig(t))
	recs := []*Record{
		{Room: "a", Epoch: 1, Seq: 1, TS: 0, Data: nil},
		{Room: "a", Epoch: 1, Seq: 2, TS: -5, From: "", Key: "k", Data: []byte("null")},
		{Room: "a", Epoch: 1, Seq: 3, TS: 1 << 50, From: string(bytes.Repeat([]byte("f"), 300)), Key: "key\x00with zero", Data: bytes.Repeat([]byte("d"), 70_000)},
	}
	for _, r := range recs {
		appendWait(t, l, r)
	}
	got, err := l.Read("a", 1, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) {
		t.Fatalf("read %d records, want %d", len(got), len(recs))
	}
	for i, r := range recs {
		g := got[i]
		if g.Room != r.Room || g.Epoch != r.Epoch || g.Seq != r.Seq || g.TS != r.TS || g.From != r.From || g.Key != r.Key || !bytes.Equal(g.Data, r.Data) {
			t.Errorf("record %d = %+v, want %+v", i, g, *r)
		}
	}
}

func TestLookupKey(t *testing.T) {
	clk := newClock(time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC))
	cfg := testConfig(t)
	cfg.Now = clk.Now
	cfg.DedupWindow = 10 * time.Minute
	l := openLog(t, cfg)
	now := clk.Now().UnixMilli()
	appendWait(t, l, rec("r", 9, 1, now-int64(11*time.Minute/time.Millisecond), "old"))
	appendWait(t, l, rec("r", 9, 2, now-int64(10*time.Minute/time.Millisecond), "edge"))
	appendWait(t, l, rec("r", 9, 3, now, "fresh"))
	appendWait(t, l, rec("r2", 9, 1, now, "other-room"))
	// LookupKey reads the index only: an appended key is not in it until
	// IndexKeys puts it there.
	appendWait(t, l, rec("r", 9, 4, now, "appended-only"))
	indexWait(t, l, "r",
		KeyUse{Key: "old", DedupEntry: DedupEntry{Epoch: 9, Seq: 1, TS: now - int64(11*time.Minute/time.Millisecond)}},
		KeyUse{Key: "edge", DedupEntry: DedupEntry{Epoch: 9, Seq: 2, TS: now - int64(10*time.Minute/time.Millisecond)}},
		KeyUse{Key: "fresh", DedupEntry: DedupEntry{Epoch: 9, Seq: 3, TS: now}})
	indexWait(t, l, "r2", KeyUse{Key: "other-room", DedupEntry: DedupEntry{Epoch: 9, Seq: 1, TS: now}})

	tests := []struct {
		room, key string
		want      DedupEntry
		found     bool
	}{
		{"r", "fresh", DedupEntry{Epoch: 9, Seq: 3, TS: now}, true},
		{"r", "edge", DedupEntry{Epoch: 9, Seq: 2, TS: now - 600_000}, true},
		{"r", "old", DedupEntry{}, false},
		{"r", "missing", DedupEntry{}, false},
		{"r", "appended-only", DedupEntry{}, false},
		{"r", "", DedupEntry{}, false},
		{"r", "other-room", DedupEntry{}, false},
		{"r2", "other-room", DedupEntry{Epoch: 9, Seq: 1, TS: now}, true},
	}
	for _, tt := range tests {
		t.Run(tt.room+"/"+tt.key, func(t *testing.T) {
			got, found, err := l.LookupKey(tt.room, tt.key)
			if err != nil || found != tt.found || got != tt.want {
				t.Fatalf("LookupKey = %+v, %v, %v; want %+v, %v", got, found, err, tt.want, tt.found)
			}
		})
	}
	t.Run("window moves with the clock", func(t *testing.T) {
		clk.Add(time.Minute)
		if _, found, _ := l.LookupKey("r", "edge"); found {
			t.Fatal("key older than the window still found")
		}
	})
}

func TestInvalidArguments(t *testing.T) {
	l := openLog(t, testConfig(t))
	tests := []struct {
		name string
		call func() error
	}{
		{"nil record", func() error { return l.Append(nil, nil, nil) }},
		{"empty room", func() error { return l.Append(&Record{Seq: 1}, nil, nil) }},
		{"room with zero byte", func() error { return l.Append(&Record{Room: "a\x00b", Seq: 1}, nil, nil) }},
		{"room too long", func() error {
			return l.Append(&Record{Room: string(bytes.Repeat([]byte("r"), MaxRoomLen+1)), Seq: 1}, nil, nil)
		}},
		{"seq 0", func() error { return l.Append(&Record{Room: "a"}, nil, nil) }},
		{"key too long", func() error {
			return l.Append(&Record{Room: "a", Seq: 1, Key: string(bytes.Repeat([]byte("k"), MaxKeyLen+1))}, nil, nil)
		}},
		{"set epoch bad room", func() error { return l.SetEpoch("", 1, nil) }},
		{"read bad room", func() error { _, err := l.Read("a\x00", 1, 1, 1); return err }},
		{"read before bad room", func() error { _, err := l.ReadBefore("", 1, 1, 1); return err }},
		{"first bad room", func() error { _, err := l.First("", 1); return err }},
		{"lookup bad room", func() error { _, _, err := l.LookupKey("", "k"); return err }},
		{"index bad room", func() error { return l.IndexKeys("", []KeyUse{{Key: "k"}}, nil) }},
		{"index empty key", func() error { return l.IndexKeys("a", []KeyUse{{Key: "k"}, {}}, nil) }},
		{"index key too long", func() error {
			return l.IndexKeys("a", []KeyUse{{Key: string(bytes.Repeat([]byte("k"), MaxKeyLen+1))}}, nil)
		}},
		{"recent keys bad room", func() error { _, err := l.RecentKeys("a\x00", 0, 1); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestOpenValidatesConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no dir", Config{}},
		{"negative batch", Config{Dir: t.TempDir(), MaxBatch: -1}},
		{"negative age", Config{Dir: t.TempDir(), Retention: Retention{MaxAge: -time.Second}}},
		{"negative memtable", Config{Dir: t.TempDir(), MemTableSize: -1}},
		{"memtable too small", Config{Dir: t.TempDir(), MemTableSize: MinMemTableSize - 1}},
		{"memtable too large", Config{Dir: t.TempDir(), MemTableSize: MaxMemTableSize + 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if l, err := Open(tt.cfg); !errors.Is(err, ErrInvalid) {
				if l != nil {
					_ = l.Close()
				}
				t.Fatalf("Open err = %v, want ErrInvalid", err)
			}
		})
	}
}

// TestMemTableSize: the configured memtable reaches Pebble, with a block
// cache that holds blocks beyond the two memtables Pebble charges to it.
func TestMemTableSize(t *testing.T) {
	for _, tt := range []struct {
		set, want int64
	}{
		{0, DefaultMemTableSize},
		{MinMemTableSize, MinMemTableSize},
		{MaxMemTableSize, MaxMemTableSize},
	} {
		cfg, err := Config{Dir: t.TempDir(), MemTableSize: tt.set}.withDefaults()
		if err != nil {
			t.Fatalf("MemTableSize %d: %v", tt.set, err)
		}
		opts := pebbleOptions(cfg, zerolog.Nop())
		if opts.MemTableSize != uint64(tt.want) {
			t.Errorf("MemTableSize %d: Pebble's is %d, want %d", tt.set, opts.MemTableSize, tt.want)
		}
		if blocks := opts.CacheSize - 2*tt.want; blocks < 64<<20 {
			t.Errorf("MemTableSize %d: block cache %d leaves %d beyond two memtables, want at least 64 MiB", tt.set, opts.CacheSize, blocks)
		}
	}
	// Pebble takes both bounds: a log opens and takes records with each.
	for _, size := range []int64{MinMemTableSize, MaxMemTableSize} {
		cfg := testConfig(t)
		cfg.MemTableSize = size
		l := openLog(t, cfg)
		setEpochWait(t, l, "r", 1)
		appendWait(t, l, rec("r", 1, 1, 1, ""))
	}
}

// TestCallbackOrder checks, with many concurrent appenders over a few
// rooms, that written and durable callbacks each run in Append order,
// written before durable for every record.
func TestCallbackOrder(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBatch = 64 // several groups per fsync
	l := openLog(t, cfg)
	const (
		appenders = 32
		perG      = 100
		rooms     = 5
	)
	for r := range rooms {
		setEpochWait(t, l, roomName(r), 1)
	}
	var (
		mu       sync.Mutex // serializes seq assignment + Append, as the router does
		order    int
		nextSeq  [rooms]uint64
		written  orderLog
		durable  orderLog
		wrote    = make([]bool, appenders*perG) // set on the committer, read on the syncer
		failures = make(chan string, appenders*perG)
		wg       sync.WaitGroup
	)
	for g := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perG {
				r := (g + i) % rooms
				mu.Lock()
				id := order
				order++
				nextSeq[r]++
				err := l.Append(rec(roomName(r), 1, nextSeq[r], int64(id), ""),
					func() { wrote[id] = true; written.add(id) },
					func(err error) {
						if err != nil {
							failures <- err.Error()
						}
						if !wrote[id] {
							failures <- "durable before written"
						}
						durable.add(id)
					})
				mu.Unlock()
				if err != nil {
					failures <- err.Error()
				}
			}
		}()
	}
	wg.Wait()
	waitFor(t, "all durable callbacks", func() bool { return len(durable.snapshot()) == appenders*perG })
	close(failures)
	for f := range failures {
		t.Fatal(f)
	}
	for name, ids := range map[string][]int{"written": written.snapshot(), "durable": durable.snapshot()} {
		for i, id := range ids {
			if id != i {
				t.Fatalf("%s callback %d was for append %d: out of order", name, i, id)
			}
		}
	}
	for r := range rooms {
		got, err := l.Read(roomName(r), 1, 1, appenders*perG)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(seqs(got), span(1, nextSeq[r])) {
			t.Fatalf("room %d holds seqs %v, want 1..%d", r, seqs(got), nextSeq[r])
		}
	}
}

func roomName(i int) string { return "room-" + string(rune('a'+i)) }

func TestClose(t *testing.T) {
	cfg := testConfig(t)
	l, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Appends queued before Close still complete, callbacks included.
	const n = 500
	var durable orderLog
	for seq := uint64(1); seq <= n; seq++ {
		if err := l.Append(rec("a", 1, seq, 1, ""), nil, func(err error) {
			if err == nil {
				durable.add(int(seq))
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := len(durable.snapshot()); got != n {
		t.Fatalf("%d durable callbacks after Close, want %d", got, n)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	calls := map[string]error{
		"append":    l.Append(rec("a", 1, n+1, 1, ""), nil, nil),
		"set epoch": l.SetEpoch("a", 2, nil),
		"index":     l.IndexKeys("a", []KeyUse{{Key: "k"}}, nil),
	}
	_, calls["read"] = l.Read("a", 1, 1, 1)
	_, calls["read before"] = l.ReadBefore("a", 1, 2, 1)
	_, calls["first"] = l.First("a", 1)
	_, _, calls["lookup"] = l.LookupKey("a", "k")
	_, calls["recent keys"] = l.RecentKeys("a", 0, 1)
	_, calls["rooms"] = l.Rooms()
	for name, err := range calls {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

// TestCloseWhileAppending races Close with appenders: every Append either
// returns ErrClosed or gets its durable callback.
func TestCloseWhileAppending(t *testing.T) {
	l, err := Open(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg               sync.WaitGroup
		mu               sync.Mutex
		accepted, called int
		started          = make(chan struct{})
		once             sync.Once
	)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := uint64(1); ; seq++ {
				err := l.Append(rec(roomName(g), 1, seq, 1, ""), nil, func(error) {
					mu.Lock()
					called++
					mu.Unlock()
				})
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				accepted++
				mu.Unlock()
				if seq == 50 {
					once.Do(func() { close(started) })
				}
			}
		}()
	}
	<-started
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if accepted != called {
		t.Fatalf("%d appends accepted, %d durable callbacks", accepted, called)
	}
}
