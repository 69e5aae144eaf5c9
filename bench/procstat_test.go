package bench

import (
	"reflect"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "1234 (arena (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 125 0 0 20 0 8 0 100 1000000 500 18446744073709551615"
	got, err := parseStatCPU([]byte(line))
	if err != nil || got != 3750*time.Millisecond {
		t.Fatalf("parseStatCPU = %v, %v; want 3.75s", got, err)
	}
	for _, bad := range []string{"", "1 (x S 1 2", "1 (x) S 1 2 3"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q) accepted", bad)
		}
	}
}

func TestReadProcStatsSelf(t *testing.T) {
	s, err := ReadProcStats(0)
	if err != nil {
		t.Fatal(err)
	}
	if s.RSS <= 0 || s.Peak < s.RSS {
		t.Fatalf("rss %d, peak %d", s.RSS, s.Peak)
	}
}

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		in   string
		want []int
		bad  bool
	}{
		{in: "0", want: []int{0}},
		{in: "1-3", want: []int{1, 2, 3}},
		{in: "0,2,4-5,2", want: []int{0, 2, 4, 5}},
		{in: "", bad: true},
		{in: "a", bad: true},
		{in: "3-1", bad: true},
		{in: "-1", bad: true},
		{in: "5000", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseCPUList(tt.in)
			if (err != nil) != tt.bad || (!tt.bad && !reflect.DeepEqual(got, tt.want)) {
				t.Fatalf("ParseCPUList(%q) = %v, %v", tt.in, got, err)
			}
		})
	}
}

func TestSourceIP(t *testing.T) {
	if sourceIP(5, 0) != nil {
		t.Fatal("n = 0 must leave the choice to the system")
	}
	tests := []struct {
		i, n int
		want string
	}{{0, 16, "127.0.0.1"}, {15, 16, "127.0.0.16"}, {16, 16, "127.0.0.1"}, {300, 1000, "127.0.1.45"}}
	for _, tt := range tests {
		if got := sourceIP(tt.i, tt.n).String(); got != tt.want {
			t.Errorf("sourceIP(%d, %d) = %s, want %s", tt.i, tt.n, got, tt.want)
		}
	}
}
