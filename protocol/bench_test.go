package protocol

import (
	"encoding/json"
	"testing"
)

var pubFrame = []byte(`{"op":"pub","id":12345,"room":"chat:lobby","data":{"text":"hello, world","n":42},"key":"0123456789abcdef0123456789abcdef"}`)

func BenchmarkDecodePub(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(pubFrame)))
	for b.Loop() {
		if _, err := DecodeClient(pubFrame); err != nil {
			b.Fatal(err)
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
