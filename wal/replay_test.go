package wal

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output in testdata/replay")

// TestReplay runs the scripts in testdata/replay: WAL operations, restarts
// (Close + Open on the same directory), retention sweeps and clock moves,
// each followed by the output it must produce.
//
// A script is a sequence of blocks separated by blank lines. A block is a
// command line, and for commands with output, "----" and the expected
// lines. '#' starts a comment line. Commands take key=value arguments:
//
//	open [now=MS] [maxcount=N] [maxage=DUR] [dedup=DUR]
//	reopen                          Close and Open with the same options
//	clock now=MS                    set Config.Now
//	set-epoch room=R epoch=E
//	append room=R epoch=E seq=S ts=MS [from=F] [key=K] [data=D]
//	append-range room=R epoch=E from=S to=S ts=MS [step=MS]
//	index room=R epoch=E seq=S ts=MS key=K   IndexKeys with one key
//	sweep                           run retention once
//	rooms | read room= epoch= from= limit= | read-before room= epoch= before= limit=
//	first room= epoch= | lookup room= key= | recent-keys room= since= limit=
func TestReplay(t *testing.T) {
	files, err := filepath.Glob("testdata/replay/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no replay scripts: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			runReplay(t, file)
		})
	}
}

type replayBlock struct {
	line     int
	cmd      string
	args     map[string]string
	expected []string
	hasOut   bool
}

func parseReplay(t *testing.T, file string) (blocks []replayBlock, comments map[int][]string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	comments = map[int][]string{}
	sc := bufio.NewScanner(f)
	lineNo := 0
	var cur *replayBlock
	inOut := false
	var pending []string
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			cur, inOut = nil, false
		case inOut:
			cur.expected = append(cur.expected, line)
		case strings.HasPrefix(line, "#"):
			pending = append(pending, line)
		case line == "----":
			if cur == nil {
				t.Fatalf("%s:%d: output without a command", file, lineNo)
			}
			cur.hasOut, inOut = true, true
		default:
			if cur != nil {
				t.Fatalf("%s:%d: two commands in one block", file, lineNo)
			}
			fields := strings.Fields(line)
			b := replayBlock{line: lineNo, cmd: fields[0], args: map[string]string{}}
			for _, kv := range fields[1:] {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("%s:%d: argument %q is not key=value", file, lineNo, kv)
				}
				b.args[k] = v
			}
			comments[len(blocks)] = pending
			pending = nil
			blocks = append(blocks, b)
			cur = &blocks[len(blocks)-1]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks, comments
}

func runReplay(t *testing.T, file string) {
	blocks, comments := parseReplay(t, file)
	dir := t.TempDir()
	clk := newClock(time.UnixMilli(0))
	var (
		cfg Config
		l   *Log
	)
	t.Cleanup(func() {
		if l != nil {
			_ = l.Close()
		}
	})
	var out strings.Builder
	for i := range blocks {
		b := &blocks[i]
		at := fmt.Sprintf("%s:%d %s", file, b.line, b.cmd)
		num := func(k string) uint64 {
			v, err := strconv.ParseUint(b.args[k], 10, 64)
			if err != nil {
				t.Fatalf("%s: %s=%q: %v", at, k, b.args[k], err)
			}
			return v
		}
		dur := func(k string) time.Duration {
			if b.args[k] == "" {
				return 0
			}
			d, err := time.ParseDuration(b.args[k])
			if err != nil {
				t.Fatalf("%s: %s: %v", at, k, err)
			}
			return d
		}
		var got []string
		switch b.cmd {
		case "open":
			if b.args["now"] != "" {
				clk.ms.Store(int64(num("now")))
			}
			cfg = testConfig(t)
			cfg.Dir, cfg.Now = dir, clk.Now
			if b.args["maxcount"] != "" {
				cfg.Retention.MaxCount = int(num("maxcount"))
			}
			cfg.Retention.MaxAge = dur("maxage")
			cfg.DedupWindow = dur("dedup")
			l = openLog(t, cfg)
		case "reopen":
			if err := l.Close(); err != nil {
				t.Fatalf("%s: close: %v", at, err)
			}
			l = openLog(t, cfg)
		case "clock":
			clk.ms.Store(int64(num("now")))
		case "set-epoch":
			setEpochWait(t, l, b.args["room"], num("epoch"))
		case "append":
			appendWait(t, l, &Record{
				Room: b.args["room"], Epoch: num("epoch"), Seq: num("seq"), TS: int64(num("ts")),
				From: b.args["from"], Key: b.args["key"], Data: []byte(b.args["data"]),
			})
		case "append-range":
			step := int64(0)
			if b.args["step"] != "" {
				step = int64(num("step"))
			}
			ts := int64(num("ts"))
			for seq := num("from"); seq <= num("to"); seq++ {
				appendWait(t, l, rec(b.args["room"], num("epoch"), seq, ts, ""))
				ts += step
			}
		case "index":
			indexWait(t, l, b.args["room"], KeyUse{Key: b.args["key"], DedupEntry: DedupEntry{
				Epoch: num("epoch"), Seq: num("seq"), TS: int64(num("ts")),
			}})
		case "sweep":
			if err := l.sweep(context.Background()); err != nil {
				t.Fatalf("%s: %v", at, err)
			}
		case "rooms":
			rooms, err := l.Rooms()
			if err != nil {
				t.Fatalf("%s: %v", at, err)
			}
			for _, r := range rooms {
				got = append(got, fmt.Sprintf("%s epoch=%d first=%d head=%d", r.Room, r.Epoch, r.First, r.Head))
			}
		case "read", "read-before":
			var (
				recs []Record
				err  error
			)
			if b.cmd == "read" {
				recs, err = l.Read(b.args["room"], num("epoch"), num("from"), int(num("limit")))
			} else {
				recs, err = l.ReadBefore(b.args["room"], num("epoch"), num("before"), int(num("limit")))
			}
			if err != nil {
				t.Fatalf("%s: %v", at, err)
			}
			for _, r := range recs {
				got = append(got, fmt.Sprintf("%d/%d ts=%d from=%s key=%s data=%s", r.Epoch, r.Seq, r.TS, r.From, r.Key, r.Data))
			}
		case "first":
			first, err := l.First(b.args["room"], num("epoch"))
			if err != nil {
				t.Fatalf("%s: %v", at, err)
			}
			got = []string{strconv.FormatUint(first, 10)}
		case "lookup":
			e, found, err := l.LookupKey(b.args["room"], b.args["key"])
			if err != nil {
				t.Fatalf("%s: %v", at, err)
			}
			if found {
				got = []string{fmt.Sprintf("epoch=%d seq=%d ts=%d", e.Epoch, e.Seq, e.TS)}
			} else {
				got = []string{"not found"}
			}
		case "recent-keys":
			keys, err := l.RecentKeys(b.args["room"], int64(num("since")), int(num("limit")))
			if err != nil {
				t.Fatalf("%s: %v", at, err)
			}
			for _, k := range keys {
				got = append(got, fmt.Sprintf("%s epoch=%d seq=%d ts=%d", k.Key, k.Epoch, k.Seq, k.TS))
			}
		default:
			t.Fatalf("%s: unknown command", at)
		}
		if len(got) == 0 && b.hasOut {
			got = []string{"(none)"}
		}
		if *rewrite {
			for _, c := range comments[i] {
				fmt.Fprintln(&out, c)
			}
			fmt.Fprintln(&out, rawCommand(b))
			if len(got) > 0 {
				fmt.Fprintln(&out, "----")
				fmt.Fprintln(&out, strings.Join(got, "\n"))
			}
			fmt.Fprintln(&out)
			continue
		}
		if want := strings.Join(b.expected, "\n"); strings.Join(got, "\n") != want {
			t.Errorf("%s:\ngot:\n%s\nwant:\n%s", at, strings.Join(got, "\n"), want)
		}
	}
	if *rewrite {
		if err := os.WriteFile(file, []byte(strings.TrimRight(out.String(), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// rawCommand prints b's command line back in a stable order.
func rawCommand(b *replayBlock) string {
	order := []string{"room", "epoch", "seq", "from", "to", "before", "limit", "ts", "step", "key", "data", "since",
		"now", "maxcount", "maxage", "dedup"}
	parts := []string{b.cmd}
	for _, k := range order {
		if v, ok := b.args[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, " ")
}
