package gemini_test

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"tokenguard/app/apperr"
	"tokenguard/app/provider"
	"tokenguard/app/provider/gemini"
	"tokenguard/app/provider/gemini/geminitest"
	"tokenguard/app/provider/providertest"
)

const generate = "/v1beta/models/gemini-2.5-flash:generateContent"

// Parse reads the per-candidate cap and candidateCount, and refuses what it cannot price:
// counts out of Gemini's range, config keys in two spellings or case-variant at their own
// depth, and keys sent twice anywhere.
func TestParseRules(t *testing.T) {
	tests := []struct {
		name, body      string
		code            string // "" when Parse succeeds
		field           string // named in the error message
		maxOut, choices int64
	}{
		{"candidates multiply a per-candidate cap", `{"generationConfig":{"maxOutputTokens":100,"candidateCount":3}}`, "", "", 100, 3},
		{"candidates count without a cap", `{"generation_config":{"candidate_count":4}}`, "", "", 0, 4},
		{"dynamic thinking", `{"generationConfig":{"thinkingConfig":{"thinkingBudget":-1}}}`, "", "", 0, 1},
		{"candidateCount above 8", `{"generationConfig":{"candidateCount":9}}`, apperr.InvalidRequest, "candidateCount", 0, 0},
		{"cap above 2^31-1", `{"generationConfig":{"maxOutputTokens":2147483648}}`, apperr.InvalidRequest, "maxOutputTokens", 0, 0},
		{"thinking budget not an integer", `{"generationConfig":{"thinkingConfig":{"thinkingBudget":0.5}}}`, apperr.InvalidRequest, "thinkingBudget", 0, 0},
		{"cap case-variant", `{"generationConfig":{"MaxOutputTokens":9000}}`, apperr.InvalidRequest, "maxOutputTokens", 0, 0},
		{"candidateCount twice", `{"generationConfig":{"candidateCount":1,"candidateCount":8}}`, apperr.InvalidRequest, "candidateCount", 0, 0},
		{"thinking config in both spellings", `{"generationConfig":{"thinkingConfig":{},"thinking_config":{"thinking_budget":24000}}}`, apperr.InvalidRequest, "thinkingConfig", 0, 0},
		{"thinking budget case-variant", `{"generationConfig":{"thinkingConfig":{"ThinkingBudget":24000}}}`, apperr.InvalidRequest, "thinkingBudget", 0, 0},
		{"duplicate key deep in contents", `{"contents":[{"parts":[{"text":"a","text":"b"}]}]}`, apperr.InvalidRequest, `"text"`, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := providertest.ParseCase(t, gemini.New(), provider.Request{Method: "POST", Path: generate, Body: []byte(tt.body)}, tt.code, tt.field)
			if !ok {
				return
			}
			if c.MaxOutputTokens != tt.maxOut || c.Choices != tt.choices {
				t.Errorf("max output %d choices %d, want %d %d", c.MaxOutputTokens, c.Choices, tt.maxOut, tt.choices)
			}
		})
	}
}

// A strict-mode OutputCap reaches the upstream as maxOutputTokens in the client's spelling
// (generationConfig created when absent), never raising a cap, and a thinking budget above
// it is lowered to it.
func TestOutputCapSent(t *testing.T) {
	up := geminitest.New(t, upstreamKey)
	tests := []struct {
		name, body string
		outputCap  int64
		want       map[string]int64 // paths sent; 0: absent
	}{
		{"camelCase lowered", `{"contents":[],"generationConfig":{"maxOutputTokens":4000,"temperature":0}}`, 1000,
			map[string]int64{"generationConfig.maxOutputTokens": 1000}},
		{"snake_case kept", `{"contents":[],"generation_config":{"max_output_tokens":4000}}`, 1000,
			map[string]int64{"generation_config.max_output_tokens": 1000, "generationConfig.maxOutputTokens": 0}},
		{"config created", `{"contents":[]}`, 1000, map[string]int64{"generationConfig.maxOutputTokens": 1000}},
		{"null config replaced", `{"contents":[],"generationConfig":null}`, 1000, map[string]int64{"generationConfig.maxOutputTokens": 1000}},
		{"cap added to a config without one", `{"contents":[],"generationConfig":{"candidateCount":2}}`, 1000,
			map[string]int64{"generationConfig.maxOutputTokens": 1000, "generationConfig.candidateCount": 2}},
		{"never raised", `{"contents":[],"generationConfig":{"maxOutputTokens":40}}`, 1000, map[string]int64{"generationConfig.maxOutputTokens": 40}},
		{"thinking budget lowered", `{"contents":[],"generationConfig":{"thinkingConfig":{"thinkingBudget":8000}}}`, 1000,
			map[string]int64{"generationConfig.maxOutputTokens": 1000, "generationConfig.thinkingConfig.thinkingBudget": 1000}},
		{"snake thinking budget lowered", `{"contents":[],"generation_config":{"thinking_config":{"thinking_budget":8000}}}`, 1000,
			map[string]int64{"generation_config.max_output_tokens": 1000, "generation_config.thinking_config.thinking_budget": 1000}},
		{"dynamic thinking left to the cap", `{"contents":[],"generationConfig":{"thinkingConfig":{"thinkingBudget":-1}}}`, 1000,
			map[string]int64{"generationConfig.maxOutputTokens": 1000, "generationConfig.thinkingConfig.thinkingBudget": -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sendCapped(t, up, "POST", generate, "", tt.body, "", tt.outputCap)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.client)
			}
			sent := up.Last().Body
			for path, want := range tt.want {
				if got := gjson.GetBytes(sent, path).Int(); got != want {
					t.Errorf("%s sent = %d, want %d (body %s)", path, got, want, sent)
				}
			}
		})
	}
}

// Prepare refuses a fallback model no provider could have, or one that would change the
// path beyond its segment.
func TestPrepareRefusesModel(t *testing.T) {
	for _, model := range []string{"", "gemini\n", "gem ini", "a/b", strings.Repeat("g", 257), "g\x7f"} {
		a := gemini.New()
		var c provider.Call
		if err := a.Parse(&provider.Request{Method: "POST", Path: generate, Body: []byte(`{"contents":[]}`)}, &c); err != nil {
			t.Fatal(err)
		}
		if err := a.Prepare(&c, model); apperr.Code(err) != apperr.InvalidRequest {
			t.Errorf("Prepare(%q) error = %v, want INVALID_REQUEST", model, err)
		}
	}
}

// The input bound counts text by the byte and each image, inline or by file URI, at Gemini's
// per-image maximum, whatever its size; tools add a hidden-prompt margin.
func TestInputBound(t *testing.T) {
	png := "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC" + strings.Repeat("A", 1<<20)
	tests := []struct {
		name, body   string
		media, extra int64
	}{
		{"text", `{"contents":[{"parts":[{"text":"hello"}]}]}`, 0, 0},
		{"a 1 MB inline image", `{"contents":[{"parts":[{"inlineData":{"mimeType":"image/png","data":"` + png + `"}}]}]}`, int64(len(png) + 2), 16 * 258},
		{"an image by file URI", `{"contents":[{"parts":[{"fileData":{"mimeType":"image/png","fileUri":"https://generativelanguage.googleapis.com/v1beta/files/x"}}]}]}`, 0, 16 * 258},
		{"tools", `{"contents":[],"tools":[{"functionDeclarations":[{"name":"f"}]}]}`, 0, 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c provider.Call
			if err := gemini.New().Parse(&provider.Request{Method: "POST", Path: generate, Body: []byte(tt.body)}, &c); err != nil {
				t.Fatal(err)
			}
			if got, want := c.MaxInputTokens, int64(len(tt.body))-tt.media+tt.extra; got != want {
				t.Errorf("MaxInputTokens = %d, want %d", got, want)
			}
			if c.InputTokens > c.MaxInputTokens || c.InputTokens <= 0 {
				t.Errorf("InputTokens = %d, want 1..%d", c.InputTokens, c.MaxInputTokens)
			}
		})
	}
}
