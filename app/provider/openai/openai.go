// Package openai is the provider adapter for the OpenAI API: chat completions, the Responses
// API, legacy completions and embeddings (metered), and the model list (relayed, not metered).
package openai

import (
	"bytes"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"

	"tokenguard/app/apperr"
	"tokenguard/app/pricing"
	"tokenguard/app/provider"
)

// Name is the provider name in routes and usage rows.
const Name = "openai"

// Endpoints served. Anything else under /proxy/openai is refused, so no path can reach the
// upstream without passing the meter.
const (
	ChatCompletions = "/v1/chat/completions"
	Responses       = "/v1/responses"
	Completions     = "/v1/completions"
	Embeddings      = "/v1/embeddings"
	Models          = "/v1/models"
)

// legacyDefaultMaxTokens is what /v1/completions generates when max_tokens is absent.
const legacyDefaultMaxTokens = 16

// Adapter is the OpenAI adapter. The zero value is ready to use.
type Adapter struct{}

var _ provider.Adapter = (*Adapter)(nil)

// New returns an OpenAI adapter.
func New() *Adapter { return &Adapter{} }

// Name returns "openai".
func (*Adapter) Name() string { return Name }

// state is what a call remembers between Parse, Prepare and the meter.
type state struct {
	// clientUsage is true when the client itself asked for the stream's usage chunk, so it
	// must not be dropped.
	clientUsage bool
	// caps are the output caps the request names (present: non-null), which a strict-mode
	// OutputCap lowers where the client put them.
	maxTokens, maxCompletionTokens, maxOutputTokens          int64
	hasMaxTokens, hasMaxCompletionTokens, hasMaxOutputTokens bool
}

// Body fields the adapter reads or injects, by index into spec.
const (
	fModel = iota
	fStream
	fStreamOptions
	fIncludeUsage
	fMaxTokens
	fMaxCompletionTokens
	fMaxOutputTokens
	fN
	fBestOf
	fBackground
	fServiceTier
	fSafetyIdentifier
	fUser
)

// spec lists the fields whose values change what is priced, streamed or metered (see
// provider.ScanBody for why each must appear once, spelled exactly so), and how OpenAI bills
// media: image parts inline (data: URLs) or by "url"/"image_url" (chat and Responses images),
// "file_id" or "file_url" (Responses inputs).
var spec = provider.NewBodySpec(provider.Media{
	RefKeys: []string{"url", "image_url", "file_id", "file_url"},
	// Function definitions are billed as the text they are rendered to, shorter than their
	// JSON; the margin covers the preamble OpenAI adds around them and the hidden prompts of
	// built-in tools, which it does not publish.
	ToolTokens: 1024,
}, "model", "stream", "stream_options", "stream_options.include_usage", "max_tokens",
	"max_completion_tokens", "max_output_tokens", "n", "best_of", "background", "service_tier",
	"safety_identifier", "user")

// priorityPercent is what priority processing costs against list price. OpenAI's priority
// processing page lists 1.75× (GPT-4.1) to 2.5× (GPT-5.5: $12.50/$75 against $5/$30) per token;
// the price data has no priority rates, so every model is billed at the highest ratio, which
// errs high.
const priorityPercent = 250

// Image parts cost at most this many input tokens. OpenAI's vision guide: tile models scale an
// image to fit 2048×2048, then its short side to 768, and bill a base plus a price per 512 px
// tile, at most 8 tiles (gpt-4o 85 + 8×170 = 1,445; o1/o3 75 + 8×150 = 1,275; gpt-5 70 + 8×140);
// patch models bill at most 1,536 32-px patches times a multiplier (gpt-4.1-nano's 2.46 is the
// largest: 3,779). partTokens leaves headroom above those for newer models' larger patch
// budgets. gpt-4o-mini bills its images as 2,833 + 5,667 a tile, so that its cheap per-token
// price costs what gpt-4o's images cost: 48,169 tokens for 8 tiles.
const (
	partTokens     = 6000
	miniPartTokens = 2833 + 8*5667
)

// Choice limits OpenAI's API reference states: n at most 128 (chat and legacy completions),
// best_of at most 20.
const (
	maxN      = 128
	maxBestOf = 20
)

// PartTokens is the most input tokens one image costs on model (see partTokens). See
// provider.Adapter.
func (*Adapter) PartTokens(model string) int64 {
	if strings.Contains(model, "gpt-4o-mini") {
		return miniPartTokens
	}
	return partTokens
}

// Parse validates r and fills c. See provider.Adapter.
//
// The caps read are the ones OpenAI documents as covering everything billed as output:
// max_completion_tokens and the Responses API's max_output_tokens are upper bounds "including
// visible output tokens and reasoning tokens" (API reference); max_tokens is the same cap for
// models without reasoning (reasoning models refuse it). Each bounds one choice, so the proxy
// multiplies by Choices: chat's n, or legacy completions' max(n, best_of) — best_of candidates
// are generated server-side and billed though only n are returned.
func (*Adapter) Parse(r *provider.Request, c *provider.Call) error {
	*c = provider.Call{Method: r.Method, Path: r.Path, Query: r.Query, Body: r.Body, Endpoint: r.Path}
	switch {
	case r.Path == Models || strings.HasPrefix(r.Path, Models+"/"):
		if r.Method != http.MethodGet {
			return apperr.New(apperr.MethodNotAllowed, "%s %s is not supported", r.Method, r.Path)
		}
		c.Endpoint = Models
		c.Body = nil
		return nil
	case r.Path == ChatCompletions, r.Path == Responses, r.Path == Completions, r.Path == Embeddings:
		if r.Method != http.MethodPost {
			return apperr.New(apperr.MethodNotAllowed, "%s %s is not supported", r.Method, r.Path)
		}
	default:
		return apperr.New(apperr.NotFound, "the OpenAI path %q is not supported by TokenGuard", r.Path)
	}
	c.Metered = true
	b, err := provider.ScanBody(r.Body, spec)
	if err != nil {
		return err
	}
	if c.Model, err = provider.ModelField(b, fModel); err != nil {
		return err
	}
	if c.Stream, err = provider.BoolField("stream", b.Get(fStream)); err != nil {
		return err
	}
	// safety_identifier supersedes user (OpenAI's safety checks guide), so it names the end
	// user when a body has both.
	if c.EndUser, err = provider.EndUser(r.EndUser, b, spec, fSafetyIdentifier, fUser); err != nil {
		return err
	}
	var st state
	if so := b.Get(fStreamOptions); so.Exists() && !so.IsObject() && so.Type != gjson.Null {
		return apperr.New(apperr.InvalidRequest, `"stream_options" must be an object`)
	}
	if st.clientUsage, err = provider.BoolField("stream_options.include_usage", b.Get(fIncludeUsage)); err != nil {
		return err
	}
	// Work the Responses API does with background: true goes on after the response (and
	// its usage) is gone, where no meter sees it.
	if bg, err := provider.BoolField("background", b.Get(fBackground)); err != nil {
		return err
	} else if bg {
		return apperr.New(apperr.InvalidRequest, `"background": true is not supported: TokenGuard cannot meter a response generated after the request ends; send the request without it`)
	}
	// Priority processing is billed above list price: reserve and bill it at its premium.
	switch tier := b.Get(fServiceTier); {
	case tier.Type == gjson.String && tier.Str == "priority":
		c.PricePercent = priorityPercent
	case tier.Exists() && tier.Type != gjson.String && tier.Type != gjson.Null:
		return apperr.New(apperr.InvalidRequest, `"service_tier" must be a string`)
	}
	if st.maxTokens, st.hasMaxTokens, err = provider.CountField("max_tokens", b.Get(fMaxTokens)); err != nil {
		return err
	}
	if st.maxCompletionTokens, st.hasMaxCompletionTokens, err = provider.CountField("max_completion_tokens", b.Get(fMaxCompletionTokens)); err != nil {
		return err
	}
	if st.maxOutputTokens, st.hasMaxOutputTokens, err = provider.CountField("max_output_tokens", b.Get(fMaxOutputTokens)); err != nil {
		return err
	}
	c.Choices = 1
	switch r.Path {
	case ChatCompletions:
		c.MaxOutputTokens = max(st.maxCompletionTokens, st.maxTokens)
		if c.Choices, err = choices(b, fN, maxN); err != nil {
			return err
		}
	case Completions:
		if !st.hasMaxTokens {
			st.maxTokens = legacyDefaultMaxTokens
		}
		c.MaxOutputTokens = st.maxTokens
		n, err := choices(b, fN, maxN)
		if err != nil {
			return err
		}
		bestOf, err := choices(b, fBestOf, maxBestOf)
		if err != nil {
			return err
		}
		c.Choices = max(n, bestOf)
	case Responses:
		c.MaxOutputTokens = st.maxOutputTokens
	case Embeddings:
		// Embeddings produce no output tokens and never stream; reserve one token of output
		// so the reservation is the input alone rather than a default output cap.
		c.MaxOutputTokens = 1
		c.Stream = false
	}
	c.InputTokens, c.MaxInputTokens = b.Estimate((*Adapter)(nil).PartTokens(c.Model))
	c.MediaParts = b.MediaParts()
	c.State = st
	return nil
}

// choices reads the count field i, bounded by limit.
func choices(b *provider.Body, i int, limit int64) (int64, error) {
	name := spec.Name(i)
	n, _, err := provider.CountField(name, b.Get(i))
	if err != nil {
		return 0, err
	}
	return provider.CheckChoices(name, n, limit)
}

// Prepare sets the model to send, writes a strict-mode OutputCap where the client named its
// cap (or where the endpoint reads one, when it named none), never raising a cap, and, for
// streamed chat and legacy completions, asks the upstream for the final usage chunk
// (stream_options.include_usage), which the meter drops again when the client did not ask
// for it.
func (*Adapter) Prepare(c *provider.Call, model string) error {
	if !c.Metered {
		return nil
	}
	if err := provider.CheckModel(model); err != nil {
		return err
	}
	e := provider.NewEdit(c.Body)
	if model != c.Model {
		e.Set("model", model)
	}
	st, _ := c.State.(state)
	if c.OutputCap > 0 {
		lower := func(field string, has bool, cur int64) {
			if !has {
				cur = c.OutputCap
			}
			e.Set(field, min(cur, c.OutputCap))
		}
		switch c.Endpoint {
		case ChatCompletions:
			if st.hasMaxTokens {
				lower("max_tokens", true, st.maxTokens)
			}
			if st.hasMaxCompletionTokens || !st.hasMaxTokens {
				lower("max_completion_tokens", st.hasMaxCompletionTokens, st.maxCompletionTokens)
			}
		case Completions:
			// An absent max_tokens means 16 (Parse filled it in), which a cap never raises.
			lower("max_tokens", true, st.maxTokens)
		case Responses:
			lower("max_output_tokens", st.hasMaxOutputTokens, st.maxOutputTokens)
		}
	}
	if c.Stream && (c.Endpoint == ChatCompletions || c.Endpoint == Completions) && !st.clientUsage {
		if gjson.GetBytes(c.Body, "stream_options").IsObject() {
			e.Set("stream_options.include_usage", true)
		} else {
			e.SetRaw("stream_options", []byte(`{"include_usage":true}`))
		}
	}
	body, err := e.Body()
	if err != nil {
		return err
	}
	c.Body = body
	return nil
}

// SetKey puts key in Authorization: Bearer, where OpenAI expects it.
func (*Adapter) SetKey(h http.Header, key string) {
	h.Set("Authorization", "Bearer "+key)
}

// UsageKeys returns the one key Usage reads: "usage".
func (*Adapter) UsageKeys() []string { return usageKeys }

var usageKeys = []string{"usage"}

// Usage reads the usage of a non-streamed response.
func (*Adapter) Usage(c *provider.Call, body []byte) (pricing.Usage, bool) {
	u := gjson.GetBytes(body, "usage")
	if !u.IsObject() {
		return pricing.Usage{}, false
	}
	if c.Endpoint == Responses {
		return responsesUsage(u), true
	}
	return chatUsage(u), true
}

// chatUsage converts a chat/completions/embeddings usage object. OpenAI's prompt_tokens
// include the cached ones (billed at the cached-input price) and completion_tokens include the
// reasoning tokens (billed as output), so cached tokens are moved out of the input count and
// reasoning tokens need no special case.
func chatUsage(u gjson.Result) pricing.Usage {
	prompt := provider.TokenCount(u.Get("prompt_tokens"))
	cached := min(provider.TokenCount(u.Get("prompt_tokens_details.cached_tokens")), prompt)
	out := provider.TokenCount(u.Get("completion_tokens"))
	// Audio tokens (gpt-4o-audio, realtime models) are billed at their own rates; they are
	// parts of the prompt and completion counts. Cached audio is not reported apart, so the
	// audio counted here is uncached, never more than the uncached input.
	return pricing.Usage{
		Input:       prompt - cached,
		CacheRead:   cached,
		Output:      out,
		InputAudio:  min(provider.TokenCount(u.Get("prompt_tokens_details.audio_tokens")), prompt-cached),
		OutputAudio: min(provider.TokenCount(u.Get("completion_tokens_details.audio_tokens")), out),
		Reasoning:   min(provider.TokenCount(u.Get("completion_tokens_details.reasoning_tokens")), out),
	}
}

// responsesUsage converts a Responses API usage object (input_tokens include cached tokens;
// output_tokens include reasoning tokens).
func responsesUsage(u gjson.Result) pricing.Usage {
	in := provider.TokenCount(u.Get("input_tokens"))
	cached := min(provider.TokenCount(u.Get("input_tokens_details.cached_tokens")), in)
	out := provider.TokenCount(u.Get("output_tokens"))
	return pricing.Usage{
		Input:     in - cached,
		CacheRead: cached,
		Output:    out,
		Reasoning: min(provider.TokenCount(u.Get("output_tokens_details.reasoning_tokens")), out),
	}
}

// NewMeter returns the meter for a streamed response to c.
func (*Adapter) NewMeter(c *provider.Call) provider.Meter {
	st, _ := c.State.(state)
	return &meter{responses: c.Endpoint == Responses, clientUsage: st.clientUsage}
}

type meter struct {
	responses   bool
	clientUsage bool
	res         provider.StreamResult
}

var done = []byte("[DONE]")

func (m *meter) Event(name, data []byte) bool {
	if len(data) == 0 || bytes.Equal(data, done) {
		return true
	}
	// Valid during this call only: gjson then reads it without copying.
	js := provider.View(data)
	if m.responses {
		m.responsesEvent(name, js)
		return true
	}
	// One pass over the top level (and one over each choice and its delta) that parses no
	// value it does not need: this runs for every chunk of every stream. The first of
	// duplicated keys counts, as with gjson.Get.
	var e, choices, usage string
	provider.EachField(js, func(k, v string) {
		switch k {
		case "error":
			first(&e, v)
		case "choices":
			first(&choices, v)
		case "usage":
			first(&usage, v)
		}
	})
	if e != "" && e != "null" {
		m.res.ErrorCode = errorCode(gjson.Parse(e))
		return true
	}
	empty := true
	provider.EachElement(choices, func(ch string) {
		empty = false
		m.res.OutputBytes += choiceOutput(ch)
	})
	if strings.HasPrefix(usage, "{") {
		m.res.Usage = chatUsage(gjson.Parse(usage))
		m.res.Complete = true
		// The usage chunk has "choices": []. Drop it when only we asked for it, so the
		// client sees the stream it requested.
		if !m.clientUsage && empty {
			return false
		}
	}
	return true
}

// choiceOutput is the output a streamed choice carries: chat deltas' content, refusals,
// reasoning and tool-call arguments, and legacy completions' text.
func choiceOutput(ch string) int64 {
	var delta, text string
	provider.EachField(ch, func(k, v string) {
		switch k {
		case "delta":
			first(&delta, v)
		case "text":
			first(&text, v)
		}
	})
	n := provider.StringLen(text)
	var content, refusal, reasoning, tools string
	provider.EachField(delta, func(k, v string) {
		switch k {
		case "content":
			first(&content, v)
		case "refusal":
			first(&refusal, v)
		case "reasoning_content":
			first(&reasoning, v)
		case "tool_calls":
			first(&tools, v)
		}
	})
	n += provider.StringLen(content) + provider.StringLen(refusal) + provider.StringLen(reasoning)
	provider.EachElement(tools, func(tc string) {
		var fn string
		provider.EachField(tc, func(k, v string) {
			if k == "function" {
				first(&fn, v)
			}
		})
		provider.EachField(fn, func(k, v string) {
			if k == "arguments" {
				n += provider.StringLen(v)
			}
		})
	})
	return n
}

// first sets *dst to v unless an earlier key already set it.
func first(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

func (m *meter) responsesEvent(name []byte, data string) {
	typ := string(name)
	if typ == "" {
		typ = gjson.Get(data, "type").Str
	}
	switch typ {
	case "response.output_text.delta", "response.refusal.delta", "response.reasoning_summary_text.delta",
		"response.reasoning_text.delta", "response.function_call_arguments.delta":
		m.res.OutputBytes += provider.StringLen(gjson.Get(data, "delta").Raw)
	case "response.completed", "response.incomplete", "response.failed":
		resp := gjson.Get(data, "response")
		if u := resp.Get("usage"); u.IsObject() {
			m.res.Usage = responsesUsage(u)
			m.res.Complete = true
		}
		if typ == "response.failed" {
			m.res.ErrorCode = errorCode(resp.Get("error"))
		}
	case "error":
		m.res.ErrorCode = errorCode(gjson.Parse(data))
	}
}

// errorCode names a provider error object, bounded (provider.ErrorCode).
func errorCode(e gjson.Result) string {
	for _, k := range [...]string{"code", "type"} {
		if v := e.Get(k); v.Type == gjson.String && v.Str != "" {
			return provider.ErrorCode(v.Str)
		}
	}
	return "upstream_error"
}

// Raw is never called: every OpenAI stream is SSE.
func (m *meter) Raw([]byte) {}

func (m *meter) Result() provider.StreamResult { return m.res }
