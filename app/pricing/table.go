package pricing

// builtinModel is one row of the embedded list-price table.
type builtinModel struct {
	model    string
	provider string
	price    Price
	// maxOutput is the most output tokens one response can hold (0: the provider family's
	// default, familyMaxOutput).
	maxOutput int64
	// longAbove > 0: a request whose prompt (input + cache read + cache write tokens) exceeds
	// it is billed entirely at long — the providers' long-context rates.
	longAbove int64
	long      Price
}

// above adds a long-context tier to a row.
func (b builtinModel) above(promptTokens int64, long Price) builtinModel {
	b.longAbove, b.long = promptTokens, long
	return b
}

// builtin returns the embedded list prices, standard (non-batch, non-priority) tier, USD per
// million tokens: input, cache read, cache write, output. A zero cache column means the provider
// bills those tokens like input (OpenAI and Gemini charge no cache-write premium).
//
// Checked 2026-11-26 against the providers' published pages, as quoted by the sources below:
//   - OpenAI: https://developers.openai.com/api/docs/pricing (GPT-5.5/5.4 family read 2026-05 to
//     2026-06; older models from the same page's legacy section).
//   - Anthropic: https://platform.claude.com/docs/en/about-claude/pricing (model table, 5-minute
//     cache writes; Sonnet 5.5 cache reads cut to $0.10 on 2026-10-07; Haiku 5.5 added 2026-10-07).
//   - Google: https://ai.google.dev/gemini-api/docs/pricing (paid tier, read 2026-10-07).
//
// Known simplifications (each errs in the documented direction or is rare):
//   - Long-context tiers are modelled where the page states them (whole request at the long
//     rate once the prompt passes the threshold): Gemini Pro over 200K, GPT-5.5/5.4 over 270K
//     (2× input, 1.5× output), Claude Sonnet 4/4.5 over 200K, Claude Haiku 5.5 over 100K.
//   - Anthropic 1-hour cache writes cost more than the 5-minute rate used here.
//   - Gemini 3.8 Flash is at its launch price ($0.75/$3.75), which Google lists as valid through
//     2026-12-31, doubling on 2027-01-01: update the row then, or override it in the config.
//   - Gemini cache-read prices for the 3.x family are not on the quoted page; 10% of input is
//     used, Google's documented context-caching discount for current models.
//
// Operators correct any row without a release through the pricing overrides in the config.
//
// Maximum output tokens per response (maxOutput) size the worst case of a request that names no
// cap (and clamp one that names more than the model can produce), from the providers' model
// pages: OpenAI's model reference (GPT-5 family 128K, GPT-5 pro 272K, GPT-4.1 32,768, GPT-4o
// 16,384, o-series 100K), Anthropic's models overview (Opus 4/4.1 32K, Opus 4.5, Sonnet 4/4.5
// and Haiku 4.5 64K, Claude 3.7 Sonnet 128K with its output-128k beta header), Google's model
// pages (Gemini 2.5 65,536, 2.0 8,192). A row without a figure takes its family's default
// (familyMaxOutput), which errs high: a reservation that is too large only holds concurrent
// requests back, one that is too small would let a burst pass the budget.
func builtin() []builtinModel {
	d := PriceFromDollars
	return []builtinModel{
		// OpenAI — cached input is the discounted read; no cache-write premium.
		builtinModel{model: "gpt-5.5", maxOutput: 128_000, provider: OpenAI, price: d(5.00, 0.50, 0, 30.00)}.above(270_000, d(10.00, 1.00, 0, 45.00)),
		{model: "gpt-5.5-pro", maxOutput: 272_000, provider: OpenAI, price: d(30.00, 0, 0, 180.00)},
		builtinModel{model: "gpt-5.4", maxOutput: 128_000, provider: OpenAI, price: d(2.50, 0.25, 0, 15.00)}.above(270_000, d(5.00, 0.50, 0, 22.50)),
		{model: "gpt-5.4-mini", maxOutput: 128_000, provider: OpenAI, price: d(0.75, 0.075, 0, 4.50)},
		{model: "gpt-5.4-nano", maxOutput: 128_000, provider: OpenAI, price: d(0.20, 0.02, 0, 1.25)},
		{model: "gpt-5.4-pro", maxOutput: 272_000, provider: OpenAI, price: d(30.00, 0, 0, 180.00)},
		{model: "gpt-5.2", maxOutput: 128_000, provider: OpenAI, price: d(1.75, 0.175, 0, 14.00)},
		{model: "gpt-5.1", maxOutput: 128_000, provider: OpenAI, price: d(1.25, 0.125, 0, 10.00)},
		{model: "gpt-5", maxOutput: 128_000, provider: OpenAI, price: d(1.25, 0.125, 0, 10.00)},
		{model: "gpt-5-mini", maxOutput: 128_000, provider: OpenAI, price: d(0.25, 0.025, 0, 2.00)},
		{model: "gpt-5-nano", maxOutput: 128_000, provider: OpenAI, price: d(0.05, 0.005, 0, 0.40)},
		{model: "gpt-5-pro", maxOutput: 272_000, provider: OpenAI, price: d(15.00, 0, 0, 120.00)},
		{model: "gpt-4.1", maxOutput: 32_768, provider: OpenAI, price: d(2.00, 0.50, 0, 8.00)},
		{model: "gpt-4.1-mini", maxOutput: 32_768, provider: OpenAI, price: d(0.40, 0.10, 0, 1.60)},
		{model: "gpt-4.1-nano", maxOutput: 32_768, provider: OpenAI, price: d(0.10, 0.025, 0, 0.40)},
		{model: "gpt-4o", maxOutput: 16_384, provider: OpenAI, price: d(2.50, 1.25, 0, 10.00)},
		{model: "gpt-4o-mini", maxOutput: 16_384, provider: OpenAI, price: d(0.15, 0.075, 0, 0.60)},
		{model: "chatgpt-4o-latest", maxOutput: 16_384, provider: OpenAI, price: d(5.00, 0, 0, 15.00)},
		{model: "gpt-4-turbo", maxOutput: 4_096, provider: OpenAI, price: d(10.00, 0, 0, 30.00)},
		{model: "gpt-4", maxOutput: 8_192, provider: OpenAI, price: d(30.00, 0, 0, 60.00)},
		{model: "gpt-3.5-turbo", maxOutput: 4_096, provider: OpenAI, price: d(0.50, 0, 0, 1.50)},
		{model: "o4-mini", maxOutput: 100_000, provider: OpenAI, price: d(1.10, 0.275, 0, 4.40)},
		{model: "o3", maxOutput: 100_000, provider: OpenAI, price: d(2.00, 0.50, 0, 8.00)},
		{model: "o3-pro", maxOutput: 100_000, provider: OpenAI, price: d(20.00, 0, 0, 80.00)},
		{model: "o3-mini", maxOutput: 100_000, provider: OpenAI, price: d(1.10, 0.55, 0, 4.40)},
		{model: "o1", maxOutput: 100_000, provider: OpenAI, price: d(15.00, 7.50, 0, 60.00)},
		{model: "o1-pro", maxOutput: 100_000, provider: OpenAI, price: d(150.00, 0, 0, 600.00)},
		{model: "o1-mini", maxOutput: 65_536, provider: OpenAI, price: d(1.10, 0.55, 0, 4.40)},
		{model: "text-embedding-3-small", maxOutput: 1, provider: OpenAI, price: d(0.02, 0, 0, 0)},
		{model: "text-embedding-3-large", maxOutput: 1, provider: OpenAI, price: d(0.13, 0, 0, 0)},

		// Anthropic — cache read is "cache hits & refreshes", cache write the 5-minute rate.
		{model: "claude-fable-5-1", provider: Anthropic, price: d(10.00, 0.25, 12.50, 50.00)},
		{model: "claude-mythos-5-1", provider: Anthropic, price: d(10.00, 0.25, 12.50, 50.00)},
		{model: "claude-fable-5", provider: Anthropic, price: d(10.00, 1.00, 12.50, 50.00)},
		{model: "claude-mythos-5", provider: Anthropic, price: d(10.00, 1.00, 12.50, 50.00)},
		{model: "claude-opus-5-5", provider: Anthropic, price: d(4.00, 0.20, 5.00, 20.00)},
		{model: "claude-opus-5", provider: Anthropic, price: d(5.00, 0.50, 6.25, 25.00)},
		{model: "claude-opus-4-8", provider: Anthropic, price: d(5.00, 0.50, 6.25, 25.00)},
		{model: "claude-opus-4-7", provider: Anthropic, price: d(5.00, 0.50, 6.25, 25.00)},
		{model: "claude-opus-4-6", provider: Anthropic, price: d(5.00, 0.50, 6.25, 25.00)},
		{model: "claude-opus-4-5", maxOutput: 64_000, provider: Anthropic, price: d(5.00, 0.50, 6.25, 25.00)},
		{model: "claude-opus-4-1", maxOutput: 32_000, provider: Anthropic, price: d(15.00, 1.50, 18.75, 75.00)},
		{model: "claude-opus-4", maxOutput: 32_000, provider: Anthropic, price: d(15.00, 1.50, 18.75, 75.00)},
		{model: "claude-3-opus", maxOutput: 4_096, provider: Anthropic, price: d(15.00, 1.50, 18.75, 75.00)},
		{model: "claude-sonnet-5-5", provider: Anthropic, price: d(2.00, 0.10, 2.50, 10.00)},
		{model: "claude-sonnet-5", provider: Anthropic, price: d(2.00, 0.20, 2.50, 10.00)},
		{model: "claude-sonnet-4-6", provider: Anthropic, price: d(3.00, 0.30, 3.75, 15.00)},
		builtinModel{model: "claude-sonnet-4-5", maxOutput: 64_000, provider: Anthropic, price: d(3.00, 0.30, 3.75, 15.00)}.above(200_000, d(6.00, 0.60, 7.50, 22.50)),
		builtinModel{model: "claude-sonnet-4", maxOutput: 64_000, provider: Anthropic, price: d(3.00, 0.30, 3.75, 15.00)}.above(200_000, d(6.00, 0.60, 7.50, 22.50)),
		{model: "claude-3-7-sonnet", maxOutput: 128_000, provider: Anthropic, price: d(3.00, 0.30, 3.75, 15.00)},
		{model: "claude-3-5-sonnet", maxOutput: 8_192, provider: Anthropic, price: d(3.00, 0.30, 3.75, 15.00)},
		builtinModel{model: "claude-haiku-5-5", provider: Anthropic, price: d(0.10, 0.01, 0.125, 0.50)}.above(100_000, d(0.50, 0.05, 0.625, 2.50)),
		{model: "claude-haiku-4-5", maxOutput: 64_000, provider: Anthropic, price: d(1.00, 0.10, 1.25, 5.00)},
		{model: "claude-3-5-haiku", maxOutput: 8_192, provider: Anthropic, price: d(0.80, 0.08, 1.00, 4.00)},
		{model: "claude-3-haiku", maxOutput: 4_096, provider: Anthropic, price: d(0.25, 0.03, 0.30, 1.25)},

		// Google Gemini — prompts up to 200K tokens; cached content read at the caching rate.
		{model: "gemini-3.8-flash", provider: Gemini, price: d(0.75, 0.075, 0, 3.75)},
		{model: "gemini-3.5-flash", provider: Gemini, price: d(1.50, 0.15, 0, 9.00)},
		{model: "gemini-3.5-flash-lite", provider: Gemini, price: d(0.30, 0.03, 0, 2.50)},
		builtinModel{model: "gemini-3.1-pro", provider: Gemini, price: d(2.00, 0.20, 0, 12.00)}.above(200_000, d(4.00, 0.40, 0, 18.00)),
		{model: "gemini-3.1-flash-lite", provider: Gemini, price: d(0.25, 0.025, 0, 1.50)},
		builtinModel{model: "gemini-3-pro", provider: Gemini, price: d(2.00, 0.20, 0, 12.00)}.above(200_000, d(4.00, 0.40, 0, 18.00)),
		{model: "gemini-3-flash", provider: Gemini, price: d(0.50, 0.05, 0, 3.00)},
		builtinModel{model: "gemini-2.5-pro", maxOutput: 65_536, provider: Gemini, price: d(1.25, 0.125, 0, 10.00)}.above(200_000, d(2.50, 0.25, 0, 15.00)),
		{model: "gemini-2.5-flash", maxOutput: 65_536, provider: Gemini, price: d(0.30, 0.03, 0, 2.50)},
		{model: "gemini-2.5-flash-lite", maxOutput: 65_536, provider: Gemini, price: d(0.10, 0.01, 0, 0.40)},
		{model: "gemini-2.0-flash", maxOutput: 8_192, provider: Gemini, price: d(0.10, 0.025, 0, 0.40)},
		{model: "gemini-2.0-flash-lite", maxOutput: 8_192, provider: Gemini, price: d(0.075, 0, 0, 0.30)},
	}
}

// familyMaxOutput is the maximum output assumed for a model of provider whose own figure the
// table lacks: at least the largest figure of the provider's current models, so a new model of
// a known family is never under-reserved. 0 for an unknown provider (the table's default).
func familyMaxOutput(provider string) int64 {
	switch provider {
	case OpenAI:
		return 272_000
	case Anthropic:
		return 128_000
	case Gemini:
		return 65_536
	}
	return 0
}
