package openai_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"tokenguard/app/apperr"
	"tokenguard/app/provider"
	"tokenguard/app/provider/openai"
	"tokenguard/app/provider/openai/openaitest"
	"tokenguard/app/provider/providertest"
)

// Parse reads the per-choice cap and how many choices the provider bills, and refuses what it
// cannot price or meter: counts out of the provider's range, background generation, keys sent
// twice or case-variant at any depth, and model names no provider has.
func TestParseRules(t *testing.T) {
	chat, legacy, responses := openai.ChatCompletions, openai.Completions, openai.Responses
	tests := []struct {
		name, path, body string
		code             string // "" when Parse succeeds
		field            string // named in the error message
		maxOut, choices  int64
	}{
		{"n multiplies a per-choice cap", chat, `{"model":"gpt-4o","max_tokens":100,"n":3}`, "", "", 100, 3},
		{"n counts without a cap", chat, `{"model":"gpt-4o","n":8}`, "", "", 0, 8},
		{"n at OpenAI's maximum", chat, `{"model":"gpt-4o","n":128}`, "", "", 0, 128},
		{"both caps: the larger", chat, `{"model":"gpt-4o","max_tokens":900,"max_completion_tokens":50}`, "", "", 900, 1},
		{"best_of is generated and billed", legacy, `{"model":"gpt-3.5-turbo-instruct","prompt":"x","max_tokens":20,"n":2,"best_of":5}`, "", "", 20, 5},
		{"legacy default cap", legacy, `{"model":"gpt-3.5-turbo-instruct","prompt":"x","n":4}`, "", "", 16, 4},
		{"responses cap", responses, `{"model":"gpt-4o","input":"x","max_output_tokens":700,"background":false}`, "", "", 700, 1},
		{"n above 128", chat, `{"model":"gpt-4o","n":129}`, apperr.InvalidRequest, `"n"`, 0, 0},
		{"n above 2^31-1", chat, `{"model":"gpt-4o","n":2147483648}`, apperr.InvalidRequest, `"n"`, 0, 0},
		{"n not an integer", chat, `{"model":"gpt-4o","n":1.5}`, apperr.InvalidRequest, `"n"`, 0, 0},
		{"best_of above 20", legacy, `{"model":"gpt-3.5-turbo-instruct","best_of":21}`, apperr.InvalidRequest, `"best_of"`, 0, 0},
		{"absurd max_tokens", chat, `{"model":"gpt-4o","max_tokens":2e12}`, apperr.InvalidRequest, `"max_tokens"`, 0, 0},
		{"max_completion_tokens a string", chat, `{"model":"gpt-4o","max_completion_tokens":"9"}`, apperr.InvalidRequest, `"max_completion_tokens"`, 0, 0},
		{"background generation", responses, `{"model":"gpt-4o","input":"x","background":true}`, apperr.InvalidRequest, `"background"`, 0, 0},
		{"include_usage twice", chat, `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true,"include_usage":false}}`, apperr.InvalidRequest, `"include_usage"`, 0, 0},
		{"include_usage case-variant", chat, `{"model":"gpt-4o","stream":true,"stream_options":{"Include_Usage":false}}`, apperr.InvalidRequest, `include_usage`, 0, 0},
		{"include_usage escaped", chat, `{"model":"gpt-4o","stream":true,"stream_options":{"include_u\u0073age":false}}`, apperr.InvalidRequest, `include_usage`, 0, 0},
		{"n case-variant", chat, `{"model":"gpt-4o","N":8}`, apperr.InvalidRequest, `"n"`, 0, 0},
		{"duplicate key deep in messages", chat, `{"model":"gpt-4o","messages":[{"role":"user","content":"a","content":"b"}]}`, apperr.InvalidRequest, `"content"`, 0, 0},
		{"model with CR", chat, `{"model":"gpt-4o\r"}`, apperr.InvalidRequest, `"model"`, 0, 0},
		{"model with NUL", chat, `{"model":"gpt-4o\u0000"}`, apperr.InvalidRequest, `"model"`, 0, 0},
		{"model of 4 MB", chat, `{"model":"` + strings.Repeat("g", 4<<20) + `"}`, apperr.InvalidRequest, `"model"`, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := providertest.ParseCase(t, openai.New(), provider.Request{Method: "POST", Path: tt.path, Body: []byte(tt.body)}, tt.code, tt.field)
			if !ok {
				return
			}
			if c.MaxOutputTokens != tt.maxOut || c.Choices != tt.choices {
				t.Errorf("max output %d choices %d, want %d %d", c.MaxOutputTokens, c.Choices, tt.maxOut, tt.choices)
			}
		})
	}
}

// sendCapped parses body, sets a strict-mode OutputCap as the proxy does, prepares it and posts
// it to the fake upstream; it returns what the upstream received.
func sendCapped(t *testing.T, s *openaitest.Server, path, body string, outputCap int64) openaitest.Received {
	t.Helper()
	a := openai.New()
	var c provider.Call
	if err := a.Parse(&provider.Request{Method: "POST", Path: path, Body: []byte(body)}, &c); err != nil {
		t.Fatal(err)
	}
	c.OutputCap = outputCap
	if err := a.Prepare(&c, c.Model); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(s.URL+c.Path, "application/json", bytes.NewReader(c.Body))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("upstream status %d", resp.StatusCode)
	}
	return s.Last()
}

// A strict-mode OutputCap reaches the upstream in the field the endpoint reads, in the
// client's own spelling when it named a cap, and never raises a cap.
func TestOutputCapSent(t *testing.T) {
	s := openaitest.New(t)
	tests := []struct {
		name, path, body string
		outputCap        int64
		want             map[string]int64 // fields sent; 0: absent
	}{
		{"max_tokens kept as the client's spelling", openai.ChatCompletions, `{"model":"gpt-4o","max_tokens":4000}`, 1000,
			map[string]int64{"max_tokens": 1000, "max_completion_tokens": 0}},
		{"max_completion_tokens", openai.ChatCompletions, `{"model":"o3","max_completion_tokens":4000,"stream":true}`, 1000,
			map[string]int64{"max_completion_tokens": 1000, "max_tokens": 0}},
		{"both lowered", openai.ChatCompletions, `{"model":"gpt-4o","max_tokens":4000,"max_completion_tokens":300}`, 1000,
			map[string]int64{"max_tokens": 1000, "max_completion_tokens": 300}},
		{"none: max_completion_tokens added", openai.ChatCompletions, `{"model":"gpt-4o","n":2}`, 1000,
			map[string]int64{"max_completion_tokens": 1000, "max_tokens": 0}},
		{"never raised", openai.ChatCompletions, `{"model":"gpt-4o","max_completion_tokens":50}`, 1000,
			map[string]int64{"max_completion_tokens": 50}},
		{"responses", openai.Responses, `{"model":"gpt-4o","input":"x","stream":true}`, 1000,
			map[string]int64{"max_output_tokens": 1000}},
		{"no cap without strict mode", openai.ChatCompletions, `{"model":"gpt-4o"}`, 0,
			map[string]int64{"max_completion_tokens": 0, "max_tokens": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sendCapped(t, s, tt.path, tt.body, tt.outputCap)
			for field, want := range tt.want {
				if v := gjson.GetBytes(got.Body, field).Int(); v != want {
					t.Errorf("%s sent = %d, want %d (body %s)", field, v, want, got.Body)
				}
			}
		})
	}

	// Legacy completions (which the fake does not serve) read max_tokens, 16 when absent.
	for _, tc := range []struct {
		body      string
		outputCap int64
		want      int64
	}{{`{"model":"gpt-3.5-turbo-instruct","prompt":"x"}`, 1000, 16}, {`{"model":"gpt-3.5-turbo-instruct","max_tokens":500}`, 100, 100}} {
		a := openai.New()
		var c provider.Call
		if err := a.Parse(&provider.Request{Method: "POST", Path: openai.Completions, Body: []byte(tc.body)}, &c); err != nil {
			t.Fatal(err)
		}
		c.OutputCap = tc.outputCap
		if err := a.Prepare(&c, c.Model); err != nil {
			t.Fatal(err)
		}
		if got := gjson.GetBytes(c.Body, "max_tokens").Int(); got != tc.want {
			t.Errorf("legacy max_tokens sent = %d, want %d", got, tc.want)
		}
	}
}

// Prepare refuses a fallback model no provider could have.
func TestPrepareRefusesModel(t *testing.T) {
	for _, model := range []string{"", "gpt-4o\n", "gpt\x00", strings.Repeat("g", 257), "gpt\u0085"} {
		a := openai.New()
		var c provider.Call
		if err := a.Parse(&provider.Request{Method: "POST", Path: openai.ChatCompletions, Body: []byte(`{"model":"gpt-4o"}`)}, &c); err != nil {
			t.Fatal(err)
		}
		if err := a.Prepare(&c, model); apperr.Code(err) != apperr.InvalidRequest {
			t.Errorf("Prepare(%q) error = %v, want INVALID_REQUEST", model, err)
		}
	}
}

// The input bound counts text by the byte and each image, inline or by URL, at OpenAI's
// per-image maximum for the model, whatever its size; tools add a hidden-prompt margin.
func TestInputBound(t *testing.T) {
	png := "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC" + strings.Repeat("A", 1<<20)
	chatImage := func(model, url string) string {
		return `{"model":"` + model + `","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"` + url + `"}}]}]}`
	}
	tests := []struct {
		name, path, body string
		media            int64 // bytes of the body not counted as text
		extra            int64 // tokens the bound adds
	}{
		{"text", openai.ChatCompletions, `{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}`, 0, 0},
		{"a 1 MB inline image", openai.ChatCompletions, chatImage("gpt-4o", png), int64(len(png) + 2), 6000},
		{"gpt-4o-mini bills images high", openai.ChatCompletions, chatImage("gpt-4o-mini", png), int64(len(png) + 2), 2833 + 8*5667},
		{"an image by URL", openai.ChatCompletions, chatImage("gpt-4o", "https://example.com/cat.png"), 0, 6000},
		{"responses input_image by file id", openai.Responses, `{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_image","file_id":"file-123"}]}]}`, 0, 6000},
		{"tools", openai.ChatCompletions, `{"model":"gpt-4o","tools":[{"type":"function","function":{"name":"f"}}]}`, 0, 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c provider.Call
			if err := openai.New().Parse(&provider.Request{Method: "POST", Path: tt.path, Body: []byte(tt.body)}, &c); err != nil {
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
