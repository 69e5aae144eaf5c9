package wal

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func TestReceiptsRoundTrip(t *testing.T) {
	cfg := testConfig(t)
	l := openLog(t, cfg)
	states := []ReceiptState{
		{User: "ann", Room: "b", Epoch: 7, Delivered: 9, Read: 4},
		{User: "ann", Room: "a", Epoch: 7, Delivered: 3, Read: 2},
		{User: "an", Room: "nna", Epoch: 1, Delivered: 1, Read: 1}, // must not show up under "ann"
		{User: "ann\xff", Room: "z", Epoch: 2, Delivered: 2, Read: 2},
		{User: "bob", Room: "a", Epoch: 7, Delivered: 5, Read: 5},
	}
	if err := l.PutReceipts(states); err != nil {
		t.Fatalf("PutReceipts: %v", err)
	}
	// A later write replaces.
	if err := l.PutReceipts([]ReceiptState{{User: "ann", Room: "a", Epoch: 8, Delivered: 1, Read: 0}}); err != nil {
		t.Fatalf("PutReceipts: %v", err)
	}
	check := func(l *Log) {
		t.Helper()
		got, err := l.Receipts("ann")
		if err != nil {
			t.Fatalf("Receipts: %v", err)
		}
		want := []ReceiptState{
			{User: "ann", Room: "a", Epoch: 8, Delivered: 1, Read: 0},
			{User: "ann", Room: "b", Epoch: 7, Delivered: 9, Read: 4},
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Receipts(ann) = %+v, want %+v", got, want)
		}
		st, ok, err := l.Receipt("bob", "a")
		if err != nil || !ok || st != states[4] {
			t.Fatalf("Receipt(bob, a) = %+v, %v, %v", st, ok, err)
		}
		if _, ok, err := l.Receipt("bob", "b"); err != nil || ok {
			t.Fatalf("Receipt(bob, b) = %v, %v; want not found", ok, err)
		}
		got, err = l.Receipts("ann\xff")
		if err != nil || len(got) != 1 || got[0].Room != "z" {
			t.Fatalf("Receipts(ann\\xff) = %+v, %v", got, err)
		}
	}
	check(l)
	// Survives a reopen.
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	check(openLog(t, cfg))
}

func TestReceiptsInvalid(t *testing.T) {
	l := openLog(t, testConfig(t))
	tests := []struct {
		name string
		st   ReceiptState
	}{
		{"empty user", ReceiptState{Room: "a"}},
		{"empty room", ReceiptState{User: "u"}},
		{"room with zero", ReceiptState{User: "u", Room: "a\x00b"}},
		{"long user", ReceiptState{User: string(make([]byte, MaxUserLen+1)), Room: "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := l.PutReceipts([]ReceiptState{tt.st}); !errors.Is(err, ErrInvalid) {
				t.Fatalf("PutReceipts = %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := l.Receipts(""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Receipts(\"\") = %v, want ErrInvalid", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.PutReceipts([]ReceiptState{{User: "u", Room: "a"}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("PutReceipts after Close = %v, want ErrClosed", err)
	}
}

func FuzzReceiptKeyValue(f *testing.F) {
	f.Add(appendReceiptKey(nil, "ann", "chat:1"), appendReceiptValue(nil, ReceiptState{Epoch: 7, Delivered: 3, Read: 2}))
	f.Add(appendReceiptKey(nil, "\xff\x00", "a"), appendReceiptValue(nil, ReceiptState{}))
	f.Add([]byte{kindReceipt, 0, 0}, []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, k, v []byte) {
		user, room, err := decodeReceiptKey(k)
		if err == nil {
			if len(user) == 0 || len(room) == 0 {
				t.Fatalf("decoded empty user or room from %x", k)
			}
			if again := appendReceiptKey(nil, string(user), string(room)); !bytes.Equal(again, k) {
				t.Fatalf("key %x re-encodes to %x", k, again)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("key error %v does not wrap ErrCorrupt", err)
		}
		var st ReceiptState
		if err := decodeReceiptValue(v, &st); err == nil {
			if again := appendReceiptValue(nil, st); !bytes.Equal(again, v) {
				t.Fatalf("value %x re-encodes to %x", v, again)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("value error %v does not wrap ErrCorrupt", err)
		}
	})
}
