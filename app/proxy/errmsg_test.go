package proxy

import (
	"strings"
	"testing"
	"unicode/utf8"

	"tokenguard/store"
)

// TestErrorMessage ensures the usage row gets the provider's own error message from each
// provider's real error shape, never a credential, and never more than the row holds.
func TestErrorMessage(t *testing.T) {
	long := strings.Repeat("é", 600)
	for _, tc := range []struct {
		name, body, want string
	}{
		{"openai", `{"error":{"message":"Incorrect API key provided: sk-proj-abc********************wxyz. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`,
			"Incorrect API key provided: [redacted]. You can find your API key at https://platform.openai.com/account/api-keys."},
		{"anthropic", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}`, "Overloaded"},
		{"gemini", `{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}`,
			"API key not valid. Please pass a valid API key."},
		{"gemini stream array", `[{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}]`,
			"Resource has been exhausted (e.g. check quota)."},
		{"plain text", "upstream connect error\r\nor disconnect", "upstream connect error or disconnect"},
		{"no message", `{"error":{"code":"x"}}`, ""},
		{"empty", "", ""},
		{"keys of every kind", `{"error":{"message":"key tg_live_AbC123 and AIzaSyD-abc_123 and Bearer eyJhbGciOi.x-y and sk-ant-api03-QQ"}}`,
			"key [redacted] and [redacted] and [redacted] and [redacted]"},
		{"control characters", "{\"error\":{\"message\":\"a\\u0000b\\nc\\u001b[31m\"}}", "a b c [31m"},
		{"cut-off body", `{"error":{"code":429,"message":"quota exceeded for sk-abc","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content`, "quota exceeded for [redacted]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := errorMessage([]byte(tc.body)); got != tc.want {
				t.Errorf("errorMessage = %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("bounded", func(t *testing.T) {
		got := errorMessage([]byte(`{"error":{"message":"` + long + `"}}`))
		if len(got) > store.MaxErrorMessage || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
			t.Errorf("long message: %d bytes, valid UTF-8 %v: %q…", len(got), utf8.ValidString(got), got[:20])
		}
	})
}

// TestErrorBodyKeepsPrefix ensures an error body of any size costs at most maxErrorBody bytes
// while every byte still counts as written (the client gets it all).
func TestErrorBodyKeepsPrefix(t *testing.T) {
	var e errorBody
	chunk := []byte(strings.Repeat("x", 1000))
	for range 10 {
		if n, err := e.Write(chunk); n != len(chunk) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if got, want := len(e.b), maxErrorBody; got != want {
		t.Errorf("kept %d bytes, want %d", got, want)
	}
}
