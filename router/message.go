package router

import (
	"sync/atomic"

	"github.com/arena-mesh/arena/wal"
)

// Position of a message in its room: seq counts from 1 within an epoch with
// no gaps. (epoch, 0) is the position before the first message.
type Position struct{ Epoch, Seq uint64 }

// Message is immutable once published and shared by every subscriber (and by
// the room's ring): never modify it, and don't copy it by value.
type Message struct {
	Room       string
	Epoch, Seq uint64
	TS         int64 // ms since the Unix epoch
	From, Key  string
	Data       []byte // JSON, verbatim from the publisher

	// enc caches the wire encoding so that a message is encoded once
	// however many subscribers it has.
	enc atomic.Pointer[[]byte]
}

// Encoded returns enc(m), computed once per message and cached; safe for
// concurrent use. Under a race enc may run more than once, but every caller
// gets the same cached bytes. The edge passes its msg-frame encoder; every
// caller of one Message must pass equivalent encoders. The result is shared:
// never modify it.
func (m *Message) Encoded(enc func(*Message) []byte) []byte {
	if p := m.enc.Load(); p != nil {
		return *p
	}
	b := enc(m)
	if m.enc.CompareAndSwap(nil, &b) {
		return b
	}
	return *m.enc.Load()
}

// messagesFromRecords appends recs to dst as Messages, allocating them in one block.
func messagesFromRecords(dst []*Message, recs []wal.Record) []*Message {
	block := make([]Message, len(recs))
	for i := range recs {
		rec := &recs[i]
		m := &block[i]
		m.Room, m.Epoch, m.Seq, m.TS = rec.Room, rec.Epoch, rec.Seq, rec.TS
		m.From, m.Key, m.Data = rec.From, rec.Key, rec.Data
		dst = append(dst, m)
	}
	return dst
}
