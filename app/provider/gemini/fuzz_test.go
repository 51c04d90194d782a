package gemini_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"tokenguard/app/provider"
	"tokenguard/app/provider/gemini"
	"tokenguard/app/provider/providertest"
)

// sentModel reads the model from the upstream path, /{version}/models/{model}:{method}.
func sentModel(c *provider.Call) string {
	_, rest, _ := strings.Cut(c.Path, "/models/")
	return rest[:strings.LastIndexByte(rest, ':')]
}

var fuzzMethods = []string{gemini.GenerateContent, gemini.StreamGenerateContent}

// Parse and Prepare keep the invariants of providertest.CheckCall on any body, with any
// strict-mode cap and fallback model, and a thinking budget is never left above the cap sent.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"contents":[{"role":"user","parts":[{"text":"Hello"}]}],"generationConfig":{"maxOutputTokens":256,"candidateCount":2}}`,
		`{"contents":[],"generation_config":{"max_output_tokens":100,"thinking_config":{"thinking_budget":8000}}}`,
		`{"contents":[],"generationConfig":{"thinkingConfig":{"thinkingBudget":-1}}}`,
		`{"contents":[{"parts":[{"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"}},{"fileData":{"fileUri":"https://x/y"}}]}],"tools":[{"googleSearch":{}}]}`,
		`{"generationConfig":null}`, `{"generationConfig":{"maxOutputTokens":10,"MaxOutputTokens":9000}}`,
	} {
		f.Add([]byte(s), uint8(0), int64(64), "gemini-2.5-flash-lite")
	}
	a := gemini.New()
	f.Fuzz(func(t *testing.T, body []byte, method uint8, outputCap int64, fallback string) {
		fallback = strings.TrimPrefix(fallback, "models/")
		req := provider.Request{Method: "POST", Path: "/v1beta/models/gemini-2.5-flash:" + fuzzMethods[int(method)%len(fuzzMethods)], Body: body}
		p, ok := providertest.CheckCall(t, a, req, outputCap, fallback, sentModel)
		if !ok || outputCap <= 0 {
			return
		}
		sent := gjson.ParseBytes(p.After.Body)
		for _, gc := range []string{"generationConfig", "generation_config"} {
			for _, tb := range []string{"thinkingConfig.thinkingBudget", "thinking_config.thinking_budget"} {
				if b := sent.Get(gc + "." + tb).Int(); b > outputCap {
					t.Fatalf("thinking budget %d above the cap %d: %s", b, outputCap, p.After.Body)
				}
			}
		}
	})
}

// The meter (SSE events and the JSON-array stream in pieces of any size) and Usage keep the
// invariants of providertest.CheckStream and CheckUsage on any input.
func FuzzMeter(f *testing.F) {
	for _, s := range []string{
		`[{"candidates":[{"content":{"parts":[{"text":"a"}]}}],"usageMetadata":{"promptTokenCount":5}}` + "\n,\r\n" +
			`{"candidates":[{"content":{"parts":[{"text":"b\"}"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":2,"thoughtsTokenCount":9}}]`,
		`{"error":{"code":429,"status":"` + strings.Repeat("R", 90) + `"}}`,
		`{"usageMetadata":{"promptTokenCount":9e18,"cachedContentTokenCount":-1,"toolUsePromptTokenCount":9e18}}`,
	} {
		f.Add([]byte(s), uint8(4))
	}
	a := gemini.New()
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		c := provider.Call{Endpoint: "/v1beta/models/{model}:streamGenerateContent", Metered: true, Stream: true}
		sse := a.NewMeter(&c)
		for _, ev := range bytes.Split(data, []byte("\n")) {
			sse.Event(nil, ev)
		}
		providertest.CheckStream(t, sse.Result())
		raw := a.NewMeter(&c)
		n := int(step) + 1
		for i := 0; i < len(data); i += n {
			raw.Raw(data[i:min(i+n, len(data))])
		}
		providertest.CheckStream(t, raw.Result())
		providertest.CheckUsage(t, a, &c, data, n)
	})
}
