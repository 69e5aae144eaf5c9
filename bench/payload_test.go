package bench

import (
	"encoding/json"
	"testing"
)

func TestPayloadRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		p    Payload
		size int
	}{
		{"small", Payload{Stream: 0, N: 1, Intended: 0, Sent: 5}, 64},
		{"padded", Payload{Stream: 7, N: 123456, Intended: 9_000_000_000, Sent: 9_000_000_123}, 1024},
		{"extremes", Payload{Stream: 1<<32 - 1, N: 1<<63 + 5, Intended: -1 << 62, Sent: 1<<63 - 1}, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := AppendPayload(nil, tt.p, tt.size)
			if len(b) < tt.size {
				t.Fatalf("payload is %d bytes, want at least %d", len(b), tt.size)
			}
			if !json.Valid(b) {
				t.Fatalf("payload is not JSON: %s", b)
			}
			got, err := ParsePayload(b)
			if err != nil || got != tt.p {
				t.Fatalf("ParsePayload = %+v, %v; want %+v", got, err, tt.p)
			}
		})
	}
}

// TestPayloadReencoded checks the slow path: the same object spelled
// differently (keys reordered, spaces) as a server could re-encode it.
func TestPayloadReencoded(t *testing.T) {
	got, err := ParsePayload([]byte(`{ "x":"pad", "s":4, "t":3, "n":2, "p":1 }`))
	if err != nil || got != (Payload{Stream: 1, N: 2, Intended: 3, Sent: 4}) {
		t.Fatalf("got %+v, %v", got, err)
	}
	for _, bad := range []string{``, `{}`, `{"p":1,"n":2,"t":3}`, `[1,2]`, `{"p":-1,"n":2,"t":3,"s":4}`, `"hello"`} {
		if _, err := ParsePayload([]byte(bad)); err == nil {
			t.Errorf("ParsePayload(%q) accepted", bad)
		}
	}
}

// FuzzParsePayload: deliveries are outside input; parsing must never
// panic, and whatever parses must be what a re-encoding gives back.
func FuzzParsePayload(f *testing.F) {
	f.Add(AppendPayload(nil, Payload{Stream: 3, N: 42, Intended: 100, Sent: 200}, 80))
	f.Add(AppendPayload(nil, Payload{Stream: 0, N: 1, Intended: -5, Sent: 0}, 64))
	f.Add([]byte(`{"s":4,"t":3,"n":2,"p":1}`))
	f.Add([]byte(`{"p":1,"n":99999999999999999999,"t":3,"s":4}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePayload(b)
		if err != nil {
			return
		}
		again, err := ParsePayload(AppendPayload(nil, p, 64))
		if err != nil || again != p {
			t.Fatalf("re-encoded %+v parsed as %+v, %v", p, again, err)
		}
	})
}
