package provider_test

import (
	"strings"
	"testing"

	"tokenguard/app/provider"
)

// An ObjectCapture keeps only the keys asked for, from an object written in pieces of any
// size, drops a value over MaxCapture, and answers "{}" for a body that is no object.
func TestObjectCapture(t *testing.T) {
	huge := `"` + strings.Repeat("x", provider.MaxCapture) + `"`
	tests := []struct {
		name, body, want string
	}{
		{"usage at the end", `{"id":"c1","choices":[{"message":{"content":"{\"usage\":1}"}}],"usage": {"prompt_tokens":3} }`, `{"usage":{"prompt_tokens":3}}`},
		{"two keys, in the capture's order", `{"usageMetadata":{"a":1},"usage":{"b":2}}`, `{"usage":{"b":2},"usageMetadata":{"a":1}}`},
		{"nested usage is not top-level", `{"response":{"usage":{"a":1}}}`, `{}`},
		{"first of duplicates, as gjson", `{"usage":{"a":1},"usage":{"a":2}}`, `{"usage":{"a":1}}`},
		{"escaped key", `{"us\u0061ge":{"a":1}}`, `{"usage":{"a":1}}`},
		{"oversize value dropped", `{"usage":` + huge + `}`, `{}`},
		{"broken off after usage", `{"usage":{"a":1},"choices":[{"text":"abc`, `{"usage":{"a":1}}`},
		{"broken off inside usage", `{"usage":{"a":1`, `{}`},
		{"an array", `[{"usage":{"a":1}}]`, `{}`},
		{"an error page", `<html>usage</html>`, `{}`},
	}
	for _, tt := range tests {
		for _, step := range []int{1, 3, 4096} {
			c := provider.NewObjectCapture("usage", "usageMetadata")
			for i := 0; i < len(tt.body); i += step {
				c.Write([]byte(tt.body[i:min(i+step, len(tt.body))]))
			}
			if got := string(c.Bytes()); got != tt.want {
				t.Errorf("%s, %d-byte pieces: Bytes() = %.80s, want %s", tt.name, step, got, tt.want)
			}
		}
	}
}

// BenchmarkObjectCapture is the cost of teeing a 1 MB non-streamed response into a capture.
func BenchmarkObjectCapture(b *testing.B) {
	body := []byte(`{"id":"chatcmpl-1","choices":[{"index":0,"message":{"role":"assistant","content":"` + strings.Repeat("some words ", 100<<10) + `"}}],"usage":{"prompt_tokens":10,"completion_tokens":100}}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		c := provider.NewObjectCapture("usage")
		for i := 0; i < len(body); i += 32 << 10 {
			c.Write(body[i:min(i+32<<10, len(body))])
		}
		if len(c.Bytes()) < 10 {
			b.Fatal("no usage")
		}
	}
}
