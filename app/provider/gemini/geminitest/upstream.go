// Package geminitest runs an HTTP server that speaks the Gemini API wire format
// (generativelanguage.googleapis.com): generateContent as JSON, streamGenerateContent as SSE
// with ?alt=sse and as an incrementally written JSON array without it, each chunk flushed on
// its own, for tests of the proxy and of the Gemini adapter. Like the real API it serves only
// the colon form of a method path and reads the key from x-goog-api-key; it records every
// request so a test can assert what went upstream.
package geminitest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"tokenguard/app/provider/providertest"
)

// Usage is the usage a reply reports, in Gemini's own terms: Prompt includes Cached;
// Candidates excludes Thoughts.
type Usage struct {
	Prompt, Cached, ToolUse, Candidates, Thoughts int64
}

// Fail says how a streamed reply goes wrong.
type Fail int

const (
	// FailNone streams the whole reply.
	FailNone Fail = iota
	// FailBreak cuts the connection after Cut chunks (1 when Cut is 0) and, in a JSON-array
	// stream, part of the next one, before the chunk that carries the finish reason and the
	// final usage.
	FailBreak
	// FailError sends an error chunk after the first chunk and ends the stream.
	FailError
	// FailHang sends Cut chunks (1 when Cut is 0) and then waits, sending nothing more, until
	// the client goes away, as a provider that hangs mid-answer does.
	FailHang
)

// Reply is what the upstream answers to one generate request.
type Reply struct {
	Text string
	// Chunks, when set, are the text pieces of a stream (else Text cut in small pieces).
	Chunks []string
	Usage  Usage
	Fail   Fail
	// Cut is how many chunks FailBreak sends before breaking off.
	Cut int
}

func (r Reply) pieces() []string {
	if r.Chunks != nil {
		return r.Chunks
	}
	return Pieces(r.Text)
}

// Seen is one request as the upstream received it.
type Seen = providertest.Seen

// DefaultReply is what an Upstream answers until SetReply changes it.
var DefaultReply = Reply{
	Text:  "Hello from the fake Gemini API, streamed in small pieces.",
	Usage: Usage{Prompt: 2400, Cached: 2000, Candidates: 37, Thoughts: 120},
}

// Upstream is the fake Gemini API.
type Upstream struct {
	*httptest.Server
	providertest.Recorder
	mu    sync.Mutex
	key   string // the only x-goog-api-key accepted
	reply Reply
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

// SetReply sets what later generate requests get.
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

	if r.Header.Get("x-goog-api-key") != key {
		apiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1beta/models")
	if !ok {
		apiError(w, http.StatusNotFound, "NOT_FOUND", "Not found")
		return
	}
	if r.Method == http.MethodGet {
		if rest == "" {
			writeJSON(w, map[string]any{"models": []any{map[string]any{"name": "models/gemini-2.5-flash", "displayName": "Gemini 2.5 Flash"}}})
			return
		}
		writeJSON(w, map[string]any{"name": "models" + rest, "displayName": strings.TrimPrefix(rest, "/")})
		return
	}
	name := strings.TrimPrefix(rest, "/")
	i := strings.LastIndexByte(name, ':')
	model, method, ok := name[:max(i, 0)], name[i+1:], i >= 0
	if r.Method != http.MethodPost || !ok || model == "" || strings.Contains(model, "/") {
		// The slash form is not served by Gemini: only models/{model}:{method}.
		apiError(w, http.StatusNotFound, "NOT_FOUND", "Not found")
		return
	}
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		apiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid JSON payload received.")
		return
	}
	switch method {
	case "countTokens":
		writeJSON(w, map[string]any{"totalTokens": reply.Usage.Prompt})
	case "generateContent":
		writeJSON(w, chunk(model, strings.Join(reply.pieces(), ""), "STOP", reply.Usage))
	case "streamGenerateContent":
		if r.URL.Query().Get("alt") == "sse" {
			streamSSE(w, r, model, reply)
		} else {
			streamArray(w, r, model, reply)
		}
	default:
		apiError(w, http.StatusNotFound, "NOT_FOUND", "Method not found.")
	}
}

// chunk is one GenerateContentResponse. finish is "" for all but the last chunk of a stream.
func chunk(model, text, finish string, u Usage) map[string]any {
	cand := map[string]any{"content": map[string]any{"parts": []any{map[string]any{"text": text}}, "role": "model"}, "index": 0}
	usage := map[string]any{
		"promptTokenCount": u.Prompt,
		"totalTokenCount":  u.Prompt + u.ToolUse + u.Candidates + u.Thoughts,
		"promptTokensDetails": []any{
			map[string]any{"modality": "TEXT", "tokenCount": u.Prompt},
		},
	}
	if u.Candidates > 0 {
		usage["candidatesTokenCount"] = u.Candidates
	}
	if u.Thoughts > 0 {
		usage["thoughtsTokenCount"] = u.Thoughts
	}
	if u.Cached > 0 {
		usage["cachedContentTokenCount"] = u.Cached
	}
	if u.ToolUse > 0 {
		usage["toolUsePromptTokenCount"] = u.ToolUse
	}
	if finish != "" {
		cand["finishReason"] = finish
	}
	return map[string]any{"candidates": []any{cand}, "usageMetadata": usage, "modelVersion": model, "responseId": "fakeResp01"}
}

// chunks is the reply as a stream: one chunk per piece of text, each with the usage so far
// (the prompt, candidates counted up piece by piece), the last with the finish reason and the
// final usage (thoughts and cache included).
func chunks(model string, r Reply) []map[string]any {
	ps := r.pieces()
	out := make([]map[string]any, 0, len(ps))
	for i, p := range ps {
		if i == len(ps)-1 {
			out = append(out, chunk(model, p, "STOP", r.Usage))
			break
		}
		out = append(out, chunk(model, p, "", Usage{Prompt: r.Usage.Prompt, Cached: r.Usage.Cached, Candidates: int64(i + 1)}))
	}
	return out
}

var errorChunk = map[string]any{"error": map[string]any{"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}

func streamSSE(w http.ResponseWriter, req *http.Request, model string, r Reply) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	for i, c := range chunks(model, r) {
		b, _ := json.Marshal(c)
		_, _ = w.Write(append(append([]byte("data: "), b...), "\r\n\r\n"...))
		fl.Flush()
		if i+1 == max(r.Cut, 1) {
			switch r.Fail {
			case FailBreak:
				panic(http.ErrAbortHandler)
			case FailHang:
				<-req.Context().Done()
				return
			case FailError:
				b, _ := json.Marshal(errorChunk)
				_, _ = w.Write(append(append([]byte("data: "), b...), "\r\n\r\n"...))
				fl.Flush()
				return
			}
		}
	}
}

// streamArray writes the JSON-array stream Gemini sends without alt=sse: "[" then each chunk
// pretty-printed, separated by "\n,\r\n", then "\n]", flushed chunk by chunk.
func streamArray(w http.ResponseWriter, req *http.Request, model string, r Reply) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	cs := chunks(model, r)
	for i, c := range cs {
		b, _ := json.MarshalIndent(c, "", "  ")
		sep := "\n,\r\n"
		if i == 0 {
			sep = "["
		}
		_, _ = io.WriteString(w, sep)
		_, _ = w.Write(b)
		fl.Flush()
		if i+1 == max(r.Cut, 1) {
			switch r.Fail {
			case FailBreak:
				if i+1 < len(cs) {
					next, _ := json.MarshalIndent(cs[i+1], "", "  ")
					_, _ = io.WriteString(w, "\n,\r\n")
					_, _ = w.Write(next[:len(next)/2])
					fl.Flush()
				}
				panic(http.ErrAbortHandler)
			case FailHang:
				<-req.Context().Done()
				return
			case FailError:
				b, _ := json.MarshalIndent(errorChunk, "", "  ")
				_, _ = io.WriteString(w, "\n,\r\n")
				_, _ = w.Write(b)
				_, _ = io.WriteString(w, "\n]")
				fl.Flush()
				return
			}
		}
	}
	_, _ = io.WriteString(w, "\n]")
	fl.Flush()
}

// Pieces splits text into the small pieces a stream carries (up to 8 bytes each, on rune
// boundaries).
func Pieces(text string) []string {
	var out []string
	for len(text) > 0 {
		n := min(8, len(text))
		for n < len(text) && text[n]&0xC0 == 0x80 {
			n++
		}
		out = append(out, text[:n])
		text = text[n:]
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, s, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": status, "message": msg, "status": s}})
}
