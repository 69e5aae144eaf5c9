package bench

import "github.com/arena-mesh/arena/protocol"

// Tracker follows what one subscription received from the publisher
// streams it expects, to count messages lost, duplicated and delivered
// out of order. Identity is the payload's (stream, n), never the server's
// position, so a server that published a retried message twice, or a
// client whose dedup let a replayed message through, shows up as a
// duplicate.
//
// Order is judged by the server's position when the driver reports one
// (Arena: a room has one total order, and concurrent publishes from one
// publisher may legitimately be sequenced in any order), and by n within a
// stream otherwise (a NATS connection keeps one publisher's order).
//
// A Tracker is used by the one goroutine that reads its subscription; the
// run reads it only after that goroutine has stopped.
type Tracker struct {
	streams map[uint32]*streamState
	last    protocol.Position // last position delivered, for drivers that give one

	received   uint64 // distinct messages of expected streams
	dups       uint64 // messages seen before
	outOfOrder uint64 // new messages that arrived behind a later one
	unexpected uint64 // messages of streams this subscription does not expect
	epochs     uint64 // epoch changes seen (a room restarted its sequence)
}

type streamState struct {
	seen SeqSet
	max  uint64
}

// Verdict is what Observe made of one delivery.
type Verdict uint8

// The verdicts of Observe.
const (
	New        Verdict = iota // first delivery, in order
	Late                      // first delivery, but behind a later message
	Duplicate                 // delivered before
	Unexpected                // from a stream this subscription does not expect
)

// NewTracker returns a tracker expecting the given publisher streams.
func NewTracker(streams ...uint32) *Tracker {
	t := &Tracker{streams: make(map[uint32]*streamState, len(streams))}
	for _, s := range streams {
		t.streams[s] = new(streamState)
	}
	return t
}

// Observe records the delivery of p at pos (the zero Position when the
// driver has none).
func (t *Tracker) Observe(p Payload, pos protocol.Position) Verdict {
	s := t.streams[p.Stream]
	if s == nil {
		t.unexpected++
		return Unexpected
	}
	if !s.seen.Add(p.N) {
		t.dups++
		return Duplicate
	}
	t.received++
	late := false
	if pos.Seq != 0 {
		switch {
		case pos.Epoch != t.last.Epoch:
			if t.last.Epoch != 0 {
				t.epochs++
			}
			t.last = pos
		case pos.Seq <= t.last.Seq:
			late = true
		default:
			t.last = pos
		}
	} else if p.N < s.max {
		late = true
	}
	if p.N > s.max {
		s.max = p.N
	}
	if late {
		t.outOfOrder++
		return Late
	}
	return New
}

// MissingOf returns up to max messages of stream that acked holds and
// this subscription did not receive.
func (t *Tracker) MissingOf(stream uint32, acked *SeqSet, max int) []uint64 {
	s := t.streams[stream]
	if s == nil || acked == nil {
		return nil
	}
	return s.seen.MissingFrom(acked, max)
}

// Counts is the delivery bookkeeping of a run, or of one subscription.
type Counts struct {
	Expected   uint64 `json:"expected"`     // deliveries that should have happened: acked messages times their subscribers
	Received   uint64 `json:"received"`     // distinct expected messages delivered
	Lost       uint64 `json:"lost"`         // acked messages never delivered to a subscriber that expected them
	Duplicated uint64 `json:"duplicated"`   // deliveries of a message already delivered (after the client's dedup)
	OutOfOrder uint64 `json:"out_of_order"` // messages delivered behind a later one
	Unexpected uint64 `json:"unexpected"`   // messages of streams a subscription did not expect
	Epochs     uint64 `json:"epochs"`       // epoch changes seen by subscriptions
}

// Add accumulates o into c.
func (c *Counts) Add(o Counts) {
	c.Expected += o.Expected
	c.Received += o.Received
	c.Lost += o.Lost
	c.Duplicated += o.Duplicated
	c.OutOfOrder += o.OutOfOrder
	c.Unexpected += o.Unexpected
	c.Epochs += o.Epochs
}

// Counts settles the tracker against what each expected stream's
// publisher had acknowledged: acked(stream) is the set of its messages
// the target confirmed. Messages delivered but never acknowledged (their
// publish failed or timed out) are not counted as lost, and not expected.
func (t *Tracker) Counts(acked func(stream uint32) *SeqSet) Counts {
	c := Counts{
		Received:   t.received,
		Duplicated: t.dups,
		OutOfOrder: t.outOfOrder,
		Unexpected: t.unexpected,
		Epochs:     t.epochs,
	}
	for id, s := range t.streams {
		a := acked(id)
		if a == nil {
			continue
		}
		c.Expected += a.Len()
		c.Lost += s.seen.Missing(a)
	}
	return c
}
