package anthropic_test

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"tokenguard/app/apperr"
	"tokenguard/app/provider"
	"tokenguard/app/provider/anthropic"
	"tokenguard/app/provider/anthropic/anthropictest"
	"tokenguard/app/provider/providertest"
)

// Parse reads the per-choice cap, the floor extended thinking puts under a strict-mode cap,
// and refuses what it cannot price: counts out of range, a thinking config or a model name it
// could misread, and keys sent twice at any depth.
func TestParseRules(t *testing.T) {
	tests := []struct {
		name, body string
		code       string // "" when Parse succeeds
		field      string // named in the error message
		maxOut     int64
		minOut     int64
	}{
		{"cap", `{"model":"claude-haiku-4-5","max_tokens":300}`, "", "", 300, 0},
		{"thinking needs room for its budget", `{"model":"claude-sonnet-4-5","max_tokens":8000,"thinking":{"type":"enabled","budget_tokens":4000}}`, "", "", 8000, 1025},
		{"adaptive thinking has no budget", `{"model":"claude-opus-4-7","max_tokens":8000,"thinking":{"type":"adaptive"}}`, "", "", 8000, 0},
		{"thinking disabled", `{"model":"claude-haiku-4-5","max_tokens":10,"thinking":{"type":"disabled"}}`, "", "", 10, 0},
		{"cap above 2^31-1", `{"model":"claude-haiku-4-5","max_tokens":2147483648}`, apperr.InvalidRequest, `"max_tokens"`, 0, 0},
		{"cap not an integer", `{"model":"claude-haiku-4-5","max_tokens":10.5}`, apperr.InvalidRequest, `"max_tokens"`, 0, 0},
		{"absurd cap", `{"model":"claude-haiku-4-5","max_tokens":2e12}`, apperr.InvalidRequest, `"max_tokens"`, 0, 0},
		{"budget not an integer", `{"model":"claude-haiku-4-5","max_tokens":9000,"thinking":{"type":"enabled","budget_tokens":"lots"}}`, apperr.InvalidRequest, `thinking.budget_tokens`, 0, 0},
		{"thinking twice", `{"model":"claude-haiku-4-5","max_tokens":9000,"thinking":{"type":"enabled","budget_tokens":2000,"budget_tokens":1024}}`, apperr.InvalidRequest, `budget_tokens`, 0, 0},
		{"thinking key case-variant", `{"model":"claude-haiku-4-5","max_tokens":9000,"thinking":{"Type":"enabled"}}`, apperr.InvalidRequest, `thinking.type`, 0, 0},
		{"thinking not an object", `{"model":"claude-haiku-4-5","thinking":"on"}`, apperr.InvalidRequest, `"thinking"`, 0, 0},
		{"duplicate key deep in messages", `{"model":"claude-haiku-4-5","messages":[{"role":"user","content":[{"type":"text","text":"a","text":"b"}]}]}`, apperr.InvalidRequest, `"text"`, 0, 0},
		{"model with NUL", "{\"model\":\"claude-haiku-4-5\\u0000\"}", apperr.InvalidRequest, `"model"`, 0, 0},
		{"model with LF", `{"model":"claude-haiku-4-5\nX-Injected: 1"}`, apperr.InvalidRequest, `"model"`, 0, 0},
		{"model of 257 bytes", `{"model":"` + strings.Repeat("m", 257) + `"}`, apperr.InvalidRequest, `"model"`, 0, 0},
		{"nested too deep", `{"model":"claude-haiku-4-5","metadata":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}`, apperr.InvalidRequest, `512`, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := providertest.ParseCase(t, anthropic.New(), provider.Request{Method: "POST", Path: anthropic.Messages, Body: []byte(tt.body)}, tt.code, tt.field)
			if !ok {
				return
			}
			if c.MaxOutputTokens != tt.maxOut || c.MinOutputTokens != tt.minOut || c.Choices != 1 {
				t.Errorf("max %d min %d choices %d, want %d %d 1", c.MaxOutputTokens, c.MinOutputTokens, c.Choices, tt.maxOut, tt.minOut)
			}
		})
	}
}

// A strict-mode OutputCap reaches the upstream in max_tokens, only ever lowering it, with the
// thinking budget lowered below it as Anthropic requires.
func TestOutputCapSent(t *testing.T) {
	up := anthropictest.New(t, upstreamKey)
	tests := []struct {
		name, body        string
		outputCap         int64
		maxTokens, budget int64 // as sent; budget 0: no thinking
	}{
		{"lowered", `{"model":"claude-haiku-4-5","max_tokens":4000,"messages":[]}`, 1500, 1500, 0},
		{"never raised", `{"model":"claude-haiku-4-5","max_tokens":400,"messages":[]}`, 1500, 400, 0},
		{"added when absent", `{"model":"claude-haiku-4-5","messages":[]}`, 1500, 1500, 0},
		{"thinking budget lowered below the cap", `{"model":"claude-sonnet-4-5","max_tokens":20000,"thinking":{"type":"enabled","budget_tokens":16000},"messages":[]}`, 3000, 3000, 2999},
		{"thinking budget already below", `{"model":"claude-sonnet-4-5","max_tokens":20000,"thinking":{"type":"enabled","budget_tokens":2000},"messages":[]}`, 3000, 3000, 2000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sendCapped(t, up, anthropic.Messages, tt.body, "", tt.outputCap)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.client)
			}
			sent := up.Last().Body
			if got := gjson.GetBytes(sent, "max_tokens").Int(); got != tt.maxTokens {
				t.Errorf("max_tokens sent = %d, want %d", got, tt.maxTokens)
			}
			if got := gjson.GetBytes(sent, "thinking.budget_tokens").Int(); got != tt.budget {
				t.Errorf("budget_tokens sent = %d, want %d", got, tt.budget)
			}
		})
	}
}

// Prepare refuses a fallback model no provider could have, and a strict-mode cap that leaves
// extended thinking less than its minimum budget rather than raising anything.
func TestPrepareRefuses(t *testing.T) {
	tests := []struct {
		name, body, model string
		outputCap         int64
	}{
		{"fallback with CR", `{"model":"claude-haiku-4-5","max_tokens":10}`, "claude\rX", 0},
		{"fallback too long", `{"model":"claude-haiku-4-5","max_tokens":10}`, strings.Repeat("c", 300), 0},
		{"cap below the thinking floor", `{"model":"claude-haiku-4-5","max_tokens":9000,"thinking":{"type":"enabled","budget_tokens":4000}}`, "claude-haiku-4-5", 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := anthropic.New()
			var c provider.Call
			if err := a.Parse(&provider.Request{Method: "POST", Path: anthropic.Messages, Body: []byte(tt.body)}, &c); err != nil {
				t.Fatal(err)
			}
			c.OutputCap = tt.outputCap
			if err := a.Prepare(&c, tt.model); apperr.Code(err) != apperr.InvalidRequest {
				t.Fatalf("Prepare error = %v, want INVALID_REQUEST", err)
			}
		})
	}
}

// The input bound counts text by the byte, and each image at Anthropic's per-image maximum
// however many bytes it has, plus the hidden tool-use prompt when tools are declared.
func TestInputBound(t *testing.T) {
	png := "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
	big := png + strings.Repeat("A", 1<<20)
	image := func(data string) string {
		return `{"type":"image","source":{"type":"base64","media_type":"image/png","data":"` + data + `"}}`
	}
	text := `{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"Hi"}]}`
	withImages := func(images ...string) string {
		return `{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":[` + strings.Join(images, ",") + `]}]}`
	}
	tests := []struct {
		name, body string
		// want is the bound less the body's own bytes (the text), or, for media, the bound.
		want func(body string) int64
	}{
		{"text: one token a byte", text, func(b string) int64 { return int64(len(b)) }},
		{"a 1 MB image counts as one image", withImages(image(big)), func(b string) int64 {
			return int64(len(b)-len(big)-2) + 5000
		}},
		{"an image by URL", withImages(`{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}`), func(b string) int64 { return int64(len(b)) + 5000 }},
		{"tools add the hidden prompt", `{"model":"claude-haiku-4-5","max_tokens":10,"tools":[{"name":"f","input_schema":{"type":"object"}}],"messages":[]}`, func(b string) int64 { return int64(len(b)) + 3000 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c provider.Call
			if err := anthropic.New().Parse(&provider.Request{Method: "POST", Path: anthropic.Messages, Body: []byte(tt.body)}, &c); err != nil {
				t.Fatal(err)
			}
			if got, want := c.MaxInputTokens, tt.want(tt.body); got != want {
				t.Errorf("MaxInputTokens = %d, want %d", got, want)
			}
			if c.InputTokens > c.MaxInputTokens || c.InputTokens <= 0 {
				t.Errorf("InputTokens = %d, want 1..%d", c.InputTokens, c.MaxInputTokens)
			}
		})
	}
}
