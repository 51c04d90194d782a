package pricing

import (
	"math"
	"testing"
	"time"
)

// A name is priced as its own model when the data has it, as its model when it is a dated,
// aliased or resource-prefixed form of it, and otherwise by the default, flagged: never as
// another model whose name it happens to start with.
func TestVariants(t *testing.T) {
	tab := mustTable(t, nil)
	tests := []struct {
		model     string
		wantModel string // the data model that must price it; "" = the default price
		wantRule  string
		wantProv  string
	}{
		// Their own list prices, not o3's or gpt-4's.
		{"o3-deep-research", "o3-deep-research", RuleName, OpenAI},
		{"o3-deep-research-2025-06-26", "o3-deep-research", RuleMatch, OpenAI},
		{"gpt-4-32k", "gpt-4-32k", RuleName, OpenAI},
		{"gpt-4-32k-0613", "gpt-4-32k", RuleMatch, OpenAI},
		// Nothing like them in the data.
		{"o3-deep-research-x", "", RuleDefault, ""},
		{"claude-x-unknown", "", RuleDefault, ""},
		{"gemini-9-pro", "", RuleDefault, ""},
		{"o1x", "", RuleDefault, ""},
		{"gpt-4omega", "", RuleDefault, ""},
		{"gpt-4o-x", "", RuleDefault, ""},
		{"", "", RuleDefault, ""},
		// Their model.
		{"gpt-4o-2024-08-06", "gpt-4o", RuleMatch, OpenAI},
		{"claude-3-5-haiku-latest", "claude-3-5-haiku-latest", RuleName, Anthropic},
		{"models/gemini-2.0-flash", "gemini-2.0-flash", RuleName, Gemini},
		{"gpt-4o", "gpt-4o", RuleName, OpenAI},
		{"GPT-4o-Mini", "gpt-4o-mini", RuleName, OpenAI},
		{"gpt-4o-mini-2024-07-18", "gpt-4o-mini", RuleMatch, OpenAI},
		{"gpt-4.1-mini-2025-04-14", "gpt-4.1-mini", RuleMatch, OpenAI},
		{"gpt-5.1-codex", "gpt-5.1", RuleMatch, OpenAI},
		{"o3-2025-04-16", "o3", RuleMatch, OpenAI},
		{"gpt-5.4-2026-03-05", "gpt-5.4", RuleMatch, OpenAI},
		{"gpt-5.4-2026-07-01", "gpt-5.4", RuleSuffix, OpenAI},
		{"claude-3-5-haiku-20241022", "claude-3-5-haiku-latest", RuleMatch, Anthropic},
		{"claude-sonnet-4-5-20250929", "claude-sonnet-4-5", RuleMatch, Anthropic},
		{"claude-sonnet-4-5@20250929", "claude-sonnet-4-5", RuleMatch, Anthropic},
		{"claude-sonnet-4-20250514", "claude-sonnet-4-0", RuleMatch, Anthropic},
		{"claude-opus-4-20250514", "claude-opus-4-0", RuleMatch, Anthropic},
		{"claude-fable-5-20261001", "claude-fable-5", RuleMatch, Anthropic},
		{"gemini-2.0-flash-001", "gemini-2.0-flash", RuleMatch, Gemini},
		{"gemini-2.5-flash-001", "gemini-2.5-flash", RuleSuffix, Gemini},
		{"gemini-2.5-flash-lite-preview-06-17", "gemini-2.5-flash-lite", RuleMatch, Gemini},
		{"gemini-2.5-flash-preview-tts", "gemini-2.5-flash-tts", RuleMatch, Gemini},
		{"models/gemini-3.1-pro-preview", "gemini-3.1-pro-preview", RuleName, Gemini},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			q := tab.Quote(tt.model, Usage{Input: 1_000_000, Output: 1_000_000})
			if got, want := q.Model, tt.wantModel; got != want {
				t.Errorf("priced as %q, want %q", got, want)
			}
			if got, want := q.ByDefault, tt.wantModel == ""; got != want {
				t.Errorf("ByDefault = %v, want %v", got, want)
			}
			if got, want := q.Rule, tt.wantRule; got != want {
				t.Errorf("Rule = %q, want %q", got, want)
			}
			if got, want := tab.Provider(tt.model), tt.wantProv; got != want {
				t.Errorf("Provider = %q, want %q", got, want)
			}
		})
	}
	// The traps the old prefix table fell into, in money: 1M in + 1M out.
	for _, tt := range []struct {
		model string
		want  NanoUSD
	}{
		{"o3-deep-research", FromDollars(10 + 40)}, // o3 would be $2 + $8
		{"gpt-4-32k", FromDollars(60 + 120)},       // gpt-4 would be $30 + $60
		{"o3-deep-research-x", FromDollars(5 + 30)},
	} {
		if got, _ := tab.Cost(tt.model, Usage{Input: 1_000_000, Output: 1_000_000}); got != tt.want {
			t.Errorf("%s: cost %d, want %d", tt.model, got, tt.want)
		}
	}
}

// A price the data says changes on a day applies from that day, without a new snapshot.
func TestDatedPrice(t *testing.T) {
	now := time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)
	tab := mustTable(t, nil, WithClock(func() time.Time { return now }))
	u := Usage{Input: 1_000_000, Output: 1_000_000}
	if got, want := mustCost(t, tab, "gemini-3.8-flash", u), FromDollars(0.75+3.75); got != want {
		t.Errorf("2026-12-31: %d, want %d", got, want)
	}
	now = now.Add(time.Second)
	if got, want := mustCost(t, tab, "gemini-3.8-flash", u), FromDollars(1.50+7.50); got != want {
		t.Errorf("2027-01-01: %d, want %d", got, want)
	}
}

// The tier a request is billed at, and which one applied, follow its whole prompt: cached and
// cache-write tokens count toward the threshold, and the threshold itself is still the base.
func TestTiers(t *testing.T) {
	tab := mustTable(t, nil)
	tests := []struct {
		model    string
		u        Usage
		wantTier string
	}{
		{"gemini-2.5-pro", Usage{Input: 200_000}, "base"},
		{"gemini-2.5-pro", Usage{Input: 200_001}, "input over 200000 tokens"},
		{"claude-sonnet-4-5", Usage{Input: 1, CacheRead: 200_000}, "input over 200000 tokens"},
		{"claude-sonnet-4-5", Usage{Input: 1, CacheWrite: 199_999}, "base"},
		{"gpt-5.5", Usage{Input: 271_999}, "base"},
		{"gpt-5.5", Usage{Input: 272_000}, "input over 271999 tokens"},
		{"claude-sonnet-4-6", Usage{Input: 900_000}, "base"},
	}
	for _, tt := range tests {
		if got := tab.Quote(tt.model, tt.u).Tier; got != tt.wantTier {
			t.Errorf("%s %+v: tier %q, want %q", tt.model, tt.u, got, tt.wantTier)
		}
	}
	// 300K in × $10/M + 4096 out × $45/M for gpt-5.5 past 272K.
	if got, want := tab.WorstCase("gpt-5.5", 300_000, 4096, 1), FromDollars(3+0.18432); got != want {
		t.Errorf("WorstCase long = %d, want %d", got, want)
	}
}

// Audio and image parts are billed at their own rates and the rest of their class at its
// rate; a part larger than its class is cut to it, so a confused adapter cannot bill more
// tokens than the provider reported.
func TestModalityParts(t *testing.T) {
	p := Price{Input: 1_000_000, InputAudio: 7_000_000, InputImage: 2_000_000, CacheRead: 100_000,
		CacheReadAudio: 500_000, Output: 4_000_000, OutputAudio: 16_000_000, OutputImage: 30_000_000,
		CacheWrite: 1_250_000, CacheWrite1h: 2_000_000}
	tests := []struct {
		name string
		u    Usage
		want NanoUSD
	}{
		// 600 text × $1 + 300 audio × $7 + 100 image × $2 per M.
		{"input parts", Usage{Input: 1000, InputAudio: 300, InputImage: 100}, 600_000 + 2_100_000 + 200_000},
		{"part larger than its class", Usage{Input: 100, InputAudio: 500}, 700_000},
		{"cache read audio", Usage{CacheRead: 1000, CacheReadAudio: 1000}, 500_000},
		{"output parts", Usage{Output: 1000, OutputAudio: 100, OutputImage: 100}, 3_200_000 + 1_600_000 + 3_000_000},
		{"both cache writes", Usage{CacheWrite: 1000, CacheWrite1h: 400}, 750_000 + 800_000},
		{"negative parts count as zero", Usage{Input: 1000, InputAudio: -5}, 1_000_000},
	}
	for _, tt := range tests {
		if got := p.Cost(tt.u); got != tt.want {
			t.Errorf("%s: Cost = %d, want %d", tt.name, got, tt.want)
		}
	}
	// Without rates of their own, parts cost what their class costs.
	flat := PriceFromDollars(1, 0.1, 1.25, 4)
	if got, want := flat.Cost(Usage{Input: 1000, InputAudio: 1000, CacheWrite: 1000, CacheWrite1h: 1000}), flat.Cost(Usage{Input: 1000, CacheWrite: 1000}); got != want {
		t.Errorf("flat price: parts cost %d, class %d", got, want)
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

// Overrides replace the price of the data model their name matches (its dated names follow,
// its siblings do not), price names that start with one that matches no data model, and add
// new models whose provider is inferred from the name.
func TestOverrides(t *testing.T) {
	tab := mustTable(t, map[string]Price{
		"GPT-4o":             PriceFromDollars(1, 0, 0, 2),
		"claude-internal-x":  PriceFromDollars(3, 0.3, 3.75, 15),
		"acme-llm":           PriceFromDollars(0.5, 0, 0, 0.5),
		"gemini-2.5-flash":   PriceFromDollars(0.1, 0.01, 0, 0.2),
		"text-embedding-new": PriceFromDollars(0.01, 0, 0, 0),
		"ft:gpt-4o-mini":     PriceFromDollars(0.30, 0.15, 0, 1.20),
	})
	tests := []struct {
		model    string
		u        Usage
		want     NanoUSD
		wantRule string
	}{
		{"ft:gpt-4o-mini-2024-07-18:acme::abc123", Usage{Input: 1_000_000}, FromDollars(0.30), RuleOverridePrefix},
		{"ft:gpt-4o-mini:acme:custom:abc123", Usage{Input: 1_000_000, Output: 1_000_000}, FromDollars(1.50), RuleOverridePrefix},
		{"gpt-4o-2024-08-06", Usage{Input: 1_000_000, Output: 1_000_000}, FromDollars(3), RuleOverride},
		{"gpt-4o", Usage{Input: 1_000_000, Output: 1_000_000}, FromDollars(3), RuleOverride},
		// The override does not leak into the longer sibling.
		{"gpt-4o-mini", Usage{Input: 1_000_000}, FromDollars(0.15), RuleName},
		{"gemini-2.5-flash-001", Usage{Input: 1_000_000}, FromDollars(0.1), RuleOverride},
		{"acme-llm", Usage{Input: 1_000_000, CacheRead: 1_000_000}, FromDollars(1), RuleOverride},
	}
	for _, tt := range tests {
		q := tab.Quote(tt.model, tt.u)
		if q.Cost != tt.want || q.Rule != tt.wantRule || q.ByDefault {
			t.Errorf("%s: cost %d by %q (default %v), want %d by %q", tt.model, q.Cost, q.Rule, q.ByDefault, tt.want, tt.wantRule)
		}
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
	// An override replaces the tiers along with the price.
	flat := mustTable(t, map[string]Price{"gemini-2.5-pro": PriceFromDollars(1, 0, 0, 1)})
	if got, want := mustCost(t, flat, "gemini-2.5-pro", Usage{Input: 1_000_000}), FromDollars(1); got != want {
		t.Errorf("overridden long prompt = %d, want %d", got, want)
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
		// Input could all be written to the 1-hour cache ($6, not $3), output is $15.
		{"input at its dearest rate", tab, "claude-sonnet-4-5", 1000, 100, 1, 6_000_000 + 1_500_000},
		// gpt-audio: audio input $32 and output $64, not the $2.50 and $10 of its text.
		{"audio rates", tab, "gpt-audio", 1000, 100, 1, 32_000_000 + 6_400_000},
		{"n multiplies the output", tab, "gpt-4o", 1000, 100, 8, 2_500_000 + 8_000_000},
		{"n multiplies without a cap too", tab, "gpt-4o", 0, 0, 8, 8 * 163_840_000},
		{"cap above the model's maximum is clamped", tab, "gpt-4o", 0, 2_000_000_000_000, 1, 163_840_000},
		{"dated variant has its model's maximum", tab, "gpt-4o-2024-08-06", 0, 0, 1, 163_840_000},
		// gpt-4-32k has no figure in the supplement: its 32,000-token window rounded up.
		{"bounded by the context window", tab, "gpt-4-32k", 0, 0, 1, 32_768 * 120_000},
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

// Every figure of the maximum-output supplement names a model of the embedded data (a typo
// would silently fall back to a default), and every data model's maximum is positive and
// within its family's default.
func TestMaxOutputSupplement(t *testing.T) {
	s, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]*entry{}
	for _, p := range s.providers {
		for _, e := range p.models {
			ids[e.id] = e
			if e.maxOutput <= 0 || e.maxOutput > familyMaxOutput(e.provider) {
				t.Errorf("%s: maximum output %d outside (0, %d]", e.id, e.maxOutput, familyMaxOutput(e.provider))
			}
		}
	}
	for id := range maxOutput {
		if ids[id] == nil {
			t.Errorf("supplement names %q, which the data does not have", id)
		}
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

// Only date and version suffixes are taken off a name; anything else is part of it.
func TestVersionSuffix(t *testing.T) {
	tests := []struct {
		name string
		want int
	}{
		{"x-2025-06-26", 11}, {"x-20250929", 9}, {"x@20250929", 9}, {"x-latest", 7}, {"x@latest", 7},
		{"x-09-2025", 8}, {"x-06-17", 6}, {"x-0613", 5}, {"x-001", 4},
		{"x-2025-13-01", 0}, {"x-20251332", 0}, {"x-1300", 0}, {"x-x", 0}, {"x-pro", 0}, {"x-1", 0},
		{"x-12345", 0}, {"-001", 0}, {"x-19991231", 0},
	}
	for _, tt := range tests {
		if got := versionSuffix(tt.name); got != tt.want {
			t.Errorf("versionSuffix(%q) = %d, want %d", tt.name, got, tt.want)
		}
	}
	if got, want := dashDates("claude-x-20250929-v2:0"), "claude-x-2025-09-29-v2:0"; got != want {
		t.Errorf("dashDates = %q, want %q", got, want)
	}
}

// A flood of made-up names is remembered only up to the cache bound, and each is still
// priced by default and flagged.
func TestCacheBounded(t *testing.T) {
	tab := mustTable(t, nil)
	for i := range maxCached + 100 {
		if _, byDefault := tab.Lookup("made-up-" + time.Duration(i).String()); !byDefault {
			t.Fatal("a made-up name was not priced by default")
		}
	}
	st := tab.cur.Load()
	if got := len(st.cache); got > maxCached {
		t.Errorf("cache holds %d names, bound %d", got, maxCached)
	}
}

// A known model's price is found and applied without allocating, within the request-path
// budget of 200 ns: an exact name, and a dated name of a pattern rule (from the cache).
func BenchmarkLookupExact(b *testing.B) {
	tab := mustTable(b, nil)
	b.ReportAllocs()
	for b.Loop() {
		tab.Cost("gpt-4o-mini", Usage{Input: 1000, CacheRead: 500, Output: 200})
	}
}

func BenchmarkLookupDated(b *testing.B) {
	tab := mustTable(b, nil)
	b.ReportAllocs()
	for b.Loop() {
		tab.Cost("claude-sonnet-4-5-20250929", Usage{Input: 1000, Output: 200})
	}
}

func BenchmarkWorstCase(b *testing.B) {
	tab := mustTable(b, nil)
	b.ReportAllocs()
	for b.Loop() {
		tab.WorstCase("claude-sonnet-4-5-20250929", 5000, 0, 1)
	}
}
