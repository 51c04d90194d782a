package proxy

import (
	"net/http"
	"strings"
	"testing"

	"tokenguard/app/pricing"
	"tokenguard/app/provider"
	"tokenguard/app/provider/anthropic"
	"tokenguard/app/provider/openai"
)

// What the budget reserves for a request covers whatever it may end up sending: the fallback
// model's own rate for images (a smaller model can bill more tokens for one), the translated
// request of a fallback at another provider, and for a project that fails over, the fallback
// too when the requested model is what the gate admits.
func TestWorstCaseCoversWhatIsSent(t *testing.T) {
	prices, err := pricing.New(nil, pricing.DefaultUnknownPrice())
	if err != nil {
		t.Fatal(err)
	}
	image := `{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}`
	withImages := `{"model":"gpt-4o","max_tokens":100,"messages":[{"role":"user","content":[` +
		strings.Repeat(image+",", 3) + `{"type":"text","text":"what is in these?"}]}]}`
	oa := openai.New()
	parse := func(a provider.Adapter, path, body string) *provider.Call {
		t.Helper()
		var c provider.Call
		if err := a.Parse(&provider.Request{Method: http.MethodPost, Path: path, Body: []byte(body)}, &c); err != nil {
			t.Fatal(err)
		}
		return &c
	}
	call := parse(oa, openai.ChatCompletions, withImages)
	if call.MediaParts != 3 {
		t.Fatalf("3 images parsed as %d media parts", call.MediaParts)
	}
	// On gpt-4o-mini each image may bill miniPartTokens, far above gpt-4o's 6,000.
	mini := (*openai.Adapter)(nil).PartTokens("gpt-4o-mini")
	minInput := 3*mini + int64(len("what is in these?"))
	wc := worstCase{prices: prices, adapter: oa, call: call, fallback: "gpt-4o-mini"}
	if got, floor := wc.cost(true, 0), prices.WorstCase("gpt-4o-mini", minInput, 100, 1); got < floor {
		t.Errorf("fallback to gpt-4o-mini reserves %d, below the %d its images can bill", got, floor)
	}
	if got, own := wc.cost(false, 0), prices.WorstCase("gpt-4o", call.MaxInputTokens, 100, 1); got != own {
		t.Errorf("the requested model reserves %d, want its own worst case %d", got, own)
	}

	// Failing over: the requested model's reservation is the larger of both.
	cheap := parse(oa, openai.ChatCompletions, `{"model":"gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`)
	fo := worstCase{prices: prices, adapter: oa, call: cheap, fallback: "gpt-4o", failover: true}
	if got, want := fo.cost(false, 0), fo.costOn(true, 0); got != want || want <= fo.costOn(false, 0) {
		t.Errorf("failover reserves %d; want the pricier fallback's %d (requested alone %d)", got, want, fo.costOn(false, 0))
	}

	// Another provider's fallback is reserved for as translated: by its own bounds, here an
	// Anthropic request whose tools add Anthropic's hidden tool prompt.
	tools := `{"model":"gpt-4o","max_tokens":100,"messages":[{"role":"user","content":"weather?"}],` +
		`"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]}`
	caller := parse(oa, openai.ChatCompletions, tools)
	translated := parse(anthropic.New(), anthropic.Messages, `{"model":"claude-3-5-haiku-latest","max_tokens":100,`+
		`"messages":[{"role":"user","content":"weather?"}],"tools":[{"name":"get_weather","input_schema":{"type":"object"}}]}`)
	x := worstCase{prices: prices, adapter: oa, call: caller, fallback: "claude-3-5-haiku-latest", fallbackCall: translated}
	if got, want := x.cost(true, 0), prices.WorstCase("claude-3-5-haiku-latest", translated.MaxInputTokens, 100, 1); got != want {
		t.Errorf("cross-provider fallback reserves %d, want the translated request's %d", got, want)
	}
}
