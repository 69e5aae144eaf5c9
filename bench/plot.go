package bench

import (
	"fmt"
	"math"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Series is one latency curve of a plot.
type Series struct {
	Name   string
	Points []Point
}

// seriesOf returns the latency curves of a result, names prefixed.
func seriesOf(prefix string, r *Result) []Series {
	var out []Series
	for _, s := range r.Latencies {
		if len(s.Dist) > 0 {
			out = append(out, Series{Name: prefix + s.Name, Points: s.Dist})
		}
	}
	return out
}

// PlotLatencies draws latency distributions as an HDR percentile plot
// and writes it to path (the format follows the extension: .svg, .png,
// .pdf). The x axis is the percentile on the scale 1/(1-p), logarithmic,
// so 90%, 99%, 99.9%, ... are evenly spaced and the tail, where
// coordinated omission and stalls show, gets as much room as the median.
// The y axis is the latency in milliseconds.
func PlotLatencies(path, title string, series []Series) error {
	p := plot.New()
	p.Title.Text = title
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (ms)"
	p.X.Scale = plot.LogScale{}
	p.Add(plotter.NewGrid())

	maxX := 10.0
	var lines []any
	for _, s := range series {
		xys := make(plotter.XYs, 0, len(s.Points))
		for _, pt := range s.Points {
			if pt.P >= 100 {
				continue
			}
			x := 1 / (1 - pt.P/100)
			xys = append(xys, plotter.XY{X: x, Y: pt.MS})
			maxX = math.Max(maxX, x)
		}
		if len(xys) == 0 {
			continue
		}
		lines = append(lines, s.Name, xys)
	}
	if len(lines) == 0 {
		return fmt.Errorf("plot: no latency recorded")
	}
	if err := plotutil.AddLines(p, lines...); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	p.X.Min = 1
	p.X.Tick.Marker = percentileTicks(maxX)
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = true
	if err := p.Save(9*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("plot: save %s: %w", path, err)
	}
	return nil
}

// percentileTicks labels x = 1/(1-p) at 0%, 90%, 99%, 99.9%, ... up to
// maxX.
func percentileTicks(maxX float64) plot.ConstantTicks {
	ticks := plot.ConstantTicks{{Value: 1, Label: "0%"}, {Value: 2, Label: "50%"}}
	for k := 1; ; k++ {
		x := math.Pow(10, float64(k))
		if x > maxX*1.0001 && k > 1 {
			break
		}
		label := "90%" // then 99%, 99.9%, 99.99%, ...
		if k > 1 {
			label = "99" + strings.TrimSuffix("."+strings.Repeat("9", k-2), ".") + "%"
		}
		ticks = append(ticks, plot.Tick{Value: x, Label: label})
	}
	return ticks
}
