package translate

import (
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// DecodeRequest reads a caller's request body in api's shape into the neutral model. stream
// and geminiArray come from the caller's adapter (a Gemini caller streams by its path and
// query, not its body). It returns an INVALID_REQUEST error for a body that cannot be
// translated, naming the field.
func DecodeRequest(api API, body []byte, stream, geminiArray bool) (*Request, error) {
	if !gjson.ValidBytes(body) {
		return nil, invalid("the request body is not valid JSON")
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return nil, invalid("the request body must be a JSON object")
	}
	r := &Request{Stream: stream, GeminiArray: geminiArray && api == Gemini}
	var err error
	switch api {
	case OpenAI:
		err = decodeOpenAI(root, r)
	case Anthropic:
		err = decodeAnthropic(root, r)
	case Gemini:
		err = decodeGemini(root, r)
	default:
		err = invalid("requests to %s cannot be translated", api)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// number reads a JSON number field, as written.
func number(field string, v gjson.Result) (string, error) {
	switch v.Type {
	case gjson.Null:
		return "", nil
	case gjson.Number:
		return v.Raw, nil
	}
	return "", invalid("%q must be a number", field)
}

// count reads a non-negative integer field (0 when absent or null).
func count(field string, v gjson.Result) (int64, error) {
	if !v.Exists() || v.Type == gjson.Null {
		return 0, nil
	}
	n, err := strconv.ParseInt(v.Raw, 10, 64)
	if v.Type != gjson.Number || err != nil || n < 0 {
		return 0, invalid("%q must be a non-negative integer", field)
	}
	return n, nil
}

// stops reads a stop field: one string or an array of strings.
func stops(field string, v gjson.Result) ([]string, error) {
	switch {
	case v.Type == gjson.Null:
		return nil, nil
	case v.Type == gjson.String:
		return []string{v.Str}, nil
	case v.IsArray():
		var out []string
		for _, s := range v.Array() {
			if s.Type != gjson.String {
				return nil, invalid("%q must hold strings", field)
			}
			out = append(out, s.Str)
		}
		return out, nil
	}
	return nil, invalid("%q must be a string or an array of strings", field)
}

// object returns v's raw JSON when it is an object.
func object(field string, v gjson.Result) (string, error) {
	if !v.IsObject() {
		return "", invalid("%q must be an object", field)
	}
	return v.Raw, nil
}

// argsObject checks a tool call's arguments text, which every target needs as one object.
func argsObject(field, args string) (string, error) {
	args = strings.TrimSpace(args)
	if args == "" {
		return "{}", nil
	}
	if !gjson.Valid(args) || !gjson.Parse(args).IsObject() {
		return "", invalid("%s is not a JSON object, so it cannot be sent to another provider", field)
	}
	return args, nil
}

// imageURL splits a data: URL into its MIME type and base64 data; any other URL stays one.
func imageURL(p *Part, url string) {
	if rest, ok := strings.CutPrefix(url, "data:"); ok {
		if meta, data, ok := strings.Cut(rest, ","); ok && strings.HasSuffix(meta, ";base64") {
			p.MIME, p.Data = strings.TrimSuffix(meta, ";base64"), data
			return
		}
	}
	p.URL = url
}

// textOf joins the text of a content value: a string, or an array of {"type":"text"} parts.
func textOf(field string, v gjson.Result) (string, error) {
	if v.Type == gjson.String || v.Type == gjson.Null {
		return v.Str, nil
	}
	if !v.IsArray() {
		return "", invalid("%q must be a string or an array of text parts", field)
	}
	var b strings.Builder
	var err error
	v.ForEach(func(_, p gjson.Result) bool {
		if t := p.Get("type").Str; t != "text" {
			err = invalid("%s may hold only text parts here, not %q", field, t)
			return false
		}
		b.WriteString(p.Get("text").Str)
		return true
	})
	return b.String(), err
}

// call remembers a tool call of the conversation, so that a result naming only its id
// (OpenAI, Anthropic) gets the function's name Gemini needs, and a Gemini result naming only
// its function gets the id of the call it answers (the first unanswered call of that name in
// the latest model turn: Gemini matches them by name and order).
func (r *Request) call(id, name string, turn bool) {
	if r.calls == nil {
		r.calls, r.pending = map[string]string{}, map[string][]string{}
	}
	r.calls[id] = name
	if turn {
		r.pending[name] = append(r.pending[name], id)
	}
}

// answer is the id of the first unanswered call of name, which it marks answered.
func (r *Request) answer(name string) string {
	ids := r.pending[name]
	if len(ids) == 0 {
		return "call_" + name
	}
	r.pending[name] = ids[1:]
	return ids[0]
}

func decodeOpenAI(root gjson.Result, r *Request) error {
	var err error
	root.ForEach(func(k, v gjson.Result) bool {
		key := k.Str
		switch key {
		case "model", "stream":
		case "messages":
			err = openaiMessages(v, r)
		case "stream_options":
			r.IncludeUsage = v.Get("include_usage").Bool()
		case "max_tokens", "max_completion_tokens":
			var n int64
			if n, err = count(key, v); err == nil && n > 0 && (r.MaxTokens == 0 || n < r.MaxTokens) {
				r.MaxTokens = n
			}
		case "temperature":
			r.Temperature, err = number(key, v)
		case "top_p":
			r.TopP, err = number(key, v)
		case "stop":
			r.Stop, err = stops(key, v)
		case "n":
			if v.Type != gjson.Null && v.Int() != 1 {
				err = invalid(`"n" other than 1 cannot be translated for the fallback model's provider`)
			}
		case "tools":
			err = openaiTools(v, r)
		case "tool_choice":
			err = openaiToolChoice(v, r)
		case "parallel_tool_calls":
			r.Choice.NoParallel = v.Type == gjson.False
		case "response_format":
			switch v.Get("type").Str {
			case "", "text":
			case "json_object":
				r.Format.Kind = FormatJSON
			case "json_schema":
				js := v.Get("json_schema")
				r.Format = Format{Kind: FormatSchema, Name: js.Get("name").Str, Strict: js.Get("strict").Bool()}
				r.Format.Schema, err = object("response_format.json_schema.schema", js.Get("schema"))
			default:
				err = invalid("response_format type %q is not supported", v.Get("type").Str)
			}
		case "modalities":
			for _, m := range v.Array() {
				if m.Str != "text" {
					err = invalid(`"modalities" other than text cannot be translated for the fallback model's provider`)
				}
			}
		case "audio", "functions", "function_call", "web_search_options":
			err = invalid("%q cannot be translated for the fallback model's provider", key)
		default:
			// Sampling, billing and storage settings, and fields this translation does not
			// know: left out, and named, so nothing is lost silently.
			r.drop(bound(key, 64))
		}
		return err == nil
	})
	return err
}

func openaiMessages(v gjson.Result, r *Request) error {
	if !v.IsArray() {
		return invalid(`"messages" must be an array`)
	}
	var err error
	results := 0 // the count of messages when the last one holds only tool results
	v.ForEach(func(_, m gjson.Result) bool {
		role := m.Get("role").Str
		if m.Get("name").Exists() {
			r.drop("messages[].name")
		}
		content := m.Get("content")
		switch role {
		case "system", "developer":
			var s string
			if s, err = textOf("messages[].content", content); err == nil && s != "" {
				r.System = append(r.System, s)
			}
		case "user":
			msg := Message{Role: User}
			if msg.Parts, err = openaiParts(content); err == nil {
				r.Messages = append(r.Messages, msg)
			}
		case "assistant":
			msg := Message{Role: Assistant}
			var s string
			if s, err = textOf("messages[].content", content); err != nil {
				// Assistant content may also hold refusal parts.
				err = nil
				content.ForEach(func(_, p gjson.Result) bool {
					s += p.Get("text").Str + p.Get("refusal").Str
					return true
				})
			}
			if ref := m.Get("refusal").Str; ref != "" && s == "" {
				s = ref
			}
			if s != "" {
				msg.Parts = append(msg.Parts, Part{Kind: Text, Text: s})
			}
			m.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
				p := Part{Kind: ToolCall, Name: tc.Get("function.name").Str}
				p.ID, p.Signature = splitSignature(tc.Get("id").Str)
				if p.Args, err = argsObject("tool_calls[].function.arguments", tc.Get("function.arguments").Str); err != nil {
					return false
				}
				r.call(p.ID, p.Name, false)
				msg.Parts = append(msg.Parts, p)
				return true
			})
			if err == nil && len(msg.Parts) > 0 {
				r.Messages = append(r.Messages, msg)
			}
		case "tool":
			p := Part{Kind: ToolResult}
			p.ID, _ = splitSignature(m.Get("tool_call_id").Str)
			p.Name = r.calls[p.ID]
			if p.Text, err = textOf("messages[].content", content); err != nil {
				return false
			}
			// Results of parallel calls answer one turn: they travel together.
			if n := len(r.Messages); n > 0 && results == n {
				r.Messages[n-1].Parts = append(r.Messages[n-1].Parts, p)
			} else {
				r.Messages = append(r.Messages, Message{Role: User, Parts: []Part{p}})
				results = len(r.Messages)
			}
		default:
			err = invalid("message role %q cannot be translated for the fallback model's provider", role)
		}
		return err == nil
	})
	return err
}

func openaiParts(content gjson.Result) ([]Part, error) {
	if content.Type == gjson.String {
		return []Part{{Kind: Text, Text: content.Str}}, nil
	}
	if !content.IsArray() {
		return nil, invalid(`a user message's "content" must be a string or an array of parts`)
	}
	var parts []Part
	var err error
	content.ForEach(func(_, c gjson.Result) bool {
		switch t := c.Get("type").Str; t {
		case "text":
			parts = append(parts, Part{Kind: Text, Text: c.Get("text").Str})
		case "image_url":
			p := Part{Kind: Image}
			imageURL(&p, c.Get("image_url.url").Str)
			parts = append(parts, p)
		default:
			err = invalid("content parts of type %q cannot be translated for the fallback model's provider", t)
		}
		return err == nil
	})
	return parts, err
}

func openaiTools(v gjson.Result, r *Request) error {
	var err error
	v.ForEach(func(_, t gjson.Result) bool {
		if typ := t.Get("type").Str; typ != "function" {
			err = invalid("tools of type %q cannot be translated for the fallback model's provider", typ)
			return false
		}
		f := t.Get("function")
		tool := Tool{Name: f.Get("name").Str, Description: f.Get("description").Str}
		if p := f.Get("parameters"); p.Exists() && p.Type != gjson.Null {
			if tool.Schema, err = object("tools[].function.parameters", p); err != nil {
				return false
			}
		}
		if f.Get("strict").Exists() {
			r.drop("tools[].function.strict")
		}
		r.Tools = append(r.Tools, tool)
		return true
	})
	return err
}

func openaiToolChoice(v gjson.Result, r *Request) error {
	switch {
	case v.Type == gjson.Null:
	case v.Type == gjson.String:
		switch v.Str {
		case "auto":
		case "none":
			r.Choice.Mode = ToolNone
		case "required":
			r.Choice.Mode = ToolAny
		default:
			return invalid("tool_choice %q is not supported", v.Str)
		}
	case v.Get("type").Str == "function":
		r.Choice.Mode, r.Choice.Name = ToolNamed, v.Get("function.name").Str
	default:
		return invalid("tool_choice of type %q cannot be translated for the fallback model's provider", v.Get("type").Str)
	}
	return nil
}

func decodeAnthropic(root gjson.Result, r *Request) error {
	var err error
	root.ForEach(func(k, v gjson.Result) bool {
		key := k.Str
		switch key {
		case "model", "stream":
		case "max_tokens":
			r.MaxTokens, err = count(key, v)
		case "system":
			if v.Type == gjson.String {
				if v.Str != "" {
					r.System = append(r.System, v.Str)
				}
				break
			}
			v.ForEach(func(_, b gjson.Result) bool {
				if b.Get("cache_control").Exists() {
					r.drop("cache_control")
				}
				if s := b.Get("text").Str; s != "" {
					r.System = append(r.System, s)
				}
				return true
			})
		case "messages":
			err = anthropicMessages(v, r)
		case "temperature":
			r.Temperature, err = number(key, v)
		case "top_p":
			r.TopP, err = number(key, v)
		case "top_k":
			r.TopK, err = number(key, v)
		case "stop_sequences":
			r.Stop, err = stops(key, v)
		case "tools":
			v.ForEach(func(_, t gjson.Result) bool {
				if typ := t.Get("type").Str; typ != "" && typ != "custom" {
					err = invalid("the server tool %q cannot be translated for the fallback model's provider", typ)
					return false
				}
				tool := Tool{Name: t.Get("name").Str, Description: t.Get("description").Str}
				if s := t.Get("input_schema"); s.Exists() {
					if tool.Schema, err = object("tools[].input_schema", s); err != nil {
						return false
					}
				}
				if t.Get("cache_control").Exists() {
					r.drop("cache_control")
				}
				r.Tools = append(r.Tools, tool)
				return true
			})
		case "tool_choice":
			switch v.Get("type").Str {
			case "auto", "":
			case "any":
				r.Choice.Mode = ToolAny
			case "tool":
				r.Choice.Mode, r.Choice.Name = ToolNamed, v.Get("name").Str
			case "none":
				r.Choice.Mode = ToolNone
			default:
				err = invalid("tool_choice type %q is not supported", v.Get("type").Str)
			}
			r.Choice.NoParallel = v.Get("disable_parallel_tool_use").Bool()
		case "output_config", "output_format":
			f := v
			if key == "output_config" {
				f = v.Get("format")
				if v.Get("effort").Exists() {
					r.drop("output_config.effort")
				}
			}
			if f.Exists() && f.Type != gjson.Null {
				if t := f.Get("type").Str; t != "json_schema" {
					err = invalid("%s type %q is not supported", key, t)
					break
				}
				r.Format = Format{Kind: FormatSchema, Strict: true}
				r.Format.Schema, err = object(key+".schema", f.Get("schema"))
			}
		case "container", "mcp_servers":
			err = invalid("%q cannot be translated for the fallback model's provider", key)
		default:
			r.drop(bound(key, 64))
		}
		return err == nil
	})
	return err
}

func anthropicMessages(v gjson.Result, r *Request) error {
	if !v.IsArray() {
		return invalid(`"messages" must be an array`)
	}
	var err error
	v.ForEach(func(_, m gjson.Result) bool {
		msg := Message{Role: User}
		switch role := m.Get("role").Str; role {
		case "user":
		case "assistant":
			msg.Role = Assistant
		default:
			err = invalid("message role %q is not supported", role)
			return false
		}
		content := m.Get("content")
		if content.Type == gjson.String {
			msg.Parts = []Part{{Kind: Text, Text: content.Str}}
			r.Messages = append(r.Messages, msg)
			return true
		}
		content.ForEach(func(_, b gjson.Result) bool {
			if b.Get("cache_control").Exists() {
				r.drop("cache_control")
			}
			switch t := b.Get("type").Str; t {
			case "text":
				msg.Parts = append(msg.Parts, Part{Kind: Text, Text: b.Get("text").Str})
			case "image":
				p := Part{Kind: Image}
				switch src := b.Get("source"); src.Get("type").Str {
				case "base64":
					p.MIME, p.Data = src.Get("media_type").Str, src.Get("data").Str
				case "url":
					p.URL = src.Get("url").Str
				default:
					err = invalid("image sources of type %q cannot be translated for the fallback model's provider", src.Get("type").Str)
				}
				msg.Parts = append(msg.Parts, p)
			case "tool_use":
				p := Part{Kind: ToolCall, Name: b.Get("name").Str}
				p.ID, p.Signature = splitSignature(b.Get("id").Str)
				if p.Args, err = object("tool_use.input", b.Get("input")); err == nil {
					r.call(p.ID, p.Name, false)
					msg.Parts = append(msg.Parts, p)
				}
			case "tool_result":
				p := Part{Kind: ToolResult, IsError: b.Get("is_error").Bool()}
				p.ID, _ = splitSignature(b.Get("tool_use_id").Str)
				p.Name = r.calls[p.ID]
				p.Text, err = textOf("tool_result.content", b.Get("content"))
				msg.Parts = append(msg.Parts, p)
			case "thinking", "redacted_thinking":
				// Signed by Anthropic for Anthropic: no other provider can read it back.
				r.drop("thinking blocks")
			default:
				err = invalid("content blocks of type %q cannot be translated for the fallback model's provider", t)
			}
			return err == nil
		})
		if err == nil && len(msg.Parts) > 0 {
			r.Messages = append(r.Messages, msg)
		}
		return err == nil
	})
	return err
}

func decodeGemini(root gjson.Result, r *Request) error {
	var err error
	root.ForEach(func(k, v gjson.Result) bool {
		key := k.Str
		switch key {
		case "model":
		case "contents":
			err = geminiContents(v, r)
		case "systemInstruction", "system_instruction":
			v.Get("parts").ForEach(func(_, p gjson.Result) bool {
				if s := p.Get("text").Str; s != "" {
					r.System = append(r.System, s)
				}
				return true
			})
		case "tools":
			err = geminiTools(v, r)
		case "toolConfig", "tool_config":
			fc := v.Get("functionCallingConfig")
			names := fc.Get("allowedFunctionNames").Array()
			switch fc.Get("mode").Str {
			case "ANY":
				r.Choice.Mode = ToolAny
				if len(names) == 1 {
					r.Choice.Mode, r.Choice.Name = ToolNamed, names[0].Str
				} else if len(names) > 1 {
					r.drop("toolConfig.functionCallingConfig.allowedFunctionNames")
				}
			case "NONE":
				r.Choice.Mode = ToolNone
			}
		case "generationConfig", "generation_config":
			err = geminiConfig(v, r)
		case "cachedContent", "cached_content":
			err = invalid("%q names state stored at Gemini, which the fallback model's provider cannot read", key)
		default:
			r.drop(bound(key, 64))
		}
		return err == nil
	})
	return err
}

func geminiContents(v gjson.Result, r *Request) error {
	var err error
	n := 0 // tool calls so far, for the ids of calls that came without one
	v.ForEach(func(_, c gjson.Result) bool {
		msg := Message{Role: User}
		if c.Get("role").Str == "model" {
			msg.Role = Assistant
			clear(r.pending) // results answer the latest model turn's calls
		}
		c.Get("parts").ForEach(func(_, p gjson.Result) bool {
			switch {
			case p.Get("thought").Bool():
				r.drop("thought parts")
			case p.Get("text").Exists():
				msg.Parts = append(msg.Parts, Part{Kind: Text, Text: p.Get("text").Str})
			case p.Get("inlineData").Exists():
				d := p.Get("inlineData")
				mime := d.Get("mimeType").Str
				if !strings.HasPrefix(mime, "image/") {
					err = invalid("inline data of type %q cannot be translated for the fallback model's provider (images only)", mime)
					return false
				}
				msg.Parts = append(msg.Parts, Part{Kind: Image, MIME: mime, Data: d.Get("data").Str})
			case p.Get("functionCall").Exists():
				fc := p.Get("functionCall")
				part := Part{Kind: ToolCall, Name: fc.Get("name").Str, ID: fc.Get("id").Str, Signature: p.Get("thoughtSignature").Str}
				if part.ID == "" {
					part.ID = "call_" + strconv.Itoa(n)
				}
				n++
				part.Args = "{}"
				if a := fc.Get("args"); a.Exists() {
					if part.Args, err = object("functionCall.args", a); err != nil {
						return false
					}
				}
				r.call(part.ID, part.Name, true)
				msg.Parts = append(msg.Parts, part)
			case p.Get("functionResponse").Exists():
				fr := p.Get("functionResponse")
				part := Part{Kind: ToolResult, Name: fr.Get("name").Str, ID: fr.Get("id").Str, Text: fr.Get("response").Raw}
				if part.ID == "" {
					part.ID = r.answer(part.Name)
				}
				msg.Parts = append(msg.Parts, part)
			default:
				err = invalid("Gemini parts other than text, inlineData, functionCall and functionResponse cannot be translated for the fallback model's provider")
			}
			return err == nil
		})
		if err == nil && len(msg.Parts) > 0 {
			r.Messages = append(r.Messages, msg)
		}
		return err == nil
	})
	return err
}

func geminiTools(v gjson.Result, r *Request) error {
	var err error
	v.ForEach(func(_, t gjson.Result) bool {
		t.ForEach(func(k, decls gjson.Result) bool {
			if k.Str != "functionDeclarations" && k.Str != "function_declarations" {
				err = invalid("the Gemini tool %q cannot be translated for the fallback model's provider", k.Str)
				return false
			}
			decls.ForEach(func(_, d gjson.Result) bool {
				tool := Tool{Name: d.Get("name").Str, Description: d.Get("description").Str}
				if s := d.Get("parametersJsonSchema"); s.Exists() {
					tool.Schema, err = object("parametersJsonSchema", s)
				} else if s := d.Get("parameters"); s.Exists() {
					tool.Schema, err = openAPISchema("parameters", s)
				}
				r.Tools = append(r.Tools, tool)
				return err == nil
			})
			return err == nil
		})
		return err == nil
	})
	return err
}

func geminiConfig(v gjson.Result, r *Request) error {
	var err error
	mime := ""
	v.ForEach(func(k, f gjson.Result) bool {
		key := k.Str
		switch key {
		case "temperature":
			r.Temperature, err = number(key, f)
		case "topP":
			r.TopP, err = number(key, f)
		case "topK":
			r.TopK, err = number(key, f)
		case "maxOutputTokens":
			r.MaxTokens, err = count(key, f)
		case "stopSequences":
			r.Stop, err = stops(key, f)
		case "candidateCount":
			if f.Int() > 1 {
				err = invalid(`"candidateCount" above 1 cannot be translated for the fallback model's provider`)
			}
		case "responseMimeType":
			mime = f.Str
		case "responseJsonSchema", "responseSchema":
			r.Format.Kind = FormatSchema
			if key == "responseSchema" {
				r.Format.Schema, err = openAPISchema(key, f)
			} else {
				r.Format.Schema, err = object(key, f)
			}
		case "responseModalities":
			for _, m := range f.Array() {
				if m.Str != "TEXT" {
					err = invalid(`"responseModalities" other than TEXT cannot be translated for the fallback model's provider`)
				}
			}
		case "speechConfig":
			err = invalid("%q cannot be translated for the fallback model's provider", key)
		default:
			r.drop("generationConfig." + bound(key, 64))
		}
		return err == nil
	})
	switch {
	case err != nil:
	case mime == "application/json" && r.Format.Kind == FormatText:
		r.Format.Kind = FormatJSON
	case mime != "" && mime != "text/plain" && mime != "application/json":
		err = invalid("responseMimeType %q cannot be translated for the fallback model's provider", mime)
	}
	return err
}

// openAPISchema turns a Gemini Schema (OpenAPI 3.0 subset, types in capitals: "OBJECT") into
// the JSON Schema the other providers read: type names in lower case, the rest as it was.
func openAPISchema(field string, v gjson.Result) (string, error) {
	if !v.IsObject() {
		return "", invalid("%q must be an object", field)
	}
	return string(lowerTypes(nil, v, 0)), nil
}

func lowerTypes(b []byte, v gjson.Result, depth int) []byte {
	switch {
	case depth > 64:
		return append(b, v.Raw...)
	case v.IsObject():
		b = append(b, '{')
		first := true
		v.ForEach(func(k, e gjson.Result) bool {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendString(b, k.Str)
			b = append(b, ':')
			if k.Str == "type" && e.Type == gjson.String {
				b = appendString(b, strings.ToLower(e.Str))
			} else {
				b = lowerTypes(b, e, depth+1)
			}
			return true
		})
		return append(b, '}')
	case v.IsArray():
		b = append(b, '[')
		for i, e := range v.Array() {
			if i > 0 {
				b = append(b, ',')
			}
			b = lowerTypes(b, e, depth+1)
		}
		return append(b, ']')
	}
	return append(b, v.Raw...)
}
