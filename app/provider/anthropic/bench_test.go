package anthropic_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"tokenguard/app/provider"
	"tokenguard/app/provider/anthropic"
)

// benchStream is a 200-delta Messages stream framed as the API frames it.
func benchStream() []byte {
	var b bytes.Buffer
	ev := func(name string, v any) {
		d, _ := json.Marshal(v)
		fmt.Fprintf(&b, "event: %s\ndata: %s\n\n", name, d)
	}
	ev("message_start", map[string]any{"type": "message_start", "message": map[string]any{"id": "msg_1", "model": "claude-sonnet-4-5", "usage": map[string]any{"input_tokens": 1200, "cache_read_input_tokens": 3000, "cache_creation_input_tokens": 0, "output_tokens": 1}}})
	ev("content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}})
	for range 200 {
		ev("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": "some words "}})
	}
	ev("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
	ev("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "end_turn"}, "usage": map[string]any{"output_tokens": 600}})
	ev("message_stop", map[string]any{"type": "message_stop"})
	return b.Bytes()
}

// BenchmarkStreamMeter is the relay and meter cost of one 200-delta streamed answer.
func BenchmarkStreamMeter(b *testing.B) {
	a := anthropic.New()
	s := benchStream()
	c := &provider.Call{}
	b.SetBytes(int64(len(s)))
	b.ReportAllocs()
	for b.Loop() {
		m := a.NewMeter(c)
		provider.Relay(io.Discard, nil, bytes.NewReader(s), provider.FramingSSE, m, nil)
		if !m.Result().Complete {
			b.Fatal("incomplete")
		}
	}
}

// BenchmarkParse is the cost of reading a 4 KB Messages request.
func BenchmarkParse(b *testing.B) {
	a := anthropic.New()
	body := []byte(`{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,"system":"` + strings.Repeat("be brief ", 400) + `","messages":[{"role":"user","content":"Hello"}]}`)
	r := &provider.Request{Method: "POST", Path: anthropic.Messages, Body: body}
	b.ReportAllocs()
	for b.Loop() {
		var c provider.Call
		if err := a.Parse(r, &c); err != nil {
			b.Fatal(err)
		}
	}
}
