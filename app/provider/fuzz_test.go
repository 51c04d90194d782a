package provider_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"tokenguard/app/provider"
)

// fuzzSpec watches nested fields in two spellings, as the Gemini adapter does.
var fuzzSpec = provider.NewBodySpec(provider.Media{RefKeys: []string{"url"}, ToolTokens: 100},
	"model", "stream_options", "stream_options.include_usage", "cfg|c_f_g", "cfg|c_f_g.max|m_a_x")

var fuzzPaths = []string{"model", "stream_options", "stream_options.include_usage", "cfg", "cfg.max"}

// refScan is the reference the scanner is checked against: encoding/json's decoder says
// whether body is one JSON object, and the keys it decodes say whether one object repeats a
// key; depth is the deepest nesting.
func refScan(body []byte) (object, dup bool, depth int) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type level struct {
		obj    bool
		keys   map[string]bool
		wasKey bool // the next token in an object is a value
	}
	var stack []*level
	first := true
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return !first && len(stack) == 0, dup, depth
		}
		if err != nil {
			return false, dup, depth
		}
		if first {
			if d, ok := tok.(json.Delim); !ok || d != '{' {
				return false, false, 0
			}
		} else if len(stack) == 0 {
			return false, dup, depth
		}
		first = false
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && !top.wasKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k := tok.(string)
			if top.keys[k] {
				dup = true
			}
			top.keys[k] = true
			top.wasKey = true
			continue
		}
		if top != nil {
			top.wasKey = false
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				stack = append(stack, &level{obj: d == '{', keys: map[string]bool{}})
				depth = max(depth, len(stack))
			default:
				stack = stack[:len(stack)-1]
			}
		}
	}
}

// The body scanner accepts exactly the JSON objects (no deeper than MaxDepth) in which no
// object repeats a key, reads each watched field as gjson reads it, and its input bound is
// never below its typical estimate.
func FuzzScanBody(f *testing.F) {
	for _, s := range []string{
		`{"model":"x","stream_options":{"include_usage":true}}`,
		`{"model":"x","stream_options":{"include_usage":true,"include_usage":false}}`,
		`{"stream_options":{"Include_usage":true}}`,
		`{"a":[{"b":1},{"b":2}],"a":3}`,
		`{"cfg":{"max":1},"c_f_g":{}}`,
		`{"c_f_g":{"m_a_x":5,"x":[1,2,{"y":null}]}}`,
		`{"tools":[{"type":"function"}],"u":{"url":"https://example.com/a.png"},"i":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"}`,
		`{"\u006dodel":"x"}`, `{"a":"\ud83d\ude00","a":1}`, `{"n":-0.5e+3,"t":true,"f":false}`,
		`[]`, `{"a":1} x`, `{"a":"\x01"}`, strings.Repeat("[", 600),
	} {
		f.Add([]byte(s))
	}
	bare := provider.NewBodySpec(provider.Media{})
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := provider.ScanBody(body, bare)
		if utf8.Valid(body) {
			object, dup, depth := refScan(body)
			if want := object && !dup && depth <= provider.MaxDepth; (err == nil) != want {
				t.Fatalf("ScanBody(%q) error = %v; reference: object %v, duplicate %v, depth %d", body, err, object, dup, depth)
			}
		}
		if err == nil {
			if typical, upper := b.Estimate(1000); typical < 0 || upper < typical {
				t.Fatalf("estimates typical %d, upper %d", typical, upper)
			}
			if !gjson.ValidBytes(body) {
				t.Fatalf("accepted a body gjson finds invalid: %q", body)
			}
		}
		w, err := provider.ScanBody(body, fuzzSpec)
		if err != nil {
			return
		}
		for i, path := range fuzzPaths {
			got := w.Get(i)
			if !bytes.Contains(body, []byte(`c_f_g`)) && !bytes.Contains(body, []byte(`m_a_x`)) && !bytes.Contains(body, []byte(`\`)) {
				if want := gjson.GetBytes(body, path); got.Raw != want.Raw {
					t.Fatalf("field %s = %q, gjson reads %q", path, got.Raw, want.Raw)
				}
			}
			if w.Has(i) != got.Exists() {
				t.Fatalf("field %s: Has %v, value %q", path, w.Has(i), got.Raw)
			}
		}
	})
}

// An ObjectCapture fed a JSON object in pieces of any size holds each key's value as gjson
// reads it from the whole body (values up to MaxCapture), and its Bytes are valid JSON.
func FuzzObjectCapture(f *testing.F) {
	for _, s := range []string{
		`{"id":"x","usage":{"prompt_tokens":10,"completion_tokens":2}}`,
		`{"usageMetadata": {"promptTokenCount":1} , "candidates":[{"content":{"parts":[{"text":"a\"}b"}]}}]}`,
		`{"usage":1,"usage":2}`, `{"u\u0073age":{"a":1}}`, `[{"usage":1}]`, `{"a":{"usage":5}}`,
		`"usage"`, `{"usage":{"a":[1,{"b":"}"}]}}`,
	} {
		f.Add([]byte(s), uint8(7))
	}
	keys := []string{"usage", "usageMetadata"}
	f.Fuzz(func(t *testing.T, body []byte, step uint8) {
		c := provider.NewObjectCapture(keys...)
		n := int(step) + 1
		for i := 0; i < len(body); i += n {
			c.Write(body[i:min(i+n, len(body))])
		}
		got := c.Bytes()
		if !gjson.ValidBytes(got) || got[0] != '{' {
			t.Fatalf("Bytes() = %q, not a JSON object", got)
		}
		if len(got) > len(keys)*(provider.MaxCapture+32)+2 {
			t.Fatalf("Bytes() holds %d bytes", len(got))
		}
		if !gjson.ValidBytes(body) || !json.Valid(body) || !gjson.ParseBytes(body).IsObject() {
			return
		}
		for _, k := range keys {
			want := gjson.GetBytes(body, k)
			if len(want.Raw) > provider.MaxCapture {
				continue
			}
			if g := gjson.GetBytes(got, k); g.Raw != want.Raw {
				t.Fatalf("captured %s = %q, gjson reads %q from %q", k, g.Raw, want.Raw, body)
			}
		}
	})
}

// chunkReader hands out its data n bytes a read.
type chunkReader struct {
	data []byte
	n    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.data)
	r.data = r.data[k:]
	return k, nil
}

// The event reader's raw events add up to the stream (less blank lines at its very end),
// whatever the read sizes, and Relay forwards exactly the events its meter keeps.
func FuzzEventReader(f *testing.F) {
	for _, s := range []string{
		"event: a\ndata: one\n\n: comment\r\ndata: two\r\ndata: lines\r\n\r\n\n\ndata: [DONE]",
		"data: {\"x\":1}\n\ndata: drop me\n\n",
		"id: 7\nretry: 10\ndata\ndata:\ndata:  x\n\n\n\n",
		"\r\n\r\ndata: a\r",
	} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, stream []byte, step uint8) {
		n := int(step)%64 + 1
		er := provider.NewEventReader(&chunkReader{data: stream, n: n})
		var all bytes.Buffer
		var want bytes.Buffer
		for {
			raw, _, data, err := er.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatal(err)
				}
				break
			}
			if len(raw) == 0 {
				t.Fatal("an empty event")
			}
			all.Write(raw)
			if string(data) != "drop me" {
				want.Write(raw)
			}
		}
		rest, ok := bytes.CutPrefix(stream, all.Bytes())
		if !ok || len(bytes.Trim(rest, "\r\n")) != 0 {
			t.Fatalf("events %q do not add up to the stream %q", all.Bytes(), stream)
		}
		var out bytes.Buffer
		res := provider.Relay(&out, nil, &chunkReader{data: stream, n: n}, provider.FramingSSE, &dropMeter{}, nil)
		if res.ReadErr != nil || res.WriteErr != nil {
			t.Fatalf("relay: %+v", res)
		}
		if !bytes.Equal(out.Bytes(), want.Bytes()) {
			t.Fatalf("relayed %q, want %q", out.Bytes(), want.Bytes())
		}
	})
}
