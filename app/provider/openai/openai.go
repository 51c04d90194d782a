// Package openai is the provider adapter for the OpenAI API: chat completions, the Responses
// API, legacy completions and embeddings (metered), and the model list (relayed, not metered).
package openai

import (
	"bytes"
	"net/http"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

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
}

// Parse validates r and fills c. See provider.Adapter.
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
	f, err := readFields(r.Body)
	if err != nil {
		return err
	}
	if f.model == "" {
		return apperr.New(apperr.InvalidRequest, `the body must name a "model" (a non-empty string)`)
	}
	c.Model = f.model
	c.InputTokens = provider.EstimateTokens(len(r.Body))
	st := state{clientUsage: f.includeUsage}
	switch r.Path {
	case ChatCompletions:
		c.Stream = f.stream
		c.MaxOutputTokens = f.maxCompletionTokens
		if c.MaxOutputTokens == 0 {
			c.MaxOutputTokens = f.maxTokens
		}
	case Completions:
		c.Stream = f.stream
		c.MaxOutputTokens = f.maxTokens
		if !f.hasMaxTokens {
			c.MaxOutputTokens = legacyDefaultMaxTokens
		}
	case Responses:
		c.Stream = f.stream
		c.MaxOutputTokens = f.maxOutputTokens
	case Embeddings:
		// Embeddings produce no output tokens and never stream; reserve one token of output
		// so the reservation is the input alone rather than a default output cap.
		c.MaxOutputTokens = 1
	}
	if c.MaxOutputTokens > 0 && f.n > 1 {
		c.MaxOutputTokens *= f.n
	}
	c.State = st
	return nil
}

// fields are the top-level body fields the adapter interprets.
type fields struct {
	model               string
	stream              bool
	includeUsage        bool
	streamOptionsObject bool
	maxTokens           int64
	hasMaxTokens        bool
	maxCompletionTokens int64
	maxOutputTokens     int64
	n                   int64
}

// interpreted are the body keys whose values change what is priced, streamed or metered; see
// provider.ReadFields for why each must appear exactly once.
var interpreted = []string{"model", "stream", "stream_options", "max_tokens", "max_completion_tokens", "max_output_tokens", "n"}

func readFields(body []byte) (fields, error) {
	var f fields
	err := provider.ReadFields(body, interpreted, f.set)
	return f, err
}

func (f *fields) set(name string, v gjson.Result) (err error) {
	switch name {
	case "model":
		f.model, err = provider.StringField(name, v)
	case "stream":
		f.stream, err = provider.BoolField(name, v)
	case "stream_options":
		if v.IsObject() {
			f.streamOptionsObject = true
			f.includeUsage = v.Get("include_usage").Type == gjson.True
		} else if v.Type != gjson.Null {
			return apperr.New(apperr.InvalidRequest, `"stream_options" must be an object`)
		}
	case "max_tokens":
		f.maxTokens, f.hasMaxTokens, err = provider.CountField(name, v)
	case "max_completion_tokens":
		f.maxCompletionTokens, _, err = provider.CountField(name, v)
	case "max_output_tokens":
		f.maxOutputTokens, _, err = provider.CountField(name, v)
	case "n":
		f.n, _, err = provider.CountField(name, v)
	}
	return err
}

// Prepare sets the model to send and, for streamed chat and legacy completions, asks the
// upstream for the final usage chunk (stream_options.include_usage), which the meter drops
// again when the client did not ask for it.
func (*Adapter) Prepare(c *provider.Call, model string) error {
	if !c.Metered {
		return nil
	}
	body := c.Body
	var err error
	if model != c.Model {
		if body, err = sjson.SetBytes(body, "model", model); err != nil {
			return apperr.New(apperr.InvalidRequest, "cannot set the fallback model in the body: %v", err)
		}
	}
	if c.Stream && (c.Endpoint == ChatCompletions || c.Endpoint == Completions) {
		st, _ := c.State.(state)
		if !st.clientUsage {
			so := gjson.GetBytes(body, "stream_options")
			if so.IsObject() {
				body, err = sjson.SetBytes(body, "stream_options.include_usage", true)
			} else {
				body, err = sjson.SetRawBytes(body, "stream_options", []byte(`{"include_usage":true}`))
			}
			if err != nil {
				return apperr.New(apperr.InvalidRequest, "cannot request stream usage: %v", err)
			}
		}
	}
	c.Body = body
	return nil
}

// SetKey puts key in Authorization: Bearer, where OpenAI expects it.
func (*Adapter) SetKey(h http.Header, key string) {
	h.Set("Authorization", "Bearer "+key)
}

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
	prompt := u.Get("prompt_tokens").Int()
	cached := u.Get("prompt_tokens_details.cached_tokens").Int()
	cached = min(max(cached, 0), prompt)
	return pricing.Usage{
		Input:     prompt - cached,
		CacheRead: cached,
		Output:    u.Get("completion_tokens").Int(),
	}
}

// responsesUsage converts a Responses API usage object (input_tokens include cached tokens;
// output_tokens include reasoning tokens).
func responsesUsage(u gjson.Result) pricing.Usage {
	in := u.Get("input_tokens").Int()
	cached := u.Get("input_tokens_details.cached_tokens").Int()
	cached = min(max(cached, 0), in)
	return pricing.Usage{
		Input:     in - cached,
		CacheRead: cached,
		Output:    u.Get("output_tokens").Int(),
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
	// A string view of data, valid during this call only: gjson then reads it without copying.
	js := unsafe.String(unsafe.SliceData(data), len(data))
	if m.responses {
		m.responsesEvent(name, js)
		return true
	}
	if e := gjson.Get(js, "error"); e.Exists() && e.Type != gjson.Null {
		m.res.ErrorCode = errorCode(e)
		return true
	}
	choices := gjson.Get(js, "choices")
	empty := true
	choices.ForEach(func(_, ch gjson.Result) bool {
		empty = false
		// Chat deltas carry content, refusals and tool-call arguments; legacy completions text.
		delta := ch.Get("delta")
		for _, k := range [...]string{"content", "refusal", "reasoning_content"} {
			m.res.OutputBytes += strLen(delta.Get(k))
		}
		m.res.OutputBytes += strLen(ch.Get("text"))
		delta.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
			m.res.OutputBytes += strLen(tc.Get("function.arguments"))
			return true
		})
		return true
	})
	if usage := gjson.Get(js, "usage"); usage.IsObject() {
		m.res.Usage = chatUsage(usage)
		m.res.Complete = true
		// The usage chunk has "choices": []. Drop it when only we asked for it, so the
		// client sees the stream it requested.
		if !m.clientUsage && empty {
			return false
		}
	}
	return true
}

func (m *meter) responsesEvent(name []byte, data string) {
	typ := string(name)
	if typ == "" {
		typ = gjson.Get(data, "type").Str
	}
	switch typ {
	case "response.output_text.delta", "response.refusal.delta", "response.reasoning_summary_text.delta",
		"response.reasoning_text.delta", "response.function_call_arguments.delta":
		m.res.OutputBytes += strLen(gjson.Get(data, "delta"))
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

// strLen is the length of a JSON string value as sent (escapes counted as sent; close enough
// for an estimate), 0 for anything else.
func strLen(r gjson.Result) int64 {
	if r.Type != gjson.String || len(r.Raw) < 2 {
		return 0
	}
	return int64(len(r.Raw) - 2)
}

// errorCode names a provider error object. The result is a copy: e may view a buffer that the
// relay reuses.
func errorCode(e gjson.Result) string {
	for _, k := range [...]string{"code", "type"} {
		if v := e.Get(k); v.Type == gjson.String && v.Str != "" {
			return strings.Clone(v.Str)
		}
	}
	return "upstream_error"
}

// Raw is never called: every OpenAI stream is SSE.
func (m *meter) Raw([]byte) {}

func (m *meter) Result() provider.StreamResult { return m.res }
