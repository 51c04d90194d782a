package openai_test

import (
	"bytes"
	"testing"

	"github.com/tidwall/gjson"

	"tokenguard/app/provider"
	"tokenguard/app/provider/openai"
	"tokenguard/app/provider/providertest"
)

var fuzzPaths = []string{openai.ChatCompletions, openai.Completions, openai.Responses, openai.Embeddings}

func sentModel(c *provider.Call) string { return gjson.GetBytes(c.Body, "model").Str }

// Parse and Prepare keep the invariants of providertest.CheckCall on any body, on every
// metered endpoint, with any strict-mode cap and fallback model.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}],"max_tokens":100,"n":3}`,
		`{"model":"o3","max_completion_tokens":2000,"max_tokens":10,"stream_options":{"include_usage":false}}`,
		`{"model":"gpt-3.5-turbo-instruct","prompt":"x","n":2,"best_of":5}`,
		`{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_image","image_url":"https://example.com/a.png"}]}],"max_output_tokens":500,"background":false}`,
		`{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"}}]}],"tools":[{"type":"function","function":{"name":"f"}}]}`,
		`{"model":"text-embedding-3-small","input":"x"}`,
		`{"model":"gpt-4o","stream_options":{"include_usage":true,"include_usage":false},"stream":true}`,
		`{"model":"gpt-4o","max_completion_tokens":null,"max_tokens":1e3}`,
		`{"model":"gpt-4o","user":"u-1","safety_identifier":"hash-1","messages":[]}`,
		`{"model":"gpt-4o","user":"a\u0000b"}`,
	} {
		f.Add([]byte(s), uint8(0), int64(64), "gpt-4.1-nano")
	}
	a := openai.New()
	f.Fuzz(func(t *testing.T, body []byte, endpoint uint8, outputCap int64, fallback string) {
		req := provider.Request{Method: "POST", Path: fuzzPaths[int(endpoint)%len(fuzzPaths)], Body: body}
		p, ok := providertest.CheckCall(t, a, req, outputCap, fallback, sentModel)
		if !ok {
			return
		}
		if p.Reparsed.Model != fallback {
			t.Fatalf("reparsed model %q, want %q", p.Reparsed.Model, fallback)
		}
		if p.After.Stream && req.Path != openai.Responses && !gjson.GetBytes(p.After.Body, "stream_options.include_usage").Bool() {
			t.Fatalf("a streamed request is sent without include_usage: %s", p.After.Body)
		}
	})
}

// The meters and Usage keep the invariants of providertest.CheckStream and CheckUsage on any
// events and bodies.
func FuzzMeter(f *testing.F) {
	for _, s := range []string{
		`{"choices":[{"index":0,"delta":{"content":"hi","tool_calls":[{"function":{"arguments":"{}"}}]}}],"usage":null}` + "\n" +
			`{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4}}}`,
		`{"type":"response.output_text.delta","delta":"x"}` + "\n" + `{"type":"response.completed","response":{"usage":{"input_tokens":5,"input_tokens_details":{"cached_tokens":9},"output_tokens":-3}}}`,
		`{"error":{"code":"` + string(bytes.Repeat([]byte("é"), 80)) + `"}}`,
		`{"usage":{"prompt_tokens":1e30,"completion_tokens":"7"}}`,
	} {
		f.Add([]byte(s), uint8(5))
	}
	a := openai.New()
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		for _, path := range []string{openai.ChatCompletions, openai.Responses} {
			c := provider.Call{Endpoint: path, Metered: true, Stream: true}
			m := a.NewMeter(&c)
			for _, ev := range bytes.Split(data, []byte("\n")) {
				m.Event(nil, ev)
			}
			providertest.CheckStream(t, m.Result())
			providertest.CheckUsage(t, a, &c, data, int(step)+1)
		}
	})
}
