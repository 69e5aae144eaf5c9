package bench

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// processCPU reads another process's CPU time to the nanosecond, and
// agrees with /proc's tick-counted utime + stime.
func TestProcessCPU(t *testing.T) {
	// The child spins for a few hundred milliseconds of CPU, says so,
	// then blocks on its stdin: its CPU time no longer moves.
	cmd := exec.Command("sh", "-c", `i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; echo spun; read x`)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "spun\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
	pid := cmd.Process.Pid
	cpu, ok := processCPU(pid)
	if !ok {
		t.Fatal("cannot read a child's CPU clock")
	}
	if cpu < 10*time.Millisecond {
		t.Fatalf("child spun, CPU clock says %v", cpu)
	}
	if cpu%(10*time.Millisecond) == 0 {
		t.Errorf("CPU %v is a whole number of ticks: not the precise clock", cpu)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	ticks, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	// /proc's figure is sampled on the scheduler's tick: allow a few.
	if d := ticks - cpu; d < -50*time.Millisecond || d > 50*time.Millisecond {
		t.Fatalf("/proc says %v, the CPU clock %v", ticks, cpu)
	}
	if _, ok := processCPU(1 << 27); ok { // above any pid_max (at most 1<<22)
		t.Fatal("read the CPU clock of a process that does not exist")
	}
}
