package router

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// modelUse is one entry of the plain model keyQueue is checked against.
type modelUse struct {
	key  string
	o    origin
	live bool
}

// TestKeyQueueMatchesModel drives a keyQueue and a plain slice of uses
// with the same random operations, over few keys (so uses repeat, go
// stale and clash) and with hashes cut short (so keys share them), and
// compares everything the queue answers after each one.
func TestKeyQueueMatchesModel(t *testing.T) {
	forEachHashMask(t, "", func(t *testing.T, mask uint64) {
		for run := range 6 {
			rng := rand.New(rand.NewPCG(uint64(run), 7))
			q := newKeyQueue()
			q.mask = mask
			var model []modelUse
			keys := make([]string, 3+rng.IntN(20))
			for i := range keys {
				keys[i] = fmt.Sprintf("key-%d-%s", i, string(make([]byte, rng.IntN(40)))) // lengths vary
			}
			var seq uint64
			maxLen := 0
			for step := range 7000 {
				// Grow past 1024 entries, then drain, so the queue
				// slides, empties and gives its memory back.
				push, drop, pop := 7, 8, 9 // r below each picks it
				if step >= 3000 {
					push, drop, pop = 2, 3, 9
				}
				r := rng.IntN(10)
				var (
					op    string // what the step did, for a failure
					opKey string
					opSeq uint64
				)
				switch {
				case r < push:
					seq++
					key := keys[rng.IntN(len(keys))]
					o := origin{Epoch: 1 + uint64(rng.IntN(2)), Seq: seq, TS: int64(step)}
					op, opKey, opSeq = "push", key, seq
					q.push(key, o)
					for i := range model {
						if model[i].key == key {
							model[i].live = false
						}
					}
					model = append(model, modelUse{key: key, o: o, live: true})
				case r < drop:
					key := keys[rng.IntN(len(keys))]
					s := seq - uint64(rng.IntN(4))
					op, opKey, opSeq = "drop", key, s
					q.drop(key, s)
					for i := range model {
						if model[i].key == key && model[i].live && model[i].o.Seq == s {
							model[i].live = false
						}
					}
				case r < pop:
					if len(model) == 0 {
						continue
					}
					op = "pop"
					e, key, live := q.oldest()
					if m := model[0]; key != m.key || e.origin != m.o || live != m.live {
						t.Fatalf("run %d step %d: oldest = %q %+v live %v, want %q %+v live %v", run, step, key, e.origin, live, m.key, m.o, m.live)
					}
					q.pop()
					model = model[1:]
				default:
					s := seq - uint64(rng.IntN(2))
					op, opSeq = "popNewest", s
					q.popNewest(s)
					if n := len(model); n > 0 && model[n-1].o.Seq == s {
						model = model[:n-1]
					}
				}
				if q.len() == 0 && !slices.ContainsFunc(model, func(m modelUse) bool { return m.live }) {
					model = nil // the queue may drop stale entries when none is live
				}
				checkKeyQueue(t, func() string { return fmt.Sprintf("run %d step %d (%s %q %d)", run, step, op, opKey, opSeq) }, &q, model, keys, step%64 == 0)
				maxLen = max(maxLen, len(model))
			}
			if maxLen <= 1024 {
				t.Fatalf("run %d: the queue grew to %d entries; the first phase is to grow it past 1024", run, maxLen)
			}
			for len(model) > 0 {
				q.pop()
				model = model[1:]
				checkKeyQueue(t, func() string { return fmt.Sprintf("run %d draining", run) }, &q, model, keys, len(model)%64 == 0)
			}
		}
	})
}

// checkKeyQueue compares q with model; with all, the order of live
// entries too.
func checkKeyQueue(t *testing.T, at func() string, q *keyQueue, model []modelUse, keys []string, all bool) {
	t.Helper()
	if q.len() != len(model) {
		t.Fatalf("%s: len %d, want %d", at(), q.len(), len(model))
	}
	if q.len() == 0 && cap(q.entries) > 1024 {
		t.Fatalf("%s: empty queue holds %d entries' memory", at(), cap(q.entries))
	}
	want := map[string]origin{}
	var order []modelUse
	for _, m := range model {
		if m.live {
			want[m.key] = m.o
			order = append(order, m)
		}
	}
	if q.live() != len(want) {
		t.Fatalf("%s: %d live, want %d", at(), q.live(), len(want))
	}
	for _, k := range keys {
		o, ok := q.get(k)
		if w, wok := want[k]; ok != wok || o != w {
			t.Fatalf("%s: get(%q) = %+v %v, want %+v %v", at(), k, o, ok, w, wok)
		}
	}
	if !all {
		return
	}
	var got []modelUse
	q.each(func(e keyEntry, key string) {
		got = append(got, modelUse{key: strings.Clone(key), o: e.origin, live: true})
	})
	if !slices.Equal(got, order) {
		t.Fatalf("%s: each = %v, want %v", at(), got, order)
	}
}
