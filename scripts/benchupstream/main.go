// Command benchupstream is a minimal, fast stand-in for the providers' APIs, speaking their wire
// formats (OpenAI chat completions, Anthropic messages, Gemini generateContent; streamed and
// not), so scripts/bench.sh can measure what TokenGuard adds on top of a local upstream.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18081", "listen address")
	chunks := flag.Int("chunks", 20, "content chunks per streamed response")
	relayTo := flag.String("reverse-proxy", "", "instead of answering, relay to this base URL with Go's httputil.ReverseProxy (the bare-hop baseline)")
	flag.Parse()

	if *relayTo != "" {
		target, err := url.Parse(*relayTo)
		if err != nil {
			log.Fatal(err)
		}
		rp := httputil.NewSingleHostReverseProxy(target)
		rp.FlushInterval = -1 // flush every write, as TokenGuard does for streams
		// TokenGuard's upstream transport (app/proxy defaultTransport): with the default two
		// idle connections per host, 32 concurrent clients make the bare proxy dial a new
		// upstream connection for most requests, which doubles its CPU and the upstream's.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 256
		t.MaxIdleConns = 1024
		t.DisableCompression = true
		rp.Transport = t
		log.Fatal(http.ListenAndServe(*addr, bufferBody(rp)))
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !bytes.Contains(body, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"chatcmpl-bench","object":"chat.completion","created":1764000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}`)
			return
		}
		sse(w, func(emit func(event, data string)) {
			for i := 0; i < *chunks; i++ {
				emit("", `{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}]}`)
			}
			emit("", `{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`)
			if bytes.Contains(body, []byte(`"include_usage":true`)) {
				emit("", fmt.Sprintf(`{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":%d,"total_tokens":%d}}`, *chunks, 12+*chunks))
			}
			emit("", "[DONE]")
		})
	})
	mux.HandleFunc("POST /v1/messages", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !bytes.Contains(body, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"msg_bench","type":"message","role":"assistant","model":"claude-3-5-haiku-20241022","content":[{"type":"text","text":"Hello!"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":9,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}`)
			return
		}
		sse(w, func(emit func(event, data string)) {
			emit("message_start", `{"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","model":"claude-3-5-haiku-20241022","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}`)
			emit("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
			for i := 0; i < *chunks; i++ {
				emit("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"word "}}`)
			}
			emit("content_block_stop", `{"type":"content_block_stop","index":0}`)
			emit("message_delta", fmt.Sprintf(`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":%d}}`, *chunks))
			emit("message_stop", `{"type":"message_stop"}`)
		})
	})
	mux.HandleFunc("POST /v1beta/models/{call}", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		call := r.PathValue("call")
		usage := fmt.Sprintf(`"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":%d,"totalTokenCount":%d}`, *chunks, 12+*chunks)
		chunk := `{"candidates":[{"content":{"parts":[{"text":"word "}],"role":"model"},"index":0}],"modelVersion":"gemini-2.0-flash"}`
		switch {
		case strings.HasSuffix(call, ":generateContent"):
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"candidates":[{"content":{"parts":[{"text":"Hello!"}],"role":"model"},"finishReason":"STOP","index":0}],`+usage+`,"modelVersion":"gemini-2.0-flash"}`)
		case strings.HasSuffix(call, ":streamGenerateContent"):
			sse(w, func(emit func(event, data string)) {
				for i := 0; i < *chunks-1; i++ {
					emit("", chunk)
				}
				emit("", `{"candidates":[{"content":{"parts":[{"text":"word "}],"role":"model"},"finishReason":"STOP","index":0}],`+usage+`}`)
			})
		default:
			http.NotFound(w, r)
		}
	})
	log.Printf("benchupstream listening on %s", *addr)
	log.Fatal(http.ListenAndServe(*addr, mux))
}

// maxBody bounds a buffered request body, as TokenGuard bounds the bodies it reads.
const maxBody = 4 << 20

// bufferBody reads the whole request body before h relays it, as TokenGuard does (it must see
// the body to meter it), so the bare baseline does the same work per request. Relaying the body
// while it still arrived, the baseline broke off 2–6% of streams in the runs issue 9 reports.
func bufferBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			status := http.StatusBadRequest
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				status = http.StatusRequestEntityTooLarge
			}
			http.Error(w, "request body: "+err.Error(), status)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		h.ServeHTTP(w, r)
	})
}

// sse writes a text/event-stream response, flushing after every event as providers do.
func sse(w http.ResponseWriter, body func(emit func(event, data string))) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	f := w.(http.Flusher)
	body(func(event, data string) {
		if event != "" {
			io.WriteString(w, "event: "+event+"\n")
		}
		io.WriteString(w, "data: "+data+"\n\n")
		f.Flush()
	})
}
