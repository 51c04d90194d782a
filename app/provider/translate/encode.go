package translate

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// Upstream is a translated request, ready for the target provider's adapter to parse as if a
// client had sent it.
type Upstream struct {
	Path  string
	Query url.Values
	Body  []byte
}

// EncodeRequest writes r for target's API, asking for model. maxTokens is the output cap to
// send (0: none; Anthropic requires one, so the caller passes what it reserved for the
// fallback model). A field the target cannot take is refused with INVALID_REQUEST or added to
// r.Dropped.
func EncodeRequest(r *Request, target API, model string, maxTokens int64) (Upstream, error) {
	b := make([]byte, 0, 1024)
	var err error
	up := Upstream{}
	switch target {
	case OpenAI:
		up.Path = "/v1/chat/completions"
		b, err = encodeOpenAI(b, r, model, maxTokens)
	case Anthropic:
		up.Path = "/v1/messages"
		b, err = encodeAnthropic(b, r, model, maxTokens)
	case Gemini:
		up.Path = "/v1beta/models/" + model + ":generateContent"
		if r.Stream {
			up.Path = "/v1beta/models/" + model + ":streamGenerateContent"
			up.Query = url.Values{"alt": {"sse"}}
		}
		b, err = encodeGemini(b, r, maxTokens)
	default:
		err = invalid("requests cannot be translated for %s", target)
	}
	up.Body = b
	return up, err
}

// obj writes a JSON object's members, adding the commas.
type obj struct {
	b     []byte
	first bool
}

func open(b []byte) *obj { return &obj{b: append(b, '{'), first: true} }

func (o *obj) key(k string) *obj {
	if !o.first {
		o.b = append(o.b, ',')
	}
	o.first = false
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, '"', ':')
	return o
}

func (o *obj) str(k, v string) *obj       { o.key(k); o.b = appendString(o.b, v); return o }
func (o *obj) raw(k, v string) *obj       { o.key(k); o.b = append(o.b, v...); return o }
func (o *obj) num(k string, n int64) *obj { o.key(k); o.b = appendInt(o.b, n); return o }
func (o *obj) close() []byte              { return append(o.b, '}') }

// list appends a JSON array of n items, each appended by item.
func list(b []byte, n int, item func(b []byte, i int) []byte) []byte {
	b = append(b, '[')
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = item(b, i)
	}
	return append(b, ']')
}

// appendStrings appends a JSON array of strings.
func appendStrings(b []byte, ss []string) []byte {
	return list(b, len(ss), func(b []byte, i int) []byte { return appendString(b, ss[i]) })
}

// appendTool appends a function declaration: its name, description and parameters' schema
// under schemaKey (an empty object schema when it names none, unless optional).
func appendTool(b []byte, t Tool, schemaKey string, optional bool) []byte {
	o := open(b).str("name", t.Name)
	if t.Description != "" {
		o.str("description", t.Description)
	}
	if t.Schema != "" || !optional {
		o.raw(schemaKey, schemaOf(t))
	}
	return o.close()
}

// emptySchema is the parameters of a tool that names none: OpenAI and Anthropic want an
// object schema.
const emptySchema = `{"type":"object","properties":{}}`

func schemaOf(t Tool) string {
	if t.Schema == "" {
		return emptySchema
	}
	return t.Schema
}

func encodeOpenAI(b []byte, r *Request, model string, maxTokens int64) ([]byte, error) {
	o := open(b)
	o.str("model", model)
	o.key("messages")
	o.b = append(o.b, '[')
	n := 0
	sep := func() {
		if n > 0 {
			o.b = append(o.b, ',')
		}
		n++
	}
	for _, s := range r.System {
		sep()
		o.b = open(o.b).str("role", "system").str("content", s).close()
	}
	for _, m := range r.Messages {
		if m.Role == Assistant {
			sep()
			o.b = openaiAssistant(o.b, m)
			continue
		}
		var rest []Part
		for _, p := range m.Parts {
			if p.Kind == ToolResult {
				sep()
				o.b = open(o.b).str("role", "tool").str("tool_call_id", p.ID).str("content", p.Text).close()
			} else {
				rest = append(rest, p)
			}
		}
		if len(rest) == 0 {
			continue
		}
		sep()
		u := open(o.b).str("role", "user")
		if len(rest) == 1 && rest[0].Kind == Text {
			u.str("content", rest[0].Text)
		} else {
			u.key("content")
			u.b = append(u.b, '[')
			for i, p := range rest {
				if i > 0 {
					u.b = append(u.b, ',')
				}
				if p.Kind == Text {
					u.b = open(u.b).str("type", "text").str("text", p.Text).close()
					continue
				}
				img := open(u.b).str("type", "image_url").key("image_url")
				img.b = open(img.b).str("url", dataURL(p)).close()
				u.b = img.close()
			}
			u.b = append(u.b, ']')
		}
		o.b = u.close()
	}
	o.b = append(o.b, ']')
	if maxTokens > 0 {
		o.num("max_completion_tokens", maxTokens)
	}
	if reasoningModel(model) {
		// OpenAI's reasoning models refuse sampling settings and stop sequences.
		for _, f := range [...]struct {
			set  bool
			name string
		}{{r.Temperature != "", "temperature"}, {r.TopP != "", "top_p"}, {len(r.Stop) > 0, "stop"}} {
			if f.set {
				r.drop(f.name + " (not taken by " + model + ")")
			}
		}
	} else {
		if r.Temperature != "" {
			o.raw("temperature", r.Temperature)
		}
		if r.TopP != "" {
			o.raw("top_p", r.TopP)
		}
		if len(r.Stop) > 0 {
			o.key("stop")
			o.b = appendStrings(o.b, r.Stop)
		}
	}
	if r.TopK != "" {
		r.drop("top_k")
	}
	if len(r.Tools) > 0 {
		o.key("tools")
		o.b = list(o.b, len(r.Tools), func(b []byte, i int) []byte {
			f := open(b).str("type", "function").key("function")
			f.b = appendTool(f.b, r.Tools[i], "parameters", false)
			return f.close()
		})
		switch r.Choice.Mode {
		case ToolNone:
			o.str("tool_choice", "none")
		case ToolAny:
			o.str("tool_choice", "required")
		case ToolNamed:
			o.key("tool_choice")
			tc := open(o.b).str("type", "function").key("function")
			tc.b = open(tc.b).str("name", r.Choice.Name).close()
			o.b = tc.close()
		}
		if r.Choice.NoParallel {
			o.raw("parallel_tool_calls", "false")
		}
	}
	switch r.Format.Kind {
	case FormatJSON:
		o.raw("response_format", `{"type":"json_object"}`)
	case FormatSchema:
		o.key("response_format")
		rf := open(o.b).str("type", "json_schema").key("json_schema")
		name := r.Format.Name
		if name == "" {
			name = "response"
		}
		js := open(rf.b).str("name", name).raw("schema", r.Format.Schema)
		if r.Format.Strict {
			js.raw("strict", "true")
		}
		rf.b = js.close()
		o.b = rf.close()
	}
	if r.Stream {
		o.raw("stream", "true")
		o.raw("stream_options", `{"include_usage":true}`)
	}
	return o.close(), nil
}

func openaiAssistant(b []byte, m Message) []byte {
	o := open(b).str("role", "assistant")
	var text strings.Builder
	calls := 0
	for _, p := range m.Parts {
		switch p.Kind {
		case Text:
			text.WriteString(p.Text)
		case ToolCall:
			calls++
		}
	}
	if text.Len() > 0 || calls == 0 {
		o.str("content", text.String())
	} else {
		o.raw("content", "null")
	}
	if calls > 0 {
		o.key("tool_calls")
		o.b = append(o.b, '[')
		i := 0
		for _, p := range m.Parts {
			if p.Kind != ToolCall {
				continue
			}
			if i > 0 {
				o.b = append(o.b, ',')
			}
			i++
			tc := open(o.b).str("id", p.ID).str("type", "function").key("function")
			tc.b = open(tc.b).str("name", p.Name).str("arguments", p.Args).close()
			o.b = tc.close()
		}
		o.b = append(o.b, ']')
	}
	return o.close()
}

// reasoningModel reports whether an OpenAI model is one of its reasoning models (o1, o3, o4,
// GPT-5), which take no temperature, top_p or stop.
func reasoningModel(model string) bool {
	for _, p := range [...]string{"o1", "o3", "o4", "gpt-5"} {
		if rest, ok := strings.CutPrefix(model, p); ok && (rest == "" || rest[0] == '-' || rest[0] == '.') {
			return !strings.HasPrefix(rest, "-chat")
		}
	}
	return false
}

// dataURL is an image part as OpenAI reads it: its URL, or its data as a data: URL.
func dataURL(p Part) string {
	if p.URL != "" {
		return p.URL
	}
	return "data:" + p.MIME + ";base64," + p.Data
}

func encodeAnthropic(b []byte, r *Request, model string, maxTokens int64) ([]byte, error) {
	o := open(b)
	o.str("model", model)
	o.num("max_tokens", max(maxTokens, 1))
	if len(r.System) > 0 {
		o.key("system")
		o.b = list(o.b, len(r.System), func(b []byte, i int) []byte {
			return open(b).str("type", "text").str("text", r.System[i]).close()
		})
	}
	o.key("messages")
	o.b = append(o.b, '[')
	n := 0
	for _, m := range r.Messages {
		role := "user"
		if m.Role == Assistant {
			role = "assistant"
		}
		blocks := 0
		for _, p := range m.Parts {
			if p.Kind != Text || p.Text != "" {
				blocks++
			}
		}
		if blocks == 0 {
			// Anthropic refuses empty text blocks and empty messages.
			continue
		}
		if n > 0 {
			o.b = append(o.b, ',')
		}
		n++
		mo := open(o.b).str("role", role).key("content")
		mo.b = anthropicBlocks(mo.b, m.Parts)
		o.b = mo.close()
	}
	o.b = append(o.b, ']')
	if r.Temperature != "" {
		// Anthropic's range is 0 to 1, OpenAI's and Gemini's 0 to 2.
		if t, err := strconv.ParseFloat(r.Temperature, 64); err == nil && t > 1 {
			r.drop("temperature above 1 (sent as 1)")
			o.raw("temperature", "1")
		} else {
			o.raw("temperature", r.Temperature)
		}
	}
	switch {
	case r.TopP != "" && r.Temperature != "":
		// Current Claude models take one of the two; temperature is the one every API has.
		r.drop("top_p (Anthropic takes temperature or top_p, not both)")
	case r.TopP != "":
		o.raw("top_p", r.TopP)
	}
	if r.TopK != "" {
		o.raw("top_k", r.TopK)
	}
	if len(r.Stop) > 0 {
		o.key("stop_sequences")
		o.b = appendStrings(o.b, r.Stop)
	}
	if len(r.Tools) > 0 {
		o.key("tools")
		o.b = list(o.b, len(r.Tools), func(b []byte, i int) []byte {
			return appendTool(b, r.Tools[i], "input_schema", false)
		})
		if r.Choice.Mode != ToolAuto || r.Choice.NoParallel {
			o.key("tool_choice")
			tc := open(o.b)
			switch r.Choice.Mode {
			case ToolAuto:
				tc.str("type", "auto")
			case ToolNone:
				tc.str("type", "none")
			case ToolAny:
				tc.str("type", "any")
			case ToolNamed:
				tc.str("type", "tool").str("name", r.Choice.Name)
			}
			if r.Choice.NoParallel && r.Choice.Mode != ToolNone {
				tc.raw("disable_parallel_tool_use", "true")
			}
			o.b = tc.close()
		}
	}
	switch r.Format.Kind {
	case FormatJSON:
		// Anthropic has schema outputs only; JSON mode already requires the prompt to ask
		// for JSON, so the answer still comes as JSON, unenforced.
		r.drop("JSON mode (response_format json_object)")
	case FormatSchema:
		o.key("output_config")
		oc := open(o.b).key("format")
		oc.b = open(oc.b).str("type", "json_schema").raw("schema", r.Format.Schema).close()
		o.b = oc.close()
	}
	if r.Stream {
		o.raw("stream", "true")
	}
	return o.close(), nil
}

// anthropicBlocks appends parts as an Anthropic content array: tool results first (Anthropic
// wants them at the start of a user turn), empty text left out (Anthropic refuses it).
func anthropicBlocks(b []byte, parts []Part) []byte {
	b = append(b, '[')
	i := 0
	for pass := 0; pass < 2; pass++ {
		for _, p := range parts {
			if (p.Kind == ToolResult) != (pass == 0) || (p.Kind == Text && p.Text == "") {
				continue
			}
			if i > 0 {
				b = append(b, ',')
			}
			i++
			b = anthropicBlock(b, p)
		}
	}
	return append(b, ']')
}

func anthropicBlock(b []byte, p Part) []byte {
	o := open(b)
	switch p.Kind {
	case Text:
		o.str("type", "text").str("text", p.Text)
	case Image:
		o.str("type", "image").key("source")
		if p.URL != "" {
			o.b = open(o.b).str("type", "url").str("url", p.URL).close()
		} else {
			o.b = open(o.b).str("type", "base64").str("media_type", p.MIME).str("data", p.Data).close()
		}
	case ToolCall:
		o.str("type", "tool_use").str("id", p.ID).str("name", p.Name).raw("input", p.Args)
	case ToolResult:
		o.str("type", "tool_result").str("tool_use_id", p.ID).str("content", p.Text)
		if p.IsError {
			o.raw("is_error", "true")
		}
	}
	return o.close()
}

func encodeGemini(b []byte, r *Request, maxTokens int64) ([]byte, error) {
	o := open(b)
	o.key("contents")
	o.b = append(o.b, '[')
	n := 0
	for _, m := range r.Messages {
		role := "user"
		if m.Role == Assistant {
			role = "model"
		}
		if n > 0 {
			o.b = append(o.b, ',')
		}
		n++
		mo := open(o.b).str("role", role).key("parts")
		mo.b = append(mo.b, '[')
		signed := false // Gemini reads the signature of a turn's first function call
		for i, p := range m.Parts {
			if i > 0 {
				mo.b = append(mo.b, ',')
			}
			po := open(mo.b)
			switch p.Kind {
			case Text:
				po.str("text", p.Text)
			case Image:
				if p.URL != "" {
					return nil, invalid("an image given by URL cannot be sent to Gemini: send it inline (base64)")
				}
				po.key("inlineData")
				po.b = open(po.b).str("mimeType", p.MIME).str("data", p.Data).close()
			case ToolCall:
				po.key("functionCall")
				po.b = open(po.b).str("name", p.Name).raw("args", p.Args).close()
				switch {
				case p.Signature != "":
					po.str("thoughtSignature", p.Signature)
				case !signed:
					po.str("thoughtSignature", skipSignature)
				}
				signed = true
			case ToolResult:
				if p.Name == "" {
					return nil, invalid("the tool result for call %q names no earlier tool call, and Gemini needs the function's name", bound(p.ID, 64))
				}
				po.key("functionResponse")
				fr := open(po.b).str("name", p.Name).key("response")
				fr.b = resultObject(fr.b, p)
				po.b = fr.close()
			}
			mo.b = po.close()
		}
		mo.b = append(mo.b, ']')
		o.b = mo.close()
	}
	o.b = append(o.b, ']')
	if len(r.System) > 0 {
		o.key("systemInstruction")
		si := open(o.b).key("parts")
		si.b = list(si.b, len(r.System), func(b []byte, i int) []byte {
			return open(b).str("text", r.System[i]).close()
		})
		o.b = si.close()
	}
	if len(r.Tools) > 0 {
		o.key("tools")
		t := open(append(o.b, '[')).key("functionDeclarations")
		t.b = list(t.b, len(r.Tools), func(b []byte, i int) []byte {
			return appendTool(b, r.Tools[i], "parametersJsonSchema", true)
		})
		o.b = append(t.close(), ']')
		if r.Choice.Mode != ToolAuto {
			o.key("toolConfig")
			tc := open(o.b).key("functionCallingConfig")
			fc := open(tc.b)
			switch r.Choice.Mode {
			case ToolNone:
				fc.str("mode", "NONE")
			case ToolAny:
				fc.str("mode", "ANY")
			case ToolNamed:
				fc.str("mode", "ANY").key("allowedFunctionNames")
				fc.b = appendStrings(fc.b, []string{r.Choice.Name})
			}
			tc.b = fc.close()
			o.b = tc.close()
		}
		if r.Choice.NoParallel {
			r.drop("parallel_tool_calls")
		}
	}
	g := open(nil)
	if r.Temperature != "" {
		g.raw("temperature", r.Temperature)
	}
	if r.TopP != "" {
		g.raw("topP", r.TopP)
	}
	if r.TopK != "" {
		g.raw("topK", r.TopK)
	}
	if maxTokens > 0 {
		g.num("maxOutputTokens", maxTokens)
	}
	if len(r.Stop) > 0 {
		g.key("stopSequences")
		g.b = appendStrings(g.b, r.Stop)
	}
	switch r.Format.Kind {
	case FormatJSON:
		g.str("responseMimeType", "application/json")
	case FormatSchema:
		g.str("responseMimeType", "application/json").raw("responseJsonSchema", r.Format.Schema)
	}
	if !g.first {
		o.key("generationConfig")
		o.b = append(o.b, g.close()...)
	}
	return o.close(), nil
}

// resultObject is a tool result as Gemini's functionResponse.response, which must be an
// object: a result that is one already goes as it is, any other text under "output" (or
// "error" for a failure), the keys Gemini documents.
func resultObject(b []byte, p Part) []byte {
	t := strings.TrimSpace(p.Text)
	if !p.IsError && strings.HasPrefix(t, "{") && gjson.Valid(t) {
		return append(b, t...)
	}
	k := "output"
	if p.IsError {
		k = "error"
	}
	return open(b).str(k, p.Text).close()
}
