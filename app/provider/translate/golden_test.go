package translate_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"tokenguard/app/provider"
	"tokenguard/app/provider/providertest"
	"tokenguard/app/provider/translate"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var apis = []translate.API{translate.OpenAI, translate.Anthropic, translate.Gemini}

// models are the fallback models the translated requests name.
var models = map[translate.API]string{translate.OpenAI: "gpt-4o-mini", translate.Anthropic: "claude-3-5-haiku-latest", translate.Gemini: "gemini-2.5-flash"}

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n%s", name, got)
	}
}

func readFile(tb testing.TB, name string) string {
	tb.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func indent(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return append(out.Bytes(), '\n')
}

// send posts a translated request to a replay of target (a real HTTP upstream speaking its
// wire format) and returns what it answered.
func send(t *testing.T, target translate.API, up translate.Upstream) []byte {
	t.Helper()
	rp := providertest.NewReplay(t, string(target))
	u := rp.URL + up.Path
	if len(up.Query) > 0 {
		u += "?" + up.Query.Encode()
	}
	resp, err := http.Post(u, "application/json", bytes.NewReader(up.Body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v %s", resp.StatusCode, err, b)
	}
	return b
}

// answer is what a caller's SDK would gather from an answer: its text, its tool call and the
// usage it reads.
type answer struct {
	text, tool, args, id string
	finish               string
	prompt, cached, out  int64
}

// read gathers an answer in caller's format: a body, or every chunk of a stream.
func read(t *testing.T, caller translate.API, chunks []string) answer {
	t.Helper()
	var a answer
	var args strings.Builder
	for _, c := range chunks {
		if !gjson.Valid(c) {
			t.Fatalf("chunk is not JSON: %s", c)
		}
		g := gjson.Parse(c)
		switch caller {
		case translate.OpenAI:
			ch := g.Get("choices.0")
			msg := ch.Get("message")
			if !msg.Exists() {
				msg = ch.Get("delta")
			}
			a.text += msg.Get("content").Str
			msg.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
				a.tool += tc.Get("function.name").Str
				a.id += tc.Get("id").Str
				args.WriteString(tc.Get("function.arguments").Str)
				return true
			})
			if f := ch.Get("finish_reason").Str; f != "" {
				a.finish = f
			}
			if u := g.Get("usage"); u.IsObject() {
				a.prompt, a.cached, a.out = u.Get("prompt_tokens").Int(), u.Get("prompt_tokens_details.cached_tokens").Int(), u.Get("completion_tokens").Int()
			}
		case translate.Anthropic:
			blocks := g.Get("content")
			if cb := g.Get("content_block"); cb.Exists() {
				blocks = gjson.Parse("[" + cb.Raw + "]")
			}
			blocks.ForEach(func(_, b gjson.Result) bool {
				a.text += b.Get("text").Str
				if b.Get("type").Str == "tool_use" {
					a.tool, a.id = b.Get("name").Str, b.Get("id").Str
					if in := b.Get("input").Raw; in != "{}" {
						args.WriteString(in)
					}
				}
				return true
			})
			a.text += g.Get("delta.text").Str
			args.WriteString(g.Get("delta.partial_json").Str)
			if f := g.Get("stop_reason").Str; f != "" {
				a.finish = f
			}
			if f := g.Get("delta.stop_reason").Str; f != "" {
				a.finish = f
			}
			u := g.Get("usage")
			if m := g.Get("message.usage"); m.Exists() {
				u = m
			}
			if u.Get("output_tokens").Exists() {
				a.prompt = u.Get("input_tokens").Int() + u.Get("cache_read_input_tokens").Int() + u.Get("cache_creation_input_tokens").Int()
				a.cached, a.out = u.Get("cache_read_input_tokens").Int(), u.Get("output_tokens").Int()
			}
		case translate.Gemini:
			cand := g.Get("candidates.0")
			cand.Get("content.parts").ForEach(func(_, p gjson.Result) bool {
				a.text += p.Get("text").Str
				if fc := p.Get("functionCall"); fc.Exists() {
					a.tool, a.id = fc.Get("name").Str, fc.Get("id").Str
					args.WriteString(fc.Get("args").Raw)
				}
				return true
			})
			if f := cand.Get("finishReason").Str; f != "" {
				a.finish = f
			}
			if u := g.Get("usageMetadata"); u.Get("candidatesTokenCount").Exists() {
				a.prompt, a.cached = u.Get("promptTokenCount").Int(), u.Get("cachedContentTokenCount").Int()
				a.out = u.Get("candidatesTokenCount").Int() + u.Get("thoughtsTokenCount").Int()
			}
		}
	}
	if s := args.String(); s != "" {
		var b bytes.Buffer
		if err := json.Compact(&b, []byte(s)); err != nil {
			t.Fatalf("tool arguments %q are not JSON: %v", s, err)
		}
		a.args = b.String()
	}
	return a
}

// translateStream translates target's whole stream for caller.
func translateStream(caller, target translate.API, r *translate.Request, stream []byte) []byte {
	st := translate.NewStream(caller, target, models[target], r, now)
	er := provider.NewEventReader(bytes.NewReader(stream))
	var out []byte
	for {
		_, ev, data, err := er.Next()
		if err != nil {
			break
		}
		out = append(out, st.Event(ev, data)...)
	}
	return append(out, st.End()...)
}

// frames splits a caller's stream into its JSON chunks.
func frames(t *testing.T, caller translate.API, array bool, stream []byte) []string {
	t.Helper()
	if array {
		var elems []json.RawMessage
		if err := json.Unmarshal(stream, &elems); err != nil {
			t.Fatalf("not a JSON array: %v\n%s", err, stream)
		}
		out := make([]string, len(elems))
		for i, e := range elems {
			out[i] = string(e)
		}
		return out
	}
	er := provider.NewEventReader(bytes.NewReader(stream))
	var out []string
	for {
		_, name, data, err := er.Next()
		if err != nil {
			break
		}
		if string(data) == "[DONE]" {
			continue
		}
		if caller == translate.Anthropic && name == nil {
			t.Errorf("an Anthropic event without its name: %s", data)
		}
		out = append(out, string(data))
	}
	return out
}

// Every caller API translated to every other provider, streamed and not, against a replay of
// the target's real wire format: the translated request (every system message, the image,
// tool definitions, the earlier tool call and its result, sampling and the cap) and the
// answer as the caller sees it (text, the tool call with its arguments intact, the stop
// reason of a turn that calls a tool, and the target's usage with cached and reasoning
// tokens) match the golden files, and the caller's reading of the answer is the target's.
func TestGolden(t *testing.T) {
	for _, caller := range apis {
		body, err := os.ReadFile(filepath.Join("testdata", "request", string(caller)+".json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, target := range apis {
			if target == caller {
				continue
			}
			for _, stream := range []bool{false, true} {
				name := string(caller) + "-to-" + string(target)
				if stream {
					name += "-stream"
				}
				t.Run(name, func(t *testing.T) {
					r, err := translate.DecodeRequest(caller, body, stream, false)
					if err != nil {
						t.Fatal(err)
					}
					up, err := translate.EncodeRequest(r, target, models[target], 512)
					if err != nil {
						t.Fatal(err)
					}
					req := append([]byte(up.Path+"?"+up.Query.Encode()+"\n"), indent(t, up.Body)...)
					req = append(req, []byte("dropped: "+strings.Join(r.Dropped, ", ")+"\n")...)
					golden(t, name+".request.txt", req)

					got := send(t, target, up)
					var out []byte
					var chunks []string
					if stream {
						out = translateStream(caller, target, r, got)
						chunks = frames(t, caller, false, out)
					} else {
						resp, ok := translate.DecodeResponse(target, got)
						if !ok {
							t.Fatalf("cannot decode %s", got)
						}
						out = indent(t, translate.EncodeResponse(nil, caller, &resp, models[target], now))
						chunks = []string{string(out)}
					}
					golden(t, name+".response.txt", out)
					checkAnswer(t, caller, target, read(t, caller, chunks))
				})
			}
		}
	}
}

func checkAnswer(t *testing.T, caller, target translate.API, a answer) {
	t.Helper()
	u := providertest.WireUsage[string(target)]
	finish := map[translate.API]string{translate.OpenAI: "tool_calls", translate.Anthropic: "tool_use", translate.Gemini: "STOP"}[caller]
	if a.text != providertest.WireText || a.tool != providertest.WireToolName || a.args != providertest.WireToolArgs || a.id == "" || a.finish != finish {
		t.Errorf("the caller reads %+v", a)
	}
	if a.prompt != u.Input+u.CacheRead+u.CacheWrite || a.cached != u.CacheRead || a.out != u.Output {
		t.Errorf("the caller reads usage prompt %d (cached %d) output %d; %s reported %+v", a.prompt, a.cached, a.out, target, u)
	}
}

// A Gemini caller streaming without alt=sse gets one JSON array, element by element, that
// holds the same answer.
func TestGeminiArrayStream(t *testing.T) {
	body, err := os.ReadFile("testdata/request/gemini.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []translate.API{translate.OpenAI, translate.Anthropic} {
		t.Run(string(target), func(t *testing.T) {
			r, err := translate.DecodeRequest(translate.Gemini, body, true, true)
			if err != nil {
				t.Fatal(err)
			}
			up, err := translate.EncodeRequest(r, target, models[target], 512)
			if err != nil {
				t.Fatal(err)
			}
			out := translateStream(translate.Gemini, target, r, send(t, target, up))
			checkAnswer(t, translate.Gemini, target, read(t, translate.Gemini, frames(t, translate.Gemini, true, out)))
		})
	}
}
