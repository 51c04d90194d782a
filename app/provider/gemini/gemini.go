// Package gemini is the provider adapter for the Google Gemini API (generativelanguage):
// generateContent and streamGenerateContent (metered; the stream as SSE with ?alt=sse or as an
// incrementally sent JSON array without it), countTokens and the model list (relayed, not
// metered).
//
// The model is part of the path (/v1beta/models/{model}:generateContent), so the adapter reads
// it from there and a fallback rewrites the path. The slash form that TokenGuard's docs show
// (/v1beta/models/{model}/generateContent) is accepted and sent upstream in the colon form, the
// only one Gemini serves.
package gemini

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
const Name = "gemini"

// Methods served on a model. Anything else (embedContent, batch, cached contents, files, …)
// is refused, so no path reaches the upstream without passing the meter.
const (
	GenerateContent       = "generateContent"
	StreamGenerateContent = "streamGenerateContent"
	CountTokens           = "countTokens"
)

// versions are the API versions passed through.
var versions = [...]string{"v1beta", "v1", "v1alpha"}

// Adapter is the Gemini adapter. The zero value is ready to use.
type Adapter struct{}

var _ provider.Adapter = (*Adapter)(nil)

// New returns a Gemini adapter.
func New() *Adapter { return &Adapter{} }

// Name returns "gemini".
func (*Adapter) Name() string { return Name }

// state is what a call remembers between Parse and Prepare.
type state struct {
	version, method string
}

// Parse validates r and fills c. See provider.Adapter.
func (*Adapter) Parse(r *provider.Request, c *provider.Call) error {
	*c = provider.Call{Method: r.Method, Path: r.Path, Query: r.Query, Body: r.Body}
	version, rest, ok := splitVersion(r.Path)
	if !ok {
		return notServed(r.Path)
	}
	model, method, ok := splitModel(rest)
	if !ok {
		return notServed(r.Path)
	}
	if method == "" {
		// GET /v1beta/models or /v1beta/models/{model}: the model list, free.
		if r.Method != http.MethodGet {
			return apperr.New(apperr.MethodNotAllowed, "%s %s is not supported", r.Method, r.Path)
		}
		c.Endpoint = "/" + version + "/models"
		c.Path = c.Endpoint
		if model != "" {
			if !validModel(model) {
				return apperr.New(apperr.InvalidRequest, "%q is not a Gemini model name (letters, digits, '.', '-' and '_')", model)
			}
			c.Endpoint += "/{model}"
			c.Path += "/" + model
		}
		c.Body = nil
		return nil
	}
	switch method {
	case GenerateContent, StreamGenerateContent, CountTokens:
	default:
		return apperr.New(apperr.NotFound, "the Gemini method %q is not supported by TokenGuard (served: %s, %s, %s)", method, GenerateContent, StreamGenerateContent, CountTokens)
	}
	if r.Method != http.MethodPost {
		return apperr.New(apperr.MethodNotAllowed, "%s %s is not supported", r.Method, r.Path)
	}
	if !validModel(model) {
		return apperr.New(apperr.InvalidRequest, "%q is not a Gemini model name (letters, digits, '.', '-' and '_')", model)
	}
	c.Endpoint = "/" + version + "/models/{model}:" + method
	c.Model = model
	// Always the colon form upstream, whichever form came in.
	c.Path = modelPath(version, model, method)
	c.State = state{version: version, method: method}
	f, err := readFields(r.Body)
	if err != nil {
		return err
	}
	alt, err := altParam(r.Query)
	if err != nil {
		return err
	}
	switch method {
	case CountTokens:
		// Counting tokens is free; the proxy still checks the key before Parse.
		return nil
	case GenerateContent:
		if alt != "" && alt != "json" {
			return apperr.New(apperr.InvalidRequest, "alt=%s is not supported on generateContent (use streamGenerateContent?alt=sse to stream)", alt)
		}
	case StreamGenerateContent:
		if alt != "" && alt != "json" && alt != "sse" {
			return apperr.New(apperr.InvalidRequest, "alt=%s is not supported on streamGenerateContent (use alt=sse, or no alt for a JSON array)", alt)
		}
		c.Stream = true
		c.Framing = provider.FramingRaw
		if alt == "sse" {
			c.Framing = provider.FramingSSE
		}
	}
	c.Metered = true
	c.InputTokens = provider.EstimateTokens(len(r.Body))
	c.MaxOutputTokens = f.maxOutputTokens
	if c.MaxOutputTokens > 0 && f.candidateCount > 1 {
		c.MaxOutputTokens *= f.candidateCount
	}
	return nil
}

func notServed(path string) error {
	return apperr.New(apperr.NotFound, "the Gemini path %q is not supported by TokenGuard (served: /v1beta/models/{model}:generateContent, :streamGenerateContent, :countTokens, and GET /v1beta/models)", path)
}

// splitVersion cuts "/v1beta/…" into the version and what follows it.
func splitVersion(path string) (version, rest string, ok bool) {
	for _, v := range versions {
		if p, found := strings.CutPrefix(path, "/"+v+"/"); found {
			return v, p, true
		}
		if path == "/"+v {
			return v, "", true
		}
	}
	return "", "", false
}

// splitModel reads "models", "models/{model}", "models/{model}:{method}" and
// "models/{model}/{method}". method is "" for the first two.
func splitModel(rest string) (model, method string, ok bool) {
	if rest == "models" || rest == "models/" {
		return "", "", true
	}
	p, found := strings.CutPrefix(rest, "models/")
	if !found || p == "" {
		return "", "", false
	}
	if m, meth, slash := strings.Cut(p, "/"); slash {
		if strings.Contains(meth, "/") || strings.Contains(meth, ":") || m == "" || meth == "" {
			return "", "", false
		}
		return m, meth, true
	}
	if i := strings.LastIndexByte(p, ':'); i >= 0 {
		if i == 0 || i == len(p)-1 {
			return "", "", false
		}
		return p[:i], p[i+1:], true
	}
	return p, "", true
}

// validModel reports whether m is a plain model name, one path segment that cannot step out
// of /models/ ("/v1beta/models/.." must not reach another endpoint with the project's key).
func validModel(m string) bool {
	if m == "" || m == "." || m == ".." || len(m) > 200 {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

func modelPath(version, model, method string) string {
	return "/" + version + "/models/" + model + ":" + method
}

// altParam returns the response format asked for (Google APIs read "alt" and "$alt"). More
// than one value is refused: we could not know which one the upstream obeys, and a format we do
// not read (alt=proto) would slip past the meter.
func altParam(q map[string][]string) (string, error) {
	var vals []string
	for k, v := range q {
		if k == "alt" || k == "$alt" {
			vals = append(vals, v...)
		}
	}
	switch len(vals) {
	case 0:
		return "", nil
	case 1:
		return vals[0], nil
	}
	return "", apperr.New(apperr.InvalidRequest, "the query names alt more than once")
}

// fields are the body fields the adapter interprets.
type fields struct {
	maxOutputTokens, candidateCount int64
}

// readFields validates that body is a JSON object and reads the output cap. Gemini's JSON
// accepts each field in lowerCamel or snake_case; a body carrying both spellings (or the same
// one twice) is ambiguous and refused rather than priced by a guess.
func readFields(body []byte) (fields, error) {
	var f fields
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' || !gjson.ValidBytes(body) {
		return f, apperr.New(apperr.InvalidRequest, "the body must be a JSON object")
	}
	gc, err := unique(gjson.ParseBytes(body), "generationConfig", "generation_config")
	if err != nil || !gc.Exists() || gc.Type == gjson.Null {
		return f, err
	}
	if !gc.IsObject() {
		return f, apperr.New(apperr.InvalidRequest, `"generationConfig" must be an object`)
	}
	for _, fl := range []struct {
		camel, snake string
		dst          *int64
	}{
		{"maxOutputTokens", "max_output_tokens", &f.maxOutputTokens},
		{"candidateCount", "candidate_count", &f.candidateCount},
	} {
		v, err := unique(gc, fl.camel, fl.snake)
		if err != nil {
			return f, err
		}
		if !v.Exists() || v.Type == gjson.Null {
			continue
		}
		if v.Type != gjson.Number || v.Num < 0 || v.Num != float64(int64(v.Num)) {
			return f, apperr.New(apperr.InvalidRequest, "%q must be a non-negative integer", fl.camel)
		}
		*fl.dst = int64(v.Num)
	}
	return f, nil
}

// unique returns obj's value for the one key matching any of names (case-insensitively, so a
// differently cased duplicate is caught too), or an error when more than one key matches.
func unique(obj gjson.Result, names ...string) (gjson.Result, error) {
	var found gjson.Result
	n := 0
	var bad error
	obj.ForEach(func(k, v gjson.Result) bool {
		for _, name := range names {
			if strings.EqualFold(k.Str, name) {
				if n++; n > 1 || k.Raw[1:len(k.Raw)-1] != name {
					bad = apperr.New(apperr.InvalidRequest, "the body has more than one %q key (duplicate, escaped, differently cased or in both camelCase and snake_case); send it once", names[0])
					return false
				}
				found = v
			}
		}
		return true
	})
	return found, bad
}

// Prepare puts model in the upstream path. Any model name is accepted — a fallback that
// belongs to another provider is forwarded and Gemini answers for it, as the product docs
// promise — except one that would change the path's meaning beyond its own segment.
func (*Adapter) Prepare(c *provider.Call, model string) error {
	if !c.Metered {
		return nil
	}
	model = strings.TrimPrefix(model, "models/")
	if model == c.Model {
		return nil
	}
	if model == "" || strings.ContainsAny(model, "/?#%\\") || strings.ContainsFunc(model, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return apperr.New(apperr.InvalidRequest, "the model %q cannot be put in a Gemini URL path", model)
	}
	st, _ := c.State.(state)
	c.Path = modelPath(st.version, model, st.method)
	return nil
}

// SetKey puts key in x-goog-api-key, never in ?key= (a query string ends up in access logs).
func (*Adapter) SetKey(h http.Header, key string) {
	h.Set("X-Goog-Api-Key", key)
}

// Usage reads usageMetadata from a generateContent response.
func (*Adapter) Usage(_ *provider.Call, body []byte) (pricing.Usage, bool) {
	u := gjson.GetBytes(body, "usageMetadata")
	if !u.IsObject() {
		return pricing.Usage{}, false
	}
	return toUsage(u), true
}

// toUsage converts usageMetadata. promptTokenCount includes the cached content (billed at the
// cached rate), so the cached tokens are moved out of Input; tool-use prompt tokens (search
// results fed back to the model) are billed as input; thinking tokens are counted apart from
// candidatesTokenCount and billed as output. One pass over the object.
func toUsage(u gjson.Result) pricing.Usage {
	var prompt, cached, tool, cands, thoughts int64
	u.ForEach(func(k, v gjson.Result) bool {
		var dst *int64
		switch k.Str {
		case "promptTokenCount":
			dst = &prompt
		case "cachedContentTokenCount":
			dst = &cached
		case "toolUsePromptTokenCount":
			dst = &tool
		case "candidatesTokenCount":
			dst = &cands
		case "thoughtsTokenCount":
			dst = &thoughts
		default:
			return true
		}
		*dst = max(v.Int(), 0)
		return true
	})
	cached = min(cached, prompt)
	return pricing.Usage{Input: prompt - cached + tool, CacheRead: cached, Output: cands + thoughts}
}

// NewMeter returns the meter for a streamed response.
func (*Adapter) NewMeter(*provider.Call) provider.Meter { return &meter{} }

// meter reads a stream of GenerateContentResponse chunks, as SSE events or as the elements of
// a JSON array. Every chunk carries the usage so far; the last one seen counts, so it is kept
// raw and converted once, at the end. The usage is complete once a candidate reports its
// finishReason (or the array closes).
type meter struct {
	res      provider.StreamResult
	usage    []byte // the last usageMetadata seen
	finished bool
	arr      arrayScanner
}

func (m *meter) Event(_, data []byte) bool {
	if len(data) == 0 || data[0] != '{' {
		return true
	}
	var usage, e, candidates gjson.Result
	gjson.ParseBytes(data).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "usageMetadata":
			usage = v
		case "error":
			e = v
		case "candidates":
			candidates = v
		}
		return true
	})
	m.chunk(usage, e, candidates)
	return true
}

func (m *meter) Raw(p []byte) {
	m.arr.feed(p, m.chunk)
	m.res.OutputBytes += m.arr.overflow
	m.arr.overflow = 0
	if m.arr.closed {
		m.finished = true
	}
}

func (m *meter) chunk(usage, e, candidates gjson.Result) {
	if usage.IsObject() {
		m.usage = append(m.usage[:0], usage.Raw...)
	}
	if e.IsObject() {
		m.res.ErrorCode = "upstream_error"
		for _, k := range [...]string{"status", "code"} {
			if v := e.Get(k); v.Exists() && v.String() != "" {
				m.res.ErrorCode = v.String()
				break
			}
		}
	}
	candidates.ForEach(func(_, cand gjson.Result) bool {
		cand.ForEach(func(k, v gjson.Result) bool {
			switch k.Str {
			case "content":
				v.Get("parts").ForEach(func(_, part gjson.Result) bool {
					part.ForEach(func(pk, pv gjson.Result) bool {
						switch pk.Str {
						case "text":
							m.res.OutputBytes += int64(len(pv.Str))
						case "functionCall":
							m.res.OutputBytes += int64(len(pv.Raw))
						}
						return true
					})
					return true
				})
			case "finishReason":
				if v.Type == gjson.String && v.Str != "" {
					m.finished = true
				}
			}
			return true
		})
		return true
	})
}

func (m *meter) Result() provider.StreamResult {
	res := m.res
	if m.usage != nil {
		res.Usage = toUsage(gjson.ParseBytes(m.usage))
	}
	res.Complete = m.usage != nil && m.finished && res.ErrorCode == ""
	return res
}

// Capture limits: usage and error objects are small; candidates may carry inline images, so
// past the limit only their size is counted.
const (
	maxSmallCapture      = 64 << 10
	maxCandidatesCapture = 1 << 20
)

// field is a top-level field of a chunk that the scanner captures.
type field uint8

const (
	fieldNone field = iota
	fieldUsage
	fieldError
	fieldCandidates
)

// arrayScanner reads a JSON array of objects as it arrives in pieces of any size, and hands
// the usageMetadata, error and candidates values of each element to a callback when the
// element ends. It never holds a whole element: everything else is skipped byte by byte.
type arrayScanner struct {
	depth     int // 0 outside the array, 1 in it, 2 in an element, more inside a value
	inStr     bool
	esc       bool
	inKey     bool
	expectKey bool
	afterKey  bool
	closed    bool
	key       []byte
	cur       field
	buf       []byte
	over      bool
	overBytes int64     // size of the current value past the capture limit
	overflow  int64     // size of candidates too big to capture, for the meter to collect
	vals      [3][]byte // captured values of the current element, by field-1
	keep      [3][]byte // reused storage for vals
}

func (s *arrayScanner) feed(p []byte, emit func(usage, e, candidates gjson.Result)) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if s.inStr {
			if s.esc {
				s.esc = false
				s.put(p[i : i+1])
				continue
			}
			// Skip to the string's next quote or backslash at once rather than byte by byte:
			// strings (the generated text) are most of a stream.
			rest := p[i:]
			seg := rest
			q := bytes.IndexByte(rest, '"')
			if q >= 0 {
				seg = rest[:q]
			}
			if b := bytes.IndexByte(seg, '\\'); b >= 0 {
				s.put(rest[:b+1])
				s.esc = true
				i += b
				continue
			}
			if q < 0 {
				s.put(rest)
				return
			}
			s.put(rest[:q])
			i += q
			s.inStr = false
			if s.inKey {
				s.inKey = false
				s.afterKey = true
				continue
			}
			s.capture('"')
			continue
		}
		switch c {
		case ',':
			if s.depth == 2 {
				s.endValue()
				s.expectKey = true
				continue
			}
		case ':':
			if s.depth == 2 && s.afterKey {
				s.afterKey = false
				s.startValue()
				continue
			}
		case '}':
			if s.depth == 2 {
				s.endValue()
				s.depth = 1
				s.endElement(emit)
				continue
			}
		case ']':
			if s.depth == 1 {
				s.depth = 0
				s.closed = true
				continue
			}
		case '[':
			if s.depth == 0 {
				s.depth = 1
				continue
			}
		case '{':
			if s.depth == 1 {
				s.depth = 2
				s.expectKey = true
				continue
			}
		case '"':
			s.inStr = true
			if s.depth == 2 && s.expectKey {
				s.expectKey = false
				s.inKey = true
				s.key = s.key[:0]
				continue
			}
		}
		switch c {
		case '{', '[':
			s.depth++
		case '}', ']':
			s.depth--
		}
		s.capture(c)
	}
}

// put takes bytes inside a string: into the key being read, or the value being captured.
func (s *arrayScanner) put(b []byte) {
	if s.inKey {
		s.key = append(s.key, b[:min(len(b), max(64-len(s.key), 0))]...)
		return
	}
	if s.cur == fieldNone {
		return
	}
	if s.over {
		s.overBytes += int64(len(b))
		return
	}
	limit := maxSmallCapture
	if s.cur == fieldCandidates {
		limit = maxCandidatesCapture
	}
	if len(s.buf)+len(b) > limit {
		s.over = true
		s.overBytes += int64(len(s.buf) + len(b))
		s.buf = s.buf[:0]
		return
	}
	s.buf = append(s.buf, b...)
}

func (s *arrayScanner) capture(c byte) {
	if s.cur == fieldNone {
		return
	}
	if s.over {
		s.overBytes++
		return
	}
	limit := maxSmallCapture
	if s.cur == fieldCandidates {
		limit = maxCandidatesCapture
	}
	if len(s.buf) >= limit {
		s.over = true
		s.overBytes += int64(len(s.buf)) + 1
		s.buf = s.buf[:0]
		return
	}
	s.buf = append(s.buf, c)
}

func (s *arrayScanner) startValue() {
	s.cur = fieldNone
	switch string(s.key) {
	case "usageMetadata":
		s.cur = fieldUsage
	case "error":
		s.cur = fieldError
	case "candidates":
		s.cur = fieldCandidates
	}
	s.over, s.overBytes = false, 0
	if s.cur != fieldNone {
		s.buf = s.keep[s.cur-1][:0]
	}
}

func (s *arrayScanner) endValue() {
	if s.cur == fieldNone {
		return
	}
	i := int(s.cur) - 1
	s.keep[i] = s.buf
	if !s.over {
		s.vals[i] = s.buf
	} else if s.cur == fieldCandidates {
		// Too big to read: its size stands in for the generated text.
		s.vals[i] = nil
		s.overflow += s.overBytes
	}
	s.cur = fieldNone
	s.buf = nil
}

func (s *arrayScanner) endElement(emit func(usage, e, candidates gjson.Result)) {
	var r [3]gjson.Result
	for i, v := range s.vals {
		if v != nil {
			r[i] = gjson.ParseBytes(v)
		}
		s.vals[i] = nil
	}
	emit(r[0], r[1], r[2])
	s.expectKey, s.afterKey, s.inKey = false, false, false
}
