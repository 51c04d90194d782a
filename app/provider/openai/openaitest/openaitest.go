// Package openaitest is a fake OpenAI API for tests: an httptest server that speaks OpenAI's
// real wire format — chat completions streamed as SSE chunks, the extra usage chunk
// ("choices": []) only when stream_options.include_usage is set, "data: [DONE]" — and records
// every request it receives so tests can check what reached the upstream.
package openaitest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Usage is the usage the fake reports, in OpenAI's terms: Prompt includes Cached, Completion
// includes Reasoning.
type Usage struct {
	Prompt, Cached, Completion, Reasoning int64
}

// Behavior is what the fake does with the next requests.
type Behavior struct {
	Usage Usage
	// Chunks are the content pieces of the answer (streamed one per chunk).
	Chunks []string
	// Status, when not 0 or 200, answers every request with that error status, an OpenAI
	// error body and a Retry-After header.
	Status int
	// HangAfter > 0 streams that many chunks, then waits until the request is cancelled
	// without ever sending usage (a stream the client breaks off).
	HangAfter int
	// HeaderDelay is waited before the response headers are sent.
	HeaderDelay time.Duration
	// OmitUsage leaves usage out of a non-streamed answer.
	OmitUsage bool
}

// Received is one request as the fake saw it.
type Received struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
	Model                  string
	IncludeUsage           bool
}

// Server is the fake. Its zero behaviour answers with a short text and a small usage.
type Server struct {
	*httptest.Server

	mu       sync.Mutex
	behavior Behavior
	received []Received
	// Cancelled receives once for every hanging stream whose request context ended, i.e. whose
	// connection TokenGuard closed.
	Cancelled chan struct{}
}

// New starts a fake OpenAI, closed when the test ends.
func New(tb testing.TB) *Server {
	s := &Server{
		behavior:  Behavior{Usage: Usage{Prompt: 12, Completion: 5}, Chunks: []string{"Hello", " there", "!"}},
		Cancelled: make(chan struct{}, 64),
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.Close)
	return s
}

// Set replaces the behaviour for the following requests.
func (s *Server) Set(b Behavior) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.behavior = b
}

// Received returns every request seen so far.
func (s *Server) Received() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.received...)
}

// Last returns the latest request seen (the zero value if none).
func (s *Server) Last() Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.received) == 0 {
		return Received{}
	}
	return s.received[len(s.received)-1]
}

type reqBody struct {
	Model         string `json:"model"`
	Stream        bool   `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var rb reqBody
	if len(body) > 0 {
		if err := json.Unmarshal(body, &rb); err != nil {
			http.Error(w, `{"error":{"message":"bad json","type":"invalid_request_error"}}`, http.StatusBadRequest)
			return
		}
	}
	s.mu.Lock()
	b := s.behavior
	s.received = append(s.received, Received{
		Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body,
		Model: rb.Model, IncludeUsage: rb.StreamOptions != nil && rb.StreamOptions.IncludeUsage,
	})
	s.mu.Unlock()

	if b.HeaderDelay > 0 {
		select {
		case <-time.After(b.HeaderDelay):
		case <-r.Context().Done():
			return
		}
	}
	if b.Status != 0 && b.Status != http.StatusOK {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "7")
		w.Header().Set("X-Ratelimit-Remaining-Requests", "0")
		w.WriteHeader(b.Status)
		fmt.Fprintf(w, `{"error":{"message":"upstream says %d","type":"server_error","code":"status_%d"}}`, b.Status, b.Status)
		return
	}
	switch {
	case r.URL.Path == "/v1/models" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":1721172741,"owned_by":"system"}]}`)
	case r.URL.Path == "/v1/chat/completions" && r.Method == http.MethodPost:
		if rb.Stream {
			s.streamChat(w, r, rb, b)
		} else {
			s.chat(w, rb, b)
		}
	case r.URL.Path == "/v1/embeddings" && r.Method == http.MethodPost:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"model":%q,"usage":{"prompt_tokens":%d,"total_tokens":%d}}`,
			rb.Model, b.Usage.Prompt, b.Usage.Prompt)
	case r.URL.Path == "/v1/responses" && r.Method == http.MethodPost:
		s.responses(w, r, rb, b)
	default:
		http.Error(w, `{"error":{"message":"not found","type":"invalid_request_error"}}`, http.StatusNotFound)
	}
}

func (u Usage) chatJSON() string {
	return fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":%d,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":%d,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}`,
		u.Prompt, u.Completion, u.Prompt+u.Completion, u.Cached, u.Reasoning)
}

func (s *Server) chat(w http.ResponseWriter, rb reqBody, b Behavior) {
	text, _ := json.Marshal(strings.Join(b.Chunks, ""))
	usage := `,"usage":` + b.Usage.chatJSON()
	if b.OmitUsage {
		usage = ""
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Request-Id", "req_fake")
	fmt.Fprintf(w, `{"id":"chatcmpl-fake","object":"chat.completion","created":1732600000,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":%s,"refusal":null},"logprobs":null,"finish_reason":"stop"}]%s,"system_fingerprint":"fp_fake"}`,
		rb.Model, text, usage)
}

func (s *Server) streamChat(w http.ResponseWriter, r *http.Request, rb reqBody, b Behavior) {
	include := rb.StreamOptions != nil && rb.StreamOptions.IncludeUsage
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	f := w.(http.Flusher)
	nullUsage := ""
	if include {
		nullUsage = `,"usage":null`
	}
	chunk := func(delta, finish string) {
		fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-fake\",\"object\":\"chat.completion.chunk\",\"created\":1732600000,\"model\":%q,\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":%s,\"logprobs\":null,\"finish_reason\":%s}]%s}\n\n",
			rb.Model, delta, finish, nullUsage)
		f.Flush()
	}
	chunk(`{"role":"assistant","content":"","refusal":null}`, "null")
	for i, c := range b.Chunks {
		if b.HangAfter > 0 && i == b.HangAfter {
			<-r.Context().Done()
			s.Cancelled <- struct{}{}
			return
		}
		text, _ := json.Marshal(c)
		chunk(`{"content":`+string(text)+`}`, "null")
	}
	chunk(`{}`, `"stop"`)
	if include {
		fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-fake\",\"object\":\"chat.completion.chunk\",\"created\":1732600000,\"model\":%q,\"system_fingerprint\":\"fp_fake\",\"choices\":[],\"usage\":%s}\n\n",
			rb.Model, b.Usage.chatJSON())
	}
	io.WriteString(w, "data: [DONE]\n\n")
	f.Flush()
}

func (u Usage) responsesJSON() string {
	return fmt.Sprintf(`{"input_tokens":%d,"input_tokens_details":{"cached_tokens":%d},"output_tokens":%d,"output_tokens_details":{"reasoning_tokens":%d},"total_tokens":%d}`,
		u.Prompt, u.Cached, u.Completion, u.Reasoning, u.Prompt+u.Completion)
}

func (s *Server) responses(w http.ResponseWriter, r *http.Request, rb reqBody, b Behavior) {
	text, _ := json.Marshal(strings.Join(b.Chunks, ""))
	resp := func(status, usage string) string {
		return fmt.Sprintf(`{"id":"resp_fake","object":"response","created_at":1732600000,"status":%q,"model":%q,"output":[{"type":"message","id":"msg_fake","status":"completed","role":"assistant","content":[{"type":"output_text","text":%s,"annotations":[]}]}],"usage":%s}`,
			status, rb.Model, text, usage)
	}
	if !rb.Stream {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, resp("completed", b.Usage.responsesJSON()))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	f := w.(http.Flusher)
	seq := 0
	event := func(name, data string) {
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data)
		f.Flush()
		seq++
	}
	event("response.created", fmt.Sprintf(`{"type":"response.created","sequence_number":%d,"response":%s}`, seq, resp("in_progress", "null")))
	for i, c := range b.Chunks {
		if b.HangAfter > 0 && i == b.HangAfter {
			<-r.Context().Done()
			s.Cancelled <- struct{}{}
			return
		}
		t, _ := json.Marshal(c)
		event("response.output_text.delta", fmt.Sprintf(`{"type":"response.output_text.delta","sequence_number":%d,"item_id":"msg_fake","output_index":0,"content_index":0,"delta":%s}`, seq, t))
	}
	event("response.completed", fmt.Sprintf(`{"type":"response.completed","sequence_number":%d,"response":%s}`, seq, resp("completed", b.Usage.responsesJSON())))
}
