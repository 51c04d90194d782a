package translate

import (
	"strconv"
	"time"

	"github.com/tidwall/gjson"

	"tokenguard/app/pricing"
	"tokenguard/app/provider"
)

// DecodeResponse reads a target provider's successful non-streamed answer. ok is false for a
// body that is not one.
func DecodeResponse(api API, body []byte) (resp Response, ok bool) {
	if !gjson.ValidBytes(body) {
		return resp, false
	}
	root := gjson.ParseBytes(body)
	switch api {
	case OpenAI:
		resp.ID, resp.Model = root.Get("id").Str, root.Get("model").Str
		ch := root.Get("choices.0")
		msg := ch.Get("message")
		if s := msg.Get("content").Str; s != "" {
			resp.Parts = append(resp.Parts, Part{Kind: Text, Text: s})
		} else if s := msg.Get("refusal").Str; s != "" {
			resp.Parts = append(resp.Parts, Part{Kind: Text, Text: s})
		}
		msg.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
			resp.Parts = append(resp.Parts, Part{Kind: ToolCall, ID: tc.Get("id").Str,
				Name: tc.Get("function.name").Str, Args: argsText(tc.Get("function.arguments").Str)})
			return true
		})
		resp.Finish = openaiFinish(ch.Get("finish_reason").Str)
		resp.Usage = openaiUsage(root.Get("usage"))
	case Anthropic:
		resp.ID, resp.Model = root.Get("id").Str, root.Get("model").Str
		root.Get("content").ForEach(func(_, b gjson.Result) bool {
			switch b.Get("type").Str {
			case "text":
				resp.Parts = append(resp.Parts, Part{Kind: Text, Text: b.Get("text").Str})
			case "tool_use":
				resp.Parts = append(resp.Parts, Part{Kind: ToolCall, ID: b.Get("id").Str, Name: b.Get("name").Str, Args: b.Get("input").Raw})
			}
			return true
		})
		resp.Finish = anthropicFinish(root.Get("stop_reason").Str)
		resp.Usage = anthropicUsage(root.Get("usage"))
	case Gemini:
		resp.ID, resp.Model = root.Get("responseId").Str, root.Get("modelVersion").Str
		cand := root.Get("candidates.0")
		n := 0
		cand.Get("content.parts").ForEach(func(_, p gjson.Result) bool {
			switch {
			case p.Get("thought").Bool():
			case p.Get("functionCall").Exists():
				resp.Parts = append(resp.Parts, geminiCall(p, &n))
			case p.Get("text").Exists():
				resp.Parts = append(resp.Parts, Part{Kind: Text, Text: p.Get("text").Str})
			}
			return true
		})
		resp.Finish = geminiFinish(cand.Get("finishReason").Str)
		resp.Usage = geminiUsage(root.Get("usageMetadata"))
	default:
		return resp, false
	}
	for _, p := range resp.Parts {
		if p.Kind == ToolCall && (resp.Finish == FinishStop || resp.Finish == FinishNone) {
			// A turn that calls a tool ends for the tool, whatever else it said first
			// (Gemini says STOP, some OpenAI-compatible servers say "stop").
			resp.Finish = FinishToolUse
		}
	}
	return resp, true
}

// argsText is a tool call's arguments as an object's text ("{}" for none).
func argsText(s string) string {
	if s == "" {
		return "{}"
	}
	return s
}

// geminiCall is a functionCall part as a tool call: its id (Gemini may send none: then the
// n-th call of the answer), with the thought signature carried in it.
func geminiCall(p gjson.Result, n *int) Part {
	fc := p.Get("functionCall")
	id := fc.Get("id").Str
	if id == "" {
		id = "call_" + strconv.Itoa(*n)
	}
	*n++
	args := fc.Get("args").Raw
	if args == "" {
		args = "{}"
	}
	return Part{Kind: ToolCall, ID: withSignature(id, p.Get("thoughtSignature").Str), Name: fc.Get("name").Str, Args: args}
}

func openaiFinish(s string) Finish {
	switch s {
	case "stop":
		return FinishStop
	case "length":
		return FinishLength
	case "tool_calls", "function_call":
		return FinishToolUse
	case "content_filter":
		return FinishFilter
	}
	return FinishNone
}

func anthropicFinish(s string) Finish {
	switch s {
	case "end_turn", "pause_turn":
		return FinishStop
	case "stop_sequence":
		return FinishStopSequence
	case "max_tokens", "model_context_window_exceeded":
		return FinishLength
	case "tool_use":
		return FinishToolUse
	case "refusal":
		return FinishFilter
	}
	return FinishNone
}

func geminiFinish(s string) Finish {
	switch s {
	case "":
		return FinishNone
	case "STOP":
		return FinishStop
	case "MAX_TOKENS":
		return FinishLength
	case "MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "FINISH_REASON_UNSPECIFIED", "OTHER":
		return FinishStop
	}
	// SAFETY, RECITATION, LANGUAGE, BLOCKLIST, PROHIBITED_CONTENT, SPII, IMAGE_SAFETY …
	return FinishFilter
}

// openaiUsage: prompt_tokens include the cached ones, completion_tokens the reasoning ones.
func openaiUsage(u gjson.Result) Usage {
	prompt := provider.TokenCount(u.Get("prompt_tokens"))
	cached := min(provider.TokenCount(u.Get("prompt_tokens_details.cached_tokens")), prompt)
	out := provider.TokenCount(u.Get("completion_tokens"))
	return Usage{Input: prompt - cached, CacheRead: cached, Output: out,
		Reasoning: min(provider.TokenCount(u.Get("completion_tokens_details.reasoning_tokens")), out)}
}

// anthropicUsage: input_tokens exclude cache reads and writes; output_tokens include
// thinking, which Anthropic does not count apart.
func anthropicUsage(u gjson.Result) Usage {
	return Usage{Input: provider.TokenCount(u.Get("input_tokens")), CacheRead: provider.TokenCount(u.Get("cache_read_input_tokens")),
		CacheWrite: provider.TokenCount(u.Get("cache_creation_input_tokens")), Output: provider.TokenCount(u.Get("output_tokens"))}
}

// geminiUsage: promptTokenCount includes the cached tokens; candidatesTokenCount excludes the
// thoughts, which are billed as output.
func geminiUsage(u gjson.Result) Usage {
	prompt := provider.TokenCount(u.Get("promptTokenCount"))
	cached := min(provider.TokenCount(u.Get("cachedContentTokenCount")), prompt)
	thoughts := provider.TokenCount(u.Get("thoughtsTokenCount"))
	return Usage{Input: prompt - cached, CacheRead: cached, Output: pricing.SatAdd(provider.TokenCount(u.Get("candidatesTokenCount")), thoughts), Reasoning: thoughts}
}

// EncodeResponse writes resp as caller's API answers. model names the model that answered
// (the fallback), as every provider's body does; now is the OpenAI "created" time.
func EncodeResponse(b []byte, caller API, resp *Response, model string, now time.Time) []byte {
	switch caller {
	case OpenAI:
		o := open(b).str("id", openaiID(resp.ID)).str("object", "chat.completion").num("created", now.Unix()).str("model", model)
		o.key("choices")
		ch := open(append(o.b, '[')).num("index", 0).key("message")
		m := Message{Role: Assistant, Parts: resp.Parts}
		ch.b = openaiAssistant(ch.b, m)
		ch.str("finish_reason", openaiReason(resp.Finish))
		o.b = append(ch.close(), ']')
		o.key("usage")
		o.b = appendOpenAIUsage(o.b, resp.Usage)
		return o.close()
	case Anthropic:
		o := open(b).str("id", anthropicID(resp.ID)).str("type", "message").str("role", "assistant").str("model", model)
		o.key("content")
		o.b = anthropicBlocks(o.b, resp.Parts)
		o.str("stop_reason", anthropicReason(resp.Finish)).raw("stop_sequence", "null")
		o.key("usage")
		o.b = appendAnthropicUsage(o.b, resp.Usage)
		return o.close()
	default:
		o := open(b).key("candidates")
		c := open(append(o.b, '[')).key("content")
		c.b = geminiContent(c.b, resp.Parts)
		c.str("finishReason", geminiReason(resp.Finish)).num("index", 0)
		o.b = append(c.close(), ']')
		o.key("usageMetadata")
		o.b = appendGeminiUsage(o.b, resp.Usage)
		return o.str("modelVersion", model).str("responseId", resp.ID).close()
	}
}

// geminiContent is a model turn's content: text parts and functionCall parts, each with the
// thought signature a Gemini caller's own history would carry (none: the answer came from
// another provider).
func geminiContent(b []byte, parts []Part) []byte {
	o := open(b).key("parts")
	o.b = append(o.b, '[')
	for i, p := range parts {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		po := open(o.b)
		if p.Kind == ToolCall {
			po.key("functionCall")
			po.b = open(po.b).str("id", p.ID).str("name", p.Name).raw("args", p.Args).close()
		} else {
			po.str("text", p.Text)
		}
		o.b = po.close()
	}
	if len(parts) == 0 {
		o.b = append(o.b, `{"text":""}`...)
	}
	o.b = append(o.b, ']')
	return o.str("role", "model").close()
}

// openaiID and anthropicID are the answer's id as the serving provider gave it, or one in
// the caller's style when it gave none.
func openaiID(id string) string {
	if id == "" {
		return "chatcmpl-tokenguard"
	}
	return id
}

func anthropicID(id string) string {
	if id == "" {
		return "msg_tokenguard"
	}
	return id
}

func openaiReason(f Finish) string {
	switch f {
	case FinishLength:
		return "length"
	case FinishToolUse:
		return "tool_calls"
	case FinishFilter:
		return "content_filter"
	}
	return "stop"
}

func anthropicReason(f Finish) string {
	switch f {
	case FinishStopSequence:
		return "stop_sequence"
	case FinishLength:
		return "max_tokens"
	case FinishToolUse:
		return "tool_use"
	case FinishFilter:
		return "refusal"
	}
	return "end_turn"
}

func geminiReason(f Finish) string {
	switch f {
	case FinishLength:
		return "MAX_TOKENS"
	case FinishFilter:
		return "SAFETY"
	}
	return "STOP"
}

func appendOpenAIUsage(b []byte, u Usage) []byte {
	prompt := u.prompt()
	o := open(b).num("prompt_tokens", prompt).num("completion_tokens", u.Output).num("total_tokens", pricing.SatAdd(prompt, u.Output))
	o.key("prompt_tokens_details")
	o.b = open(o.b).num("cached_tokens", u.CacheRead).close()
	o.key("completion_tokens_details")
	o.b = open(o.b).num("reasoning_tokens", u.Reasoning).close()
	return o.close()
}

func appendAnthropicUsage(b []byte, u Usage) []byte {
	return open(b).num("input_tokens", u.Input).num("cache_creation_input_tokens", u.CacheWrite).
		num("cache_read_input_tokens", u.CacheRead).num("output_tokens", u.Output).close()
}

func appendGeminiUsage(b []byte, u Usage) []byte {
	prompt := u.prompt()
	o := open(b).num("promptTokenCount", prompt).num("candidatesTokenCount", u.Output-u.Reasoning)
	if u.CacheRead > 0 {
		o.num("cachedContentTokenCount", u.CacheRead)
	}
	if u.Reasoning > 0 {
		o.num("thoughtsTokenCount", u.Reasoning)
	}
	return o.num("totalTokenCount", pricing.SatAdd(prompt, u.Output)).close()
}

// ErrorMessage reads the message of a provider's error body (bounded), or "" when it has
// none.
func ErrorMessage(body []byte) string {
	m := gjson.GetBytes(body, "error.message")
	if m.Type != gjson.String {
		return ""
	}
	return errorText(m.Str)
}

// errorText is a provider's error message as relayed to the caller: credentials redacted,
// at most MaxErrorMessage bytes.
func errorText(s string) string { return bound(provider.RedactCredentials(s), MaxErrorMessage) }

// EncodeError writes an upstream error, status and message, in caller's error shape.
func EncodeError(b []byte, caller API, status int, message string) []byte {
	oa, an, ge := errorName(status)
	switch caller {
	case OpenAI:
		o := open(b).key("error")
		o.b = open(o.b).str("message", message).str("type", oa).raw("param", "null").raw("code", "null").close()
		return o.close()
	case Anthropic:
		o := open(b).str("type", "error").key("error")
		o.b = open(o.b).str("type", an).str("message", message).close()
		return o.close()
	default:
		o := open(b).key("error")
		o.b = open(o.b).num("code", int64(status)).str("message", message).str("status", ge).close()
		return o.close()
	}
}

// errorNames are the APIs' names for an error status: OpenAI's error type, Anthropic's error
// type, Gemini's status. The last row serves every other 5xx, the first every other 4xx.
var errorNames = [...]struct {
	status                    int
	openai, anthropic, gemini string
}{
	{400, "invalid_request_error", "invalid_request_error", "INVALID_ARGUMENT"},
	{401, "authentication_error", "authentication_error", "UNAUTHENTICATED"},
	{403, "permission_error", "permission_error", "PERMISSION_DENIED"},
	{404, "not_found_error", "not_found_error", "NOT_FOUND"},
	{413, "invalid_request_error", "request_too_large", "INVALID_ARGUMENT"},
	{429, "rate_limit_error", "rate_limit_error", "RESOURCE_EXHAUSTED"},
	{503, "server_error", "overloaded_error", "UNAVAILABLE"},
	{504, "server_error", "api_error", "DEADLINE_EXCEEDED"},
	{529, "server_error", "overloaded_error", "UNAVAILABLE"},
	{500, "server_error", "api_error", "INTERNAL"},
}

func errorName(status int) (openai, anthropic, gemini string) {
	e := errorNames[0]
	if status >= 500 {
		e = errorNames[len(errorNames)-1]
	}
	for _, n := range errorNames {
		if n.status == status {
			e = n
		}
	}
	return e.openai, e.anthropic, e.gemini
}
