package providertest

import (
	"bytes"
	"embed"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// wire holds one recorded answer per provider, in the provider's exact wire format, non-streamed
// (<provider>.json) and streamed (<provider>.sse): text, then a tool call, then usage with cached
// and reasoning tokens. The translation suite and the cross-provider proxy tests answer with them.
//
//go:embed testdata/wire
var wire embed.FS

// WireUsage is the usage every recorded answer reports, as each provider counts it: 1,200
// prompt tokens of which 1,000 cached (Anthropic: 170 uncached, 1,000 read, 30 written), 45
// output tokens of which 12 reasoning (Anthropic does not count reasoning apart).
var WireUsage = map[string]struct{ Input, CacheRead, CacheWrite, Output int64 }{
	"openai":    {Input: 200, CacheRead: 1000, Output: 45},
	"anthropic": {Input: 170, CacheRead: 1000, CacheWrite: 30, Output: 45},
	"gemini":    {Input: 200, CacheRead: 1000, Output: 45},
}

// WireText and WireToolArgs are what every recorded answer says: the text, and the arguments
// of its get_weather call (as a JSON object, spacing aside).
const (
	WireText     = "Let me check the weather."
	WireToolName = "get_weather"
	WireToolArgs = `{"city":"Paris","unit":"c"}`
)

// Wire returns the recorded answer of provider, streamed or not.
func Wire(tb testing.TB, provider string, stream bool) []byte {
	tb.Helper()
	name := "testdata/wire/" + provider + ".json"
	if stream {
		name = "testdata/wire/" + provider + ".sse"
	}
	b, err := wire.ReadFile(name)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Replay is a fake provider that answers every request with its recorded wire answer: the
// stream (event by event, flushed after each, as the provider sends it) to a request that asks
// for one, the JSON answer otherwise; or, after Fail, an error in the provider's shape.
type Replay struct {
	Recorder
	URL      string
	provider string
	status   atomic.Int32
}

// NewReplay starts (for the test's lifetime) a replay of provider ("openai", "anthropic" or
// "gemini").
func NewReplay(tb testing.TB, provider string) *Replay {
	tb.Helper()
	rp := &Replay{provider: provider}
	body, stream := Wire(tb, provider, false), Wire(tb, provider, true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqBody := rp.Record(r)
		if st := int(rp.status.Load()); st != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(st)
			w.Write(ErrorBody(provider, st, "replayed failure"))
			return
		}
		streamed := strings.Contains(r.URL.Path, ":streamGenerateContent") || bytes.Contains(reqBody, []byte(`"stream":true`))
		if !streamed {
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		f, _ := w.(http.Flusher)
		for rest := stream; len(rest) > 0; {
			// Events go out one by one, with the provider's own line ends.
			n := len(rest)
			if i := bytes.Index(rest, []byte("\n\n")); i >= 0 {
				n = i + 2
			}
			if i := bytes.Index(rest, []byte("\r\n\r\n")); i >= 0 && i+4 < n {
				n = i + 4
			}
			w.Write(rest[:n])
			f.Flush()
			rest = rest[n:]
		}
	}))
	tb.Cleanup(srv.Close)
	rp.URL = srv.URL
	return rp
}

// Fail makes every later answer an error with status (0: answer normally again).
func (rp *Replay) Fail(status int) { rp.status.Store(int32(status)) }

// ErrorBody is an error answer in provider's own shape.
func ErrorBody(provider string, status int, msg string) []byte {
	switch provider {
	case "anthropic":
		return []byte(`{"type":"error","error":{"type":"overloaded_error","message":"` + msg + `"}}`)
	case "gemini":
		return []byte(`{"error":{"code":` + strconv.Itoa(status) + `,"message":"` + msg + `","status":"UNAVAILABLE"}}`)
	}
	return []byte(`{"error":{"message":"` + msg + `","type":"server_error","param":null,"code":null}}`)
}
