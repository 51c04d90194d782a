// Package anthropic is the provider adapter for the Anthropic Messages API: messages,
// streamed and not (metered), token counting and the model list (relayed, not metered).
package anthropic

import (
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

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
	f, err := readFields(r.Body)
	if err != nil {
		return err
	}
	if f.model == "" {
		return apperr.New(apperr.InvalidRequest, `the body must name a "model" (a non-empty string)`)
	}
	c.Model = f.model
	if r.Path == CountTokens {
		// Counting tokens is free; it still needs a valid TokenGuard key (the proxy checks
		// that before Parse), but it is neither reserved against a budget nor logged.
		return nil
	}
	c.Metered = true
	c.Stream = f.stream
	c.MaxOutputTokens = f.maxTokens
	c.InputTokens = provider.EstimateTokens(len(r.Body))
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

// fields are the top-level body fields the adapter interprets.
type fields struct {
	model     string
	stream    bool
	maxTokens int64
}

// interpreted are the body keys whose values change what is priced, streamed or metered; see
// provider.ReadFields for why each must appear exactly once.
var interpreted = []string{"model", "stream", "max_tokens"}

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
	case "max_tokens":
		f.maxTokens, _, err = provider.CountField(name, v)
	}
	return err
}

// Prepare sets the model to send. Any model string is accepted: a fallback that belongs to
// another provider is forwarded as it is and Anthropic answers for it (the product docs promise
// exactly that).
func (*Adapter) Prepare(c *provider.Call, model string) error {
	if !c.Metered || model == c.Model {
		return nil
	}
	body, err := sjson.SetBytes(c.Body, "model", model)
	if err != nil {
		return apperr.New(apperr.InvalidRequest, "cannot set the fallback model in the body: %v", err)
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
// both cache classes already (they are disjoint, as pricing.Usage wants), and output_tokens
// include thinking. Every figure is a whole-message total, so it replaces rather than adds; a
// figure that is absent or null keeps its earlier value (message_delta omits those that did
// not change since message_start).
func mergeUsage(dst *pricing.Usage, u gjson.Result) {
	r := gjson.GetMany(u.Raw, "input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens")
	for i, p := range [...]*int64{&dst.Input, &dst.CacheRead, &dst.CacheWrite, &dst.Output} {
		if r[i].Type == gjson.Number {
			*p = max(r[i].Int(), 0)
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
		// The one event per generated piece: read its delta in a single pass.
		gjson.GetBytes(data, "delta").ForEach(func(k, v gjson.Result) bool {
			switch k.Str {
			case "text", "thinking", "partial_json":
				m.res.OutputBytes += int64(len(v.Str))
			}
			return true
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
			m.res.ErrorCode = t.Str
		}
	}
	// Every event goes to the client as the provider sent it (ping and error included).
	return true
}

// Raw is never called: Anthropic streams are SSE.
func (m *meter) Raw([]byte) {}

func (m *meter) Result() provider.StreamResult { return m.res }
