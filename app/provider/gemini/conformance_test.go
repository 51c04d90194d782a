package gemini_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"tokenguard/app/pricing"
	"tokenguard/app/provider"
	"tokenguard/app/provider/gemini"
	"tokenguard/app/provider/gemini/geminitest"
	"tokenguard/app/provider/providertest"
)

// The suite runs once per stream framing: SSE (?alt=sse, what the SDKs use) and the JSON
// array Gemini streams without it.
func TestConformance(t *testing.T) {
	for _, framing := range []string{"sse", "json-array"} {
		t.Run(framing, func(t *testing.T) {
			providertest.Run(t, fixture(framing == "sse"))
		})
	}
}

func fixture(sse bool) providertest.Fixture {
	const body = `{"contents":[{"role":"user","parts":[{"text":"Tell me about foxes"}]}],"generationConfig":{"maxOutputTokens":1024}}`
	post := func(path, b string) provider.Request {
		return provider.Request{Method: http.MethodPost, Path: path, Body: []byte(b)}
	}
	return providertest.Fixture{
		Adapter:  gemini.New(),
		Model:    "gemini-2.5-flash",
		Fallback: "gemini-2.0-flash-lite",
		Request: func(model string, stream bool) provider.Request {
			if !stream {
				return post("/v1beta/models/"+model+":generateContent", body)
			}
			r := post("/v1beta/models/"+model+":streamGenerateContent", body)
			if sse {
				r.Query = url.Values{"alt": {"sse"}}
			}
			return r
		},
		Upstream: func(tb testing.TB, u pricing.Usage, chunks []string, cut int) providertest.Upstream {
			up := geminitest.New(tb, providertest.Key)
			// Gemini's figures overlap where TokenGuard's are disjoint: the prompt count includes
			// the cached part, and part of the input is tool-use prompt; thoughts are output
			// counted apart from the candidates.
			r := geminitest.Reply{
				Chunks: chunks,
				Usage: geminitest.Usage{
					Prompt: u.Input - u.Input/10 + u.CacheRead, Cached: u.CacheRead, ToolUse: u.Input / 10,
					Candidates: u.Output - u.Output/3, Thoughts: u.Output / 3,
				},
			}
			if cut > 0 {
				r.Fail, r.Cut = geminitest.FailBreak, cut
			}
			up.SetReply(r)
			return providertest.Upstream{URL: up.URL, Seen: func() (string, string) {
				last := up.Last()
				name := strings.TrimPrefix(last.Path, "/v1beta/models/")
				model, _, _ := strings.Cut(name, ":")
				return model, last.Header.Get("x-goog-api-key")
			}}
		},
		// Every class Gemini reports (no cache writes: a generate call never writes a cache).
		Usage: pricing.Usage{Input: 1500, CacheRead: 20000, Output: 420, Reasoning: 140},
		Invalid: map[string]provider.Request{
			"malformed body":        post("/v1beta/models/gemini-2.5-flash:generateContent", `{"contents":[`),
			"not an object":         post("/v1beta/models/gemini-2.5-flash:generateContent", `[]`),
			"ambiguous output cap":  post("/v1beta/models/gemini-2.5-flash:generateContent", `{"generationConfig":{"maxOutputTokens":1,"max_output_tokens":65536}}`),
			"bad model in the path": post("/v1beta/models/gemini 2.5:generateContent", body),
		},
	}
}
