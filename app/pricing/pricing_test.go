package pricing

import (
	"math"
	"testing"
)

func mustTable(t *testing.T, overrides map[string]Price, opts ...Option) *Table {
	t.Helper()
	tab, err := New(overrides, DefaultUnknownPrice(), opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tab
}

// Dated, aliased and suffixed model names resolve to their base entry's price, the longest
// matching base wins, and names that only share characters with a base do not match it.
func TestLookupMatchesLongestPrefix(t *testing.T) {
	tab := mustTable(t, nil)
	tests := []struct {
		model     string
		want      string // the built-in entry whose price must apply; "" = default price
		wantProv  string
		byDefault bool
	}{
		{"gpt-4o", "gpt-4o", OpenAI, false},
		{"gpt-4o-2024-08-06", "gpt-4o", OpenAI, false},
		{"gpt-4o-mini", "gpt-4o-mini", OpenAI, false},
		{"gpt-4o-mini-2024-07-18", "gpt-4o-mini", OpenAI, false},
		{"GPT-4o-Mini", "gpt-4o-mini", OpenAI, false},
		{"gpt-4.1-mini-2025-04-14", "gpt-4.1-mini", OpenAI, false},
		{"gpt-5-mini-2025-08-07", "gpt-5-mini", OpenAI, false},
		{"gpt-5.1-codex", "gpt-5.1", OpenAI, false},
		{"o3-mini-2025-01-31", "o3-mini", OpenAI, false},
		{"o3-2025-04-16", "o3", OpenAI, false},
		{"claude-3-5-haiku-latest", "claude-3-5-haiku", Anthropic, false},
		{"claude-3-5-haiku-20241022", "claude-3-5-haiku", Anthropic, false},
		{"claude-sonnet-4-5-20250929", "claude-sonnet-4-5", Anthropic, false},
		{"claude-sonnet-4-5@20250929", "claude-sonnet-4-5", Anthropic, false},
		{"claude-sonnet-4-20250514", "claude-sonnet-4", Anthropic, false},
		{"claude-opus-4-1-20250805", "claude-opus-4-1", Anthropic, false},
		{"claude-opus-4-20250514", "claude-opus-4", Anthropic, false},
		{"claude-haiku-4-5-20251001", "claude-haiku-4-5", Anthropic, false},
		{"claude-sonnet-5-5", "claude-sonnet-5-5", Anthropic, false},
		{"gemini-2.0-flash-001", "gemini-2.0-flash", Gemini, false},
		{"gemini-2.0-flash-lite-001", "gemini-2.0-flash-lite", Gemini, false},
		{"models/gemini-2.5-flash", "gemini-2.5-flash", Gemini, false},
		{"gemini-2.5-flash-lite-preview-06-17", "gemini-2.5-flash-lite", Gemini, false},
		{"gemini-3.1-pro-preview", "gemini-3.1-pro", Gemini, false},
		// Sharing characters is not sharing a segment.
		{"o1x", "", "", true},
		{"gpt-4omega", "", "", true},
		{"my-finetune", "", "", true},
		{"", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			got, byDefault := tab.Lookup(tt.model)
			if byDefault != tt.byDefault {
				t.Fatalf("byDefault = %v, want %v", byDefault, tt.byDefault)
			}
			want := tab.def
			if tt.want != "" {
				want = tab.entries[tt.want].price
			}
			if got != want {
				t.Errorf("price = %+v, want %+v (%s)", got, want, tt.want)
			}
			if got, want := tab.Provider(tt.model), tt.wantProv; got != want {
				t.Errorf("Provider = %q, want %q", got, want)
			}
		})
	}
	// The trap the table must avoid: mini is far cheaper than its big sibling.
	mini, _ := tab.Lookup("gpt-4o-mini-2024-07-18")
	big, _ := tab.Lookup("gpt-4o-2024-08-06")
	if mini.Input >= big.Input {
		t.Errorf("gpt-4o-mini input %d is not below gpt-4o %d", mini.Input, big.Input)
	}
}

// Costs are exact integer sums over each token class at the published rates.
func TestCost(t *testing.T) {
	tab := mustTable(t, nil)
	tests := []struct {
		name  string
		model string
		u     Usage
		want  NanoUSD
	}{
		// 1M input at $2.50 + 1M output at $10 = $12.50.
		{"gpt-4o whole millions", "gpt-4o", Usage{Input: 1_000_000, Output: 1_000_000}, FromDollars(12.50)},
		// 1000 × 0.15 µ$ + 500 × 0.60 µ$ = 150 + 300 µ$ = 450,000 n$.
		{"gpt-4o-mini small", "gpt-4o-mini-2024-07-18", Usage{Input: 1000, Output: 500}, 450_000},
		// cached input at half price: 1000 × $1.25/M = 1,250,000 n$.
		{"gpt-4o cached", "gpt-4o", Usage{CacheRead: 1000}, 1_250_000},
		// Anthropic: 100 in × $3 + 2000 cache read × $0.30 + 1000 cache write × $3.75 + 50 out × $15
		// = 300,000 + 600,000 + 3,750,000 + 750,000 n$.
		{"claude sonnet 4.5 with cache", "claude-sonnet-4-5-20250929",
			Usage{Input: 100, CacheRead: 2000, CacheWrite: 1000, Output: 50}, 5_400_000},
		// One token of gpt-5-nano input is 0.05 µ$ = 50 n$; one output token 0.40 µ$ = 400 n$.
		{"gpt-5-nano one token each", "gpt-5-nano", Usage{Input: 1, Output: 1}, 450},
		// gemini-2.0-flash-lite input is $0.075/M = 75,000 pico$ = 75 n$ per token.
		{"sub-cent price per token", "gemini-2.0-flash-lite", Usage{Input: 7}, 525},
		{"negative tokens count as zero", "gpt-4o", Usage{Input: -5, Output: 1}, 10_000},
		{"no tokens", "gpt-4o", Usage{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, byDefault := tab.Cost(tt.model, tt.u)
			if byDefault {
				t.Fatalf("%s priced by default", tt.model)
			}
			if got != tt.want {
				t.Errorf("Cost = %d n$, want %d n$", got, tt.want)
			}
		})
	}
}

// An unknown model costs the default price, is flagged, and is never free.
func TestUnknownModelPricedByDefault(t *testing.T) {
	def := PriceFromDollars(1, 0, 0, 2)
	tab, err := New(nil, def)
	if err != nil {
		t.Fatal(err)
	}
	cost, byDefault := tab.Cost("brand-new-model-9000", Usage{Input: 1_000_000, CacheRead: 1_000_000, Output: 1_000_000})
	if !byDefault {
		t.Error("unknown model not flagged as priced by default")
	}
	// Cache reads of an unknown model are not assumed discounted: $1 + $1 + $2.
	if got, want := cost, FromDollars(4); got != want {
		t.Errorf("cost = %d, want %d", got, want)
	}
	if got := tab.Provider("brand-new-model-9000"); got != "" {
		t.Errorf("Provider = %q, want empty", got)
	}

	for _, bad := range []Price{{}, {CacheRead: 5}} {
		if _, err := New(nil, bad); err == nil {
			t.Errorf("New accepted a free default price %+v", bad)
		}
	}
	if _, err := New(nil, Price{Input: -1, Output: 5}); err == nil {
		t.Error("New accepted a negative default price")
	}
}

// Overrides replace built-in prices (dated names still match them) and add new models, whose
// provider is inferred from the name.
func TestOverrides(t *testing.T) {
	tab := mustTable(t, map[string]Price{
		"GPT-4o":             PriceFromDollars(1, 0, 0, 2),
		"claude-internal-x":  PriceFromDollars(3, 0.3, 3.75, 15),
		"acme-llm":           PriceFromDollars(0.5, 0, 0, 0.5),
		"gemini-2.5-flash":   PriceFromDollars(0.1, 0.01, 0, 0.2),
		"text-embedding-new": PriceFromDollars(0.01, 0, 0, 0),
		"ft:gpt-4o-mini":     PriceFromDollars(0.30, 0.15, 0, 1.20),
	})
	// The config example's fine-tune override matches full fine-tune names, dated or not.
	if got, want := mustCost(t, tab, "ft:gpt-4o-mini-2024-07-18:acme::abc123", Usage{Input: 1_000_000}), FromDollars(0.30); got != want {
		t.Errorf("dated fine-tune cost = %d, want %d", got, want)
	}
	if got, want := mustCost(t, tab, "ft:gpt-4o-mini:acme:custom:abc123", Usage{Input: 1_000_000, Output: 1_000_000}), FromDollars(1.50); got != want {
		t.Errorf("fine-tune cost = %d, want %d", got, want)
	}
	if got, want := mustCost(t, tab, "gpt-4o-2024-08-06", Usage{Input: 1_000_000, Output: 1_000_000}), FromDollars(3); got != want {
		t.Errorf("overridden gpt-4o cost = %d, want %d", got, want)
	}
	// The override does not leak into the longer sibling.
	if got, want := mustCost(t, tab, "gpt-4o-mini", Usage{Input: 1_000_000}), FromDollars(0.15); got != want {
		t.Errorf("gpt-4o-mini cost = %d, want %d", got, want)
	}
	p, _ := tab.Lookup("acme-llm")
	if p.CacheRead != p.Input || p.CacheWrite != p.Input {
		t.Errorf("zero cache prices in an override should mean 'like input', got %+v", p)
	}
	for model, want := range map[string]string{
		"claude-internal-x-2026": Anthropic,
		"gemini-2.5-flash-001":   Gemini,
		"gpt-4o":                 OpenAI,
		"acme-llm":               "",
		"text-embedding-new":     OpenAI,
		"ft:gpt-4o-mini:acme::x": OpenAI,
	} {
		if got := tab.Provider(model); got != want {
			t.Errorf("Provider(%q) = %q, want %q", model, got, want)
		}
	}
	if _, err := New(map[string]Price{" ": PriceFromDollars(1, 0, 0, 1)}, DefaultUnknownPrice()); err == nil {
		t.Error("New accepted an override with an empty name")
	}
	if _, err := New(map[string]Price{"x": {Input: 1, Output: -1}}, DefaultUnknownPrice()); err == nil {
		t.Error("New accepted a negative override")
	}
}

func mustCost(t *testing.T, tab *Table, model string, u Usage) NanoUSD {
	t.Helper()
	c, byDefault := tab.Cost(model, u)
	if byDefault {
		t.Fatalf("%s priced by default", model)
	}
	return c
}

// WorstCase reserves full-price input plus the request's output cap per choice times the
// choices; a missing cap, or one above what the model can produce, is the model's maximum
// output; every product saturates.
func TestWorstCase(t *testing.T) {
	tab := mustTable(t, nil)
	small := mustTable(t, nil, WithDefaultMaxOutput(1000))
	tests := []struct {
		name                    string
		tab                     *Table
		model                   string
		input, maxOutput, count int64
		want                    NanoUSD
	}{
		// 1000 in × $2.50 + 16,384 out (gpt-4o's maximum) × $10.
		{"no cap: the model's maximum", tab, "gpt-4o", 1000, 0, 1, 2_500_000 + 163_840_000},
		{"explicit cap", tab, "gpt-4o", 1000, 100, 1, 3_500_000},
		{"n multiplies the output", tab, "gpt-4o", 1000, 100, 8, 2_500_000 + 8_000_000},
		{"n multiplies without a cap too", tab, "gpt-4o", 0, 0, 8, 8 * 163_840_000},
		{"cap above the model's maximum is clamped", tab, "gpt-4o", 0, 2_000_000_000_000, 1, 163_840_000},
		{"dated variant has its base's maximum", tab, "gpt-4o-2024-08-06", 0, 0, 1, 163_840_000},
		{"unknown model of a known family: the family default", tab, "claude-opus-9", 0, 0, 1, 128_000 * 30_000},
		{"unknown model: the configured default", small, "who-knows", 0, 0, 1, 1000 * 30_000},
		{"unknown model of a family never below the family default", small, "gpt-9", 0, 0, 1, 272_000 * 30_000},
		{"absurd input and cap saturate", tab, "gpt-5.5-pro", math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.tab.WorstCase(tt.model, tt.input, tt.maxOutput, tt.count); got != tt.want {
				t.Errorf("WorstCase = %d, want %d", got, tt.want)
			}
		})
	}
	if got, want := small.DefaultMaxOutput(), int64(1000); got != want {
		t.Errorf("DefaultMaxOutput = %d, want %d", got, want)
	}
}

// The pico-dollar sum is rounded half up to nano-dollars once, not per token class.
func TestCostRounding(t *testing.T) {
	onePico := Price{Input: 1, CacheRead: 1, CacheWrite: 1, Output: 1} // 1 µ$/M = 1 p$/token
	tests := []struct {
		u    Usage
		want NanoUSD
	}{
		{Usage{Input: 499}, 0},
		{Usage{Input: 500}, 1},
		{Usage{Input: 250, Output: 250}, 1}, // two halves of a half: rounded after summing
		{Usage{Input: 1499}, 1},
		{Usage{Input: 1500}, 2},
	}
	for _, tt := range tests {
		if got := onePico.Cost(tt.u); got != tt.want {
			t.Errorf("Cost(%+v) = %d, want %d", tt.u, got, tt.want)
		}
	}
}

// Past a model's long-context threshold the whole request is billed at the long rate; cached
// prompt tokens count toward the threshold; a reservation for a long prompt uses the long rate.
func TestLongContextTier(t *testing.T) {
	tab := mustTable(t, nil)
	tests := []struct {
		name  string
		model string
		u     Usage
		want  NanoUSD
	}{
		// 200,000 × $1.25/M + 1000 × $10/M = $0.25 + $0.01.
		{"gemini-2.5-pro at the threshold", "gemini-2.5-pro", Usage{Input: 200_000, Output: 1000}, FromDollars(0.26)},
		// 200,001 × $2.50/M + 1000 × $15/M.
		{"gemini-2.5-pro past it", "gemini-2.5-pro", Usage{Input: 200_001, Output: 1000}, FromDollars(0.5000025 + 0.015)},
		// Cache reads push the prompt past 200K: 1 × $6 + 200,000 × $0.60 per M.
		{"sonnet 4.5 with cache reads", "claude-sonnet-4-5-20250929", Usage{Input: 1, CacheRead: 200_000}, FromDollars(0.000006 + 0.12)},
		// Sonnet 4.6 has no surcharge.
		{"sonnet 4.6 flat", "claude-sonnet-4-6", Usage{Input: 300_000}, FromDollars(0.9)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustCost(t, tab, tt.model, tt.u); got != tt.want {
				t.Errorf("Cost = %d, want %d", got, tt.want)
			}
		})
	}
	// 300K in × $10/M + 4096 out × $45/M for gpt-5.5 past 270K.
	if got, want := tab.WorstCase("gpt-5.5", 300_000, 4096, 1), FromDollars(3+0.18432); got != want {
		t.Errorf("WorstCase long = %d, want %d", got, want)
	}
	// An override replaces the tiers along with the price.
	flat := mustTable(t, map[string]Price{"gemini-2.5-pro": PriceFromDollars(1, 0, 0, 1)})
	if got, want := mustCost(t, flat, "gemini-2.5-pro", Usage{Input: 1_000_000}), FromDollars(1); got != want {
		t.Errorf("overridden long prompt = %d, want %d", got, want)
	}
}

func TestDollarConversions(t *testing.T) {
	tests := []struct {
		d    float64
		want NanoUSD
	}{
		{1, 1_000_000_000},
		{0.05, 50_000_000},
		{0.1 + 0.2, 300_000_000}, // float noise rounds away
		{0.0000000004, 0},
		{0.0000000005, 1},
		{-2.5, -2_500_000_000},
		{1e30, math.MaxInt64},
		{math.NaN(), 0},
	}
	for _, tt := range tests {
		if got := FromDollars(tt.d); got != tt.want {
			t.Errorf("FromDollars(%v) = %d, want %d", tt.d, got, tt.want)
		}
	}
	if got, want := NanoUSD(1_234_500_000).Dollars(), 1.2345; got != want {
		t.Errorf("Dollars = %v, want %v", got, want)
	}
}

// Every built-in row is well formed: a provider, a positive input price, a lower-case name that
// is not shadowed by a duplicate, and Models lists them all.
func TestBuiltinTable(t *testing.T) {
	tab := mustTable(t, nil)
	seen := map[string]bool{}
	for _, b := range builtin() {
		if seen[b.model] {
			t.Errorf("duplicate row %q", b.model)
		}
		seen[b.model] = true
		if b.model != normalize(b.model) {
			t.Errorf("row %q is not normalized", b.model)
		}
		if b.provider != OpenAI && b.provider != Anthropic && b.provider != Gemini {
			t.Errorf("row %q has provider %q", b.model, b.provider)
		}
		if b.price.Input <= 0 || b.price.CacheRead <= 0 || b.price.CacheWrite <= 0 || b.price.Output < 0 {
			t.Errorf("row %q has a non-positive price %+v", b.model, b.price)
		}
		if b.price.CacheRead > b.price.Input {
			t.Errorf("row %q reads cache dearer than input", b.model)
		}
		if b.longAbove > 0 && (b.long.Input <= b.price.Input || b.long.Output < b.price.Output ||
			b.long.CacheRead < b.price.CacheRead || b.long.CacheWrite < b.price.CacheWrite) {
			t.Errorf("row %q has a long-context tier cheaper than its base: %+v", b.model, b.long)
		}
	}
	if got, want := len(tab.Models()), len(seen); got != want {
		t.Errorf("Models() has %d names, want %d", got, want)
	}
}

func BenchmarkLookupDated(b *testing.B) {
	tab, _ := New(nil, DefaultUnknownPrice())
	for b.Loop() {
		tab.Cost("claude-sonnet-4-5-20250929", Usage{Input: 1000, Output: 200})
	}
}
