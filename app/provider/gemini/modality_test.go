package gemini_test

import (
	"testing"

	"tokenguard/app/pricing"
	"tokenguard/app/provider"
	"tokenguard/app/provider/gemini"
)

// usageMetadata's per-modality breakdowns become the audio and image parts of each class: the
// cached part of the prompt's audio and images is billed as cache reads, the rest as fresh input.
func TestUsageModalities(t *testing.T) {
	a := gemini.New()
	body := []byte(`{"usageMetadata":{"promptTokenCount":1000,"cachedContentTokenCount":300,"candidatesTokenCount":500,
		"promptTokensDetails":[{"modality":"TEXT","tokenCount":400},{"modality":"AUDIO","tokenCount":342},{"modality":"IMAGE","tokenCount":258}],
		"cacheTokensDetails":[{"modality":"AUDIO","tokenCount":300}],
		"candidatesTokensDetails":[{"modality":"TEXT","tokenCount":100},{"modality":"IMAGE","tokenCount":400}]}}`)
	got, ok := a.Usage(&provider.Call{}, body)
	want := pricing.Usage{Input: 700, CacheRead: 300, Output: 500,
		InputAudio: 42, InputImage: 258, CacheReadAudio: 300, OutputImage: 400}
	if !ok || got != want {
		t.Fatalf("usage = %+v, want %+v", got, want)
	}
}
