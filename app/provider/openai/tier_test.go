package openai_test

import (
	"testing"

	"tokenguard/app/apperr"
	"tokenguard/app/pricing"
	"tokenguard/app/provider"
	"tokenguard/app/provider/openai"
)

// Priority processing is billed above list price, so a request that asks for it is reserved and
// billed at the premium; other tiers are list price; a tier that is not a string is refused.
func TestServiceTier(t *testing.T) {
	a := openai.New()
	tests := []struct {
		name, body  string
		wantPercent int64
		wantCode    string
	}{
		{"priority", `{"model":"gpt-5","service_tier":"priority"}`, 250, ""},
		{"flex", `{"model":"gpt-5","service_tier":"flex"}`, 0, ""},
		{"default", `{"model":"gpt-5","service_tier":"default"}`, 0, ""},
		{"none", `{"model":"gpt-5"}`, 0, ""},
		{"null", `{"model":"gpt-5","service_tier":null}`, 0, ""},
		{"not a string", `{"model":"gpt-5","service_tier":1}`, 0, apperr.InvalidRequest},
		{"twice", `{"model":"gpt-5","service_tier":"default","service_tier":"priority"}`, 0, apperr.InvalidRequest},
		{"differently cased", `{"model":"gpt-5","Service_Tier":"default","service_tier":"priority"}`, 0, apperr.InvalidRequest},
	}
	for _, tt := range tests {
		for _, path := range []string{openai.ChatCompletions, openai.Responses} {
			t.Run(tt.name+path, func(t *testing.T) {
				var c provider.Call
				err := a.Parse(&provider.Request{Method: "POST", Path: path, Body: []byte(tt.body)}, &c)
				if got := apperr.Code(err); tt.wantCode != "" && got != tt.wantCode || tt.wantCode == "" && err != nil {
					t.Fatalf("error %v, want code %q", err, tt.wantCode)
				}
				if c.PricePercent != tt.wantPercent {
					t.Errorf("PricePercent = %d, want %d", c.PricePercent, tt.wantPercent)
				}
			})
		}
	}
}

// Audio tokens are read as the parts of the prompt and completion they are, so they are billed
// at their own rates.
func TestChatUsageAudio(t *testing.T) {
	a := openai.New()
	var c provider.Call
	if err := a.Parse(&provider.Request{Method: "POST", Path: openai.ChatCompletions, Body: []byte(`{"model":"gpt-4o-audio-preview"}`)}, &c); err != nil {
		t.Fatal(err)
	}
	got, ok := a.Usage(&c, []byte(`{"usage":{"prompt_tokens":100,"completion_tokens":80,
		"prompt_tokens_details":{"cached_tokens":10,"audio_tokens":40},
		"completion_tokens_details":{"audio_tokens":60,"reasoning_tokens":0}}}`))
	want := pricing.Usage{Input: 90, CacheRead: 10, Output: 80, InputAudio: 40, OutputAudio: 60}
	if !ok || got != want {
		t.Fatalf("usage = %+v, want %+v", got, want)
	}
}
