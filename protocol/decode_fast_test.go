package protocol

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// checkFastMatchesJSON fails t unless DecodeClient and the encoding/json
// path give the same frame and the same error for b, and unless a frame
// from the fast path equals what json.Unmarshal makes and owns its memory.
// It reports whether the fast path took b.
// sharedBuf is the FrameBuf checkFastMatchesJSON decodes every input with.
var sharedBuf FrameBuf

func checkFastMatchesJSON(t *testing.T, b []byte) bool {
	t.Helper()
	in := bytes.Clone(b) // clobbered below
	got, gotErr := DecodeClient(in)
	want, wantErr := decodeClientJSON(b)
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotErr, wantErr) {
		t.Fatalf("DecodeClient(%q)\n got %+v, %v\nwant %+v, %v", b, got, gotErr, want, wantErr)
	}
	// sharedBuf decoded the frames of earlier calls: nothing of theirs
	// may show in this one.
	got, gotErr = sharedBuf.Decode(bytes.Clone(b))
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotErr, wantErr) {
		t.Fatalf("FrameBuf.Decode(%q) after other frames\n got %+v, %v\nwant %+v, %v", b, got, gotErr, want, wantErr)
	}
	fast, ok := decodeFast(in)
	if !ok {
		if fast != nil {
			t.Fatalf("decodeFast(%q) declined but returned a frame", b)
		}
		return false
	}
	var direct Frame
	if err := json.Unmarshal(b, &direct); err != nil {
		t.Fatalf("decodeFast took %q, which encoding/json rejects: %v", b, err)
	}
	for i := range in {
		in[i] = '#'
	}
	if !reflect.DeepEqual(*fast, direct) {
		t.Fatalf("decodeFast(%q) (input clobbered afterwards)\n got %+v\nwant %+v", b, *fast, direct)
	}
	return true
}

// fastCases are frames for both paths; fast says whether decodeFast must
// take the frame (the exact shape) or decline it (anything unusual).
var fastCases = []struct {
	name string
	in   string
	fast bool
}{
	{"typical pub", string(typicalPub), true},
	{"lobby pub", string(pubFrame), true},
	{"whitespace everywhere", " \r\n\t{ \"op\" :\t\"pub\" ,\n\"room\" : \"r\" , \"data\" : [ 1 , { \"a\" : null } ] }\r\n ", true},
	{"escapes in data", `{"op":"pub","room":"r","data":"a\"b\\c\u00e9\n\ud83d\ude00<>&"}`, true},
	{"raw unicode in data and key", `{"op":"pub","room":"r","data":{"é":"😀 "},"key":"ключ"}`, true},
	{"data of every kind", `{"op":"pub","room":"r","data":[true,false,null,-0.5e+3,"",{},[]]}`, true},
	{"data null", `{"op":"pub","room":"r","data":null}`, true},
	{"data false", `{"op":"pub","room":"r","data":false}`, true},
	{"data empty string", `{"op":"pub","room":"r","data":""}`, true},
	{"null fields", `{"op":"pub","id":null,"room":"r","data":1,"key":null,"since":null,"presence":null,"before":null,"seq":null,"limit":null}`, true},
	{"null op", `{"op":null,"id":1}`, true},
	{"empty op", `{"op":"","id":1}`, true},
	{"empty object", `{}`, true},
	{"max id", `{"op":"ping","id":9223372036854775807}`, true},
	{"min id", `{"op":"ping","id":-9223372036854775808}`, true},
	{"negative zero id", `{"op":"ping","id":-0}`, true},
	{"max seq", `{"op":"read","room":"r","seq":18446744073709551615}`, true},
	{"history before limit", `{"op":"history","id":1,"room":"r","before":5,"limit":10}`, true},
	{"history both", `{"op":"history","id":1,"room":"r","before":5,"after":1}`, true},
	{"history limit too big", `{"op":"history","room":"r","limit":1001}`, true},
	{"sub since presence", `{"op":"sub","id":3,"room":"a","since":{"epoch":7,"seq":2},"presence":true}`, true},
	{"since spaced", `{"op":"sub","room":"a","since": { "seq" : 2 , "epoch" : 7 } }`, true},
	{"since empty", `{"op":"sub","room":"a","since":{}}`, true},
	{"since nulls", `{"op":"sub","room":"a","since":{"epoch":1,"seq":null}}`, true},
	{"presence false", `{"op":"sub","room":"a","presence":false}`, true},
	{"connect", `{"op":"connect","id":1,"token":"a.b.c","name":"sdk/1"}`, true},
	{"refresh", `{"op":"refresh","token":"t"}`, true},
	{"unknown op", `{"op":"publish","id":5,"room":"r"}`, true},
	{"server op", `{"op":"msg","id":6}`, true},
	{"bad room", `{"op":"sub","id":21,"room":"chat lobby"}`, true},
	{"key too long", `{"op":"pub","room":"r","data":1,"key":"` + strings.Repeat("k", 65) + `"}`, true},
	{"unknown fields ignored", `{"op":"ping","extra":[1,{"id":2}],"trace":"x","x-y_z":null}`, true},
	{"long unknown field", `{"op":"ping","` + strings.Repeat("z", 100) + `":1}`, true},

	{"name case variant", `{"Op":"ping"}`, false},
	{"room upper", `{"op":"sub","ROOM":"r"}`, false},
	{"data mixed case", `{"op":"pub","room":"r","Data":1}`, false},
	{"since field case", `{"op":"sub","room":"r","since":{"Epoch":1}}`, false},
	{"server field", `{"op":"ping","msgs":[{}]}`, false},
	{"server field case", `{"op":"ping","Retry_MS":5}`, false},
	{"duplicate room", `{"op":"sub","room":"a","room":"b"}`, false},
	{"duplicate id then null", `{"op":"ping","id":1,"id":null}`, false},
	{"duplicate data", `{"op":"pub","room":"r","data":1,"data":2}`, false},
	{"duplicate in since", `{"op":"sub","room":"r","since":{"epoch":1,"epoch":2}}`, false},
	{"case duplicate", `{"op":"sub","room":"a","Room":"b"}`, false},
	{"escaped name", `{"op":"sub","r\u006fom":"a"}`, false},
	{"kelvin key", `{"op":"pub","room":"r","data":1,"\u212aey":"k"}`, false},
	{"raw kelvin key", `{"op":"pub","room":"r","data":1,"` + "\u212a" + `ey":"k"}`, false},
	{"non-ASCII unknown name", `{"op":"ping","é":1}`, false},
	{"escape in room", `{"op":"sub","room":"a\/b"}`, false},
	{"unicode escape in room", `{"op":"sub","id":23,"room":"caf\u00e9"}`, false},
	{"escape in op", `{"op":"p\u0069ng"}`, false},
	{"invalid UTF-8 in data", "{\"op\":\"pub\",\"room\":\"r\",\"data\":\"\xff\"}", false},
	{"invalid UTF-8 in key", "{\"op\":\"pub\",\"room\":\"r\",\"data\":1,\"key\":\"k\xc3\"}", false},
	{"lone surrogate in data", `{"op":"pub","room":"r","data":"\ud800"}`, false},
	{"id overflow", `{"op":"ping","id":9223372036854775808}`, false},
	{"id fraction", `{"op":"ping","id":1.0}`, false},
	{"id exponent", `{"op":"ping","id":1e2}`, false},
	{"id string", `{"op":"ping","id":"1"}`, false},
	{"id bool", `{"op":"ping","id":true}`, false},
	{"seq negative", `{"op":"read","room":"r","seq":-1}`, false},
	{"seq negative zero", `{"op":"read","room":"r","seq":-0}`, false},
	{"seq overflow", `{"op":"read","room":"r","seq":18446744073709551616}`, false},
	{"limit overflow", `{"op":"history","room":"r","limit":9223372036854775808}`, false},
	{"since array", `{"op":"sub","room":"r","since":[1,2]}`, false},
	{"since number", `{"op":"sub","room":"r","since":5}`, false},
	{"since negative", `{"op":"sub","room":"r","since":{"epoch":1,"seq":-1}}`, false},
	{"since unknown field", `{"op":"sub","room":"r","since":{"epoch":1,"x":2}}`, false},
	{"presence string", `{"op":"sub","room":"r","presence":"yes"}`, false},
	{"room number", `{"op":"sub","room":7}`, false},
	{"data invalid", `{"op":"pub","room":"r","data":{x}}`, false},
	{"trailing garbage", `{"op":"ping"}x`, false},
	{"two objects", `{"op":"ping"}{"op":"ping"}`, false},
	{"two objects spaced", `{"op":"ping"} {}`, false},
	{"trailing comma", `{"op":"ping",}`, false},
	{"truncated", `{"op":"ping","id":3`, false},
	{"control character in string", "{\"op\":\"sub\",\"room\":\"a\tb\"}", false},
	{"byte order mark", "\xef\xbb\xbf{\"op\":\"ping\"}", false},
	{"array", `[{"op":"ping"}]`, false},
	{"string", `"ping"`, false},
	{"number", `12`, false},
	{"null", `null`, false},
	{"true", `true`, false},
	{"empty", ``, false},
	{"only whitespace", " \n", false},
	{"deepest data", `{"op":"pub","room":"r","data":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`, true},
	{"data too deep", `{"op":"pub","room":"r","data":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`, false},
}

func TestDecodeFastMatchesJSON(t *testing.T) {
	for _, tc := range fastCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkFastMatchesJSON(t, []byte(tc.in)); got != tc.fast {
				t.Errorf("fast path took the frame: %v, want %v", got, tc.fast)
			}
		})
	}
	t.Run("valid frames", func(t *testing.T) {
		for _, tc := range validFrames {
			if !checkFastMatchesJSON(t, []byte(tc.in)) && !strings.Contains(tc.in, "extra") {
				t.Errorf("fast path declined %s", tc.in)
			}
		}
	})
	t.Run("reused decoder", func(t *testing.T) {
		// Values of one frame must not leak into the next.
		fd := new(fastDecoder)
		for _, tc := range fastCases {
			f, ok := fd.decode([]byte(tc.in))
			if ok != tc.fast {
				t.Fatalf("after earlier frames, decode(%.60q) took it: %v", tc.in, ok)
			}
			var want Frame
			if ok && (json.Unmarshal([]byte(tc.in), &want) != nil || !reflect.DeepEqual(*f, want)) {
				t.Fatalf("after earlier frames, decode(%.60q)\n got %+v\nwant %+v", tc.in, *f, want)
			}
		}
	})
}

// TestDecodeFastAllocs holds the fast path to its allocation budget: the
// frame, one string shared by room and key, and a copy of data.
func TestDecodeFastAllocs(t *testing.T) {
	fd := new(fastDecoder)
	fd.decode(typicalPub) // warm up the decoder's buffers
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := fd.decode(typicalPub); !ok {
			t.Fatal("fast path declined the typical pub")
		}
	})
	if allocs > 3 {
		t.Errorf("decoding a pub allocates %v times, want at most 3", allocs)
	}
}

// TestFrameBufAllocs: a FrameBuf takes the frame's own allocation off a
// pub, leaving the shared string and the copy of data. It decodes with
// its own fastDecoder, as Decode's pooled one may be dropped (the race
// detector empties pools at random).
func TestFrameBufAllocs(t *testing.T) {
	var buf FrameBuf
	fd := new(fastDecoder)
	fd.decodeInto(typicalPub, &buf.box) // warm up the decoder's buffers
	allocs := testing.AllocsPerRun(1000, func() {
		if f, ok := fd.decodeInto(typicalPub, &buf.box); !ok || f.Op != OpPub || f != &buf.box.f {
			t.Fatalf("decodeInto(typical pub, FrameBuf) = %+v, %v: not built in the FrameBuf", f, ok)
		}
	})
	if allocs > 2 {
		t.Errorf("decoding a pub into a FrameBuf allocates %v times, want at most 2", allocs)
	}
}

// FuzzDecodeClientFast checks that the fast path and encoding/json agree,
// frame and error, on every input.
func FuzzDecodeClientFast(f *testing.F) {
	for _, tc := range validFrames {
		f.Add([]byte(tc.in))
	}
	for _, tc := range fastCases {
		if len(tc.in) < 1000 {
			f.Add([]byte(tc.in))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkFastMatchesJSON(t, b)
	})
}
