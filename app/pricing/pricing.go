// Package pricing turns a model name and its token usage into money. It holds an embedded, dated
// table of per-million-token list prices for OpenAI, Anthropic and Google Gemini models, matches
// dated and suffixed model names to their base entry by longest prefix, applies operator
// overrides, and prices any model it does not know at a configurable default that is flagged,
// so that nothing is ever free by accident.
//
// All arithmetic is integer: prices are micro-dollars per million tokens, which is the same
// number as pico-dollars per token, so a cost is tokens × price pico-dollars, rounded once to
// nano-dollars (NanoUSD), the unit every counter and usage row is kept in.
package pricing

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sort"
	"strings"
)

// NanoUSD is an amount of money in nano-dollars (1e-9 USD). Integer money lets period counters
// equal the sum of the usage rows they count, exactly.
type NanoUSD int64

// Dollars converts n to US dollars, for display and JSON at the API edge.
func (n NanoUSD) Dollars() float64 { return float64(n) / 1e9 }

// FromDollars converts a dollar amount (a budget typed by a user, a price from config) to
// nano-dollars, rounding to the nearest nano-dollar. Amounts beyond the int64 range saturate.
func FromDollars(d float64) NanoUSD {
	v := math.Round(d * 1e9)
	switch {
	case math.IsNaN(v):
		return 0
	case v >= math.MaxInt64:
		return math.MaxInt64
	case v <= math.MinInt64:
		return math.MinInt64
	}
	return NanoUSD(v)
}

// Usage is one request's billable tokens, normalized across providers into disjoint classes:
// Input is prompt tokens read at the full price (neither served from nor written to a cache),
// CacheRead prompt tokens served from a prompt cache, CacheWrite prompt tokens written to one
// (Anthropic's cache_creation_input_tokens), and Output every generated token, reasoning or
// thinking tokens included.
type Usage struct {
	Input, CacheRead, CacheWrite, Output int64
}

// Price is a model's list price in micro-dollars (1e-6 USD) per million tokens, one field per
// Usage class. $2.50 per million tokens is 2_500_000.
type Price struct {
	Input, CacheRead, CacheWrite, Output int64
}

// PriceFromDollars builds a Price from dollars per million tokens, the way providers publish
// them. A zero cacheRead or cacheWrite means "billed like input" (providers without a cache
// discount or a cache-write premium).
func PriceFromDollars(input, cacheRead, cacheWrite, output float64) Price {
	micro := func(d float64) int64 { return int64(math.Round(d * 1e6)) }
	p := Price{Input: micro(input), CacheRead: micro(cacheRead), CacheWrite: micro(cacheWrite), Output: micro(output)}
	return p.withCacheDefaults()
}

func (p Price) withCacheDefaults() Price {
	if p.CacheRead == 0 {
		p.CacheRead = p.Input
	}
	if p.CacheWrite == 0 {
		p.CacheWrite = p.Input
	}
	return p
}

func (p Price) validate() error {
	if p.Input < 0 || p.CacheRead < 0 || p.CacheWrite < 0 || p.Output < 0 {
		return errors.New("prices must not be negative")
	}
	return nil
}

// Provider names, as used in routes, usage rows and filters.
const (
	OpenAI    = "openai"
	Anthropic = "anthropic"
	Gemini    = "gemini"
)

// DefaultMaxOutputTokens is the maximum output WorstCase assumes for a model of no known family
// (config pricing.default_max_output_tokens): as much as the largest current models produce, so
// an unknown model's request is never under-reserved.
const DefaultMaxOutputTokens = 128_000

// DefaultUnknownPrice is a sensible default for models missing from the table: a flagship-class
// price, so an unknown model is over- rather than under-counted against a budget.
func DefaultUnknownPrice() Price { return PriceFromDollars(5, 0, 0, 30) }

// Table prices models. It is immutable after New and safe for concurrent use.
type Table struct {
	entries   map[string]entry
	def       Price
	maxOutput int64
	models    []string
}

type entry struct {
	provider  string
	price     Price
	maxOutput int64 // per response; 0: the table's default
	longAbove int64 // 0: one price whatever the prompt length
	long      Price
}

// forPrompt is the price of a request with promptTokens of prompt.
func (e entry) forPrompt(promptTokens int64) Price {
	if e.longAbove > 0 && promptTokens > e.longAbove {
		return e.long
	}
	return e.price
}

// Option configures a Table.
type Option func(*Table)

// WithDefaultMaxOutput sets the maximum output WorstCase assumes for a model of no known family
// (DefaultMaxOutputTokens if unset or not positive).
func WithDefaultMaxOutput(tokens int64) Option {
	return func(t *Table) {
		if tokens > 0 {
			t.maxOutput = tokens
		}
	}
}

// New builds a table from the embedded list prices, with overrides (keyed by model name or
// name prefix, case-insensitive; zero CacheRead/CacheWrite mean "same as Input") replacing or
// adding entries, and def pricing every model that matches nothing. It returns an error for a
// negative price, an empty override name, or a default price that would make unknown models
// free.
func New(overrides map[string]Price, def Price, opts ...Option) (*Table, error) {
	if err := def.validate(); err != nil {
		return nil, fmt.Errorf("default price: %w", err)
	}
	if def.Input == 0 && def.Output == 0 {
		return nil, errors.New("default price: input and output are both zero; unknown models would be free")
	}
	t := &Table{entries: make(map[string]entry), def: def.withCacheDefaults(), maxOutput: DefaultMaxOutputTokens}
	for _, b := range builtin() {
		t.entries[b.model] = entry{provider: b.provider, price: b.price, longAbove: b.longAbove, long: b.long, maxOutput: b.maxOutput}
	}
	for name, p := range overrides {
		key := normalize(name)
		if key == "" {
			return nil, errors.New("price override with an empty model name")
		}
		if err := p.validate(); err != nil {
			return nil, fmt.Errorf("price override for %q: %w", name, err)
		}
		e := entry{provider: familyProvider(key)}
		if old, ok := t.entries[key]; ok {
			e = entry{provider: old.provider, maxOutput: old.maxOutput}
		}
		e.price = p.withCacheDefaults()
		t.entries[key] = e
	}
	for _, o := range opts {
		o(t)
	}
	t.models = make([]string, 0, len(t.entries))
	for m := range t.entries {
		t.models = append(t.models, m)
	}
	sort.Strings(t.models)
	return t, nil
}

// normalize lower-cases a model name and drops the "models/" resource prefix that Gemini
// clients sometimes send.
func normalize(model string) string {
	m := strings.ToLower(strings.TrimSpace(model))
	return strings.TrimPrefix(m, "models/")
}

// isBoundary reports whether c separates a base model name from a suffix: dates, versions and
// aliases are joined with '-' (gpt-4o-2024-08-06, claude-3-5-haiku-latest, gemini-2.0-flash-001),
// '@' (Vertex AI: claude-sonnet-4-5@20250929) or ':'.
func isBoundary(c byte) bool { return c == '-' || c == '@' || c == ':' }

// match finds the entry for model: an exact name first, then the longest prefix that ends at a
// boundary. Because only whole segments match, gpt-4o-mini never falls to gpt-4o's price and
// o1x is not o1; because the longest wins, gpt-4o-mini-2024-07-18 is gpt-4o-mini, not gpt-4o.
func (t *Table) match(model string) (entry, bool) {
	m := normalize(model)
	if e, ok := t.entries[m]; ok {
		return e, true
	}
	for i := len(m) - 1; i > 0; i-- {
		if isBoundary(m[i]) {
			if e, ok := t.entries[m[:i]]; ok {
				return e, true
			}
		}
	}
	return entry{}, false
}

// Lookup returns model's (short-context) price, and byDefault true when the model matched
// nothing and the default price applies.
func (t *Table) Lookup(model string) (p Price, byDefault bool) {
	if e, ok := t.match(model); ok {
		return e.price, false
	}
	return t.def, true
}

// lookupFor is Lookup for a request with promptTokens of prompt, long-context tier included.
func (t *Table) lookupFor(model string, promptTokens int64) (Price, bool) {
	if e, ok := t.match(model); ok {
		return e.forPrompt(promptTokens), false
	}
	return t.def, true
}

// Cost prices u for model — at the model's long-context rate when the prompt (Input +
// CacheRead + CacheWrite) is past its threshold — and reports whether the default price was
// used. Token counts below zero count as zero; a result beyond the int64 range saturates.
func (t *Table) Cost(model string, u Usage) (cost NanoUSD, byDefault bool) {
	p, byDefault := t.lookupFor(model, sat(u.Input, sat(u.CacheRead, u.CacheWrite)))
	return p.Cost(u), byDefault
}

// sat adds two token counts without wrapping (negatives count as zero).
func sat(a, b int64) int64 {
	a, b = max(a, 0), max(b, 0)
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Cost prices u at p: tokens × micro-dollars-per-million is pico-dollars, rounded half up to
// nano-dollars once for the whole request.
func (p Price) Cost(u Usage) NanoUSD {
	var pico uint64
	var overflow bool
	add := func(tokens, price int64) {
		if tokens <= 0 || price <= 0 {
			return
		}
		hi, lo := bits.Mul64(uint64(tokens), uint64(price))
		sum, carry := bits.Add64(pico, lo, 0)
		if hi != 0 || carry != 0 {
			overflow = true
		}
		pico = sum
	}
	add(u.Input, p.Input)
	add(u.CacheRead, p.CacheRead)
	add(u.CacheWrite, p.CacheWrite)
	add(u.Output, p.Output)
	nano := (pico + 500) / 1000
	if overflow || pico > math.MaxUint64-500 || nano > math.MaxInt64 {
		return math.MaxInt64
	}
	return NanoUSD(nano)
}

// WorstCase is the most a request can cost: every input token at the full input price plus
// choices × maxOutput output tokens. maxOutput is the request's own cap per choice; when it is not
// positive, or above the model's maximum output (MaxOutput), the model's maximum is used, since
// the provider can never generate more. Every product and sum saturates. The budget engine
// reserves it while the request is in flight.
func (t *Table) WorstCase(model string, inputTokens, maxOutput, choices int64) NanoUSD {
	limit := t.MaxOutput(model)
	if maxOutput <= 0 || maxOutput > limit {
		maxOutput = limit
	}
	p, _ := t.lookupFor(model, inputTokens)
	return p.Cost(Usage{Input: inputTokens, Output: satMul(maxOutput, max(choices, 1))})
}

// satMul multiplies two non-negative token counts without wrapping.
func satMul(a, b int64) int64 {
	a, b = max(a, 0), max(b, 0)
	if a != 0 && b > math.MaxInt64/a {
		return math.MaxInt64
	}
	return a * b
}

// MaxOutput is the most output tokens (per choice) model can generate in one response: the
// model's own figure when the table knows it, else its provider family's safe default, else
// the table's default (WithDefaultMaxOutput).
func (t *Table) MaxOutput(model string) int64 {
	e, ok := t.match(model)
	switch {
	case ok && e.maxOutput > 0:
		return e.maxOutput
	case ok && familyMaxOutput(e.provider) > 0:
		return familyMaxOutput(e.provider)
	}
	if f := familyMaxOutput(familyProvider(normalize(model))); f > 0 {
		return max(f, t.maxOutput)
	}
	return t.maxOutput
}

// DefaultMaxOutput is the maximum output WorstCase assumes for a model of no known family.
func (t *Table) DefaultMaxOutput() int64 { return t.maxOutput }

// Provider returns which provider a known model belongs to (OpenAI, Anthropic or Gemini), or ""
// for a model the table does not know. The proxy uses it to route a fallback model that belongs
// to another provider than the request.
func (t *Table) Provider(model string) string {
	if e, ok := t.match(model); ok {
		return e.provider
	}
	return ""
}

// Models lists every model name in the table (built-in and overrides), sorted, for
// suggestions in the dashboard. The caller may not modify the slice.
func (t *Table) Models() []string { return t.models }

// familyProvider guesses the provider of an override that names a model outside the built-in
// table, from the naming conventions each provider uses.
func familyProvider(model string) string {
	model = strings.TrimPrefix(model, "ft:") // OpenAI fine-tunes: ft:gpt-4o-mini:org::id
	switch {
	case strings.HasPrefix(model, "claude"):
		return Anthropic
	case strings.HasPrefix(model, "gemini"), strings.HasPrefix(model, "gemma"):
		return Gemini
	case strings.HasPrefix(model, "gpt-"), strings.HasPrefix(model, "chatgpt-"),
		strings.HasPrefix(model, "o1"), strings.HasPrefix(model, "o3"), strings.HasPrefix(model, "o4"),
		strings.HasPrefix(model, "text-embedding-"), strings.HasPrefix(model, "codex-"):
		return OpenAI
	}
	return ""
}
