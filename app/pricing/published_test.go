package pricing

import (
	"testing"
	"time"
)

func mustTable(t testing.TB, overrides map[string]Price, opts ...Option) *Table {
	t.Helper()
	tab, err := New(overrides, DefaultUnknownPrice(), opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tab
}

// The list-price pages the expected costs below were computed from, read on 2026-12-01 (from
// the copies available to us: Anthropic's page itself; OpenAI's page as quoted in full by
// apis.io's read of 2026-11-05; Google's page as quoted by morphllm.com's price list).
const (
	A = "https://platform.claude.com/docs/en/about-claude/pricing (model pricing, long context pricing)"
	O = "https://developers.openai.com/api/docs/pricing (standard tier, legacy models, embeddings)"
	G = "https://ai.google.dev/gemini-api/docs/pricing (paid tier: input, output, context caching)"
)

// Every cost here was computed by hand from the provider's published list prices, shown beside
// each row in dollars per million tokens, without looking at the snapshot: so this test is
// what says the generated data, the matching and the arithmetic agree with what the providers
// bill. It covers 54 models of the three providers, with long-context tiers, both cache-write
// durations, cached input, reasoning output and audio input.
func TestPublishedPrices(t *testing.T) {
	tab := mustTable(t, nil, WithClock(func() time.Time { return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) }))
	tests := []struct {
		model string
		src   string
		u     Usage
		want  NanoUSD
	}{
		{"gpt-5.5", O, Usage{Input: 10_000, CacheRead: 20_000, Output: 2_000}, 120_000_000},                                                        // in $5 cache read $0.5 out $30
		{"gpt-5.5", O, Usage{Input: 250_000, CacheRead: 30_000, Output: 4_000}, 2_710_000_000},                                                     // in $10 cache read $1 out $45; long >272K: 2x input, 1.5x output
		{"gpt-5.5-pro", O, Usage{Input: 1_000, Output: 1_000}, 210_000_000},                                                                        // in $30 out $180
		{"gpt-5.4", O, Usage{Input: 12_000, CacheRead: 4_000, Output: 3_000}, 76_000_000},                                                          // in $2.5 cache read $0.25 out $15
		{"gpt-5.4-mini", O, Usage{Input: 100_000, CacheRead: 50_000, Output: 10_000}, 123_750_000},                                                 // in $0.75 cache read $0.075 out $4.5
		{"gpt-5.4-nano", O, Usage{Input: 100_000, CacheRead: 50_000, Output: 10_000}, 33_500_000},                                                  // in $0.2 cache read $0.02 out $1.25
		{"gpt-5.2", O, Usage{Input: 8_000, CacheRead: 8_000, Output: 8_000}, 127_400_000},                                                          // in $1.75 cache read $0.175 out $14
		{"gpt-5.1", O, Usage{Input: 8_000, CacheRead: 8_000, Output: 8_000}, 91_000_000},                                                           // in $1.25 cache read $0.125 out $10
		{"gpt-5", O, Usage{Input: 3_000, Output: 12_000}, 123_750_000},                                                                             // in $1.25 cache read $0.125 out $10; reasoning tokens are in Output
		{"gpt-5-mini", O, Usage{Input: 40_000, CacheRead: 10_000, Output: 5_000}, 20_250_000},                                                      // in $0.25 cache read $0.025 out $2
		{"gpt-5-nano", O, Usage{Input: 40_000, CacheRead: 10_000, Output: 5_000}, 4_050_000},                                                       // in $0.05 cache read $0.005 out $0.4
		{"gpt-4.1", O, Usage{Input: 10_000, CacheRead: 10_000, Output: 1_000}, 33_000_000},                                                         // in $2 cache read $0.5 out $8
		{"gpt-4.1-mini", O, Usage{Input: 10_000, CacheRead: 10_000, Output: 1_000}, 6_600_000},                                                     // in $0.4 cache read $0.1 out $1.6
		{"gpt-4.1-nano", O, Usage{Input: 10_000, CacheRead: 10_000, Output: 1_000}, 1_650_000},                                                     // in $0.1 cache read $0.025 out $0.4
		{"gpt-4o", O, Usage{Input: 176, CacheRead: 1_024, Output: 300}, 4_720_000},                                                                 // in $2.5 cache read $1.25 out $10
		{"gpt-4o-mini", O, Usage{Input: 1_000, Output: 500}, 450_000},                                                                              // in $0.15 cache read $0.075 out $0.6
		{"o3", O, Usage{Input: 5_000, CacheRead: 5_000, Output: 20_000}, 172_500_000},                                                              // in $2 cache read $0.5 out $8; reasoning
		{"o4-mini", O, Usage{Input: 5_000, CacheRead: 5_000, Output: 20_000}, 94_875_000},                                                          // in $1.1 cache read $0.275 out $4.4
		{"o3-pro", O, Usage{Input: 5_000, Output: 20_000}, 1_700_000_000},                                                                          // in $20 out $80
		{"o1", O, Usage{Input: 5_000, CacheRead: 5_000, Output: 20_000}, 1_312_500_000},                                                            // in $15 cache read $7.5 out $60
		{"o3-deep-research", O, Usage{Input: 5_000, CacheRead: 5_000, Output: 20_000}, 862_500_000},                                                // in $10 cache read $2.5 out $40
		{"gpt-4-32k", O, Usage{Input: 10_000, Output: 1_000}, 720_000_000},                                                                         // in $60 out $120; legacy
		{"gpt-4", O, Usage{Input: 10_000, Output: 1_000}, 360_000_000},                                                                             // in $30 out $60; legacy
		{"gpt-3.5-turbo", O, Usage{Input: 10_000, Output: 1_000}, 6_500_000},                                                                       // in $0.5 out $1.5; legacy
		{"text-embedding-3-small", O, Usage{Input: 1_000_000}, 20_000_000},                                                                         // in $0.02; embeddings
		{"claude-fable-5-1", A, Usage{Input: 1_000, CacheRead: 10_000, CacheWrite: 2_000, Output: 1_000}, 87_500_000},                              // in $10 5m write $12.5 1h write $20 cache read $0.25 out $50
		{"claude-fable-5", A, Usage{Input: 1_000, CacheRead: 10_000, CacheWrite: 2_000, Output: 1_000}, 95_000_000},                                // in $10 5m write $12.5 1h write $20 cache read $1 out $50
		{"claude-opus-5-5", A, Usage{Input: 1_000, CacheRead: 10_000, CacheWrite: 2_000, Output: 1_000}, 36_000_000},                               // in $4 5m write $5 1h write $8 cache read $0.2 out $20
		{"claude-opus-5", A, Usage{Input: 1_000, CacheRead: 10_000, CacheWrite: 2_000, Output: 1_000}, 47_500_000},                                 // in $5 5m write $6.25 1h write $10 cache read $0.5 out $25
		{"claude-opus-4-8", A, Usage{Input: 1_000, CacheRead: 10_000, CacheWrite: 2_000, CacheWrite1h: 2_000, Output: 1_000}, 55_000_000},          // in $5 5m write $6.25 1h write $10 cache read $0.5 out $25
		{"claude-opus-4-7", A, Usage{Input: 1_000, CacheRead: 10_000, CacheWrite: 2_000, Output: 1_000}, 47_500_000},                               // in $5 5m write $6.25 1h write $10 cache read $0.5 out $25
		{"claude-opus-4-6", A, Usage{Input: 300_000, Output: 1_000}, 1_525_000_000},                                                                // in $5 5m write $6.25 1h write $10 cache read $0.5 out $25; no long-context surcharge since 2026-03-13
		{"claude-opus-4-5", A, Usage{Input: 1_000, CacheRead: 10_000, CacheWrite: 2_000, Output: 1_000}, 47_500_000},                               // in $5 5m write $6.25 1h write $10 cache read $0.5 out $25
		{"claude-opus-4-1", A, Usage{Input: 1_000, CacheRead: 10_000, CacheWrite: 2_000, Output: 1_000}, 142_500_000},                              // in $15 5m write $18.75 1h write $30 cache read $1.5 out $75
		{"claude-opus-4-0", A, Usage{Input: 1_000, CacheRead: 10_000, CacheWrite: 4_000, CacheWrite1h: 4_000, Output: 1_000}, 225_000_000},         // in $15 5m write $18.75 1h write $30 cache read $1.5 out $75
		{"claude-sonnet-4-6", A, Usage{Input: 100, CacheRead: 2_000, CacheWrite: 1_000, Output: 50}, 5_400_000},                                    // in $3 5m write $3.75 1h write $6 cache read $0.3 out $15
		{"claude-sonnet-4-5", A, Usage{CacheWrite: 100_000}, 375_000_000},                                                                          // in $3 5m write $3.75 1h write $6 cache read $0.3 out $15; 5-minute writes
		{"claude-sonnet-4-5", A, Usage{CacheWrite: 100_000, CacheWrite1h: 100_000}, 600_000_000},                                                   // in $3 5m write $3.75 1h write $6 cache read $0.3 out $15; 1-hour writes
		{"claude-sonnet-4-5", A, Usage{Input: 150_000, CacheRead: 60_000, CacheWrite: 10_000, CacheWrite1h: 10_000, Output: 2_000}, 1_101_000_000}, // in $6 5m write $7.5 1h write $12 cache read $0.6 out $22.5; long context >200K
		{"claude-sonnet-4-0", A, Usage{Input: 100, CacheRead: 2_000, CacheWrite: 1_000, Output: 50}, 5_400_000},                                    // in $3 5m write $3.75 1h write $6 cache read $0.3 out $15
		{"claude-3-7-sonnet-latest", A, Usage{Input: 100, CacheRead: 2_000, CacheWrite: 1_000, Output: 50}, 5_400_000},                             // in $3 5m write $3.75 1h write $6 cache read $0.3 out $15
		{"claude-sonnet-5", A, Usage{Input: 100, CacheRead: 2_000, CacheWrite: 1_000, Output: 50}, 3_600_000},                                      // in $2 5m write $2.5 1h write $4 cache read $0.2 out $10
		{"claude-haiku-4-5", A, Usage{Input: 2_000, CacheRead: 20_000, CacheWrite: 3_000, CacheWrite1h: 1_000, Output: 800}, 12_500_000},           // in $1 5m write $1.25 1h write $2 cache read $0.1 out $5
		{"claude-3-5-haiku-latest", A, Usage{Input: 2_000, CacheRead: 20_000, CacheWrite: 3_000, Output: 800}, 9_400_000},                          // in $0.8 5m write $1 1h write $1.6 cache read $0.08 out $4
		{"claude-3-haiku", A, Usage{Input: 2_000, CacheRead: 20_000, CacheWrite: 3_000, Output: 800}, 3_000_000},                                   // in $0.25 5m write $0.3 1h write $0.5 cache read $0.03 out $1.25
		{"gemini-3.8-flash", G, Usage{Input: 10_000, CacheRead: 10_000, Output: 2_000}, 15_750_000},                                                // in $0.75 cache read $0.075 out $3.75; launch price through 2026-12-31
		{"gemini-3.5-flash", G, Usage{Input: 10_000, CacheRead: 10_000, Output: 2_000}, 34_500_000},                                                // in $1.5 cache read $0.15 out $9
		{"gemini-3.5-flash-lite", G, Usage{Input: 10_000, CacheRead: 10_000, Output: 2_000}, 8_300_000},                                            // in $0.3 cache read $0.03 out $2.5
		{"gemini-3.1-pro-preview", G, Usage{Input: 10_000, CacheRead: 10_000, Output: 2_000}, 46_000_000},                                          // in $2 cache read $0.2 out $12
		{"gemini-3.1-pro-preview", G, Usage{Input: 150_000, CacheRead: 100_000, Output: 2_000}, 676_000_000},                                       // in $4 cache read $0.4 out $18; long >200K
		{"gemini-3.1-flash-lite", G, Usage{Input: 10_000, CacheRead: 10_000, Output: 2_000}, 5_750_000},                                            // in $0.25 cache read $0.025 out $1.5
		{"gemini-3-pro-preview", G, Usage{Input: 10_000, CacheRead: 10_000, Output: 2_000}, 46_000_000},                                            // in $2 cache read $0.2 out $12
		{"gemini-3-flash-preview", G, Usage{Input: 10_000, CacheRead: 10_000, Output: 2_000}, 11_500_000},                                          // in $0.5 cache read $0.05 out $3
		{"gemini-2.5-pro", G, Usage{Input: 200_000, Output: 1_000}, 260_000_000},                                                                   // in $1.25 cache read $0.125 out $10; thinking tokens are in Output
		{"gemini-2.5-pro", G, Usage{Input: 200_001, Output: 1_000}, 515_002_500},                                                                   // in $2.5 cache read $0.25 out $15; long >200K
		{"gemini-2.5-flash", G, Usage{Input: 10_000, InputAudio: 4_000, CacheRead: 10_000, Output: 2_000}, 11_100_000},                             // in $0.3 cache read $0.03 out $2.5 audio in $1; audio input $1.00
		{"gemini-2.5-flash-lite", G, Usage{Input: 10_000, CacheRead: 10_000, Output: 2_000}, 1_900_000},                                            // in $0.1 cache read $0.01 out $0.4
		{"gemini-2.0-flash", G, Usage{Input: 10_000, CacheRead: 10_000, Output: 2_000}, 2_050_000},                                                 // in $0.1 cache read $0.025 out $0.4
		{"gemini-2.0-flash-lite", G, Usage{Input: 7}, 525},                                                                                         // in $0.075 out $0.3
	}
	models := map[string]bool{}
	for _, tt := range tests {
		models[tt.model] = true
		q := tab.Quote(tt.model, tt.u)
		if q.ByDefault {
			t.Errorf("%s (%s): priced by default", tt.model, tt.src)
			continue
		}
		if got, want := q.Cost, tt.want; got != want {
			t.Errorf("%s %+v: cost %d n$, want %d n$ from %s (tier %q)", tt.model, tt.u, got, want, tt.src, q.Tier)
		}
	}
	if len(models) < 40 {
		t.Errorf("only %d models checked against the published prices", len(models))
	}
}
