package proxy_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/genai"

	"tokenguard/app/provider/gemini/geminitest"
)

// The official Gemini Go SDK (google.golang.org/genai), configured as a user would (base URL =
// TokenGuard's /proxy/gemini, the TokenGuard key as the API key, which the SDK sends in
// x-goog-api-key), works unchanged through the proxy: generate, stream (the SDK streams with
// ?alt=sse) and count tokens, and the usage TokenGuard logs is the usage the SDK reads.
func TestGeminiGoSDK(t *testing.T) {
	m := newMultiApp(t, 0)
	p := m.project(projectOptions{daily: 5})
	reply := geminitest.Reply{Chunks: []string{"Hi", " from", " fake", " Gemini"}, Usage: geminitest.Usage{Prompt: 1200, Cached: 1000, Candidates: 9, Thoughts: 40}}
	m.gem.SetReply(reply)
	ctx := context.Background()
	client, err := genai.NewClient(ctx, &genai.ClientConfig{
		APIKey:      p.key,
		Backend:     genai.BackendGeminiAPI,
		HTTPOptions: genai.HTTPOptions{BaseURL: m.srv.URL + "/proxy/gemini/"},
	})
	if err != nil {
		t.Fatal(err)
	}
	const model = "gemini-2.5-flash"

	resp, err := client.Models.GenerateContent(ctx, model, genai.Text("Say hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resp.Text(), "Hi from fake Gemini"; got != want {
		t.Errorf("text %q, want %q", got, want)
	}
	if got, want := int64(resp.UsageMetadata.ThoughtsTokenCount), reply.Usage.Thoughts; got != want {
		t.Errorf("SDK read %d thinking tokens, want %d", got, want)
	}

	var text strings.Builder
	var last *genai.GenerateContentResponse
	for chunk, err := range client.Models.GenerateContentStream(ctx, model, genai.Text("Say hello"), nil) {
		if err != nil {
			t.Fatal(err)
		}
		text.WriteString(chunk.Text())
		last = chunk
	}
	if got, want := text.String(), "Hi from fake Gemini"; got != want {
		t.Errorf("streamed text %q, want %q", got, want)
	}
	if last == nil || int64(last.UsageMetadata.CandidatesTokenCount) != reply.Usage.Candidates {
		t.Errorf("last streamed chunk's usage %+v", last)
	}

	n, err := client.Models.CountTokens(ctx, model, genai.Text("Say hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := int64(n.TotalTokens), reply.Usage.Prompt; got != want {
		t.Errorf("countTokens %d, want %d", got, want)
	}

	rows := m.rows(p)
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2 (countTokens is not logged)", len(rows))
	}
	for i, r := range rows {
		if r.Provider != "gemini" || r.InputTokens != reply.Usage.Prompt || r.OutputTokens != reply.Usage.Candidates+reply.Usage.Thoughts || r.UsageEstimated || r.CostNano <= 0 || r.CostNano != rows[0].CostNano {
			t.Errorf("row %d = %+v", i, r)
		}
	}
	if !rows[1].Stream {
		t.Error("the streamed call's row is not flagged as a stream")
	}
	for _, s := range m.gem.Requests() {
		if got := s.Header.Get("x-goog-api-key"); got != geminiEnvKey {
			t.Errorf("upstream x-goog-api-key = %q, want the env key", got)
		}
		if !strings.Contains(s.Path, ":") || strings.Contains(s.RawQuery, "key=") {
			t.Errorf("upstream request %s?%s", s.Path, s.RawQuery)
		}
	}
}
