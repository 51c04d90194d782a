package tracing

import "testing"

// TestOperation ensures every endpoint an adapter meters is named by the GenAI convention's
// operation for it (the span tests in app/proxy cover the export).
func TestOperation(t *testing.T) {
	tests := []struct{ endpoint, want string }{
		{"/v1/chat/completions", "chat"},
		{"/v1/responses", "chat"},
		{"/v1/messages", "chat"},
		{"/v1/completions", "text_completion"},
		{"/v1/embeddings", "embeddings"},
		{"/v1beta/models/{model}:generateContent", "generate_content"},
		{"/v1beta/models/{model}:streamGenerateContent", "generate_content"},
	}
	for _, tt := range tests {
		if got := operation(tt.endpoint); got != tt.want {
			t.Errorf("operation(%q) = %q, want %q", tt.endpoint, got, tt.want)
		}
	}
}
