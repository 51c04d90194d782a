package anthropic_test

import (
	"testing"

	"tokenguard/app/pricing"
	"tokenguard/app/provider/anthropic"
)

// One-hour cache writes are read from usage.cache_creation, whole or streamed, so they are
// billed at the 1-hour rate: 100,000 such tokens on Sonnet 4.5 cost $0.60, not the $0.375 of
// 5-minute writes.
func TestOneHourCacheWrites(t *testing.T) {
	const usage = `{"input_tokens":10,"cache_read_input_tokens":0,"cache_creation_input_tokens":100000,` +
		`"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":100000},"output_tokens":0}`
	want := pricing.Usage{Input: 10, CacheWrite: 100_000, CacheWrite1h: 100_000}
	a := &anthropic.Adapter{}
	whole, ok := a.Usage(nil, []byte(`{"type":"message","usage":`+usage+`}`))
	if !ok || whole != want {
		t.Errorf("Usage = %+v, %v; want %+v", whole, ok, want)
	}
	m := a.NewMeter(nil)
	m.Event([]byte("message_start"), []byte(`{"type":"message_start","message":{"usage":`+usage+`}}`))
	m.Event([]byte("message_delta"), []byte(`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":0}}`))
	if got := m.Result().Usage; got != want {
		t.Errorf("streamed usage = %+v, want %+v", got, want)
	}
	tab, err := pricing.New(nil, pricing.DefaultUnknownPrice())
	if err != nil {
		t.Fatal(err)
	}
	if got, byDefault := tab.Cost("claude-sonnet-4-5-20250929", whole); got != pricing.FromDollars(0.00003+0.60) || byDefault {
		t.Errorf("cost = %d (by default %v), want %d", got, byDefault, pricing.FromDollars(0.00003+0.60))
	}
}
