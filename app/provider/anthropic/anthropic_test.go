package anthropic_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"tokenguard/app/apperr"
	"tokenguard/app/pricing"
	"tokenguard/app/provider"
	"tokenguard/app/provider/anthropic"
	"tokenguard/app/provider/anthropic/anthropictest"
)

const upstreamKey = "sk-ant-api03-upstream-canary-0123456789"

// result is one request sent the way the proxy sends it: Parse, Prepare, SetKey, then the
// response read whole (Usage) or relayed event by event through a meter (provider.Relay).
type result struct {
	call   provider.Call
	status int
	client []byte // what the client received
	usage  pricing.Usage
	ok     bool
	stream provider.StreamResult
	relay  provider.RelayResult
}

func send(t *testing.T, up *anthropictest.Upstream, path, body, fallback string) result {
	t.Helper()
	return sendCapped(t, up, path, body, fallback, 0)
}

// sendCapped is send with a strict-mode OutputCap set before Prepare, as the proxy sets it.
func sendCapped(t *testing.T, up *anthropictest.Upstream, path, body, fallback string, outputCap int64) result {
	t.Helper()
	a := anthropic.New()
	var c provider.Call
	method := http.MethodPost
	if body == "" {
		method = http.MethodGet
	}
	if err := a.Parse(&provider.Request{Method: method, Path: path, Body: []byte(body)}, &c); err != nil {
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
	req, err := http.NewRequest(c.Method, up.URL+c.Path, bytes.NewReader(c.Body))
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

func want(u anthropictest.Usage) pricing.Usage {
	return pricing.Usage{Input: u.Input, CacheRead: u.CacheRead, CacheWrite: u.CacheWrite, Output: u.Output}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		code                     string // "" when Parse succeeds
		model                    string
		stream, metered          bool
		maxOut                   int64
	}{
		{"message", "POST", "/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":300,"messages":[]}`, "", "claude-sonnet-4-5", false, true, 300},
		{"streamed message", "POST", "/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":50,"stream":true,"messages":[]}`, "", "claude-haiku-4-5", true, true, 50},
		{"no max_tokens: the proxy's default cap applies", "POST", "/v1/messages", `{"model":"claude-haiku-4-5","messages":[]}`, "", "claude-haiku-4-5", false, true, 0},
		{"count tokens is free", "POST", "/v1/messages/count_tokens", `{"model":"claude-haiku-4-5","messages":[]}`, "", "claude-haiku-4-5", false, false, 0},
		{"model list is free", "GET", "/v1/models", "", "", "", false, false, 0},
		{"one model is free", "GET", "/v1/models/claude-haiku-4-5", "", "", "", false, false, 0},
		{"not JSON", "POST", "/v1/messages", `model=claude`, apperr.InvalidRequest, "", false, false, 0},
		{"truncated JSON", "POST", "/v1/messages", `{"model":"claude-haiku-4-5"`, apperr.InvalidRequest, "", false, false, 0},
		{"JSON array", "POST", "/v1/messages", `[{"model":"claude-haiku-4-5"}]`, apperr.InvalidRequest, "", false, false, 0},
		{"empty body", "POST", "/v1/messages", ``, apperr.InvalidRequest, "", false, false, 0},
		{"missing model", "POST", "/v1/messages", `{"max_tokens":10,"messages":[]}`, apperr.InvalidRequest, "", false, false, 0},
		{"empty model", "POST", "/v1/messages", `{"model":"","messages":[]}`, apperr.InvalidRequest, "", false, false, 0},
		{"model not a string", "POST", "/v1/messages", `{"model":7,"messages":[]}`, apperr.InvalidRequest, "", false, false, 0},
		{"count tokens without model", "POST", "/v1/messages/count_tokens", `{"messages":[]}`, apperr.InvalidRequest, "", false, false, 0},
		{"duplicate model", "POST", "/v1/messages", `{"model":"claude-haiku-4-5","model":"claude-opus-4-1","messages":[]}`, apperr.InvalidRequest, "", false, false, 0},
		{"case-variant model", "POST", "/v1/messages", `{"model":"claude-haiku-4-5","Model":"claude-opus-4-1","messages":[]}`, apperr.InvalidRequest, "", false, false, 0},
		{"escaped model key", "POST", "/v1/messages", `{"model":"claude-haiku-4-5","mod\u0065l":"claude-opus-4-1"}`, apperr.InvalidRequest, "", false, false, 0},
		{"stream not a boolean", "POST", "/v1/messages", `{"model":"claude-haiku-4-5","stream":"yes"}`, apperr.InvalidRequest, "", false, false, 0},
		{"negative max_tokens", "POST", "/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":-1}`, apperr.InvalidRequest, "", false, false, 0},
		{"batches are not metered, so refused", "POST", "/v1/messages/batches", `{"requests":[]}`, apperr.NotFound, "", false, false, 0},
		{"files refused", "GET", "/v1/files", "", apperr.NotFound, "", false, false, 0},
		{"GET on messages", "GET", "/v1/messages", "", apperr.MethodNotAllowed, "", false, false, 0},
		{"model id stepping out of /v1/models", "GET", "/v1/models/../files", "", apperr.InvalidRequest, "", false, false, 0},
		{"dot-dot model id", "GET", "/v1/models/..", "", apperr.InvalidRequest, "", false, false, 0},
		{"model id with a query", "GET", "/v1/models/x?beta=true", "", apperr.InvalidRequest, "", false, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c provider.Call
			err := anthropic.New().Parse(&provider.Request{Method: tt.method, Path: tt.path, Body: []byte(tt.body)}, &c)
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
			if c.Model != tt.model || c.Stream != tt.stream || c.Metered != tt.metered || c.MaxOutputTokens != tt.maxOut {
				t.Errorf("call = model %q stream %v metered %v max %d, want %q %v %v %d", c.Model, c.Stream, c.Metered, c.MaxOutputTokens, tt.model, tt.stream, tt.metered, tt.maxOut)
			}
			if c.Metered && c.InputTokens <= 0 {
				t.Errorf("InputTokens = %d, want a positive estimate", c.InputTokens)
			}
			if c.Stream && c.Framing != provider.FramingSSE {
				t.Errorf("Framing = %v, want SSE", c.Framing)
			}
		})
	}
}

// The usage recorded is the usage the upstream reported, streamed or not, with every class
// (cache reads and writes included), and a streamed reply costs what the same reply costs
// unstreamed.
func TestUsageMatchesUpstream(t *testing.T) {
	tab, err := pricing.New(nil, pricing.DefaultUnknownPrice())
	if err != nil {
		t.Fatal(err)
	}
	for _, deltaInput := range []bool{false, true} {
		up := anthropictest.New(t, upstreamKey)
		reply := anthropictest.DefaultReply
		reply.DeltaInput = deltaInput
		up.SetReply(reply)
		const model = "claude-sonnet-4-5-20250929"

		plain := send(t, up, "/v1/messages", `{"model":"`+model+`","max_tokens":300,"messages":[{"role":"user","content":"Hi"}]}`, "")
		if got, want := plain.status, 200; got != want {
			t.Fatalf("status = %d, want %d: %s", got, want, plain.client)
		}
		if !plain.ok {
			t.Fatal("Usage found no usage in the response")
		}
		if got, want := plain.usage, want(reply.Usage); got != want {
			t.Errorf("non-stream usage = %+v, want %+v", got, want)
		}

		streamed := send(t, up, "/v1/messages", `{"model":"`+model+`","max_tokens":300,"stream":true,"messages":[{"role":"user","content":"Hi"}]}`, "")
		if streamed.relay.ReadErr != nil || streamed.relay.WriteErr != nil {
			t.Fatalf("relay = %+v", streamed.relay)
		}
		res := streamed.stream
		if !res.Complete || res.ErrorCode != "" {
			t.Errorf("stream result complete=%v error=%q, want complete, no error", res.Complete, res.ErrorCode)
		}
		if got, want := res.Usage, want(reply.Usage); got != want {
			t.Errorf("stream usage (delta input %v) = %+v, want %+v", deltaInput, got, want)
		}
		if got, want := res.OutputBytes, int64(len(reply.Text)); got != want {
			t.Errorf("OutputBytes = %d, want %d", got, want)
		}
		c1, _ := tab.Cost(model, plain.usage)
		c2, _ := tab.Cost(model, res.Usage)
		if c1 != c2 || c1 == 0 {
			t.Errorf("stream cost %d, non-stream cost %d: want equal and non-zero", c2, c1)
		}
		// The client got every event the upstream sent, ping included, in order.
		for _, ev := range []string{"message_start", "content_block_start", "ping", "content_block_delta", "content_block_stop", "message_delta", "message_stop"} {
			if !bytes.Contains(streamed.client, []byte("event: "+ev+"\n")) {
				t.Errorf("client stream lacks %s", ev)
			}
		}
	}
}

// A stream that breaks off before message_delta still reports the input figures of
// message_start and the text streamed so far, and is not complete: the proxy estimates the
// rest rather than recording it as free.
func TestBrokenStreamKeepsPartialUsage(t *testing.T) {
	up := anthropictest.New(t, upstreamKey)
	reply := anthropictest.DefaultReply
	reply.Fail = anthropictest.FailBreak
	up.SetReply(reply)

	r := send(t, up, "/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":100,"stream":true,"messages":[]}`, "")
	if r.relay.ReadErr == nil {
		t.Error("relay saw no read error on a broken stream")
	}
	res := r.stream
	if res.Complete {
		t.Error("broken stream reported complete")
	}
	if got, want := res.Usage.Input, reply.Usage.Input; got != want {
		t.Errorf("input = %d, want %d from message_start", got, want)
	}
	if got, want := res.Usage.CacheRead, reply.Usage.CacheRead; got != want {
		t.Errorf("cache read = %d, want %d", got, want)
	}
	if got := res.Usage.Output; got != 0 {
		t.Errorf("output = %d, want 0 (message_start's placeholder is no count; the proxy estimates)", got)
	}
	if got, want := res.OutputBytes, int64(len(anthropictest.Pieces(reply.Text)[0])); got != want {
		t.Errorf("OutputBytes = %d, want %d (the one delta streamed)", got, want)
	}
}

// "event: error" after a 200 is relayed to the client and reported, with the usage seen so far.
func TestErrorEventAfter200(t *testing.T) {
	up := anthropictest.New(t, upstreamKey)
	reply := anthropictest.DefaultReply
	reply.Fail = anthropictest.FailErrorEvent
	up.SetReply(reply)

	r := send(t, up, "/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":100,"stream":true,"messages":[]}`, "")
	if got, want := r.status, 200; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
	if got, want := r.stream.ErrorCode, "overloaded_error"; got != want {
		t.Errorf("ErrorCode = %q, want %q", got, want)
	}
	if r.stream.Complete {
		t.Error("errored stream reported complete")
	}
	if got, want := r.stream.Usage.Input, reply.Usage.Input; got != want {
		t.Errorf("partial input = %d, want %d", got, want)
	}
	if !bytes.Contains(r.client, []byte("event: error\ndata: ")) {
		t.Errorf("client did not get the error event:\n%s", r.client)
	}
}

// On fallback the body names the fallback model and nothing else changes; any model string
// is forwarded (one of another provider included: Anthropic answers for it).
func TestPrepareFallback(t *testing.T) {
	up := anthropictest.New(t, upstreamKey)
	body := `{"model":"claude-opus-4-1","max_tokens":300,"system":"be brief","messages":[{"role":"user","content":"Hi"}]}`
	for _, fb := range []string{"claude-haiku-4-5", "gpt-4o-mini", "gemini-2.5-flash", "ft:gpt-4o-mini:org::x1"} {
		r := send(t, up, "/v1/messages", body, fb)
		sent := up.Last().Body
		if got := gjson.GetBytes(sent, "model").Str; got != fb {
			t.Errorf("upstream model = %q, want %q", got, fb)
		}
		for _, k := range []string{"max_tokens", "system", "messages"} {
			if got, want := gjson.GetBytes(sent, k).Raw, gjson.Get(body, k).Raw; got != want {
				t.Errorf("%s changed on fallback: %s, want %s", k, got, want)
			}
		}
		if got := gjson.GetBytes(r.client, "model").Str; got != fb {
			t.Errorf("response names model %q, want %q", got, fb)
		}
	}
}

// The upstream key goes in x-api-key and nowhere else; a client's anthropic-version and
// anthropic-beta pass through, and a missing version gets the default the API requires.
func TestSetKey(t *testing.T) {
	a := anthropic.New()
	h := http.Header{}
	a.SetKey(h, upstreamKey)
	if got := h.Get("x-api-key"); got != upstreamKey {
		t.Errorf("x-api-key = %q", got)
	}
	if got, want := h.Get("anthropic-version"), anthropic.DefaultVersion; got != want {
		t.Errorf("anthropic-version = %q, want %q", got, want)
	}
	for k, vs := range h {
		if !strings.EqualFold(k, "x-api-key") && strings.Contains(strings.Join(vs, " "), upstreamKey) {
			t.Errorf("key leaked into %s", k)
		}
	}
	h = http.Header{"Anthropic-Version": {"2024-01-01"}, "Anthropic-Beta": {"prompt-caching-2024-07-31"}}
	a.SetKey(h, upstreamKey)
	if got := h.Get("anthropic-version"); got != "2024-01-01" {
		t.Errorf("client's anthropic-version replaced by %q", got)
	}
	if got := h.Get("anthropic-beta"); got != "prompt-caching-2024-07-31" {
		t.Errorf("anthropic-beta = %q", got)
	}
}

// Token counting and the model list reach the upstream and are not metered.
func TestUnmeteredEndpoints(t *testing.T) {
	up := anthropictest.New(t, upstreamKey)
	r := send(t, up, "/v1/messages/count_tokens", `{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"Hi"}]}`, "")
	if r.status != 200 || r.call.Metered || !gjson.GetBytes(r.client, "input_tokens").Exists() {
		t.Errorf("count_tokens: status %d metered %v body %s", r.status, r.call.Metered, r.client)
	}
	r = send(t, up, "/v1/models", "", "")
	if r.status != 200 || r.call.Metered || !gjson.GetBytes(r.client, "data.0.id").Exists() {
		t.Errorf("models: status %d metered %v body %s", r.status, r.call.Metered, r.client)
	}
}

// The text a delta carries is counted once unescaped, and of duplicated keys the last counts,
// as the client's JSON parser takes it.
func TestMeterDeltaText(t *testing.T) {
	for _, tt := range []struct {
		name, data string
		want       int64
	}{
		{"plain", `{"type":"content_block_delta","delta":{"type":"text_delta","text":"hello"}}`, 5},
		{"escapes", `{"type":"content_block_delta","delta":{"type":"text_delta","text":"a\u00e9\"b\n"}}`, int64(len("aé\"b\n"))},
		{"duplicate delta", `{"type":"content_block_delta","delta":{"text":"ignored"},"delta":{"text":"kept"}}`, 4},
		{"duplicate text", `{"type":"content_block_delta","delta":{"text":"ab","text":"abc"}}`, 5},
		{"not a string", `{"type":"content_block_delta","delta":{"text":12345}}`, 0},
		{"truncated", `{"type":"content_block_delta","delta":{"text":"abc`, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := anthropic.New().NewMeter(&provider.Call{})
			provider.Relay(io.Discard, nil, strings.NewReader("event: content_block_delta\ndata: "+tt.data+"\n\n"), provider.FramingSSE, m, nil)
			if got := m.Result().OutputBytes; got != tt.want {
				t.Errorf("OutputBytes = %d, want %d", got, tt.want)
			}
		})
	}
}

// Meter reads events whatever their framing details: no event name (type from the data),
// null figures in message_delta keep the message_start ones.
func TestMeterEdgeCases(t *testing.T) {
	stream := "" +
		"data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":5,\"cache_creation_input_tokens\":null,\"output_tokens\":1}}}\r\n\r\n" +
		"event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\r\n\r\n" +
		"event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":1}\"}}\r\n\r\n" +
		"event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":20,\"input_tokens\":null}}\r\n\r\n"
	m := anthropic.New().NewMeter(&provider.Call{})
	rr := provider.Relay(httptest.NewRecorder(), nil, strings.NewReader(stream), provider.FramingSSE, m, nil)
	if rr.ReadErr != nil {
		t.Fatal(rr.ReadErr)
	}
	res := m.Result()
	if got, want := res.Usage, (pricing.Usage{Input: 10, CacheRead: 5, Output: 20}); got != want {
		t.Errorf("usage = %+v, want %+v", got, want)
	}
	if got, want := res.OutputBytes, int64(len("hmm")+len(`{"a":1}`)); got != want {
		t.Errorf("OutputBytes = %d, want %d", got, want)
	}
	if !res.Complete {
		t.Error("not complete after message_delta")
	}
}
