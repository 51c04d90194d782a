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
	"net/http"
	"strconv"
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
	// The request's generation config, and its keys as the client spelled them, so that a
	// strict-mode OutputCap is written where the client put its cap.
	configObject      bool
	configKey, capKey string
	thinkingKey       string // the full path of thinkingBudget
	maxOutputTokens   int64
	hasCap            bool
	candidateCount    int64
	thinkingBudget    int64 // -1: dynamic
}

// PartTokens is the most input tokens one image costs (partTokens, on every model). See
// provider.Adapter.
func (*Adapter) PartTokens(string) int64 { return partTokens }

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
	b, err := provider.ScanBody(r.Body, spec)
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
		c.State = state{version: version, method: method}
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
	st, err := readConfig(b)
	if err != nil {
		return err
	}
	st.version, st.method = version, method
	c.Metered = true
	// Gemini's request has no end-user field: the header alone names one.
	if c.EndUser, err = provider.EndUser(r.EndUser, b, spec); err != nil {
		return err
	}
	c.MaxOutputTokens = st.maxOutputTokens
	c.Choices = st.candidateCount
	c.InputTokens, c.MaxInputTokens = b.Estimate(partTokens)
	c.MediaParts = b.MediaParts()
	c.State = st
	return nil
}

// Body fields the adapter reads or injects, by index into spec. Gemini's JSON accepts each
// field in lowerCamel or snake_case; a body carrying both spellings (or the same one twice) is
// ambiguous and refused rather than priced by a guess.
const (
	fGenerationConfig = iota
	fMaxOutputTokens
	fCandidateCount
	fThinkingConfig
	fThinkingBudget
)

// spec lists those fields and how Gemini bills media: images inline (inlineData) or by
// "fileUri" (fileData).
var spec = provider.NewBodySpec(provider.Media{
	RefKeys: []string{"fileUri", "file_uri"},
	// Gemini publishes no figure for the prompt around function declarations; a margin.
	ToolTokens: 1024,
}, "generationConfig|generation_config",
	"generationConfig|generation_config.maxOutputTokens|max_output_tokens",
	"generationConfig|generation_config.candidateCount|candidate_count",
	"generationConfig|generation_config.thinkingConfig|thinking_config",
	"generationConfig|generation_config.thinkingConfig|thinking_config.thinkingBudget|thinking_budget")

// partTokens is the most input tokens one image costs. Gemini 2.x bills 258 tokens for an
// image up to 384 px and 258 a 768×768 tile above that (token-counting docs), and scales
// large images down first; 16 tiles (a 3072×3072 image) is 4,128 tokens. Gemini 3 bills by
// media_resolution instead: at most 1,120 (high), or 2,240 for ultra_high set per part.
const partTokens = 16 * 258

// maxCandidates is the largest candidateCount Gemini serves (1 to 8, GenerationConfig
// reference).
const maxCandidates = 8

// readConfig reads generationConfig. maxOutputTokens bounds one candidate's output thinking
// included: Gemini bills thinking as output ("response pricing is the sum of output tokens
// and thinking tokens", thinking docs) and counts it against maxOutputTokens
// (googleapis/python-genai#2062 measures thoughts + candidates never above the cap, and
// integrators raise the cap to leave room for thinking for that reason), so no thinking
// budget is added on top of it.
func readConfig(b *provider.Body) (state, error) {
	var st state
	if gc := b.Get(fGenerationConfig); gc.Exists() && !gc.IsObject() && gc.Type != gjson.Null {
		return st, apperr.New(apperr.InvalidRequest, `"generationConfig" must be an object`)
	}
	if tc := b.Get(fThinkingConfig); tc.Exists() && !tc.IsObject() && tc.Type != gjson.Null {
		return st, apperr.New(apperr.InvalidRequest, `"generationConfig.thinkingConfig" must be an object`)
	}
	var err error
	st.configObject = b.Get(fGenerationConfig).IsObject()
	st.configKey, st.capKey = b.Key(fGenerationConfig), b.Key(fMaxOutputTokens)
	st.thinkingKey = b.Key(fGenerationConfig) + "." + b.Key(fThinkingConfig) + "." + b.Key(fThinkingBudget)
	if st.maxOutputTokens, st.hasCap, err = provider.CountField(spec.Name(fMaxOutputTokens), b.Get(fMaxOutputTokens)); err != nil {
		return st, err
	}
	n, _, err := provider.CountField(spec.Name(fCandidateCount), b.Get(fCandidateCount))
	if err != nil {
		return st, err
	}
	if st.candidateCount, err = provider.CheckChoices(spec.Name(fCandidateCount), n, maxCandidates); err != nil {
		return st, err
	}
	st.thinkingBudget, _, err = provider.IntField(spec.Name(fThinkingBudget), b.Get(fThinkingBudget))
	return st, err
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

// Prepare puts model in the upstream path and writes a strict-mode OutputCap into
// generationConfig.maxOutputTokens (creating generationConfig when absent, never raising a
// cap), lowering thinkingConfig.thinkingBudget to the cap when it is above it. Any model name
// passing provider.CheckModel is accepted — a fallback that belongs to another provider is
// forwarded and Gemini answers for it, as the product docs promise — except one that would
// change the path's meaning beyond its own segment.
func (*Adapter) Prepare(c *provider.Call, model string) error {
	if !c.Metered {
		return nil
	}
	model = strings.TrimPrefix(model, "models/")
	if err := provider.CheckModel(model); err != nil {
		return err
	}
	if strings.ContainsAny(model, "/?#%\\ ") {
		return apperr.New(apperr.InvalidRequest, "the model %q cannot be put in a Gemini URL path", model)
	}
	st, _ := c.State.(state)
	if model != c.Model {
		c.Path = modelPath(st.version, model, st.method)
	}
	if c.OutputCap <= 0 {
		return nil
	}
	limit := c.OutputCap
	if st.hasCap {
		limit = min(limit, st.maxOutputTokens)
	}
	e := provider.NewEdit(c.Body)
	if st.configObject {
		e.Set(st.configKey+"."+st.capKey, limit)
		if st.thinkingBudget > limit {
			e.Set(st.thinkingKey, limit)
		}
	} else {
		e.SetRaw(st.configKey, []byte(`{"`+st.capKey+`":`+strconv.FormatInt(limit, 10)+`}`))
	}
	body, err := e.Body()
	if err != nil {
		return err
	}
	c.Body = body
	return nil
}

// SetKey puts key in x-goog-api-key, never in ?key= (a query string ends up in access logs).
func (*Adapter) SetKey(h http.Header, key string) {
	h.Set("X-Goog-Api-Key", key)
}

// UsageKeys returns the one key Usage reads: "usageMetadata".
func (*Adapter) UsageKeys() []string { return usageKeys }

var usageKeys = []string{"usageMetadata"}

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
	// Per-modality breakdowns: audio and image tokens are billed at their own rates.
	var promptAudio, promptImage, cacheAudio, cacheImage, outAudio, outImage int64
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
		case "promptTokensDetails":
			promptAudio, promptImage = modalities(v)
		case "cacheTokensDetails":
			cacheAudio, cacheImage = modalities(v)
		case "candidatesTokensDetails":
			outAudio, outImage = modalities(v)
		}
		if dst != nil {
			*dst = provider.TokenCount(v)
		}
		return true
	})
	cached = min(cached, prompt)
	in := pricing.SatAdd(prompt-cached, tool)
	cacheAudio, cacheImage = min(cacheAudio, cached), min(cacheImage, max(cached-cacheAudio, 0))
	// promptTokensDetails counts the cached part too; what is left is billed as fresh input.
	inAudio := min(max(promptAudio-cacheAudio, 0), in)
	inImage := min(max(promptImage-cacheImage, 0), in-inAudio)
	out := pricing.SatAdd(cands, thoughts)
	outAudio = min(outAudio, out)
	outImage = min(outImage, out-outAudio)
	return pricing.Usage{Input: in, CacheRead: cached, Output: out,
		InputAudio: inAudio, InputImage: inImage, CacheReadAudio: cacheAudio, CacheReadImage: cacheImage,
		OutputAudio: outAudio, OutputImage: outImage, Reasoning: min(thoughts, out)}
}

// modalities sums a ModalityTokenCount list's AUDIO and IMAGE entries.
func modalities(list gjson.Result) (audio, image int64) {
	list.ForEach(func(_, e gjson.Result) bool {
		switch e.Get("modality").Str {
		case "AUDIO":
			audio = pricing.SatAdd(audio, provider.TokenCount(e.Get("tokenCount")))
		case "IMAGE":
			image = pricing.SatAdd(image, provider.TokenCount(e.Get("tokenCount")))
		}
		return true
	})
	return audio, image
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
	arr      *provider.StreamScanner // reads the JSON-array framing; nil until needed
}

// Keys a chunk of the JSON-array stream is read for, with their capture limits: usage and
// error objects are small; candidates may carry inline images, so past the limit only their
// size is counted.
var (
	chunkKeys   = []string{"usageMetadata", "error", "candidates"}
	chunkLimits = []int{provider.MaxCapture, provider.MaxCapture, 1 << 20}
)

const keyCandidates = 2

func (m *meter) Event(_, data []byte) bool {
	if len(data) == 0 || data[0] != '{' {
		return true
	}
	var usage, e, candidates string
	provider.EachField(provider.View(data), func(k, v string) {
		switch k {
		case "usageMetadata":
			usage = v
		case "error":
			e = v
		case "candidates":
			candidates = v
		}
	})
	m.chunk(usage, e, candidates)
	return true
}

func (m *meter) Raw(p []byte) {
	if m.arr == nil {
		m.arr = provider.NewStreamScanner(true, chunkKeys, chunkLimits)
	}
	m.arr.Feed(p, m.element)
	// Candidates too big to read: their size stands in for the generated text.
	m.res.OutputBytes += m.arr.TakeOverflow(keyCandidates)
	if m.arr.Closed() {
		m.finished = true
	}
}

// element meters one chunk of the JSON array, from the values the scanner captured.
func (m *meter) element(vals [][]byte) {
	m.chunk(provider.View(vals[0]), provider.View(vals[1]), provider.View(vals[2]))
}

// chunk meters one chunk from the raw values of its usageMetadata, error and candidates ("" for
// each it lacks). Of duplicated keys the last counts, as Google's JSON parsing takes it.
func (m *meter) chunk(usage, e, candidates string) {
	if strings.HasPrefix(usage, "{") {
		m.usage = append(m.usage[:0], usage...)
	}
	if strings.HasPrefix(e, "{") {
		m.res.ErrorCode = "upstream_error"
		ej := gjson.Parse(e)
		for _, k := range [...]string{"status", "code"} {
			if v := ej.Get(k); v.Exists() && v.String() != "" {
				m.res.ErrorCode = provider.ErrorCode(v.String())
				break
			}
		}
	}
	provider.EachElement(candidates, func(cand string) {
		provider.EachField(cand, func(k, v string) {
			switch k {
			case "content":
				provider.EachField(v, func(ck, parts string) {
					if ck != "parts" {
						return
					}
					provider.EachElement(parts, func(part string) {
						provider.EachField(part, func(pk, pv string) {
							switch pk {
							case "text":
								m.res.OutputBytes += provider.StringLen(pv)
							case "functionCall":
								m.res.OutputBytes += int64(len(pv))
							}
						})
					})
				})
			case "finishReason":
				if len(v) > 2 && v[0] == '"' {
					m.finished = true
				}
			}
		})
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
