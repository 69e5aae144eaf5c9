package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// ProcStats is a process's resource use at one moment.
type ProcStats struct {
	CPU  time.Duration // user + system CPU time so far
	RSS  int64         // resident memory now, bytes
	Peak int64         // peak resident memory so far (VmHWM), bytes
}

// clockTicks is the unit of the CPU times in /proc/<pid>/stat (USER_HZ).
// It is 100 on every Linux architecture Go runs on; the kernel exposes a
// fixed value to user space whatever its internal HZ is.
const clockTicks = 100

// ReadProcStats reads /proc/<pid>/stat and /proc/<pid>/status, and the
// process's CPU-time clock for a precise CPU figure (processCPU). pid 0
// means this process.
func ReadProcStats(pid int) (ProcStats, error) {
	who := "self"
	if pid != 0 {
		who = strconv.Itoa(pid)
	}
	var s ProcStats
	stat, err := os.ReadFile("/proc/" + who + "/stat")
	if err != nil {
		return s, fmt.Errorf("read process stats: %w", err)
	}
	if s.CPU, err = parseStatCPU(stat); err != nil {
		return s, err
	}
	if cpu, ok := processCPU(pid); ok {
		s.CPU = cpu
	}
	status, err := os.ReadFile("/proc/" + who + "/status")
	if err != nil {
		return s, fmt.Errorf("read process status: %w", err)
	}
	s.RSS = statusKB(status, "VmRSS:") * 1024
	s.Peak = statusKB(status, "VmHWM:") * 1024
	return s, nil
}

// parseStatCPU returns utime + stime from a /proc/<pid>/stat line. The
// command name (field 2) is in parentheses and may contain spaces, so
// fields are counted from the last ')'.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc stat: no command name")
	}
	f := bytes.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc stat: %d fields", len(f))
	}
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc stat: bad cpu times %q %q", f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// statusKB returns the kB value of a "Key:   123 kB" line of
// /proc/<pid>/status, 0 if absent.
func statusKB(status []byte, key string) int64 {
	i := bytes.Index(status, []byte("\n"+key))
	if i < 0 {
		return 0
	}
	line := status[i+1+len(key):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	f := bytes.Fields(line)
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseInt(string(f[0]), 10, 64)
	return v
}
