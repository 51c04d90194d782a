package pricing

import "math/bits"

// maxOutput is the supplement to the price data: the most output tokens one response of a data
// model can hold, which genai-prices does not list and the budget engine needs, to size the
// worst case of a request that names no cap (and clamp one that names more than the model can
// produce). Keyed by the data's model ids; a figure must hold for every name the model's match
// rule accepts (gemini-2.0-flash is left out because its rule also accepts
// gemini-2.0-flash-thinking, which writes 65,536).
//
// Sources, read 2026-11-26: OpenAI's model reference, https://platform.openai.com/docs/models
// (GPT-5 family 128,000, the pro models 272,000, GPT-4.1 32,768, GPT-4o 16,384, o-series
// 100,000, o1-mini 65,536, GPT-4 8,192, GPT-4 Turbo and GPT-3.5 Turbo 4,096); Anthropic's models
// overview, https://docs.anthropic.com/en/docs/about-claude/models/overview (Opus 4 and 4.1
// 32,000, Opus 4.5, Sonnet 4 and 4.5 and Haiku 4.5 64,000, Claude 3.7 Sonnet 128,000 with its
// output-128k beta header, Claude 3.5 8,192, Claude 3 4,096); Google's model pages,
// https://ai.google.dev/gemini-api/docs/models (Gemini 2.5 65,536, 2.0 Flash-Lite 8,192).
//
// A model without a figure here is bounded by its context window (no response outgrows it) and
// its provider's family default (familyMaxOutput), whichever is smaller; both err high: a
// reservation that is too large only holds concurrent requests back, one that is too small
// would let a burst pass the budget.
var maxOutput = map[string]int64{
	"gpt-5.5": 128_000, "gpt-5.5-pro": 272_000, "gpt-5.4": 128_000, "gpt-5.4-mini": 128_000,
	"gpt-5.4-nano": 128_000, "gpt-5.4-pro": 272_000, "gpt-5.2": 128_000, "gpt-5.1": 128_000,
	"gpt-5": 128_000, "gpt-5-mini": 128_000, "gpt-5-nano": 128_000, "gpt-5-pro": 272_000,
	"gpt-4.1": 32_768, "gpt-4.1-mini": 32_768, "gpt-4.1-nano": 32_768,
	"gpt-4o": 16_384, "gpt-4o-mini": 16_384, "chatgpt-4o-latest": 16_384,
	"gpt-4-turbo": 4_096, "gpt-4": 8_192, "gpt-3.5-turbo": 4_096,
	"o4-mini": 100_000, "o3": 100_000, "o3-pro": 100_000, "o3-mini": 100_000, "o3-deep-research": 100_000,
	"o1": 100_000, "o1-pro": 100_000, "o1-mini": 65_536,
	"text-embedding-3-small": 1, "text-embedding-3-large": 1, "text-embedding-ada-002": 1,

	"claude-opus-4-5": 64_000, "claude-opus-4-1": 32_000, "claude-opus-4-0": 32_000,
	"claude-3-opus-latest": 4_096, "claude-sonnet-4-5": 64_000, "claude-sonnet-4-0": 64_000,
	"claude-3-7-sonnet-latest": 128_000, "claude-3-5-sonnet": 8_192, "claude-haiku-4-5": 64_000,
	"claude-3-5-haiku-latest": 8_192, "claude-3-haiku": 4_096,

	"gemini-2.5-pro": 65_536, "gemini-2.5-flash": 65_536, "gemini-2.5-flash-lite": 65_536,
	"gemini-2.0-flash-lite": 8_192,
}

// dataMaxOutput is a data model's maximum output: the supplement's figure, else the smaller of
// its family default and its context window rounded up to a power of two (the data's windows
// are sometimes rounded down: 32,000 for gpt-4-32k's 32,768).
func dataMaxOutput(e *entry) int64 {
	if n, ok := maxOutput[e.id]; ok {
		return n
	}
	f := familyMaxOutput(e.provider)
	if w := e.contextWindow; w > 0 && w < f {
		return min(f, int64(1)<<bits.Len64(uint64(w-1)))
	}
	return f
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
