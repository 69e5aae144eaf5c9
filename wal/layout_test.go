package wal

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// encodingCase is one block of testdata/encoding.txt.
type encodingCase struct {
	line  int
	kind  string // key, value, bad-key, bad-value
	args  map[string]string
	bytes []byte
	err   string
}

func loadEncodingCases(t testing.TB) []encodingCase {
	t.Helper()
	raw, err := os.ReadFile("testdata/encoding.txt")
	if err != nil {
		t.Fatal(err)
	}
	var cases []encodingCase
	for i, block := range strings.Split(string(raw), "\n\n") {
		c := encodingCase{line: i, args: map[string]string{}}
		for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
			if strings.HasPrefix(line, "#") || line == "" {
				continue
			}
			word, rest, _ := strings.Cut(line, " ")
			switch word {
			case "key", "value", "bad-key", "bad-value":
				c.kind = word
				for _, kv := range strings.Fields(rest) {
					k, v, _ := strings.Cut(kv, "=")
					c.args[k] = v
				}
			case "hex":
				b, err := hex.DecodeString(strings.ReplaceAll(rest, " ", ""))
				if err != nil {
					t.Fatalf("block %d: %v", i, err)
				}
				c.bytes = b
			case "error":
				c.err = rest
			default:
				t.Fatalf("block %d: unknown line %q", i, line)
			}
		}
		if c.kind != "" {
			cases = append(cases, c)
		}
	}
	if len(cases) == 0 {
		t.Fatal("no encoding cases")
	}
	return cases
}

func (c encodingCase) num(t testing.TB, k string) uint64 {
	v, err := strconv.ParseUint(c.args[k], 10, 64)
	if err != nil {
		t.Fatalf("case %d: %s: %v", c.line, k, err)
	}
	return v
}

func (c encodingCase) ts(t testing.TB) int64 {
	v, err := strconv.ParseInt(c.args["ts"], 10, 64)
	if err != nil {
		t.Fatalf("case %d: ts: %v", c.line, err)
	}
	return v
}

func (c encodingCase) keyParts(t testing.TB) keyParts {
	p := keyParts{Room: []byte(c.args["room"])}
	switch c.args["kind"] {
	case "message":
		p.Kind, p.Epoch, p.Seq = kindMessage, c.num(t, "epoch"), c.num(t, "seq")
	case "room":
		p.Kind = kindRoom
	case "hot":
		p.Kind = kindHot
	case "dedup":
		p.Kind, p.Key = kindDedup, []byte(c.args["key"])
	case "expiry":
		p.Kind, p.Key, p.TS = kindExpiry, []byte(c.args["key"]), c.ts(t)
	case "bucket":
		p.Kind, p.Key, p.TS, p.Width = kindBucket, []byte(c.args["key"]), c.ts(t), uint32(c.num(t, "width"))
	case "setting":
		p.Kind, p.Key = kindSetting, []byte(c.args["key"])
	default:
		t.Fatalf("case %d: key kind %q", c.line, c.args["kind"])
	}
	return p
}

func (c encodingCase) record(t testing.TB) *Record {
	return &Record{TS: c.ts(t), From: c.args["from"], Key: c.args["key"], Data: []byte(c.args["data"])}
}

func TestEncodings(t *testing.T) {
	for _, c := range loadEncodingCases(t) {
		t.Run(c.kind+"/"+strconv.Itoa(c.line), func(t *testing.T) {
			switch c.kind {
			case "key":
				want := c.keyParts(t)
				if got := encodeKey(want); !bytes.Equal(got, c.bytes) {
					t.Fatalf("encode = %x, want %x", got, c.bytes)
				}
				// The hot-path writers must agree with encodeKey.
				if want.Kind == kindMessage {
					k := make([]byte, messageKeyLen(string(want.Room)))
					putMessageKey(k, string(want.Room), want.Epoch, want.Seq)
					if !bytes.Equal(k, c.bytes) {
						t.Fatalf("putMessageKey = %x, want %x", k, c.bytes)
					}
				}
				got, err := decodeKey(c.bytes)
				if err != nil {
					t.Fatal(err)
				}
				if !equalKeyParts(got, want) {
					t.Fatalf("decode = %+v, want %+v", got, want)
				}
			case "value":
				if c.args["kind"] == "hot" {
					want := c.num(t, "epoch")
					if got := hotValue(want); !bytes.Equal(got, c.bytes) {
						t.Fatalf("encode = %x, want %x", got, c.bytes)
					}
					if got, err := decodeHotValue(c.bytes); err != nil || got != want {
						t.Fatalf("decode = %d, %v; want %d", got, err, want)
					}
					return
				}
				if c.args["kind"] == "setting" {
					want := c.num(t, "n")
					if got, err := decodeSettingValue(c.bytes); err != nil || got != want {
						t.Fatalf("decode = %d, %v; want %d", got, err, want)
					}
					return
				}
				r := c.record(t)
				got := appendMessageValue(nil, r)
				if !bytes.Equal(got, c.bytes) {
					t.Fatalf("encode = %x, want %x", got, c.bytes)
				}
				back, err := recordFromValue("room", 1, 2, c.bytes)
				if err != nil {
					t.Fatal(err)
				}
				if back.TS != r.TS || back.From != r.From || back.Key != r.Key || !bytes.Equal(back.Data, r.Data) {
					t.Fatalf("decode = %+v, want %+v", back, *r)
				}
			case "bad-key":
				_, err := decodeKey(c.bytes)
				checkCorrupt(t, err, c.err)
			case "bad-value":
				var err error
				switch c.args["kind"] {
				case "hot":
					_, err = decodeHotValue(c.bytes)
				case "setting":
					_, err = decodeSettingValue(c.bytes)
				default:
					_, err = decodeMessageValue(c.bytes)
				}
				checkCorrupt(t, err, c.err)
			}
		})
	}
}

// hotValue is the encoded hot value of epoch.
func hotValue(epoch uint64) []byte {
	v := make([]byte, hotValueLen)
	putHotValue(v, epoch)
	return v
}

func checkCorrupt(t *testing.T, err error, want string) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want ErrCorrupt containing %q", err, want)
	}
}

func equalKeyParts(a, b keyParts) bool {
	return a.Kind == b.Kind && bytes.Equal(a.Room, b.Room) && a.Epoch == b.Epoch && a.Seq == b.Seq &&
		bytes.Equal(a.Key, b.Key) && a.TS == b.TS && a.Width == b.Width
}

// TestKeyOrder checks that Pebble's bytewise order of message keys is
// (room, epoch, seq) order, and expiry keys are in ts order, including
// negative ts and rooms that are prefixes of others.
func TestKeyOrder(t *testing.T) {
	type msg struct {
		room       string
		epoch, seq uint64
	}
	msgs := []msg{
		{"a", 1, 1}, {"a", 1, 2}, {"a", 1, 256}, {"a", 2, 1}, {"a", 1 << 40, 1},
		{"a/b", 1, 1}, {"a-", 1, 1}, {"ab", 0, 0}, {"b", 1, 1}, {"a", 1, 1 << 63},
	}
	keys := make([][]byte, len(msgs))
	for i, m := range msgs {
		keys[i] = appendMessageKey(nil, m.room, m.epoch, m.seq)
	}
	sort.Slice(keys, func(i, j int) bool { return bytes.Compare(keys[i], keys[j]) < 0 })
	sort.Slice(msgs, func(i, j int) bool {
		a, b := msgs[i], msgs[j]
		if a.room != b.room {
			return a.room < b.room
		}
		if a.epoch != b.epoch {
			return a.epoch < b.epoch
		}
		return a.seq < b.seq
	})
	for i, m := range msgs {
		p, err := decodeKey(keys[i])
		if err != nil {
			t.Fatal(err)
		}
		if string(p.Room) != m.room || p.Epoch != m.epoch || p.Seq != m.seq {
			t.Fatalf("position %d: key order gives %s/%d/%d, want %+v", i, p.Room, p.Epoch, p.Seq, m)
		}
	}
	// Every key of an epoch sorts below its end bound and above the next
	// epoch's end, and a room's keys sort below its room end.
	if bytes.Compare(appendMessageKey(nil, "a", 1, 1<<64-1), appendEpochEnd(nil, "a", 1)) >= 0 ||
		bytes.Compare(appendEpochEnd(nil, "a", 1), appendMessageKey(nil, "a", 2, 0)) > 0 ||
		bytes.Compare(appendMessageKey(nil, "a", 1<<64-1, 1<<64-1), appendRoomMessagesEnd(nil, "a")) >= 0 ||
		bytes.Compare(appendRoomMessagesEnd(nil, "a"), appendMessageKey(nil, "a-", 0, 0)) > 0 {
		t.Fatal("bound keys out of order")
	}
	ts := []int64{-1 << 63, -5, -1, 0, 1, 1_700_000_000_000, 1<<63 - 1}
	for i := 1; i < len(ts); i++ {
		lo := make([]byte, expiryKeyLen("z", "k"))
		putExpiryKey(lo, ts[i-1], "z", "k")
		hi := make([]byte, expiryKeyLen("a", "a"))
		putExpiryKey(hi, ts[i], "a", "a")
		if bytes.Compare(lo, hi) >= 0 || bytes.Compare(lo, appendExpiryBound(nil, ts[i])) >= 0 {
			t.Fatalf("expiry key of ts %d does not sort below ts %d", ts[i-1], ts[i])
		}
	}
}

// FuzzDecodeKey checks that decodeKey never panics and that whatever it
// accepts re-encodes to the same bytes.
func FuzzDecodeKey(f *testing.F) {
	for _, c := range loadEncodingCases(f) {
		f.Add(c.bytes)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeKey(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if got := encodeKey(p); !bytes.Equal(got, b) {
			t.Fatalf("decode(%x) = %+v re-encodes to %x", b, p, got)
		}
	})
}

// FuzzDecodeValue checks that the value decoders (message, and the
// fixed-size room and hot values) never panic and that whatever one
// accepts re-encodes to the same bytes.
func FuzzDecodeValue(f *testing.F) {
	for _, c := range loadEncodingCases(f) {
		if strings.HasSuffix(c.kind, "value") {
			f.Add(c.bytes)
		}
	}
	f.Add(hotValue(1732000000000000))
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(what string, err error, encode func() []byte) {
			t.Helper()
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("%s value: error %v does not wrap ErrCorrupt", what, err)
				}
				return
			}
			if got := encode(); !bytes.Equal(got, b) {
				t.Fatalf("%s value: decode(%x) re-encodes to %x", what, b, got)
			}
		}
		rec, err := recordFromValue("r", 1, 1, b)
		check("message", err, func() []byte { return appendMessageValue(nil, &rec) })
		epoch, err := decodeRoomValue(b)
		check("room", err, func() []byte {
			v := make([]byte, roomValueLen)
			putRoomValue(v, epoch)
			return v
		})
		hot, err := decodeHotValue(b)
		check("hot", err, func() []byte { return hotValue(hot) })
	})
}
