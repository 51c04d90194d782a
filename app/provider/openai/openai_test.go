package openai_test

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"tokenguard/app/apperr"
	"tokenguard/app/pricing"
	"tokenguard/app/provider"
	"tokenguard/app/provider/openai"
	"tokenguard/app/provider/openai/openaitest"
	"tokenguard/app/provider/providertest"
)

func chatRequest(model string, stream bool) provider.Request {
	return provider.Request{Method: "POST", Path: openai.ChatCompletions, Body: []byte(fmt.Sprintf(
		`{"model":%q,"stream":%v,"messages":[{"role":"user","content":"Say hello"}]}`, model, stream))}
}

func fakeUpstream(tb testing.TB, u pricing.Usage, chunks []string, cut int) providertest.Upstream {
	s := openaitest.New(tb)
	s.Set(openaitest.Behavior{
		Usage:     openaitest.Usage{Prompt: u.Input + u.CacheRead, Cached: u.CacheRead, Completion: u.Output, Reasoning: u.Output / 2},
		Chunks:    chunks,
		HangAfter: cut,
	})
	return providertest.Upstream{URL: s.URL, Seen: func() (string, string) {
		last := s.Last()
		return last.Model, trimBearer(last.Header.Get("Authorization"))
	}}
}

func trimBearer(s string) string {
	if len(s) > 7 && s[:7] == "Bearer " {
		return s[7:]
	}
	return ""
}

// The OpenAI adapter meets the contract every adapter must meet, on chat completions.
func TestConformanceChatCompletions(t *testing.T) {
	providertest.Run(t, providertest.Fixture{
		Adapter:  openai.New(),
		Model:    "gpt-4o-mini",
		Fallback: "gpt-4.1-nano",
		Request:  chatRequest,
		Upstream: fakeUpstream,
		Usage:    pricing.Usage{Input: 900, CacheRead: 100, Output: 321, Reasoning: 160},
		Invalid: map[string]provider.Request{
			"not JSON":       {Method: "POST", Path: openai.ChatCompletions, Body: []byte(`model=gpt-4o`)},
			"JSON array":     {Method: "POST", Path: openai.ChatCompletions, Body: []byte(`[{"model":"gpt-4o"}]`)},
			"missing model":  {Method: "POST", Path: openai.ChatCompletions, Body: []byte(`{"messages":[]}`)},
			"empty model":    {Method: "POST", Path: openai.ChatCompletions, Body: []byte(`{"model":""}`)},
			"model a number": {Method: "POST", Path: openai.ChatCompletions, Body: []byte(`{"model":4}`)},
			"duplicate model": {Method: "POST", Path: openai.ChatCompletions,
				Body: []byte(`{"model":"gpt-4o-mini","messages":[],"model":"o1-pro"}`)},
			"case-variant model": {Method: "POST", Path: openai.ChatCompletions,
				Body: []byte(`{"Model":"o1-pro","model":"gpt-4o-mini"}`)},
			"escaped model key": {Method: "POST", Path: openai.ChatCompletions,
				Body: []byte(`{"m\u006fdel":"o1-pro"}`)},
			"duplicate stream": {Method: "POST", Path: openai.ChatCompletions,
				Body: []byte(`{"model":"gpt-4o-mini","stream":false,"stream":true}`)},
			"stream a string": {Method: "POST", Path: openai.ChatCompletions,
				Body: []byte(`{"model":"gpt-4o-mini","stream":"yes"}`)},
			"negative max_tokens": {Method: "POST", Path: openai.ChatCompletions,
				Body: []byte(`{"model":"gpt-4o-mini","max_tokens":-5}`)},
			"truncated": {Method: "POST", Path: openai.ChatCompletions, Body: []byte(`{"model":"gpt-4o-mini"`)},
		},
	})
}

// The Responses API meets the same contract: usage from response.completed when streaming.
func TestConformanceResponses(t *testing.T) {
	providertest.Run(t, providertest.Fixture{
		Adapter:  openai.New(),
		Model:    "gpt-4o",
		Fallback: "gpt-4o-mini",
		Request: func(model string, stream bool) provider.Request {
			return provider.Request{Method: "POST", Path: openai.Responses, Body: []byte(fmt.Sprintf(
				`{"model":%q,"stream":%v,"input":"Say hello","max_output_tokens":500}`, model, stream))}
		},
		Upstream: fakeUpstream,
		Usage:    pricing.Usage{Input: 40, CacheRead: 2048, Output: 77, Reasoning: 38},
		Invalid: map[string]provider.Request{
			"duplicate model": {Method: "POST", Path: openai.Responses, Body: []byte(`{"model":"a","model":"b"}`)},
		},
	})
}

// Parse reads what the budget reservation needs, and refuses paths that would bypass the meter.
func TestParse(t *testing.T) {
	a := openai.New()
	tests := []struct {
		name      string
		req       provider.Request
		code      string
		metered   bool
		maxOutput int64
	}{
		{"chat max_completion_tokens", provider.Request{Method: "POST", Path: openai.ChatCompletions,
			Body: []byte(`{"model":"o3","max_completion_tokens":2000,"max_tokens":10}`)}, "", true, 2000},
		{"chat max_tokens is per choice", provider.Request{Method: "POST", Path: openai.ChatCompletions,
			Body: []byte(`{"model":"gpt-4o","max_tokens":100,"n":3}`)}, "", true, 100},
		{"chat no cap", provider.Request{Method: "POST", Path: openai.ChatCompletions,
			Body: []byte(`{"model":"gpt-4o"}`)}, "", true, 0},
		{"legacy completions default", provider.Request{Method: "POST", Path: openai.Completions,
			Body: []byte(`{"model":"gpt-3.5-turbo-instruct","prompt":"x"}`)}, "", true, 16},
		{"embeddings", provider.Request{Method: "POST", Path: openai.Embeddings,
			Body: []byte(`{"model":"text-embedding-3-small","input":"x"}`)}, "", true, 1},
		{"models list", provider.Request{Method: "GET", Path: openai.Models}, "", false, 0},
		{"one model", provider.Request{Method: "GET", Path: "/v1/models/gpt-4o"}, "", false, 0},
		{"files are not proxied", provider.Request{Method: "POST", Path: "/v1/files"}, apperr.NotFound, false, 0},
		{"batches are not proxied", provider.Request{Method: "POST", Path: "/v1/batches"}, apperr.NotFound, false, 0},
		{"GET on chat", provider.Request{Method: "GET", Path: openai.ChatCompletions}, apperr.MethodNotAllowed, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c provider.Call
			err := a.Parse(&tt.req, &c)
			if tt.code != "" {
				if got := apperr.Code(err); got != tt.code {
					t.Fatalf("error %v, want code %s", err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, want := c.Metered, tt.metered; got != want {
				t.Errorf("metered = %v, want %v", got, want)
			}
			if got, want := c.MaxOutputTokens, tt.maxOutput; got != want {
				t.Errorf("max output = %d, want %d", got, want)
			}
		})
	}
}

// A streamed chat request always asks upstream for usage; the extra chunk is dropped again
// only when the client had not asked for it itself.
func TestStreamUsageChunk(t *testing.T) {
	a := openai.New()
	for _, clientAsked := range []bool{false, true} {
		t.Run(fmt.Sprint("clientAsked=", clientAsked), func(t *testing.T) {
			body := `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":false},"messages":[]}`
			if clientAsked {
				body = `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[]}`
			}
			var c provider.Call
			if err := a.Parse(&provider.Request{Method: "POST", Path: openai.ChatCompletions, Body: []byte(body)}, &c); err != nil {
				t.Fatal(err)
			}
			if err := a.Prepare(&c, "gpt-4o"); err != nil {
				t.Fatal(err)
			}
			if got, want := string(c.Body), `"include_usage":true`; !contains(got, want) {
				t.Fatalf("upstream body %s lacks %s", got, want)
			}
			m := a.NewMeter(&c)
			if !m.Event(nil, []byte(`{"choices":[{"index":0,"delta":{"content":"hi","refusal":null}}],"usage":null}`)) {
				t.Fatal("content chunk dropped")
			}
			keep := m.Event(nil, []byte(`{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4}}}`))
			if keep != clientAsked {
				t.Fatalf("usage chunk forwarded = %v, want %v", keep, clientAsked)
			}
			res := m.Result()
			if got, want := res.OutputBytes, int64(2); got != want {
				t.Errorf("output bytes = %d, want %d (the text only)", got, want)
			}
			if got, want := res.Usage, (pricing.Usage{Input: 6, CacheRead: 4, Output: 2}); got != want || !res.Complete {
				t.Fatalf("usage = %+v complete %v, want %+v", got, res.Complete, want)
			}
		})
	}
}

// Every kind of streamed output is counted once, whatever the key order; of a key sent twice
// the first counts (as gjson reads it), and an error chunk counts nothing.
func TestStreamChunkOutput(t *testing.T) {
	tests := []struct {
		name   string
		chunk  string
		output int64
		err    string
	}{
		{"content", `{"choices":[{"delta":{"content":"abc"}}]}`, 3, ""},
		{"every kind", `{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"{}"}},{"function":{"arguments":"[1]"}}],"reasoning_content":"rr","refusal":"no","content":"a"},"text":"t"}]}`, 2 + 3 + 2 + 2 + 1 + 1, ""},
		{"several choices", `{"choices":[{"delta":{"content":"ab"}},{"text":"cde"}]}`, 5, ""},
		{"duplicate keys", `{"choices":[{"delta":{"content":"a","content":"bbbb"}}],"choices":[{"text":"cccccc"}]}`, 1, ""},
		{"non-string values", `{"choices":[{"delta":{"content":null,"refusal":7}},3,[1],"s"]}`, 0, ""},
		{"error first", `{"error":{"code":"server_error"},"choices":[{"delta":{"content":"abc"}}]}`, 0, "server_error"},
		{"error after choices", `{"choices":[{"delta":{"content":"abc"}}],"error":{"type":"overloaded"}}`, 0, "overloaded"},
		{"null error", `{"error":null,"choices":[{"delta":{"content":"abc"}}]}`, 3, ""},
	}
	a := openai.New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := provider.Call{Endpoint: openai.ChatCompletions, Metered: true, Stream: true}
			m := a.NewMeter(&c)
			m.Event(nil, []byte(tt.chunk))
			if res := m.Result(); res.OutputBytes != tt.output || res.ErrorCode != tt.err {
				t.Errorf("output %d error %q, want %d %q", res.OutputBytes, res.ErrorCode, tt.output, tt.err)
			}
		})
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// Relaying and metering one streamed chat chunk: the SSE split, the meter's usage and output
// scan, the write and flush.
func BenchmarkRelayChatChunk(b *testing.B) {
	var stream strings.Builder
	const events = 100
	for range events {
		stream.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732600000,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":" token"},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n")
	}
	stream.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732600000,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":100,"prompt_tokens_details":{"cached_tokens":0}}}` + "\n\ndata: [DONE]\n\n")
	src := stream.String()
	a := openai.New()
	var c provider.Call
	if err := a.Parse(&provider.Request{Method: "POST", Path: openai.ChatCompletions, Body: []byte(`{"model":"gpt-4o-mini","stream":true}`)}, &c); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		m := a.NewMeter(&c)
		provider.Relay(io.Discard, func() {}, strings.NewReader(src), provider.FramingSSE, m, func() {})
		if !m.Result().Complete {
			b.Fatal("no usage")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(events+2), "ns/event")
}
