package views

import (
	"math"
	"testing"
	"time"
)

// TestNiceStep ensures a chart's four grid steps are round numbers just above its tallest bar,
// whatever the size, and that a bar of any height is drawn inside the chart.
func TestNiceStep(t *testing.T) {
	for _, tc := range []struct{ in, want int64 }{
		{0, 1}, {1, 1}, {2, 2}, {3, 5}, {6, 10}, {11, 20}, {21, 25}, {26, 50}, {51, 100},
		{22_500_000, 25_000_000}, {maxChartTop / 4, 100_000_000_000_000_000},
	} {
		if got := niceStep(tc.in); got != tc.want {
			t.Errorf("niceStep(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// TestUntil ensures a block's end reads as the issue asks: "HH:MM UTC (in 3 h 12 min)", with
// the date when it is a day or more away.
func TestUntil(t *testing.T) {
	now := time.Date(2026, 12, 1, 20, 48, 0, 0, time.UTC)
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), "00:00 UTC (in 3 h 12 min)"},
		{now.Add(30 * time.Second), "20:48 UTC (in under a minute)"},
		{now.Add(42 * time.Minute), "21:30 UTC (in 42 min)"},
		{time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), "1 Jan 00:00 UTC (in 30 d 3 h)"},
	} {
		if got := until(tc.at, now); got != tc.want {
			t.Errorf("until(%v) = %q, want %q", tc.at, got, tc.want)
		}
	}
}

// TestHugeBar ensures a bar far beyond any real figure is drawn cut off inside the chart.
func TestHugeBar(t *testing.T) {
	g := layoutChart(Chart{Keys: []ChartKey{{Name: "a"}, {Name: "b"}}, Bars: []ChartBar{{Parts: []int64{math.MaxInt64, math.MaxInt64}, Total: math.MaxInt64}}})
	for _, s := range g.bars[0].segs {
		if s.y < chartTop || s.h < 0 || s.y+s.h > chartBase {
			t.Errorf("segment at y %v, height %v: outside the chart", s.y, s.h)
		}
	}
}
