package gemini_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"tokenguard/app/apperr"
	"tokenguard/app/pricing"
	"tokenguard/app/provider"
	"tokenguard/app/provider/gemini"
	"tokenguard/app/provider/gemini/geminitest"
)

const upstreamKey = "AIzaSy-upstream-canary-0123456789abcdef"

type result struct {
	call   provider.Call
	status int
	client []byte
	usage  pricing.Usage
	ok     bool
	stream provider.StreamResult
	relay  provider.RelayResult
}

// send sends one request the way the proxy does: Parse, Prepare, SetKey, then the response
// read whole (Usage) or relayed through a meter (provider.Relay).
func send(t *testing.T, up *geminitest.Upstream, method, path, rawQuery, body, fallback string) result {
	t.Helper()
	return sendCapped(t, up, method, path, rawQuery, body, fallback, 0)
}

// sendCapped is send with a strict-mode OutputCap set before Prepare, as the proxy sets it.
func sendCapped(t *testing.T, up *geminitest.Upstream, method, path, rawQuery, body, fallback string, outputCap int64) result {
	t.Helper()
	a := gemini.New()
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		t.Fatal(err)
	}
	var c provider.Call
	if err := a.Parse(&provider.Request{Method: method, Path: path, Query: q, Body: []byte(body)}, &c); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.Metered {
		model := c.Model
		if fallback != "" {
			model = fallback
		}
		c.OutputCap = outputCap
		if err := a.Prepare(&c, model); err != nil {
			t.Fatalf("Prepare: %v", err)
		}
	}
	u := up.URL + c.Path
	if len(c.Query) > 0 {
		u += "?" + c.Query.Encode()
	}
	req, err := http.NewRequest(c.Method, u, bytes.NewReader(c.Body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	a.SetKey(req.Header, upstreamKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := result{call: c, status: resp.StatusCode}
	if c.Stream && resp.StatusCode == http.StatusOK {
		m := a.NewMeter(&c)
		var out bytes.Buffer
		r.relay = provider.Relay(&out, nil, resp.Body, c.Framing, m, nil)
		r.stream = m.Result()
		r.client = out.Bytes()
		return r
	}
	r.client, _ = io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && c.Metered {
		r.usage, r.ok = a.Usage(&c, r.client)
	}
	return r
}

// want converts the upstream's figures to TokenGuard's disjoint classes: the cached part of
// the prompt is a cache read, tool-use prompt tokens are input, thoughts are output.
func want(u geminitest.Usage) pricing.Usage {
	return pricing.Usage{Input: u.Prompt - u.Cached + u.ToolUse, CacheRead: u.Cached, Output: u.Candidates + u.Thoughts, Reasoning: u.Thoughts}
}

const genBody = `{"contents":[{"role":"user","parts":[{"text":"Hello"}]}],"generationConfig":{"maxOutputTokens":256}}`

func TestParse(t *testing.T) {
	tests := []struct {
		name, method, path, query, body string
		code                            string
		model, upstreamPath             string
		stream, metered                 bool
		framing                         provider.Framing
		maxOut                          int64
	}{
		{"generate", "POST", "/v1beta/models/gemini-2.5-flash:generateContent", "", genBody, "", "gemini-2.5-flash", "/v1beta/models/gemini-2.5-flash:generateContent", false, true, 0, 256},
		{"slash form sent in colon form", "POST", "/v1beta/models/gemini-2.0-flash/generateContent", "", `{"contents":[]}`, "", "gemini-2.0-flash", "/v1beta/models/gemini-2.0-flash:generateContent", false, true, 0, 0},
		{"stream as SSE", "POST", "/v1beta/models/gemini-2.5-pro:streamGenerateContent", "alt=sse", genBody, "", "gemini-2.5-pro", "/v1beta/models/gemini-2.5-pro:streamGenerateContent", true, true, provider.FramingSSE, 256},
		{"stream as JSON array", "POST", "/v1beta/models/gemini-2.5-pro:streamGenerateContent", "", genBody, "", "gemini-2.5-pro", "/v1beta/models/gemini-2.5-pro:streamGenerateContent", true, true, provider.FramingRaw, 256},
		{"slash-form stream", "POST", "/v1beta/models/gemini-2.5-pro/streamGenerateContent", "alt=sse", genBody, "", "gemini-2.5-pro", "/v1beta/models/gemini-2.5-pro:streamGenerateContent", true, true, provider.FramingSSE, 256},
		{"v1 API", "POST", "/v1/models/gemini-2.0-flash-001:generateContent", "", `{"contents":[]}`, "", "gemini-2.0-flash-001", "/v1/models/gemini-2.0-flash-001:generateContent", false, true, 0, 0},
		{"snake_case config, several candidates", "POST", "/v1beta/models/gemini-2.5-flash:generateContent", "", `{"contents":[],"generation_config":{"max_output_tokens":100,"candidate_count":3}}`, "", "gemini-2.5-flash", "/v1beta/models/gemini-2.5-flash:generateContent", false, true, 0, 100},
		{"count tokens is free", "POST", "/v1beta/models/gemini-2.5-flash:countTokens", "", `{"contents":[]}`, "", "gemini-2.5-flash", "/v1beta/models/gemini-2.5-flash:countTokens", false, false, 0, 0},
		{"model list is free", "GET", "/v1beta/models", "", "", "", "", "/v1beta/models", false, false, 0, 0},
		{"model list, trailing slash", "GET", "/v1beta/models/", "", "", "", "", "/v1beta/models", false, false, 0, 0},
		{"one model is free", "GET", "/v1beta/models/gemini-2.5-flash", "", "", "", "", "/v1beta/models/gemini-2.5-flash", false, false, 0, 0},

		{"unknown method", "POST", "/v1beta/models/gemini-2.5-flash:embedContent", "", `{}`, apperr.NotFound, "", "", false, false, 0, 0},
		{"unknown slash method", "POST", "/v1beta/models/gemini-2.5-flash/frobnicate", "", `{}`, apperr.NotFound, "", "", false, false, 0, 0},
		{"files refused", "POST", "/v1beta/files", "", `{}`, apperr.NotFound, "", "", false, false, 0, 0},
		{"cached contents refused", "POST", "/v1beta/cachedContents", "", `{}`, apperr.NotFound, "", "", false, false, 0, 0},
		{"unknown version", "POST", "/v9/models/gemini-2.5-flash:generateContent", "", `{}`, apperr.NotFound, "", "", false, false, 0, 0},
		{"empty model", "POST", "/v1beta/models/:generateContent", "", `{}`, apperr.NotFound, "", "", false, false, 0, 0},
		{"model with odd characters", "POST", "/v1beta/models/gem%ini:generateContent", "", `{}`, apperr.InvalidRequest, "", "", false, false, 0, 0},
		{"not JSON", "POST", "/v1beta/models/gemini-2.5-flash:generateContent", "", `contents=hi`, apperr.InvalidRequest, "", "", false, false, 0, 0},
		{"truncated JSON", "POST", "/v1beta/models/gemini-2.5-flash:generateContent", "", `{"contents":[`, apperr.InvalidRequest, "", "", false, false, 0, 0},
		{"empty body", "POST", "/v1beta/models/gemini-2.5-flash:generateContent", "", ``, apperr.InvalidRequest, "", "", false, false, 0, 0},
		{"both spellings of the cap", "POST", "/v1beta/models/gemini-2.5-flash:generateContent", "", `{"generationConfig":{"maxOutputTokens":10,"max_output_tokens":9000}}`, apperr.InvalidRequest, "", "", false, false, 0, 0},
		{"both spellings of the config", "POST", "/v1beta/models/gemini-2.5-flash:generateContent", "", `{"generationConfig":{},"generation_config":{"maxOutputTokens":9000}}`, apperr.InvalidRequest, "", "", false, false, 0, 0},
		{"cap not a number", "POST", "/v1beta/models/gemini-2.5-flash:generateContent", "", `{"generationConfig":{"maxOutputTokens":"lots"}}`, apperr.InvalidRequest, "", "", false, false, 0, 0},
		{"a stream format we cannot read", "POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", "alt=proto", `{}`, apperr.InvalidRequest, "", "", false, false, 0, 0},
		{"alt twice", "POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", "alt=sse&alt=json", `{}`, apperr.InvalidRequest, "", "", false, false, 0, 0},
		{"SSE on the unary method", "POST", "/v1beta/models/gemini-2.5-flash:generateContent", "alt=sse", `{}`, apperr.InvalidRequest, "", "", false, false, 0, 0},
		{"dot-dot model on GET", "GET", "/v1beta/models/..", "", "", apperr.InvalidRequest, "", "", false, false, 0, 0},
		{"dot-dot model on POST", "POST", "/v1beta/models/..:generateContent", "", `{}`, apperr.InvalidRequest, "", "", false, false, 0, 0},
		{"model stepping out", "GET", "/v1beta/models/../files", "", "", apperr.NotFound, "", "", false, false, 0, 0},
		{"GET on generate", "GET", "/v1beta/models/gemini-2.5-flash:generateContent", "", "", apperr.MethodNotAllowed, "", "", false, false, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tt.query)
			var c provider.Call
			err := gemini.New().Parse(&provider.Request{Method: tt.method, Path: tt.path, Query: q, Body: []byte(tt.body)}, &c)
			if tt.code != "" {
				var ae *apperr.Error
				if !errors.As(err, &ae) || ae.Code != tt.code {
					t.Fatalf("Parse error = %v, want code %s", err, tt.code)
				}
				if ae.Message == "" {
					t.Error("error has no message")
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if c.Model != tt.model || c.Path != tt.upstreamPath || c.Stream != tt.stream || c.Metered != tt.metered || c.Framing != tt.framing || c.MaxOutputTokens != tt.maxOut {
				t.Errorf("call = model %q path %q stream %v metered %v framing %v max %d\n want %q %q %v %v %v %d",
					c.Model, c.Path, c.Stream, c.Metered, c.Framing, c.MaxOutputTokens, tt.model, tt.upstreamPath, tt.stream, tt.metered, tt.framing, tt.maxOut)
			}
			if c.Metered && c.InputTokens <= 0 {
				t.Errorf("InputTokens = %d, want a positive estimate", c.InputTokens)
			}
		})
	}
}

// The usage recorded is the usage the upstream reported — unary, SSE stream and JSON-array
// stream alike — and the three cost the same.
func TestUsageMatchesUpstream(t *testing.T) {
	tab, err := pricing.New(nil, pricing.DefaultUnknownPrice())
	if err != nil {
		t.Fatal(err)
	}
	up := geminitest.New(t, upstreamKey)
	reply := geminitest.DefaultReply
	reply.Usage.ToolUse = 15
	up.SetReply(reply)
	const model = "gemini-2.5-flash"
	wantU := want(reply.Usage)

	plain := send(t, up, "POST", "/v1beta/models/"+model+":generateContent", "", genBody, "")
	if plain.status != 200 || !plain.ok {
		t.Fatalf("status %d, usage found %v: %s", plain.status, plain.ok, plain.client)
	}
	if plain.usage != wantU {
		t.Errorf("unary usage = %+v, want %+v", plain.usage, wantU)
	}
	base, _ := tab.Cost(model, plain.usage)
	if base == 0 {
		t.Fatal("unary cost is zero")
	}
	for _, tc := range []struct{ name, path, query string }{
		{"sse", "/v1beta/models/" + model + ":streamGenerateContent", "alt=sse"},
		{"json array", "/v1beta/models/" + model + ":streamGenerateContent", ""},
		{"slash form sse", "/v1beta/models/" + model + "/streamGenerateContent", "alt=sse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := send(t, up, "POST", tc.path, tc.query, genBody, "")
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.client)
			}
			if got, want := up.Last().Path, "/v1beta/models/"+model+":streamGenerateContent"; got != want {
				t.Errorf("upstream path = %q, want %q", got, want)
			}
			if r.relay.ReadErr != nil {
				t.Fatalf("relay: %v", r.relay.ReadErr)
			}
			res := r.stream
			if !res.Complete || res.ErrorCode != "" {
				t.Errorf("complete=%v error=%q, want complete", res.Complete, res.ErrorCode)
			}
			if res.Usage != wantU {
				t.Errorf("stream usage = %+v, want %+v", res.Usage, wantU)
			}
			if got, want := res.OutputBytes, int64(len(reply.Text)); got != want {
				t.Errorf("OutputBytes = %d, want %d", got, want)
			}
			if c, _ := tab.Cost(model, res.Usage); c != base {
				t.Errorf("stream cost %d, unary cost %d", c, base)
			}
			// The client gets the upstream's bytes; the JSON array still parses as JSON.
			if tc.query == "" && !gjson.ValidBytes(r.client) {
				t.Errorf("relayed JSON array is not valid JSON:\n%s", r.client)
			}
		})
	}
}

// A stream that breaks off before the finishing chunk reports the usage of the last chunk seen
// and the text so far, and is not complete, whichever framing.
func TestBrokenStream(t *testing.T) {
	up := geminitest.New(t, upstreamKey)
	reply := geminitest.DefaultReply
	reply.Fail = geminitest.FailBreak
	up.SetReply(reply)
	for _, query := range []string{"alt=sse", ""} {
		r := send(t, up, "POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", query, genBody, "")
		if r.relay.ReadErr == nil {
			t.Errorf("%q: relay saw no read error", query)
		}
		res := r.stream
		if res.Complete {
			t.Errorf("%q: broken stream reported complete", query)
		}
		if got, want := res.Usage.Input+res.Usage.CacheRead, reply.Usage.Prompt; got != want {
			t.Errorf("%q: prompt = %d, want %d", query, got, want)
		}
		if got, want := res.OutputBytes, int64(len(geminitest.Pieces(reply.Text)[0])); got != want {
			t.Errorf("%q: OutputBytes = %d, want %d", query, got, want)
		}
	}
}

// An error chunk inside a 200 stream is reported.
func TestErrorChunk(t *testing.T) {
	up := geminitest.New(t, upstreamKey)
	reply := geminitest.DefaultReply
	reply.Fail = geminitest.FailError
	up.SetReply(reply)
	for _, query := range []string{"alt=sse", ""} {
		r := send(t, up, "POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", query, genBody, "")
		if got, want := r.stream.ErrorCode, "UNAVAILABLE"; got != want {
			t.Errorf("%q: ErrorCode = %q, want %q", query, got, want)
		}
		if r.stream.Complete {
			t.Errorf("%q: errored stream reported complete", query)
		}
	}
}

// The JSON-array meter gives the same answer however the upstream's bytes are cut into
// reads: one byte at a time, in pairs, in odd sizes.
func TestArrayStreamAnyChunking(t *testing.T) {
	up := geminitest.New(t, upstreamKey)
	reply := geminitest.DefaultReply
	reply.Text = `Quotes "inside", a backslash \ and braces {[]} — also ünïcödé.`
	up.SetReply(reply)
	r := send(t, up, "POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", "", genBody, "")
	whole := r.client
	if !r.stream.Complete {
		t.Fatal("stream not complete")
	}
	for _, size := range []int{1, 2, 3, 7, 64, 1 << 20} {
		m := gemini.New().NewMeter(&provider.Call{Framing: provider.FramingRaw})
		for p := whole; len(p) > 0; {
			n := min(size, len(p))
			m.Raw(p[:n])
			p = p[n:]
		}
		if got := m.Result(); got != r.stream {
			t.Errorf("chunks of %d: %+v, want %+v", size, got, r.stream)
		}
	}
}

// The fallback model goes in the path (colon form); the body is untouched; any model string
// that stays within its path segment is forwarded, one of another provider included.
func TestPrepareFallback(t *testing.T) {
	up := geminitest.New(t, upstreamKey)
	for _, fb := range []string{"gemini-2.0-flash-lite", "models/gemini-2.0-flash-lite", "gpt-4o-mini", "claude-haiku-4-5", "ft:gpt-4o-mini:org::x1"} {
		r := send(t, up, "POST", "/v1beta/models/gemini-2.5-pro/generateContent", "", genBody, fb)
		seen := up.Last()
		name := strings.TrimPrefix(fb, "models/")
		if got, want := seen.Path, "/v1beta/models/"+name+":generateContent"; got != want {
			t.Errorf("fallback %q: upstream path = %q, want %q", fb, got, want)
		}
		if string(seen.Body) != genBody {
			t.Errorf("body changed on fallback: %s", seen.Body)
		}
		if got := gjson.GetBytes(r.client, "modelVersion").Str; got != name {
			t.Errorf("response names %q, want %q", got, name)
		}
	}
	a := gemini.New()
	for _, bad := range []string{"../../files", "x?alt=proto", "a#b", "%2e%2e", "a b", ""} {
		var c provider.Call
		if err := a.Parse(&provider.Request{Method: "POST", Path: "/v1beta/models/gemini-2.5-pro:generateContent", Body: []byte(genBody)}, &c); err != nil {
			t.Fatal(err)
		}
		var ae *apperr.Error
		if err := a.Prepare(&c, bad); !errors.As(err, &ae) || ae.Code != apperr.InvalidRequest {
			t.Errorf("Prepare(%q) = %v, want INVALID_REQUEST", bad, err)
		}
	}
}

// The key goes in x-goog-api-key only; countTokens and the model list are relayed unmetered.
func TestKeyAndUnmetered(t *testing.T) {
	h := http.Header{}
	gemini.New().SetKey(h, upstreamKey)
	if got := h.Get("x-goog-api-key"); got != upstreamKey || len(h) != 1 {
		t.Errorf("header = %v, want only x-goog-api-key", h)
	}
	up := geminitest.New(t, upstreamKey)
	r := send(t, up, "POST", "/v1beta/models/gemini-2.5-flash/countTokens", "", `{"contents":[]}`, "")
	if r.status != 200 || r.call.Metered || !gjson.GetBytes(r.client, "totalTokens").Exists() {
		t.Errorf("countTokens: status %d metered %v body %s", r.status, r.call.Metered, r.client)
	}
	if got, want := up.Last().Path, "/v1beta/models/gemini-2.5-flash:countTokens"; got != want {
		t.Errorf("countTokens upstream path = %q, want %q", got, want)
	}
	r = send(t, up, "GET", "/v1beta/models", "", "", "")
	if r.status != 200 || r.call.Metered {
		t.Errorf("models: status %d metered %v", r.status, r.call.Metered)
	}
	for _, s := range up.Requests() {
		if strings.Contains(s.RawQuery, "key=") {
			t.Errorf("key in the upstream query: %s", s.RawQuery)
		}
	}
}

// A chunk too big to hold (an inline image) is skipped, not buffered: its size stands in for
// the output, and the usage of the chunks around it is still read.
func TestArrayStreamHugeChunk(t *testing.T) {
	img := strings.Repeat("A", 3<<20)
	stream := `[{"candidates":[{"content":{"parts":[{"inlineData":{"mimeType":"image/png","data":"` + img + `"}}]}}],` +
		`"usageMetadata":{"promptTokenCount":10,"totalTokenCount":10}}` + "\n,\r\n" +
		`{"candidates":[{"content":{"parts":[{"text":"done"}]},"finishReason":"STOP"}],` +
		`"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":1290,"totalTokenCount":1300}}` + "\n]"
	m := gemini.New().NewMeter(&provider.Call{Framing: provider.FramingRaw})
	for p := []byte(stream); len(p) > 0; {
		n := min(32<<10, len(p))
		m.Raw(p[:n])
		p = p[n:]
	}
	res := m.Result()
	if got, want := res.Usage, (pricing.Usage{Input: 10, Output: 1290}); got != want {
		t.Errorf("usage = %+v, want %+v", got, want)
	}
	if !res.Complete {
		t.Error("not complete")
	}
	if res.OutputBytes < int64(len(img)) {
		t.Errorf("OutputBytes = %d, want at least the image's %d", res.OutputBytes, len(img))
	}
}
