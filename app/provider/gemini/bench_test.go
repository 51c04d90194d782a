package gemini_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/url"
	"strings"
	"testing"

	"tokenguard/app/provider"
	"tokenguard/app/provider/gemini"
)

// benchChunks is a 200-chunk answer, each chunk with its usage so far, the last finished.
func benchChunks() [][]byte {
	var out [][]byte
	for i := range 200 {
		cand := map[string]any{"content": map[string]any{"parts": []any{map[string]any{"text": "some words "}}, "role": "model"}, "index": 0}
		if i == 199 {
			cand["finishReason"] = "STOP"
		}
		b, _ := json.MarshalIndent(map[string]any{
			"candidates":    []any{cand},
			"usageMetadata": map[string]any{"promptTokenCount": 1200, "candidatesTokenCount": i + 1, "totalTokenCount": 1201 + i},
			"modelVersion":  "gemini-2.5-flash", "responseId": "r1",
		}, "", "  ")
		out = append(out, b)
	}
	return out
}

func benchStream(sse bool) []byte {
	var b bytes.Buffer
	for i, c := range benchChunks() {
		if sse {
			b.WriteString("data: ")
			b.Write(bytes.ReplaceAll(c, []byte("\n"), nil))
			b.WriteString("\r\n\r\n")
			continue
		}
		if i == 0 {
			b.WriteString("[")
		} else {
			b.WriteString("\n,\r\n")
		}
		b.Write(c)
	}
	if !sse {
		b.WriteString("\n]")
	}
	return b.Bytes()
}

// BenchmarkStreamMeter is the relay and meter cost of one 200-chunk streamed answer, per
// framing.
func BenchmarkStreamMeter(b *testing.B) {
	for _, fr := range []struct {
		name    string
		framing provider.Framing
	}{{"sse", provider.FramingSSE}, {"json-array", provider.FramingRaw}} {
		b.Run(fr.name, func(b *testing.B) {
			a := gemini.New()
			s := benchStream(fr.framing == provider.FramingSSE)
			c := &provider.Call{Framing: fr.framing}
			b.SetBytes(int64(len(s)))
			b.ReportAllocs()
			for b.Loop() {
				m := a.NewMeter(c)
				provider.Relay(io.Discard, nil, bytes.NewReader(s), fr.framing, m, nil)
				if !m.Result().Complete {
					b.Fatal("incomplete")
				}
			}
		})
	}
}

// BenchmarkParse is the cost of reading a 4 KB generate request.
func BenchmarkParse(b *testing.B) {
	a := gemini.New()
	body := []byte(`{"contents":[{"role":"user","parts":[{"text":"` + strings.Repeat("be brief ", 450) + `"}]}],"generationConfig":{"maxOutputTokens":1024}}`)
	r := &provider.Request{Method: "POST", Path: "/v1beta/models/gemini-2.5-flash:streamGenerateContent", Query: url.Values{"alt": {"sse"}}, Body: body}
	b.ReportAllocs()
	for b.Loop() {
		var c provider.Call
		if err := a.Parse(r, &c); err != nil {
			b.Fatal(err)
		}
	}
}
