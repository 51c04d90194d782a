package views

import "testing"

func ptr(n int64) *int64 { return &n }

// TestBarLevel ensures the spend bars change colour where the proxy changes behaviour: amber
// from 80% (fallback), red from 100% (blocked).
func TestBarLevel(t *testing.T) {
	tests := []struct {
		spend   int64
		limit   *int64
		level   string
		percent int
	}{
		{0, ptr(1000), "ok", 0},
		{799, ptr(1000), "ok", 79},
		{800, ptr(1000), "warn", 80},
		{999, ptr(1000), "warn", 99},
		{1000, ptr(1000), "over", 100},
		{5000, ptr(1000), "over", 100},
		{0, ptr(0), "over", 100},
		{123, nil, "nolimit", 0},
	}
	for _, tt := range tests {
		b := Bar{Spend: tt.spend, Limit: tt.limit}
		if got, want := b.Level(), tt.level; got != want {
			t.Errorf("Bar{%d, %v}.Level() = %q, want %q", tt.spend, tt.limit, got, want)
		}
		if got, want := b.Percent(), tt.percent; got != want {
			t.Errorf("Bar{%d, %v}.Percent() = %d, want %d", tt.spend, tt.limit, got, want)
		}
	}
}

// TestUSD ensures money reads right: cents for real amounts, four decimals for tiny ones.
func TestUSD(t *testing.T) {
	tests := []struct {
		nano int64
		want string
	}{
		{0, "$0.00"},
		{450_000, "$0.0005"},
		{4_500, "<$0.0001"},
		{10_000_000, "$0.01"},
		{1_234_567_890_000, "$1,234.57"},
		{-2_500_000_000, "-$2.50"},
	}
	for _, tt := range tests {
		if got := USD(tt.nano); got != tt.want {
			t.Errorf("USD(%d) = %q, want %q", tt.nano, got, tt.want)
		}
	}
}
