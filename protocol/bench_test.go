package protocol

import (
	"bytes"
	"encoding/json"
	"testing"
)

var pubFrame = []byte(`{"op":"pub","id":12345,"room":"chat:lobby","data":{"text":"hello, world","n":42},"key":"0123456789abcdef0123456789abcdef"}`)

// typicalPub is a pub as the durable benchmark's publishers send it.
var typicalPub = []byte(`{"op":"pub","id":7,"room":"room-42","data":{"n":1,"t":1732350000000000000,"pad":"xxxxxxxx"},"key":"k-123"}`)

// BenchmarkDecodePub decodes pubs with DecodeClient (which takes the fast
// path) and, for comparison, with encoding/json alone.
func BenchmarkDecodePub(b *testing.B) {
	frames := []struct {
		name string
		in   []byte
	}{{"lobby", pubFrame}, {"typical", typicalPub}}
	decoders := []struct {
		name   string
		decode func([]byte) (*Frame, error)
	}{{"DecodeClient", DecodeClient}, {"FrameBuf", new(FrameBuf).Decode}, {"encoding-json", decodeClientJSON}}
	for _, fr := range frames {
		for _, dec := range decoders {
			b.Run(fr.name+"/"+dec.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(fr.in)))
				for b.Loop() {
					if _, err := dec.decode(fr.in); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkDecodeFastParse is the fast path's parsing alone, without
// building the frame: what is left of BenchmarkDecodePub/typical/DecodeClient
// is mostly allocating the 464-byte Frame.
func BenchmarkDecodeFastParse(b *testing.B) {
	fd := new(fastDecoder)
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalPub)))
	for b.Loop() {
		fd.in = *bytes.NewBuffer(typicalPub)
		fd.dec.Reset(&fd.in, fastOpts)
		if !fd.object(typicalPub) {
			b.Fatal("fast path declined the typical pub")
		}
	}
}

func BenchmarkAppendMsg(b *testing.B) {
	m := &Msg{Room: "chat:lobby", Epoch: 1700000000000000, Seq: 123456, TS: 1700000000123, From: "alice",
		Key: "0123456789abcdef0123456789abcdef", Data: json.RawMessage(`{"text":"hello, world","n":42}`)}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendMsg(buf[:0], m)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkEncodeAck(b *testing.B) {
	id := int64(12345)
	ack := Ack{Op: OpAck, ID: &id, Room: "chat:lobby", Epoch: 1700000000000000, Seq: 123456, TS: 1700000000123}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(ack); err != nil {
			b.Fatal(err)
		}
	}
}
