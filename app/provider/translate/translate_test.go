package translate_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"tokenguard/app/apperr"
	"tokenguard/app/provider/translate"
)

// translated decodes body from caller and encodes it for target.
func translated(t *testing.T, caller, target translate.API, body string) (translate.Upstream, *translate.Request, error) {
	t.Helper()
	r, err := translate.DecodeRequest(caller, []byte(body), false, false)
	if err != nil {
		return translate.Upstream{}, nil, err
	}
	up, err := translate.EncodeRequest(r, target, models[target], 100)
	return up, r, err
}

// A field with no translation is refused with INVALID_REQUEST naming it when the request
// would mean something else without it; one that only tunes sampling, billing or storage is
// dropped and named in Request.Dropped.
func TestUntranslatable(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct {
		name           string
		caller, target translate.API
		body           string
		refused        string // a word of the 400's message
		dropped        string // Request.Dropped, joined
	}{
		{"openai n", translate.OpenAI, translate.Anthropic, `{"n":2,` + msgs + `}`, `"n"`, ""},
		{"openai audio part", translate.OpenAI, translate.Gemini, `{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AA==","format":"wav"}}]}]}`, "input_audio", ""},
		{"openai custom tool", translate.OpenAI, translate.Anthropic, `{"tools":[{"type":"custom","custom":{"name":"x"}}],` + msgs + `}`, "custom", ""},
		{"openai legacy functions", translate.OpenAI, translate.Gemini, `{"functions":[],` + msgs + `}`, "functions", ""},
		{"openai sampling and storage", translate.OpenAI, translate.Anthropic, `{"seed":1,"user":"u","store":true,"logprobs":true,` + msgs + `}`, "", "seed, user, store, logprobs"},
		{"openai top_k has no OpenAI field", translate.Anthropic, translate.OpenAI, `{"max_tokens":5,"top_k":3,` + msgs + `}`, "", "top_k"},
		{"openai JSON mode to Anthropic", translate.OpenAI, translate.Anthropic, `{"response_format":{"type":"json_object"},` + msgs + `}`, "", "JSON mode (response_format json_object)"},
		{"temperature or top_p for Claude", translate.Gemini, translate.Anthropic, `{"generationConfig":{"temperature":0.5,"topP":0.9},"contents":[{"parts":[{"text":"hi"}]}]}`, "", "top_p (Anthropic takes temperature or top_p, not both)"},
		{"temperature above Anthropic's range", translate.OpenAI, translate.Anthropic, `{"temperature":1.5,` + msgs + `}`, "", "temperature above 1 (sent as 1)"},
		{"image URL to Gemini", translate.OpenAI, translate.Gemini, `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}`, "inline", ""},
		{"tool result of no known call to Gemini", translate.OpenAI, translate.Gemini, `{"messages":[{"role":"tool","tool_call_id":"call_x","content":"1"}]}`, "names no earlier tool call", ""},
		{"anthropic server tool", translate.Anthropic, translate.OpenAI, `{"max_tokens":5,"tools":[{"type":"web_search_20250305","name":"web_search"}],` + msgs + `}`, "web_search_20250305", ""},
		{"anthropic document", translate.Anthropic, translate.Gemini, `{"max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","data":"x","media_type":"text/plain"}}]}]}`, "document", ""},
		{"anthropic MCP servers", translate.Anthropic, translate.OpenAI, `{"max_tokens":5,"mcp_servers":[],` + msgs + `}`, "mcp_servers", ""},
		{"anthropic metadata, thinking, cache hints", translate.Anthropic, translate.Gemini, `{"max_tokens":5,"metadata":{"user_id":"u"},"thinking":{"type":"enabled","budget_tokens":1024},"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}],` + msgs + `}`, "", "metadata, thinking, cache_control"},
		{"gemini search tool", translate.Gemini, translate.OpenAI, `{"tools":[{"googleSearch":{}}],"contents":[{"parts":[{"text":"hi"}]}]}`, "googleSearch", ""},
		{"gemini file data", translate.Gemini, translate.Anthropic, `{"contents":[{"parts":[{"fileData":{"fileUri":"files/abc","mimeType":"image/png"}}]}]}`, "inlineData", ""},
		{"gemini cached content", translate.Gemini, translate.OpenAI, `{"cachedContent":"cachedContents/x","contents":[{"parts":[{"text":"hi"}]}]}`, "cachedContent", ""},
		{"gemini candidates", translate.Gemini, translate.Anthropic, `{"generationConfig":{"candidateCount":2},"contents":[{"parts":[{"text":"hi"}]}]}`, "candidateCount", ""},
		{"gemini audio inline", translate.Gemini, translate.OpenAI, `{"contents":[{"parts":[{"inlineData":{"mimeType":"audio/wav","data":"AA=="}}]}]}`, "audio/wav", ""},
		{"gemini safety and thinking", translate.Gemini, translate.Anthropic, `{"safetySettings":[],"generationConfig":{"thinkingConfig":{"thinkingBudget":0},"seed":3},"contents":[{"parts":[{"text":"hi"}]}]}`, "", "safetySettings, generationConfig.thinkingConfig, generationConfig.seed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, r, err := translated(t, tt.caller, tt.target, tt.body)
			if tt.refused != "" {
				if apperr.Code(err) != apperr.InvalidRequest || !strings.Contains(apperr.Message(err), tt.refused) {
					t.Fatalf("err = %v, want INVALID_REQUEST naming %s", err, tt.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(r.Dropped, ", "); got != tt.dropped {
				t.Errorf("dropped %q, want %q", got, tt.dropped)
			}
		})
	}
}

// Tool choice, structured output and schemas mean the same on every side.
func TestRequestFields(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	const schema = `{"type":"object","properties":{"a":{"type":"string"}}}`
	tests := []struct {
		name           string
		caller, target translate.API
		body           string
		path, want     string // a JSON path of the translated body and its raw value
	}{
		{"required is any", translate.OpenAI, translate.Anthropic, `{"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required",` + msgs + `}`, "tool_choice", `{"type":"any"}`},
		{"named tool to Gemini", translate.OpenAI, translate.Gemini, `{"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"f"}},` + msgs + `}`, "toolConfig", `{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["f"]}}`},
		{"no parallel calls", translate.OpenAI, translate.Anthropic, `{"tools":[{"type":"function","function":{"name":"f"}}],"parallel_tool_calls":false,` + msgs + `}`, "tool_choice", `{"type":"auto","disable_parallel_tool_use":true}`},
		{"Anthropic none", translate.Anthropic, translate.OpenAI, `{"max_tokens":5,"tools":[{"name":"f","input_schema":` + schema + `}],"tool_choice":{"type":"none"},` + msgs + `}`, "tool_choice", `"none"`},
		{"Gemini NONE", translate.Gemini, translate.Anthropic, `{"tools":[{"functionDeclarations":[{"name":"f"}]}],"toolConfig":{"functionCallingConfig":{"mode":"NONE"}},"contents":[{"parts":[{"text":"hi"}]}]}`, "tool_choice", `{"type":"none"}`},
		{"schema output to Anthropic", translate.OpenAI, translate.Anthropic, `{"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":` + schema + `,"strict":true}},` + msgs + `}`, "output_config", `{"format":{"type":"json_schema","schema":` + schema + `}}`},
		{"schema output to Gemini", translate.OpenAI, translate.Gemini, `{"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":` + schema + `}},` + msgs + `}`, "generationConfig.responseJsonSchema", schema},
		{"JSON mode to Gemini", translate.OpenAI, translate.Gemini, `{"response_format":{"type":"json_object"},` + msgs + `}`, "generationConfig.responseMimeType", `"application/json"`},
		{"Anthropic schema output to OpenAI", translate.Anthropic, translate.OpenAI, `{"max_tokens":5,"output_config":{"format":{"type":"json_schema","schema":` + schema + `}},` + msgs + `}`, "response_format", `{"type":"json_schema","json_schema":{"name":"response","schema":` + schema + `,"strict":true}}`},
		{"Gemini OpenAPI schema in lower case", translate.Gemini, translate.OpenAI, `{"generationConfig":{"responseMimeType":"application/json","responseSchema":{"type":"OBJECT","properties":{"a":{"type":"STRING"}}}},"contents":[{"parts":[{"text":"hi"}]}]}`, "response_format.json_schema.schema", schema},
		{"cap to OpenAI", translate.Anthropic, translate.OpenAI, `{"max_tokens":5,` + msgs + `}`, "max_completion_tokens", `100`},
		{"Gemini thought signature restored", translate.Anthropic, translate.Gemini, `{"max_tokens":5,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"tool_use","id":"call_0__tgsig_CiQBjz1rX-_sig","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_0__tgsig_CiQBjz1rX-_sig","content":"ok"}]}]}`, "contents.1.parts.0.thoughtSignature", `"CiQBjz1rX+/sig=="`},
		{"signature stripped for OpenAI", translate.Anthropic, translate.OpenAI, `{"max_tokens":5,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"tool_use","id":"call_0__tgsig_CiQBjz1rX-_sig","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_0__tgsig_CiQBjz1rX-_sig","content":"ok"}]}]}`, "messages.2.tool_call_id", `"call_0"`},
		{"foreign call to Gemini skips validation", translate.OpenAI, translate.Gemini, `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1","content":"plain text"}]}`, "contents.1.parts.0.thoughtSignature", `"skip_thought_signature_validator"`},
		{"text result to Gemini is an object", translate.OpenAI, translate.Gemini, `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1","content":"plain text"}]}`, "contents.2.parts.0.functionResponse", `{"name":"f","response":{"output":"plain text"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up, _, err := translated(t, tt.caller, tt.target, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if !gjson.ValidBytes(up.Body) {
				t.Fatalf("not JSON: %s", up.Body)
			}
			if got := gjson.GetBytes(up.Body, tt.path).Raw; got != tt.want {
				t.Errorf("%s = %s, want %s\nin %s", tt.path, got, tt.want, up.Body)
			}
		})
	}
}

// An upstream error reaches the caller in its own provider's error shape, status kept.
func TestEncodeError(t *testing.T) {
	tests := []struct {
		caller translate.API
		status int
		want   string
	}{
		{translate.OpenAI, 429, `{"error":{"message":"slow down","type":"rate_limit_error","param":null,"code":null}}`},
		{translate.Anthropic, 529, `{"type":"error","error":{"type":"overloaded_error","message":"slow down"}}`},
		{translate.Gemini, 503, `{"error":{"code":503,"message":"slow down","status":"UNAVAILABLE"}}`},
		{translate.Anthropic, 400, `{"type":"error","error":{"type":"invalid_request_error","message":"slow down"}}`},
	}
	for _, tt := range tests {
		if got := string(translate.EncodeError(nil, tt.caller, tt.status, "slow down")); got != tt.want {
			t.Errorf("%s %d: %s, want %s", tt.caller, tt.status, got, tt.want)
		}
	}
	if got := translate.ErrorMessage([]byte(`{"error":{"message":"` + strings.Repeat("é", 3000) + `"}}`)); len(got) > translate.MaxErrorMessage || !strings.HasPrefix(got, "é") {
		t.Errorf("error message of %d bytes", len(got))
	}
	// The key behind a translated request is the project's or the server's: a provider that
	// echoes it does not reach the caller with it.
	if got := translate.ErrorMessage([]byte(`{"error":{"message":"invalid x-api-key sk-ant-api03-AbC_d-123"}}`)); strings.Contains(got, "sk-ant") || !strings.Contains(got, "[redacted]") {
		t.Errorf("echoed key relayed as %q", got)
	}
}

// A stream that breaks off still ends in a well-formed closing of the caller's format, and a
// provider's error event reaches the caller in its stream error shape.
func TestStreamBrokenOff(t *testing.T) {
	r := &translate.Request{IncludeUsage: true}
	tests := []struct {
		caller, target translate.API
		events         [][2]string
		want           []string
	}{
		{translate.OpenAI, translate.Anthropic, [][2]string{{"message_start", `{"type":"message_start","message":{"id":"m1","usage":{"input_tokens":5}}}`}, {"error", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`}},
			[]string{`"error":{"message":"Overloaded"`, `"prompt_tokens":5`, "data: [DONE]"}},
		{translate.Anthropic, translate.OpenAI, [][2]string{{"", `{"id":"c1","choices":[{"index":0,"delta":{"content":"Hi"}}]}`}},
			[]string{`"text_delta","text":"Hi"`, "content_block_stop", "message_delta", "message_stop"}},
		{translate.Gemini, translate.OpenAI, [][2]string{{"", `{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":"{\"a\":"}}]}}]}`}},
			[]string{`"functionCall":{"id":"call_1","name":"f","args":{}}`}},
	}
	for _, tt := range tests {
		st := translate.NewStream(tt.caller, tt.target, "m", r, now)
		var out []byte
		for _, e := range tt.events {
			out = append(out, st.Event([]byte(e[0]), []byte(e[1]))...)
		}
		out = append(out, st.End()...)
		for _, w := range tt.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s from %s: no %s in\n%s", tt.caller, tt.target, w, out)
			}
		}
		if more := st.Event(nil, []byte(`{"id":"x"}`)); len(more) != 0 || len(st.End()) != 0 {
			t.Errorf("%s from %s: output after the end", tt.caller, tt.target)
		}
	}
}

// OpenAI's reasoning models refuse temperature, top_p and stop: a fallback to one drops them,
// named; other models get them.
func TestReasoningModels(t *testing.T) {
	body := `{"max_tokens":5,"temperature":0.3,"top_p":0.9,"stop_sequences":["END"],"messages":[{"role":"user","content":"hi"}]}`
	tests := []struct {
		model, dropped string
	}{
		{"o4-mini", "temperature (not taken by o4-mini), top_p (not taken by o4-mini), stop (not taken by o4-mini)"},
		{"gpt-5.1", "temperature (not taken by gpt-5.1), top_p (not taken by gpt-5.1), stop (not taken by gpt-5.1)"},
		{"gpt-5-chat-latest", ""},
		{"gpt-4o-mini", ""},
		{"o1x-not-reasoning", ""},
	}
	for _, tt := range tests {
		r, err := translate.DecodeRequest(translate.Anthropic, []byte(body), false, false)
		if err != nil {
			t.Fatal(err)
		}
		up, err := translate.EncodeRequest(r, translate.OpenAI, tt.model, 5)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(r.Dropped, ", "); got != tt.dropped {
			t.Errorf("%s: dropped %q, want %q", tt.model, got, tt.dropped)
		}
		if has := gjson.GetBytes(up.Body, "temperature").Exists(); has != (tt.dropped == "") {
			t.Errorf("%s: temperature sent %v", tt.model, has)
		}
	}
}

// A stream with more tool calls than MaxToolCalls relays the first MaxToolCalls whole: the calls
// past it, and their arguments, reach the caller nowhere (not under an index never opened, not
// appended to the last call's arguments).
func TestStreamToolCallBound(t *testing.T) {
	for _, caller := range []translate.API{translate.OpenAI, translate.Gemini} {
		st := translate.NewStream(caller, translate.Anthropic, "m", &translate.Request{}, now)
		var out []byte
		out = append(out, st.Event([]byte("message_start"), []byte(`{"type":"message_start","message":{"id":"m1","usage":{"input_tokens":5}}}`))...)
		for i := 0; i <= translate.MaxToolCalls; i++ {
			out = append(out, st.Event([]byte("content_block_start"), []byte(fmt.Sprintf(
				`{"type":"content_block_start","index":%d,"content_block":{"type":"tool_use","id":"toolu_%d","name":"f","input":{}}}`, i, i)))...)
			out = append(out, st.Event([]byte("content_block_delta"), []byte(fmt.Sprintf(
				`{"type":"content_block_delta","index":%d,"delta":{"type":"input_json_delta","partial_json":"{\"n\":%d}"}}`, i, i)))...)
			out = append(out, st.Event([]byte("content_block_stop"), []byte(fmt.Sprintf(`{"type":"content_block_stop","index":%d}`, i)))...)
		}
		out = append(out, st.End()...)
		s := string(out)
		last, over := fmt.Sprintf(`%d}`, translate.MaxToolCalls-1), fmt.Sprintf(`%d}`, translate.MaxToolCalls)
		if !strings.Contains(s, `toolu_`+fmt.Sprint(translate.MaxToolCalls-1)) || !strings.Contains(s, last) {
			t.Errorf("%s: call %d or its arguments missing", caller, translate.MaxToolCalls-1)
		}
		if strings.Contains(s, `toolu_`+fmt.Sprint(translate.MaxToolCalls)+`"`) || strings.Contains(s, `:`+over) || strings.Contains(s, `\":`+over) {
			t.Errorf("%s: call %d past the bound, or its arguments, relayed", caller, translate.MaxToolCalls)
		}
	}
}
