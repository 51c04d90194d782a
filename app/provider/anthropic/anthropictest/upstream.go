// Package anthropictest runs an HTTP server that speaks the Anthropic Messages API wire format
// (JSON responses, and SSE streams framed exactly as api.anthropic.com frames them, flushed per
// event), for tests of the proxy and of the Anthropic adapter. It checks the key and the
// anthropic-version header as the real API does, and records every request it receives so a
// test can assert what went upstream.
package anthropictest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"tokenguard/app/provider/providertest"
)

// Usage is the usage a reply reports, in Anthropic's own classes (input excludes both cache
// classes).
type Usage struct {
	Input, CacheRead, CacheWrite, Output int64
}

// Fail says how a streamed reply goes wrong.
type Fail int

const (
	// FailNone streams the whole reply.
	FailNone Fail = iota
	// FailBreak cuts the connection after message_start and Cut text deltas (1 when Cut is
	// 0), before message_delta: the client never learns the output count.
	FailBreak
	// FailErrorEvent sends "event: error" (overloaded_error) after the first text delta, inside
	// the 200 stream, and ends it, as the API does when it is overloaded mid-response.
	FailErrorEvent
	// FailHang sends Cut deltas (1 when Cut is 0) and then waits, sending nothing more, until
	// the client goes away, as a provider that hangs mid-answer does.
	FailHang
)

// Reply is what the upstream answers to one messages request.
type Reply struct {
	Text string
	// Chunks, when set, are the text deltas of a stream (else Text cut in small pieces).
	Chunks []string
	Usage  Usage
	Fail   Fail
	// Cut is how many deltas FailBreak sends before breaking off.
	Cut int
	// DeltaInput makes message_delta repeat the input and cache figures (newer API versions
	// do), rather than only output_tokens.
	DeltaInput bool
}

// Seen is one request as the upstream received it.
type Seen = providertest.Seen

// Upstream is the fake Anthropic API.
type Upstream struct {
	*httptest.Server
	providertest.Recorder
	mu    sync.Mutex
	key   string // the only x-api-key accepted
	reply Reply
}

// DefaultReply is what an Upstream answers until SetReply changes it.
var DefaultReply = Reply{
	Text:  "Hello from the fake Anthropic API, streamed in small pieces.",
	Usage: Usage{Input: 1200, CacheRead: 3000, CacheWrite: 500, Output: 42},
}

// New starts an Upstream accepting key; it is closed when tb ends.
func New(tb testing.TB, key string) *Upstream {
	u := &Upstream{key: key, reply: DefaultReply}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	tb.Cleanup(u.Close)
	return u
}

// SetKey sets the only key later requests are accepted with.
func (u *Upstream) SetKey(key string) {
	u.mu.Lock()
	u.key = key
	u.mu.Unlock()
}

// SetReply sets what later messages requests get.
func (u *Upstream) SetReply(r Reply) {
	u.mu.Lock()
	u.reply = r
	u.mu.Unlock()
}

func (u *Upstream) serve(w http.ResponseWriter, r *http.Request) {
	body := u.Record(r)
	u.mu.Lock()
	reply, key := u.reply, u.key
	u.mu.Unlock()

	w.Header().Set("request-id", "req_fake01")
	if r.Header.Get("x-api-key") != key {
		apiError(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
		return
	}
	if r.Header.Get("anthropic-version") == "" {
		apiError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required")
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		writeJSON(w, map[string]any{
			"data":     []any{map[string]any{"type": "model", "id": "claude-sonnet-4-5-20250929", "display_name": "Claude Sonnet 4.5", "created_at": "2025-09-29T00:00:00Z"}},
			"has_more": false, "first_id": "claude-sonnet-4-5-20250929", "last_id": "claude-sonnet-4-5-20250929",
		})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/messages/count_tokens":
		writeJSON(w, map[string]any{"input_tokens": reply.Usage.Input})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/messages":
		var req struct {
			Model     string `json:"model"`
			Stream    bool   `json:"stream"`
			MaxTokens int64  `json:"max_tokens"`
		}
		if err := json.Unmarshal(body, &req); err != nil || req.Model == "" {
			apiError(w, http.StatusBadRequest, "invalid_request_error", "model: Field required")
			return
		}
		if req.Stream {
			stream(w, r, req.Model, reply)
			return
		}
		text := reply.Text
		if reply.Chunks != nil {
			text = strings.Join(reply.Chunks, "")
		}
		writeJSON(w, message(req.Model, reply, text, "end_turn", reply.Usage))
	default:
		apiError(w, http.StatusNotFound, "not_found_error", "Not found")
	}
}

func message(model string, r Reply, text string, stop any, u Usage) map[string]any {
	content := []any{}
	if text != "" {
		content = append(content, map[string]any{"type": "text", "text": text})
	}
	return map[string]any{
		"id": "msg_fake01", "type": "message", "role": "assistant", "model": model,
		"content": content, "stop_reason": stop, "stop_sequence": nil,
		"usage": map[string]any{
			"input_tokens": u.Input, "cache_creation_input_tokens": u.CacheWrite,
			"cache_read_input_tokens": u.CacheRead, "output_tokens": u.Output,
			"cache_creation": map[string]any{"ephemeral_5m_input_tokens": u.CacheWrite, "ephemeral_1h_input_tokens": 0},
			"service_tier":   "standard",
		},
	}
}

// stream writes the reply as the API streams it: message_start (input and cache usage, a
// first output count of 1), a text block with a ping after its start, text deltas,
// content_block_stop, message_delta (the cumulative output count), message_stop. Every event
// is flushed on its own.
func stream(w http.ResponseWriter, req *http.Request, model string, r Reply) {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	send := func(name string, data any) {
		b, _ := json.Marshal(data)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b)
		fl.Flush()
	}
	start := r.Usage
	start.Output = 1
	send("message_start", map[string]any{"type": "message_start", "message": message(model, r, "", nil, start)})
	send("content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}})
	send("ping", map[string]any{"type": "ping"})
	pieces := r.Chunks
	if pieces == nil {
		pieces = Pieces(r.Text)
	}
	for i, piece := range pieces {
		send("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": piece}})
		if i+1 == max(r.Cut, 1) {
			switch r.Fail {
			case FailBreak:
				// Abort the connection: no terminating chunk, the client sees a broken body.
				panic(http.ErrAbortHandler)
			case FailHang:
				<-req.Context().Done()
				return
			case FailErrorEvent:
				send("error", map[string]any{"type": "error", "error": map[string]any{"type": "overloaded_error", "message": "Overloaded"}})
				return
			}
		}
	}
	send("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
	usage := map[string]any{"output_tokens": r.Usage.Output}
	if r.DeltaInput {
		usage["input_tokens"] = r.Usage.Input
		usage["cache_creation_input_tokens"] = r.Usage.CacheWrite
		usage["cache_read_input_tokens"] = r.Usage.CacheRead
	}
	send("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil}, "usage": usage})
	send("message_stop", map[string]any{"type": "message_stop"})
}

// Pieces splits text into the small deltas a stream carries (up to 8 bytes each, on rune
// boundaries).
func Pieces(text string) []string {
	var out []string
	for len(text) > 0 {
		n := min(8, len(text))
		for n < len(text) && !isRuneStart(text[n]) {
			n++
		}
		out = append(out, text[:n])
		text = text[n:]
	}
	return out
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}, "request_id": "req_fake01"})
}

// ContainsAny reports whether s contains any of the non-empty secrets (for canary checks).
func ContainsAny(s string, secrets ...string) bool {
	for _, k := range secrets {
		if k != "" && strings.Contains(s, k) {
			return true
		}
	}
	return false
}
