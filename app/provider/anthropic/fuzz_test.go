package anthropic_test

import (
	"bytes"
	"testing"

	"github.com/tidwall/gjson"

	"tokenguard/app/provider"
	"tokenguard/app/provider/anthropic"
	"tokenguard/app/provider/providertest"
)

func sentModel(c *provider.Call) string { return gjson.GetBytes(c.Body, "model").Str }

// Parse and Prepare keep the invariants of providertest.CheckCall on any body, with any
// strict-mode cap and fallback model, and a lowered thinking budget stays within Anthropic's
// bounds: at least 1024 and below max_tokens.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"model":"claude-sonnet-4-5","max_tokens":300,"messages":[{"role":"user","content":"Hi"}]}`,
		`{"model":"claude-opus-4-1","max_tokens":20000,"stream":true,"thinking":{"type":"enabled","budget_tokens":16000},"messages":[]}`,
		`{"model":"claude-haiku-4-5","max_tokens":4096,"thinking":{"type":"adaptive"},"tools":[{"type":"bash_20250124","name":"bash"}]}`,
		`{"model":"claude-haiku-4-5","messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"}}]}]}`,
		`{"model":"claude-haiku-4-5","thinking":{"type":"enabled","budget_tokens":1024,"budget_tokens":99999}}`,
		`{"model":"claude-haiku-4-5","Thinking":{}}`,
		`{"model":"claude-haiku-4-5","max_tokens":10,"metadata":{"user_id":"u-42"}}`,
		`{"model":"claude-haiku-4-5","metadata":{"user_id":"a","user_id":"b"}}`,
	} {
		f.Add([]byte(s), int64(2048), "claude-haiku-4-5")
	}
	a := anthropic.New()
	f.Fuzz(func(t *testing.T, body []byte, outputCap int64, fallback string) {
		req := provider.Request{Method: "POST", Path: anthropic.Messages, Body: body}
		p, ok := providertest.CheckCall(t, a, req, outputCap, fallback, sentModel)
		if !ok {
			return
		}
		if p.Reparsed.Model != fallback {
			t.Fatalf("reparsed model %q, want %q", p.Reparsed.Model, fallback)
		}
		sent := p.After.Body
		if outputCap > 0 && gjson.GetBytes(sent, "thinking.type").Str == "enabled" {
			budget, limit := gjson.GetBytes(sent, "thinking.budget_tokens").Int(), gjson.GetBytes(sent, "max_tokens").Int()
			if before := gjson.GetBytes(body, "thinking.budget_tokens").Int(); budget > before || budget >= limit && budget != before {
				t.Fatalf("thinking budget %d (was %d) with max_tokens %d", budget, before, limit)
			}
		}
	})
}

// The meter and Usage keep the invariants of providertest.CheckStream and CheckUsage on any
// events and bodies.
func FuzzMeter(f *testing.F) {
	for _, s := range []string{
		`{"type":"message_start","message":{"usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":1}}}` + "\n" +
			`{"type":"content_block_delta","delta":{"type":"text_delta","text":"hi"}}` + "\n" +
			`{"type":"message_delta","usage":{"output_tokens":20,"input_tokens":null}}`,
		`{"type":"error","error":{"type":"` + string(bytes.Repeat([]byte("x"), 100)) + `"}}`,
		`{"usage":{"input_tokens":-4,"output_tokens":1e300}}`,
	} {
		f.Add([]byte(s), uint8(3))
	}
	a := anthropic.New()
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		c := provider.Call{Endpoint: anthropic.Messages, Metered: true, Stream: true}
		m := a.NewMeter(&c)
		for _, ev := range bytes.Split(data, []byte("\n")) {
			m.Event(nil, ev)
		}
		providertest.CheckStream(t, m.Result())
		providertest.CheckUsage(t, a, &c, data, int(step)+1)
	})
}
