package provider_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"tokenguard/app/apperr"
	"tokenguard/app/provider"
)

// ScanBody refuses every body a provider could read differently from TokenGuard: not one
// object, a key twice in any object at any depth (after unescaping), a watched field spelled
// another way at its own depth, nesting past MaxDepth.
func TestScanBody(t *testing.T) {
	tests := []struct {
		name, body string
		ok         bool
	}{
		{"plain", `{"model":"x","messages":[{"role":"user","content":"hi"}]}`, true},
		{"same key in sibling objects", `{"messages":[{"role":"user"},{"role":"assistant"}]}`, true},
		{"watched field in both spellings' places", `{"cfg":{"max":1},"other":{"cfg":2}}`, true},
		{"many keys", `{` + manyKeys(40, "") + `}`, true},
		{"include_usage twice", `{"stream_options":{"include_usage":true,"include_usage":false}}`, false},
		{"duplicate deep in an array", `{"messages":[{"content":[{"text":"a","text":"b"}]}]}`, false},
		{"duplicate after many keys", `{` + manyKeys(40, `,"k7":0`) + `}`, false},
		{"duplicate by escape", `{"a":{"x":1,"\u0078":2}}`, false},
		{"duplicate by surrogate pair", `{"a":{"😀":1,"\ud83d\ude00":2}}`, false},
		{"watched field case-variant", `{"stream_options":{"INCLUDE_USAGE":true}}`, false},
		{"watched field escaped", `{"m\u006fdel":"x"}`, false},
		{"watched field in both spellings", `{"cfg":{"max":1,"m_a_x":2}}`, false},
		{"nested past MaxDepth", `{"a":` + strings.Repeat("[", provider.MaxDepth) + strings.Repeat("]", provider.MaxDepth) + `}`, false},
		{"at MaxDepth", `{"a":` + strings.Repeat("[", provider.MaxDepth-1) + strings.Repeat("]", provider.MaxDepth-1) + `}`, true},
		{"an array", `[{"model":"x"}]`, false},
		{"trailing data", `{"model":"x"}{"model":"y"}`, false},
		{"control character in a string", "{\"a\":\"\x01\"}", false},
		{"bad escape", `{"a":"\x"}`, false},
		{"bad number", `{"a":01}`, false},
		{"truncated", `{"a":[1,2`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := provider.ScanBody([]byte(tt.body), fuzzSpec)
			if (err == nil) != tt.ok {
				t.Fatalf("ScanBody error = %v, want ok %v", err, tt.ok)
			}
			if err != nil && apperr.Code(err) != apperr.InvalidRequest {
				t.Fatalf("error code %s, want INVALID_REQUEST", apperr.Code(err))
			}
		})
	}
}

func manyKeys(n int, extra string) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + string(rune('0'+i/10)) + string(rune('0'+i%10)) + `":0`)
	}
	return strings.ReplaceAll(b.String(), `"k07"`, `"k7"`) + extra
}

// Model names are bounded and plain: no control character can reach a log line or a header.
func TestCheckModel(t *testing.T) {
	for model, ok := range map[string]bool{
		"gpt-4o": true, "ft:gpt-4o-mini:org::x1": true, "models/gemini-2.5-flash": true, strings.Repeat("m", provider.MaxModelLen): true,
		"": false, strings.Repeat("m", provider.MaxModelLen+1): false, "a\x00b": false, "a\rb": false, "a\nb": false,
		"a\tb": false, "a\u0085b": false, "a\x7fb": false, "\xff": false,
	} {
		if err := provider.CheckModel(model); (err == nil) != ok {
			t.Errorf("CheckModel(%q) = %v, want ok %v", model, err, ok)
		}
	}
}

// Error codes from upstream are bounded, cut at a rune boundary.
func TestErrorCode(t *testing.T) {
	long := strings.Repeat("é", 40) // 80 bytes
	got := provider.ErrorCode(long)
	if len(got) > provider.MaxErrorCode || !utf8.ValidString(got) || !strings.HasPrefix(long, got) {
		t.Fatalf("ErrorCode = %q (%d bytes)", got, len(got))
	}
	if got := provider.ErrorCode("rate_limit_error"); got != "rate_limit_error" {
		t.Fatalf("ErrorCode = %q", got)
	}
}

// ScanBody's cost per byte on an ordinary 4 KB chat body and on a body carrying a 1 MB image.
func BenchmarkScanBody(b *testing.B) {
	for _, bc := range []struct{ name, body string }{
		{"4KB-text", `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"max_tokens":1024,"messages":[{"role":"system","content":"` + strings.Repeat("be brief ", 450) + `"},{"role":"user","content":"Hello"}]}`},
		{"1MB-image", `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ` + strings.Repeat("A", 1<<20) + `"}}]}]}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			body := []byte(bc.body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := provider.ScanBody(body, fuzzSpec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
