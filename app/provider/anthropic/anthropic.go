// Package anthropic is the provider adapter for the Anthropic Messages API: messages,
// streamed and not (metered), token counting and the model list (relayed, not metered).
package anthropic

import (
	"net/http"
	"strings"

	"github.com/tidwall/gjson"

	"tokenguard/app/apperr"
	"tokenguard/app/pricing"
	"tokenguard/app/provider"
)

// Name is the provider name in routes and usage rows.
const Name = "anthropic"

// Endpoints served. Anything else under /proxy/anthropic is refused (message batches
// included: they are billed long after the request, where no meter can see them), so no path
// reaches the upstream without passing the meter.
const (
	Messages    = "/v1/messages"
	CountTokens = "/v1/messages/count_tokens"
	Models      = "/v1/models"
)

// DefaultVersion is the anthropic-version header sent when the client sends none. The API
// refuses a request without one, and the plain curl calls in TokenGuard's docs omit it.
const DefaultVersion = "2023-06-01"

// Adapter is the Anthropic adapter. The zero value is ready to use.
type Adapter struct{}

var _ provider.Adapter = (*Adapter)(nil)

// New returns an Anthropic adapter.
func New() *Adapter { return &Adapter{} }

// Name returns "anthropic".
func (*Adapter) Name() string { return Name }

// PartTokens is the most input tokens one image costs (partTokens, on every model). See
// provider.Adapter.
func (*Adapter) PartTokens(string) int64 { return partTokens }

// Parse validates r and fills c. See provider.Adapter.
func (*Adapter) Parse(r *provider.Request, c *provider.Call) error {
	*c = provider.Call{Method: r.Method, Path: r.Path, Query: r.Query, Body: r.Body, Endpoint: r.Path}
	switch {
	case r.Path == Models || strings.HasPrefix(r.Path, Models+"/"):
		if r.Method != http.MethodGet {
			return apperr.New(apperr.MethodNotAllowed, "%s %s is not supported", r.Method, r.Path)
		}
		// One model id, one plain segment: "/v1/models/../files" must not reach another
		// endpoint with the project's (or the operator's) key.
		if id, ok := strings.CutPrefix(r.Path, Models+"/"); ok && !validID(id) {
			return apperr.New(apperr.InvalidRequest, "%q is not a model id", id)
		}
		c.Endpoint = Models
		c.Body = nil
		return nil
	case r.Path == Messages, r.Path == CountTokens:
		if r.Method != http.MethodPost {
			return apperr.New(apperr.MethodNotAllowed, "%s %s is not supported", r.Method, r.Path)
		}
	default:
		return apperr.New(apperr.NotFound, "the Anthropic path %q is not supported by TokenGuard (served: %s, %s, %s)", r.Path, Messages, CountTokens, Models)
	}
	b, err := provider.ScanBody(r.Body, spec)
	if err != nil {
		return err
	}
	if c.Model, err = provider.ModelField(b, fModel); err != nil {
		return err
	}
	if r.Path == CountTokens {
		// Counting tokens is free; it still needs a valid TokenGuard key (the proxy checks
		// that before Parse), but it is neither reserved against a budget nor logged.
		return nil
	}
	c.Metered = true
	if c.Stream, err = provider.BoolField("stream", b.Get(fStream)); err != nil {
		return err
	}
	if md := b.Get(fMetadata); md.Exists() && !md.IsObject() && md.Type != gjson.Null {
		return apperr.New(apperr.InvalidRequest, `"metadata" must be an object`)
	}
	if c.EndUser, err = provider.EndUser(r.EndUser, b, spec, fUserID); err != nil {
		return err
	}
	var st state
	if st.maxTokens, st.hasMaxTokens, err = provider.CountField("max_tokens", b.Get(fMaxTokens)); err != nil {
		return err
	}
	if th := b.Get(fThinking); th.Exists() && !th.IsObject() && th.Type != gjson.Null {
		return apperr.New(apperr.InvalidRequest, `"thinking" must be an object`)
	}
	if t := b.Get(fThinkingType); t.Exists() {
		typ, err := provider.StringField("thinking.type", t)
		if err != nil {
			return err
		}
		if typ == "enabled" {
			st.thinking = true
			if st.budget, _, err = provider.CountField("thinking.budget_tokens", b.Get(fBudgetTokens)); err != nil {
				return err
			}
			c.MinOutputTokens = minThinkingBudget + 1
		}
	}
	c.MaxOutputTokens = st.maxTokens
	c.Choices = 1
	c.InputTokens, c.MaxInputTokens = b.Estimate(partTokens)
	c.MediaParts = b.MediaParts()
	c.State = st
	return nil
}

// validID reports whether id is a plain model id: letters, digits, '-', '.', '_', and not a
// dot segment.
func validID(id string) bool {
	if id == "" || id == "." || id == ".." || len(id) > 200 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// state is what a call remembers between Parse and Prepare.
type state struct {
	maxTokens    int64
	hasMaxTokens bool
	thinking     bool  // extended thinking is enabled
	budget       int64 // its budget_tokens
}

// Body fields the adapter reads or injects, by index into spec.
const (
	fModel = iota
	fStream
	fMaxTokens
	fThinking
	fThinkingType
	fBudgetTokens
	fMetadata
	fUserID
)

// spec lists the fields whose values change what is priced, streamed or metered (see
// provider.ScanBody for why each must appear once, spelled exactly so), and how Anthropic
// bills media: images inline (base64 sources) or by "url" or "file_id".
var spec = provider.NewBodySpec(provider.Media{
	RefKeys: []string{"url", "file_id"},
	// The tool-use system prompt Anthropic adds is 346 tokens at most (tool_choice auto or
	// none), and its own tools add their hidden definitions on top: bash 245, text editor 700,
	// computer use 735 plus a 499-token system prompt (tool-use docs' pricing tables).
	ToolTokens: 3000,
}, "model", "stream", "max_tokens", "thinking", "thinking.type", "thinking.budget_tokens",
	"metadata", "metadata.user_id")

// partTokens is the most input tokens one image costs: Anthropic bills about width × height /
// 750 and scales an image down to fit its limit first — 1.15 megapixels (~1,600 tokens) on most
// models, 3.75 megapixels (5,000 tokens) on the high-resolution ones (Claude Opus 4.7).
const partTokens = 5000

// minThinkingBudget is the smallest budget_tokens Anthropic accepts; it must also stay below
// max_tokens ("budget_tokens must be ≥1024 and less than max_tokens", extended-thinking docs),
// so a request with thinking enabled needs an output cap of at least one more.
const minThinkingBudget = 1024

// Prepare sets the model to send and writes a strict-mode OutputCap into max_tokens, never
// raising it, lowering thinking.budget_tokens below the new cap when extended thinking is on.
// Any model string passing provider.CheckModel is accepted: a fallback that belongs to another
// provider is forwarded as it is and Anthropic answers for it (the product docs promise exactly
// that).
//
// max_tokens covers everything billed as output: thinking counts within it (the budget must be
// below it, and Claude 3.7 and 4 models enforce it as a strict limit, extended-thinking docs).
// With interleaved thinking the budget may exceed max_tokens, but it is then the budget of a
// whole turn of several requests, each still capped by its own max_tokens.
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
	if st, _ := c.State.(state); c.OutputCap > 0 {
		limit := c.OutputCap
		if st.hasMaxTokens {
			limit = min(limit, st.maxTokens)
		}
		if st.thinking && st.budget >= limit {
			if limit-1 < minThinkingBudget {
				return apperr.New(apperr.InvalidRequest, "an output cap of %d leaves extended thinking less than its minimum budget of %d tokens", limit, minThinkingBudget)
			}
			e.Set("thinking.budget_tokens", limit-1)
		}
		e.Set("max_tokens", limit)
	}
	body, err := e.Body()
	if err != nil {
		return err
	}
	c.Body = body
	return nil
}

// SetKey puts key in x-api-key, where Anthropic expects it, and supplies the anthropic-version
// header the API requires when the client sent none (a client's own version, and any
// anthropic-beta header, pass through untouched).
func (*Adapter) SetKey(h http.Header, key string) {
	h.Set("X-Api-Key", key)
	if h.Get("Anthropic-Version") == "" {
		h.Set("Anthropic-Version", DefaultVersion)
	}
}

// UsageKeys returns the one key Usage reads: "usage".
func (*Adapter) UsageKeys() []string { return usageKeys }

var usageKeys = []string{"usage"}

// Usage reads the usage of a non-streamed Messages response.
func (*Adapter) Usage(_ *provider.Call, body []byte) (pricing.Usage, bool) {
	u := gjson.GetBytes(body, "usage")
	if !u.IsObject() {
		return pricing.Usage{}, false
	}
	var out pricing.Usage
	mergeUsage(&out, u)
	return out, true
}

// mergeUsage overwrites the classes in dst that u reports. Anthropic's input_tokens exclude
// both cache classes already (they are disjoint, as pricing.Usage wants), output_tokens
// include thinking, and cache_creation.ephemeral_1h_input_tokens is the part of the cache
// writes billed at the 1-hour rate. Every figure is a whole-message total, so it replaces rather than adds; a
// figure that is absent or null keeps its earlier value (message_delta omits those that did
// not change since message_start).
func mergeUsage(dst *pricing.Usage, u gjson.Result) {
	r := gjson.GetMany(u.Raw, "input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens", "cache_creation.ephemeral_1h_input_tokens")
	for i, p := range [...]*int64{&dst.Input, &dst.CacheRead, &dst.CacheWrite, &dst.Output, &dst.CacheWrite1h} {
		if r[i].Type == gjson.Number {
			*p = provider.TokenCount(r[i])
		}
	}
}

// NewMeter returns the meter for a streamed Messages response.
func (*Adapter) NewMeter(*provider.Call) provider.Meter { return &meter{} }

// meter reads usage from message_start (input and cache figures) and
// message_delta (the cumulative output count, and any input figures that changed), and
// counts the generated text in content_block_delta events for the estimate of a stream that
// breaks off before message_delta.
type meter struct {
	res provider.StreamResult
}

func (m *meter) Event(name, data []byte) bool {
	typ := string(name)
	if typ == "" {
		typ = gjson.GetBytes(data, "type").Str
	}
	switch typ {
	case "content_block_delta":
		// The one event per generated piece: read in place, parsing no value but the text's
		// length. Of duplicated keys the last counts, as a JSON parser's would.
		var delta string
		provider.EachField(provider.View(data), func(k, v string) {
			if k == "delta" {
				delta = v
			}
		})
		provider.EachField(delta, func(k, v string) {
			switch k {
			case "text", "thinking", "partial_json":
				m.res.OutputBytes += provider.StringLen(v)
			}
		})
	case "message_start":
		if u := gjson.GetBytes(data, "message.usage"); u.IsObject() {
			// Its output_tokens is a placeholder (1 or so), not a count of what follows: a
			// stream that breaks off before message_delta reports no output, and the proxy
			// estimates it from the text relayed rather than trusting the placeholder.
			out := m.res.Usage.Output
			mergeUsage(&m.res.Usage, u)
			m.res.Usage.Output = out
		}
	case "message_delta":
		if u := gjson.GetBytes(data, "usage"); u.IsObject() {
			mergeUsage(&m.res.Usage, u)
			m.res.Complete = true
		}
	case "error":
		m.res.ErrorCode = "upstream_error"
		if t := gjson.GetBytes(data, "error.type"); t.Type == gjson.String && t.Str != "" {
			m.res.ErrorCode = provider.ErrorCode(t.Str)
		}
	}
	// Every event goes to the client as the provider sent it (ping and error included).
	return true
}

// Raw is never called: Anthropic streams are SSE.
func (m *meter) Raw([]byte) {}

func (m *meter) Result() provider.StreamResult { return m.res }
