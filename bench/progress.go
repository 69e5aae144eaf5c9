package bench

import (
	"fmt"
	"strings"
	"time"
)

// progress rewrites one status line on stderr about once a second while
// a phase runs: what a person watching the run needs to see that it is
// alive and whether the target keeps up.
type progress struct {
	stop chan struct{}
	done chan struct{}
}

// startProgress starts the line; line is called each second for the text
// after the elapsed time. Stop it before printing anything else.
func (r *run) startProgress(label string, line func() string) *progress {
	pr := &progress{stop: make(chan struct{}), done: make(chan struct{})}
	if r.p.Quiet {
		close(pr.done)
		return pr
	}
	start := time.Now()
	go func() {
		defer close(pr.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		width := 0
		for {
			select {
			case <-pr.stop:
				if width > 0 {
					fmt.Fprintln(r.stderr)
				}
				return
			case <-tick.C:
			}
			s := fmt.Sprintf("[%s] %5.1fs %s", label, time.Since(start).Seconds(), line())
			pad := ""
			if len(s) < width {
				pad = strings.Repeat(" ", width-len(s))
			}
			width = len(s)
			fmt.Fprintf(r.stderr, "\r%s%s", s, pad)
		}
	}()
	return pr
}

// Stop ends the line; idempotent.
func (pr *progress) Stop() {
	select {
	case <-pr.stop:
	default:
		close(pr.stop)
	}
	<-pr.done
}

// trafficLine is the usual progress text: counters and the current
// window's latency percentiles.
func (r *run) trafficLine(lat *Latency) func() string {
	return func() string {
		s := fmt.Sprintf("sent %d acked %d recv %d", r.sent.Load(), r.acked.Load(), r.received.Load())
		if lat != nil {
			w := lat.TakeWindow()
			if w.TotalCount() > 0 {
				s += fmt.Sprintf(" | %s p50 %s p99 %s", lat.Name(), fmtMS(w.ValueAtQuantile(50)), fmtMS(w.ValueAtQuantile(99)))
			}
		}
		if n := r.pubErrors.Load(); n > 0 {
			s += fmt.Sprintf(" | !! %d publish errors", n)
		}
		if n := r.dups.Load(); n > 0 {
			s += fmt.Sprintf(" | !! %d dup", n)
		}
		return s
	}
}

func fmtMS(ns int64) string {
	return formatValue(float64(ns)/1e6) + "ms"
}
