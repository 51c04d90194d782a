package pricing

// builtinModel is one row of the embedded list-price table.
type builtinModel struct {
	model    string
	provider string
	price    Price
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
//   - Long-context surcharges are not modelled: Gemini Pro prompts over 200K tokens, GPT-5.x
//     over 270K, Claude Haiku 5.5 prompts over 100K are priced at the short-context rate.
//   - Anthropic 1-hour cache writes cost more than the 5-minute rate used here.
//   - Gemini 3.8 Flash is at its launch price ($0.75/$3.75), which Google lists as valid through
//     2026-12-31, doubling on 2027-01-01: update the row then, or override it in the config.
//   - Gemini cache-read prices for the 3.x family are not on the quoted page; 10% of input is
//     used, Google's documented context-caching discount for current models.
//
// Operators correct any row without a release through the pricing overrides in the config.
func builtin() []builtinModel {
	d := PriceFromDollars
	return []builtinModel{
		// OpenAI — cached input is the discounted read; no cache-write premium.
		{"gpt-5.5", OpenAI, d(5.00, 0.50, 0, 30.00)},
		{"gpt-5.5-pro", OpenAI, d(30.00, 0, 0, 180.00)},
		{"gpt-5.4", OpenAI, d(2.50, 0.25, 0, 15.00)},
		{"gpt-5.4-mini", OpenAI, d(0.75, 0.075, 0, 4.50)},
		{"gpt-5.4-nano", OpenAI, d(0.20, 0.02, 0, 1.25)},
		{"gpt-5.4-pro", OpenAI, d(30.00, 0, 0, 180.00)},
		{"gpt-5.2", OpenAI, d(1.75, 0.175, 0, 14.00)},
		{"gpt-5.1", OpenAI, d(1.25, 0.125, 0, 10.00)},
		{"gpt-5", OpenAI, d(1.25, 0.125, 0, 10.00)},
		{"gpt-5-mini", OpenAI, d(0.25, 0.025, 0, 2.00)},
		{"gpt-5-nano", OpenAI, d(0.05, 0.005, 0, 0.40)},
		{"gpt-5-pro", OpenAI, d(15.00, 0, 0, 120.00)},
		{"gpt-4.1", OpenAI, d(2.00, 0.50, 0, 8.00)},
		{"gpt-4.1-mini", OpenAI, d(0.40, 0.10, 0, 1.60)},
		{"gpt-4.1-nano", OpenAI, d(0.10, 0.025, 0, 0.40)},
		{"gpt-4o", OpenAI, d(2.50, 1.25, 0, 10.00)},
		{"gpt-4o-mini", OpenAI, d(0.15, 0.075, 0, 0.60)},
		{"chatgpt-4o-latest", OpenAI, d(5.00, 0, 0, 15.00)},
		{"gpt-4-turbo", OpenAI, d(10.00, 0, 0, 30.00)},
		{"gpt-4", OpenAI, d(30.00, 0, 0, 60.00)},
		{"gpt-3.5-turbo", OpenAI, d(0.50, 0, 0, 1.50)},
		{"o4-mini", OpenAI, d(1.10, 0.275, 0, 4.40)},
		{"o3", OpenAI, d(2.00, 0.50, 0, 8.00)},
		{"o3-pro", OpenAI, d(20.00, 0, 0, 80.00)},
		{"o3-mini", OpenAI, d(1.10, 0.55, 0, 4.40)},
		{"o1", OpenAI, d(15.00, 7.50, 0, 60.00)},
		{"o1-pro", OpenAI, d(150.00, 0, 0, 600.00)},
		{"o1-mini", OpenAI, d(1.10, 0.55, 0, 4.40)},
		{"text-embedding-3-small", OpenAI, d(0.02, 0, 0, 0)},
		{"text-embedding-3-large", OpenAI, d(0.13, 0, 0, 0)},

		// Anthropic — cache read is "cache hits & refreshes", cache write the 5-minute rate.
		{"claude-fable-5-1", Anthropic, d(10.00, 0.25, 12.50, 50.00)},
		{"claude-mythos-5-1", Anthropic, d(10.00, 0.25, 12.50, 50.00)},
		{"claude-fable-5", Anthropic, d(10.00, 1.00, 12.50, 50.00)},
		{"claude-mythos-5", Anthropic, d(10.00, 1.00, 12.50, 50.00)},
		{"claude-opus-5-5", Anthropic, d(4.00, 0.20, 5.00, 20.00)},
		{"claude-opus-5", Anthropic, d(5.00, 0.50, 6.25, 25.00)},
		{"claude-opus-4-8", Anthropic, d(5.00, 0.50, 6.25, 25.00)},
		{"claude-opus-4-7", Anthropic, d(5.00, 0.50, 6.25, 25.00)},
		{"claude-opus-4-6", Anthropic, d(5.00, 0.50, 6.25, 25.00)},
		{"claude-opus-4-5", Anthropic, d(5.00, 0.50, 6.25, 25.00)},
		{"claude-opus-4-1", Anthropic, d(15.00, 1.50, 18.75, 75.00)},
		{"claude-opus-4", Anthropic, d(15.00, 1.50, 18.75, 75.00)},
		{"claude-3-opus", Anthropic, d(15.00, 1.50, 18.75, 75.00)},
		{"claude-sonnet-5-5", Anthropic, d(2.00, 0.10, 2.50, 10.00)},
		{"claude-sonnet-5", Anthropic, d(2.00, 0.20, 2.50, 10.00)},
		{"claude-sonnet-4-6", Anthropic, d(3.00, 0.30, 3.75, 15.00)},
		{"claude-sonnet-4-5", Anthropic, d(3.00, 0.30, 3.75, 15.00)},
		{"claude-sonnet-4", Anthropic, d(3.00, 0.30, 3.75, 15.00)},
		{"claude-3-7-sonnet", Anthropic, d(3.00, 0.30, 3.75, 15.00)},
		{"claude-3-5-sonnet", Anthropic, d(3.00, 0.30, 3.75, 15.00)},
		{"claude-haiku-5-5", Anthropic, d(0.10, 0.01, 0.125, 0.50)},
		{"claude-haiku-4-5", Anthropic, d(1.00, 0.10, 1.25, 5.00)},
		{"claude-3-5-haiku", Anthropic, d(0.80, 0.08, 1.00, 4.00)},
		{"claude-3-haiku", Anthropic, d(0.25, 0.03, 0.30, 1.25)},

		// Google Gemini — prompts up to 200K tokens; cached content read at the caching rate.
		{"gemini-3.8-flash", Gemini, d(0.75, 0.075, 0, 3.75)},
		{"gemini-3.5-flash", Gemini, d(1.50, 0.15, 0, 9.00)},
		{"gemini-3.5-flash-lite", Gemini, d(0.30, 0.03, 0, 2.50)},
		{"gemini-3.1-pro", Gemini, d(2.00, 0.20, 0, 12.00)},
		{"gemini-3.1-flash-lite", Gemini, d(0.25, 0.025, 0, 1.50)},
		{"gemini-3-pro", Gemini, d(2.00, 0.20, 0, 12.00)},
		{"gemini-3-flash", Gemini, d(0.50, 0.05, 0, 3.00)},
		{"gemini-2.5-pro", Gemini, d(1.25, 0.125, 0, 10.00)},
		{"gemini-2.5-flash", Gemini, d(0.30, 0.03, 0, 2.50)},
		{"gemini-2.5-flash-lite", Gemini, d(0.10, 0.01, 0, 0.40)},
		{"gemini-2.0-flash", Gemini, d(0.10, 0.025, 0, 0.40)},
		{"gemini-2.0-flash-lite", Gemini, d(0.075, 0, 0, 0.30)},
	}
}
