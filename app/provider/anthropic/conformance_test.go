package anthropic_test

import (
	"net/http"
	"testing"

	"github.com/tidwall/gjson"

	"tokenguard/app/pricing"
	"tokenguard/app/provider"
	"tokenguard/app/provider/anthropic"
	"tokenguard/app/provider/anthropic/anthropictest"
	"tokenguard/app/provider/providertest"
)

func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Fixture{
		Adapter:  anthropic.New(),
		Model:    "claude-sonnet-4-5-20250929",
		Fallback: "claude-haiku-4-5",
		Request: func(model string, stream bool) provider.Request {
			body := `{"model":"` + model + `","max_tokens":1024,"messages":[{"role":"user","content":"Tell me about foxes"}]`
			if stream {
				body += `,"stream":true`
			}
			return provider.Request{Method: http.MethodPost, Path: anthropic.Messages, Body: []byte(body + "}")}
		},
		Upstream: func(tb testing.TB, u pricing.Usage, chunks []string, cut int) providertest.Upstream {
			up := anthropictest.New(tb, providertest.Key)
			r := anthropictest.Reply{
				Chunks: chunks,
				Usage:  anthropictest.Usage{Input: u.Input, CacheRead: u.CacheRead, CacheWrite: u.CacheWrite, Output: u.Output},
			}
			if cut > 0 {
				r.Fail, r.Cut = anthropictest.FailBreak, cut
			}
			up.SetReply(r)
			return providertest.Upstream{URL: up.URL, Seen: func() (string, string) {
				last := up.Last()
				return gjson.GetBytes(last.Body, "model").Str, last.Header.Get("x-api-key")
			}}
		},
		// Every class Anthropic reports: uncached input, cache reads, cache writes, output.
		Usage: pricing.Usage{Input: 1500, CacheRead: 20000, CacheWrite: 3000, Output: 420},
		Invalid: map[string]provider.Request{
			"malformed body":   {Method: http.MethodPost, Path: anthropic.Messages, Body: []byte(`{"model":"claude-haiku-4-5",`)},
			"missing model":    {Method: http.MethodPost, Path: anthropic.Messages, Body: []byte(`{"max_tokens":10,"messages":[]}`)},
			"duplicate model":  {Method: http.MethodPost, Path: anthropic.Messages, Body: []byte(`{"model":"claude-haiku-4-5","model":"claude-opus-4-1"}`)},
			"not an object":    {Method: http.MethodPost, Path: anthropic.Messages, Body: []byte(`"hello"`)},
			"stream is a word": {Method: http.MethodPost, Path: anthropic.Messages, Body: []byte(`{"model":"claude-haiku-4-5","stream":"true"}`)},
		},
	})
}
