package proxy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	anthropicsdk "github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"tokenguard/app/provider/anthropic/anthropictest"
)

// The official Anthropic Go SDK, configured as a user would (base URL = TokenGuard's
// /proxy/anthropic, the TokenGuard key as the API key), works unchanged through the proxy:
// a message, a streamed message and a token count, and the usage TokenGuard logs is the usage
// the SDK reads.
func TestAnthropicGoSDK(t *testing.T) {
	m := newMultiApp(t, 0)
	p := m.project(projectOptions{daily: 5})
	reply := anthropictest.Reply{Chunks: []string{"Hi", " from", " fake", " Claude"}, Usage: anthropictest.Usage{Input: 30, CacheRead: 900, CacheWrite: 120, Output: 11}}
	m.anth.SetReply(reply)
	ctx := context.Background()

	// Two ways users pass the key: the SDK's own WithAPIKey (v1+ sends it as Authorization:
	// Bearer) and the x-api-key header (the slot of the 0.x SDKs and of curl examples).
	for _, tc := range []struct {
		name string
		auth option.RequestOption
	}{
		{"WithAPIKey", option.WithAPIKey(p.key)},
		{"x-api-key", option.WithHeader("x-api-key", p.key)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := anthropicsdk.NewClient(option.WithBaseURL(m.srv.URL+"/proxy/anthropic"), tc.auth, option.WithMaxRetries(0))
			params := anthropicsdk.MessageNewParams{
				Model:     "claude-sonnet-4-5-20250929",
				MaxTokens: 300,
				Messages:  []anthropicsdk.MessageParam{anthropicsdk.NewUserMessage(anthropicsdk.NewTextBlock("Say hello"))},
			}
			msg, err := client.Messages.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := msg.Content[0].Text, "Hi from fake Claude"; got != want {
				t.Errorf("content %q, want %q", got, want)
			}
			if got, want := msg.Usage.CacheReadInputTokens, reply.Usage.CacheRead; got != want {
				t.Errorf("SDK read %d cache-read tokens, want %d", got, want)
			}

			stream := client.Messages.NewStreaming(ctx, params)
			var acc anthropicsdk.Message
			for stream.Next() {
				if err := acc.Accumulate(stream.Current()); err != nil {
					t.Fatal(err)
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if got, want := acc.Content[0].Text, "Hi from fake Claude"; got != want {
				t.Errorf("streamed content %q, want %q", got, want)
			}
			if got, want := acc.Usage.OutputTokens, reply.Usage.Output; got != want {
				t.Errorf("streamed output tokens %d, want %d", got, want)
			}

			n, err := client.Messages.CountTokens(ctx, anthropicsdk.MessageCountTokensParams{
				Model:    "claude-sonnet-4-5-20250929",
				Messages: params.Messages,
			})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := n.InputTokens, reply.Usage.Input; got != want {
				t.Errorf("count_tokens %d, want %d", got, want)
			}
		})
	}

	rows := m.rows(p)
	if len(rows) != 4 {
		t.Fatalf("%d rows, want 4 (count_tokens is not logged)", len(rows))
	}
	wantIn := reply.Usage.Input + reply.Usage.CacheRead + reply.Usage.CacheWrite
	for i, r := range rows {
		if r.Provider != "anthropic" || r.InputTokens != wantIn || r.OutputTokens != reply.Usage.Output || r.UsageEstimated || r.CostNano != rows[0].CostNano || r.CostNano <= 0 {
			t.Errorf("row %d = %+v, want %d in, %d out, reported, the same cost as the others", i, r, wantIn, reply.Usage.Output)
		}
	}
	for _, s := range m.anth.Requests() {
		if got := s.Header.Get("x-api-key"); got != anthropicEnvKey {
			t.Errorf("upstream x-api-key = %q, want the env key", got)
		}
		if s.Header.Get("anthropic-version") == "" || s.Header.Get("Authorization") != "" {
			t.Errorf("upstream headers %v", s.Header)
		}
	}
}

// An overloaded error inside a 200 stream reaches the SDK as an error, and TokenGuard logs the
// request as an error with the partial usage.
func TestAnthropicGoSDKStreamError(t *testing.T) {
	m := newMultiApp(t, 0)
	p := m.project(projectOptions{daily: 5})
	m.anth.SetReply(anthropictest.Reply{Chunks: []string{"Hi", " there"}, Usage: anthropictest.Usage{Input: 30, Output: 11}, Fail: anthropictest.FailErrorEvent})
	client := anthropicsdk.NewClient(option.WithBaseURL(m.srv.URL+"/proxy/anthropic"), option.WithAPIKey(p.key), option.WithMaxRetries(0))
	stream := client.Messages.NewStreaming(context.Background(), anthropicsdk.MessageNewParams{
		Model: "claude-haiku-4-5", MaxTokens: 100,
		Messages: []anthropicsdk.MessageParam{anthropicsdk.NewUserMessage(anthropicsdk.NewTextBlock("Say hello"))},
	})
	for stream.Next() {
	}
	var apiErr *anthropicsdk.Error
	if err := stream.Err(); !errors.As(err, &apiErr) {
		t.Fatalf("stream error = %v, want the API's overloaded error", err)
	}
	rows := m.waitRows(p, 1)
	if len(rows) != 1 || rows[0].ErrorCode != "overloaded_error" || rows[0].InputTokens != 30 || rows[0].OutputTokens <= 0 || !rows[0].UsageEstimated {
		t.Fatalf("rows %+v: want one error row with the input reported and the output estimated", rows)
	}
}

// The SDK's beta surface (POST /v1/messages with anthropic-beta headers) goes through
// the same metered route, and the beta flags reach the provider.
func TestAnthropicGoSDKBeta(t *testing.T) {
	m := newMultiApp(t, 0)
	p := m.project(projectOptions{daily: 5})
	client := anthropicsdk.NewClient(option.WithBaseURL(m.srv.URL+"/proxy/anthropic"), option.WithAPIKey(p.key), option.WithMaxRetries(0))
	msg, err := client.Beta.Messages.New(context.Background(), anthropicsdk.BetaMessageNewParams{
		Model: "claude-sonnet-4-5-20250929", MaxTokens: 100,
		Messages: []anthropicsdk.BetaMessageParam{anthropicsdk.NewBetaUserMessage(anthropicsdk.NewBetaTextBlock("Say hello"))},
		Betas:    []anthropicsdk.AnthropicBeta{"context-1m-2025-08-07"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if msg.Usage.InputTokens != anthropictest.DefaultReply.Usage.Input {
		t.Errorf("SDK read %d input tokens", msg.Usage.InputTokens)
	}
	last := m.anth.Last()
	if got := last.Header.Get("anthropic-beta"); !strings.Contains(got, "context-1m-2025-08-07") {
		t.Errorf("anthropic-beta upstream = %q", got)
	}
	if last.Path != "/v1/messages" {
		t.Errorf("upstream path %s", last.Path)
	}
	rows := m.rows(p)
	if len(rows) != 1 || rows[0].CostNano <= 0 || rows[0].UsageEstimated {
		t.Fatalf("rows %+v", rows)
	}
}
