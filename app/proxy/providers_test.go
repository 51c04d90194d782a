package proxy_test

// Anthropic and Gemini through the whole proxy: key slots, metering of every stream outcome,
// fallback, bad input, the budget gate on every route, and the credential canary. Each runs
// against the wire-format fakes of anthropictest and geminitest.

import (
	"context"
	"database/sql"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"tokenguard/app/budget"
	"tokenguard/app/pricing"
	"tokenguard/app/provider/anthropic"
	"tokenguard/app/provider/anthropic/anthropictest"
	"tokenguard/app/provider/gemini"
	"tokenguard/app/provider/gemini/geminitest"
	"tokenguard/app/provider/openai"
	"tokenguard/app/provider/openai/openaitest"
	"tokenguard/app/proxy"
	"tokenguard/app/secret"
	"tokenguard/store"
)

// The operator's ANTHROPIC_API_KEY and GEMINI_API_KEY in tests.
const (
	anthropicEnvKey = "sk-ant-api03-env-fallback-key-00000000"
	geminiEnvKey    = "AIzaSyEnvFallbackKey000000000000000000"
)

// multiApp is a ready TokenGuard proxy on a temp database in front of fakes of all three
// providers, wired as main wires them.
type multiApp struct {
	*app
	anth *anthropictest.Upstream
	gem  *geminitest.Upstream
}

func newMultiApp(t testing.TB, maxBody int64) *multiApp {
	t.Helper()
	a := newBaseApp(t)
	prices, err := pricing.New(nil, pricing.DefaultUnknownPrice())
	if err != nil {
		t.Fatal(err)
	}
	a.up = openaitest.New(t)
	m := &multiApp{app: a, anth: anthropictest.New(t, anthropicEnvKey), gem: geminitest.New(t, geminiEnvKey)}
	a.serve(proxy.Config{Prices: prices, MaxBodyBytes: maxBody},
		proxy.Upstream{Adapter: openai.New(), BaseURL: a.up.URL, EnvKey: envKey},
		proxy.Upstream{Adapter: anthropic.New(), BaseURL: m.anth.URL, EnvKey: anthropicEnvKey},
		proxy.Upstream{Adapter: gemini.New(), BaseURL: m.gem.URL, EnvKey: geminiEnvKey},
	)
	return m
}

// storeKey stores a provider key on project p, sealed as the provider-keys API seals it.
func (m *multiApp) storeKey(p testProject, provider, key string) {
	m.t.Helper()
	err := m.db.WriteTx(context.Background(), func(tx *sql.Tx) error {
		return m.db.PutProviderKey(context.Background(), tx, store.ProviderKey{
			ProjectID: p.id, Provider: provider, Ciphertext: m.box.Seal([]byte(key), secret.ProviderKeyAD(p.id, provider)),
			Masked: secret.Mask(key), UpdatedAt: m.now.UnixMilli(),
		})
	})
	if err != nil {
		m.t.Fatal(err)
	}
}

// send sends a proxied request and reads the whole answer.
func (m *multiApp) send(method, path, body string, headers ...string) (*http.Response, string) {
	m.t.Helper()
	resp := m.do(context.Background(), method, path, body, headers...)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		m.t.Logf("reading the answer: %v", err)
	}
	return resp, string(b)
}

// waitRows returns p's usage rows once there are n of them. A client may stop reading before
// the proxy has written the row (an SDK returns at an error event), so the test waits for it.
func (m *multiApp) waitRows(p testProject, n int) []store.UsageRow {
	m.t.Helper()
	deadline := time.Now().Add(10 * time.Second) // returns as soon as the rows are there
	for {
		rows := m.rows(p)
		if len(rows) >= n || time.Now().After(deadline) {
			return rows
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// spend settles amount dollars against p, as earlier requests would have.
func (m *multiApp) spend(p testProject, amount float64) {
	tk, _ := m.engine.Admit(budget.Subject{ProjectID: p.id, WorkspaceID: p.workspaceID}, nil)
	tk.Settle(m.now, pricing.FromDollars(amount))
}

func anthropicBody(model string, stream bool) string {
	b := `{"model":"` + model + `","max_tokens":300,"messages":[{"role":"user","content":"Hello"}]`
	if stream {
		b += `,"stream":true`
	}
	return b + "}"
}

const geminiBody = `{"contents":[{"role":"user","parts":[{"text":"Hello"}]}]}`

// The docs' curl calls work as written, and a streamed answer costs what the same answer costs
// unstreamed, for both providers and every Gemini stream framing.
func TestProvidersMeteredLikeTheUpstreamReported(t *testing.T) {
	m := newMultiApp(t, 0)
	p := m.project(projectOptions{daily: 50})
	tg := []string{"x-tokenguard-key", p.key}

	// Anthropic: the docs' curl sends no anthropic-version; TokenGuard supplies it.
	resp, body := m.send("POST", "/proxy/anthropic/v1/messages", anthropicBody("claude-3-5-haiku-latest", false), tg...)
	if resp.StatusCode != 200 {
		t.Fatalf("anthropic: %d %s", resp.StatusCode, body)
	}
	if got := m.anth.Last().Header.Get("anthropic-version"); got != anthropic.DefaultVersion {
		t.Errorf("anthropic-version upstream = %q", got)
	}
	resp, body = m.send("POST", "/proxy/anthropic/v1/messages", anthropicBody("claude-3-5-haiku-latest", true),
		append(tg, "anthropic-version", "2023-06-01", "anthropic-beta", "prompt-caching-2024-07-31")...)
	if resp.StatusCode != 200 || !strings.Contains(body, "event: message_stop") {
		t.Fatalf("anthropic stream: %d %s", resp.StatusCode, body)
	}
	if got := m.anth.Last().Header.Get("anthropic-beta"); got != "prompt-caching-2024-07-31" {
		t.Errorf("anthropic-beta upstream = %q", got)
	}

	// Gemini: the docs' slash form, then both stream framings.
	for _, path := range []string{
		"/proxy/gemini/v1beta/models/gemini-2.0-flash/generateContent",
		"/proxy/gemini/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
		"/proxy/gemini/v1beta/models/gemini-2.0-flash:streamGenerateContent",
	} {
		resp, body := m.send("POST", path, geminiBody, tg...)
		if resp.StatusCode != 200 || !strings.Contains(body, "Hello fr") {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		if got, want := m.gem.Last().Path, "/v1beta/models/gemini-2.0-flash:"+map[bool]string{true: "generateContent", false: "streamGenerateContent"}[strings.HasSuffix(path, "/generateContent")]; got != want {
			t.Errorf("%s went upstream as %s, want %s", path, got, want)
		}
	}

	rows := m.rows(p)
	if len(rows) != 5 {
		t.Fatalf("%d rows, want 5", len(rows))
	}
	au := anthropictest.DefaultReply.Usage
	gu := geminitest.DefaultReply.Usage
	for i, r := range rows {
		wantIn, wantOut, provider := au.Input+au.CacheRead+au.CacheWrite, au.Output, "anthropic"
		if i >= 2 {
			wantIn, wantOut, provider = gu.Prompt, gu.Candidates+gu.Thoughts, "gemini"
		}
		if r.Provider != provider || r.InputTokens != wantIn || r.OutputTokens != wantOut || r.UsageEstimated || r.ErrorCode != "" || r.Status != 200 || r.PricedByDefault {
			t.Errorf("row %d = %+v, want %s %d in %d out, reported, no error, priced from the table", i, r, provider, wantIn, wantOut)
		}
		if r.Stream != (i == 1 || i >= 3) {
			t.Errorf("row %d stream = %v", i, r.Stream)
		}
		// The parts the provider reported apart are kept on the row.
		wantCache, wantWrite, wantReasoning := au.CacheRead, au.CacheWrite, int64(0)
		if i >= 2 {
			wantCache, wantWrite, wantReasoning = gu.Cached, 0, gu.Thoughts
		}
		if r.CacheReadTokens != wantCache || r.CacheWriteTokens != wantWrite || r.ReasoningTokens != wantReasoning {
			t.Errorf("row %d cache read %d, write %d, reasoning %d; want %d, %d, %d", i, r.CacheReadTokens,
				r.CacheWriteTokens, r.ReasoningTokens, wantCache, wantWrite, wantReasoning)
		}
	}
	if rows[0].CostNano <= 0 || rows[0].CostNano != rows[1].CostNano {
		t.Errorf("anthropic costs %d (plain) and %d (stream): want equal, positive", rows[0].CostNano, rows[1].CostNano)
	}
	if rows[2].CostNano <= 0 || rows[2].CostNano != rows[3].CostNano || rows[3].CostNano != rows[4].CostNano {
		t.Errorf("gemini costs %d, %d (sse), %d (array): want equal, positive", rows[2].CostNano, rows[3].CostNano, rows[4].CostNano)
	}
}

// A stream that fails midway is still metered: Anthropic's "event: error" after a 200 is
// relayed and logged as an error with the partial usage; a connection that breaks is logged
// with its input and an output estimated from what was relayed.
func TestProviderStreamFailuresMetered(t *testing.T) {
	m := newMultiApp(t, 0)
	tests := []struct {
		name, path, body, code string
		setup                  func()
		wantIn                 int64
	}{
		{"anthropic error event", "/proxy/anthropic/v1/messages", anthropicBody("claude-haiku-4-5", true), "overloaded_error",
			func() {
				m.anth.SetReply(anthropictest.Reply{Text: "partial answer", Usage: anthropictest.DefaultReply.Usage, Fail: anthropictest.FailErrorEvent})
			},
			4700},
		{"anthropic broken stream", "/proxy/anthropic/v1/messages", anthropicBody("claude-haiku-4-5", true), "UPSTREAM_UNAVAILABLE",
			func() {
				m.anth.SetReply(anthropictest.Reply{Text: "partial answer", Usage: anthropictest.DefaultReply.Usage, Fail: anthropictest.FailBreak})
			},
			4700},
		{"gemini broken SSE stream", "/proxy/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", geminiBody, "UPSTREAM_UNAVAILABLE",
			func() {
				m.gem.SetReply(geminitest.Reply{Text: "partial answer", Usage: geminitest.DefaultReply.Usage, Fail: geminitest.FailBreak})
			},
			2400},
		{"gemini broken array stream", "/proxy/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent", geminiBody, "UPSTREAM_UNAVAILABLE",
			func() {
				m.gem.SetReply(geminitest.Reply{Text: "partial answer", Usage: geminitest.DefaultReply.Usage, Fail: geminitest.FailBreak})
			},
			2400},
		{"gemini error chunk", "/proxy/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", geminiBody, "UNAVAILABLE",
			func() {
				m.gem.SetReply(geminitest.Reply{Text: "partial answer", Usage: geminitest.DefaultReply.Usage, Fail: geminitest.FailError})
			},
			2400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := m.project(projectOptions{daily: 10})
			tt.setup()
			resp, body := m.send("POST", tt.path, tt.body, "x-tokenguard-key", p.key)
			if resp.StatusCode != 200 || !strings.Contains(body, "partial") {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			if tt.code == "overloaded_error" && !strings.Contains(body, "event: error") {
				t.Errorf("the error event was not relayed:\n%s", body)
			}
			rows := m.rows(p)
			if len(rows) != 1 {
				t.Fatalf("%d rows", len(rows))
			}
			r := rows[0]
			if r.ErrorCode != tt.code || r.InputTokens != tt.wantIn || r.OutputTokens <= 0 || r.CostNano <= 0 || !r.Stream {
				t.Errorf("row %+v: want error %s, %d input tokens, some output, a cost", r, tt.code, tt.wantIn)
			}
			if got := m.engine.Reserved(budget.ProjectScope, p.id); got != 0 {
				t.Errorf("reserved %d after the request", got)
			}
		})
	}
}

// The project's fallback applies to both providers: the model is swapped in Anthropic's body
// and in Gemini's path. A fallback of another provider is sent to that provider, translated
// (crossprovider_test.go tests the translation); the row records what was sent.
func TestProviderFallback(t *testing.T) {
	m := newMultiApp(t, 0)
	tests := []struct {
		name, fallback, path, body string
		sent                       func() string
	}{
		{"anthropic same provider", "claude-haiku-4-5", "/proxy/anthropic/v1/messages", anthropicBody("claude-opus-4-1", false),
			func() string { return gjson.GetBytes(m.anth.Last().Body, "model").Str }},
		{"anthropic other provider", "gemini-2.0-flash-lite", "/proxy/anthropic/v1/messages", anthropicBody("claude-opus-4-1", true),
			func() string { return m.gem.Last().Path }},
		{"gemini same provider", "gemini-2.0-flash-lite", "/proxy/gemini/v1beta/models/gemini-2.5-pro/generateContent", geminiBody,
			func() string { return m.gem.Last().Path }},
		{"gemini other provider", "claude-haiku-4-5", "/proxy/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse", geminiBody,
			func() string { return gjson.GetBytes(m.anth.Last().Body, "model").Str }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := m.project(projectOptions{daily: 1, fallback: tt.fallback})
			m.spend(p, 0.85)
			resp, body := m.send("POST", tt.path, tt.body, "x-tokenguard-key", p.key)
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			sent := tt.sent()
			if strings.HasPrefix(sent, "/") {
				if want := "/v1beta/models/" + tt.fallback + ":"; !strings.HasPrefix(sent, want) {
					t.Errorf("upstream path %q, want %s…", sent, want)
				}
			} else if sent != tt.fallback {
				t.Errorf("upstream model %q, want %q", sent, tt.fallback)
			}
			if resp.Header.Get("X-Tokenguard-Fallback") != "true" || resp.Header.Get("X-Tokenguard-Final-Model") != tt.fallback {
				t.Errorf("headers: fallback %q final %q", resp.Header.Get("X-Tokenguard-Fallback"), resp.Header.Get("X-Tokenguard-Final-Model"))
			}
			rows := m.rows(p)
			if r := rows[len(rows)-1]; !r.WasFallback || r.FinalModel != tt.fallback || r.CostNano <= 0 {
				t.Errorf("row %+v", r)
			}
		})
	}
}

// Bad input is refused in the contract's shape before anything reaches the provider, and
// nothing is billed.
func TestProviderBadInput(t *testing.T) {
	m := newMultiApp(t, 64<<10)
	p := m.project(projectOptions{daily: 10})
	big := `{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"` + strings.Repeat("x", 70<<10) + `"}]}`
	bigGemini := `{"contents":[{"parts":[{"text":"` + strings.Repeat("x", 70<<10) + `"}]}]}`
	tests := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"anthropic malformed body", "/proxy/anthropic/v1/messages", `{"model":"claude-haiku-4-5",`, 400, "INVALID_REQUEST"},
		{"anthropic missing model", "/proxy/anthropic/v1/messages", `{"max_tokens":10,"messages":[]}`, 400, "INVALID_REQUEST"},
		{"anthropic duplicate model", "/proxy/anthropic/v1/messages", `{"model":"claude-haiku-4-5","model":"claude-opus-4-1"}`, 400, "INVALID_REQUEST"},
		{"anthropic oversized body", "/proxy/anthropic/v1/messages", big, 413, "PAYLOAD_TOO_LARGE"},
		{"anthropic batches not served", "/proxy/anthropic/v1/messages/batches", `{"requests":[]}`, 404, "NOT_FOUND"},
		{"gemini unknown method", "/proxy/gemini/v1beta/models/gemini-2.5-flash:embedContent", geminiBody, 404, "NOT_FOUND"},
		{"gemini malformed body", "/proxy/gemini/v1beta/models/gemini-2.5-flash:generateContent", `{"contents":`, 400, "INVALID_REQUEST"},
		{"gemini oversized body", "/proxy/gemini/v1beta/models/gemini-2.5-flash:generateContent", bigGemini, 413, "PAYLOAD_TOO_LARGE"},
		{"gemini unreadable stream format", "/proxy/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=proto", geminiBody, 400, "INVALID_REQUEST"},
	}
	before := len(m.anth.Requests()) + len(m.gem.Requests())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := m.send("POST", tt.path, tt.body, "x-tokenguard-key", p.key)
			if resp.StatusCode != tt.status || errorCode(t, body) != tt.code {
				t.Fatalf("%d %s, want %d %s", resp.StatusCode, body, tt.status, tt.code)
			}
			if msg := gjson.Get(body, "error.message").Str; msg == "" {
				t.Error("no message")
			}
		})
	}
	if after := len(m.anth.Requests()) + len(m.gem.Requests()); after != before {
		t.Errorf("%d bad requests reached a provider", after-before)
	}
	for _, r := range m.rows(p) {
		if r.CostNano != 0 {
			t.Errorf("a refused request was billed: %+v", r)
		}
	}
}

// Every Anthropic and Gemini route passes the budget gate: on an exhausted project each one,
// metered or free, answers 429 BUDGET_EXCEEDED and reaches no provider.
func TestProviderRoutesGated(t *testing.T) {
	m := newMultiApp(t, 0)
	p := m.project(projectOptions{daily: 1})
	m.spend(p, 1)
	routes := []struct{ method, path, body string }{
		{"POST", "/proxy/anthropic/v1/messages", anthropicBody("claude-haiku-4-5", false)},
		{"POST", "/proxy/anthropic/v1/messages", anthropicBody("claude-haiku-4-5", true)},
		{"POST", "/proxy/anthropic/v1/messages/count_tokens", anthropicBody("claude-haiku-4-5", false)},
		{"GET", "/proxy/anthropic/v1/models", ""},
		{"POST", "/proxy/gemini/v1beta/models/gemini-2.5-flash:generateContent", geminiBody},
		{"POST", "/proxy/gemini/v1beta/models/gemini-2.5-flash/generateContent", geminiBody},
		{"POST", "/proxy/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", geminiBody},
		{"POST", "/proxy/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent", geminiBody},
		{"POST", "/proxy/gemini/v1beta/models/gemini-2.5-flash:countTokens", geminiBody},
		{"GET", "/proxy/gemini/v1beta/models", ""},
	}
	for _, rt := range routes {
		resp, body := m.send(rt.method, rt.path, rt.body, "x-tokenguard-key", p.key)
		if resp.StatusCode != 429 || errorCode(t, body) != "BUDGET_EXCEEDED" {
			t.Errorf("%s %s on an exhausted project: %d %s", rt.method, rt.path, resp.StatusCode, body)
		}
	}
	if n := len(m.anth.Requests()) + len(m.gem.Requests()); n != 0 {
		t.Errorf("%d requests reached a provider", n)
	}
}

// Token counting and the model lists need a valid key, reach the provider, and are not billed
// or logged.
func TestProviderFreeRoutes(t *testing.T) {
	m := newMultiApp(t, 0)
	p := m.project(projectOptions{daily: 1})
	routes := []struct{ method, path, body, upstreamPath string }{
		{"POST", "/proxy/anthropic/v1/messages/count_tokens", anthropicBody("claude-haiku-4-5", false), "/v1/messages/count_tokens"},
		{"GET", "/proxy/anthropic/v1/models", "", "/v1/models"},
		{"POST", "/proxy/gemini/v1beta/models/gemini-2.5-flash/countTokens", geminiBody, "/v1beta/models/gemini-2.5-flash:countTokens"},
		{"GET", "/proxy/gemini/v1beta/models", "", "/v1beta/models"},
	}
	for _, rt := range routes {
		resp, body := m.send(rt.method, rt.path, rt.body)
		if resp.StatusCode != 401 || errorCode(t, body) != "MISSING_KEY" {
			t.Errorf("%s without a key: %d %s", rt.path, resp.StatusCode, body)
		}
		resp, body = m.send(rt.method, rt.path, rt.body, "x-tokenguard-key", p.key)
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", rt.path, resp.StatusCode, body)
		}
		last := m.anth.Last()
		if strings.Contains(rt.path, "gemini") {
			last = anthropictest.Seen(m.gem.Last())
		}
		if last.Path != rt.upstreamPath {
			t.Errorf("%s went upstream as %q, want %q", rt.path, last.Path, rt.upstreamPath)
		}
	}
	if rows := m.rows(p); len(rows) != 0 {
		t.Errorf("free routes logged %d rows: %+v", len(rows), rows)
	}
	if got := m.engine.Spend(budget.ProjectScope, p.id); got.Day != 0 {
		t.Errorf("free routes spent %d", got.Day)
	}
}

// Credential canary: the TokenGuard key, sent in every slot a client might use, and the
// project's stored provider keys never appear upstream outside the provider's own key slot,
// in a response, or in a log line; a caller's own provider key goes upstream in that slot.
func TestProviderCredentialCanary(t *testing.T) {
	m := newMultiApp(t, 0)
	p := m.project(projectOptions{daily: 50})
	storedAnth, storedGem := "sk-ant-api03-STORED-canary-7f3a9c1e5b", "AIzaSySTOREDcanary8d2b6f4a0c9e1357"
	m.storeKey(p, "anthropic", storedAnth)
	m.storeKey(p, "gemini", storedGem)
	m.anth.SetKey(storedAnth)
	m.gem.SetKey(storedGem)
	tg := p.key
	slots := []string{
		"x-tokenguard-key", tg, "Authorization", "Bearer " + tg, "x-api-key", tg, "x-goog-api-key", tg,
		"Cookie", "session=" + tg, "X-Tokenguard-Other", tg,
	}
	calls := []struct{ method, path, body string }{
		{"POST", "/proxy/anthropic/v1/messages?key=" + tg, anthropicBody("claude-haiku-4-5", false)},
		{"POST", "/proxy/anthropic/v1/messages?key=" + tg, anthropicBody("claude-haiku-4-5", true)},
		{"POST", "/proxy/anthropic/v1/messages/count_tokens", anthropicBody("claude-haiku-4-5", false)},
		{"GET", "/proxy/anthropic/v1/models", ""},
		{"POST", "/proxy/gemini/v1beta/models/gemini-2.5-flash/generateContent?key=" + tg, geminiBody},
		{"POST", "/proxy/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=" + tg, geminiBody},
		{"POST", "/proxy/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?key=" + tg, geminiBody},
		{"POST", "/proxy/gemini/v1beta/models/gemini-2.5-flash:countTokens?key=" + tg, geminiBody},
	}
	for _, c := range calls {
		resp, body := m.send(c.method, c.path, c.body, slots...)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", c.path, resp.StatusCode, body)
		}
		all := body
		for k, vs := range resp.Header {
			all += k + ": " + strings.Join(vs, ",") + "\n"
		}
		for _, secret := range []string{tg, storedAnth, storedGem} {
			if strings.Contains(all, secret) {
				t.Fatalf("%s: the response carries a key", c.path)
			}
		}
	}
	// The Gemini key slot alone (?key=) authenticates too, and is not forwarded.
	resp, body := m.send("POST", "/proxy/gemini/v1beta/models/gemini-2.5-flash:generateContent?key="+tg, geminiBody)
	if resp.StatusCode != 200 {
		t.Fatalf("?key= alone: %d %s", resp.StatusCode, body)
	}
	// Failing upstream calls (the provider refuses the key) leak nothing either.
	m.anth.SetKey("sk-ant-something-else")
	m.gem.SetKey("AIza-something-else")
	for _, c := range calls[:2] {
		resp, body := m.send(c.method, c.path, c.body, slots...)
		if resp.StatusCode != 401 || strings.Contains(body, tg) || strings.Contains(body, storedAnth) {
			t.Fatalf("refused upstream: %d %s", resp.StatusCode, body)
		}
	}

	check := func(provider, slot, stored string, seen []anthropictest.Seen) {
		for _, r := range seen {
			if got := r.Header.Get(slot); got != stored {
				t.Errorf("%s %s: upstream key slot %s = %q, want the stored key", provider, r.Path, slot, got)
			}
			all := r.Path + "?" + r.RawQuery + "\n" + string(r.Body)
			for k, vs := range r.Header {
				if k != http.CanonicalHeaderKey(slot) {
					all += k + ": " + strings.Join(vs, ",") + "\n"
				}
			}
			for _, secret := range []string{tg, tg[:16], storedAnth, storedGem} {
				if strings.Contains(all, secret) {
					t.Errorf("%s %s: a key went upstream outside %s:\n%s", provider, r.Path, slot, all)
				}
			}
		}
	}
	check("anthropic", "x-api-key", storedAnth, m.anth.Requests())
	var gs []anthropictest.Seen
	for _, r := range m.gem.Requests() {
		gs = append(gs, anthropictest.Seen(r))
	}
	check("gemini", "x-goog-api-key", storedGem, gs)

	m.rows(p)
	logs := m.logs.String()
	for _, secret := range []string{tg, tg[8:24], storedAnth, storedGem} {
		if strings.Contains(logs, secret) {
			t.Fatalf("a log line holds a key:\n%s", logs)
		}
	}

	// A caller's own provider key in the provider's slot goes upstream in that slot.
	own := "sk-ant-api03-callers-own-key-3c5e7a9b"
	m.anth.SetKey(own)
	resp, body = m.send("POST", "/proxy/anthropic/v1/messages", anthropicBody("claude-haiku-4-5", false), "x-tokenguard-key", tg, "x-api-key", own)
	if resp.StatusCode != 200 || m.anth.Last().Header.Get("x-api-key") != own {
		t.Errorf("caller's own key: %d %s, upstream got %q", resp.StatusCode, body, m.anth.Last().Header.Get("x-api-key"))
	}
}

// A client that leaves mid-stream still gets its request metered: the input the provider
// reported before the break, and an output estimated from what was relayed, flagged as an
// estimate and as a client disconnect; the reservation is released.
func TestProviderClientDisconnectMidStream(t *testing.T) {
	m := newMultiApp(t, 0)
	tests := []struct {
		name, path, body string
		setup            func()
		wantIn           int64
	}{
		{"anthropic", "/proxy/anthropic/v1/messages", anthropicBody("claude-haiku-4-5", true),
			func() {
				m.anth.SetReply(anthropictest.Reply{Chunks: []string{"one ", "two ", "three ", "four"}, Usage: anthropictest.DefaultReply.Usage, Fail: anthropictest.FailHang, Cut: 3})
			}, 4700},
		{"gemini sse", "/proxy/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", geminiBody,
			func() {
				m.gem.SetReply(geminitest.Reply{Chunks: []string{"one ", "two ", "three ", "four"}, Usage: geminitest.DefaultReply.Usage, Fail: geminitest.FailHang, Cut: 3})
			}, 2400},
		{"gemini json array", "/proxy/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent", geminiBody,
			func() {
				m.gem.SetReply(geminitest.Reply{Chunks: []string{"one ", "two ", "three ", "four"}, Usage: geminitest.DefaultReply.Usage, Fail: geminitest.FailHang, Cut: 3})
			}, 2400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := m.project(projectOptions{daily: 10})
			tt.setup()
			ctx, cancel := context.WithCancel(context.Background())
			resp := m.do(ctx, "POST", tt.path, tt.body, "x-tokenguard-key", p.key)
			buf := make([]byte, 4096)
			var got strings.Builder
			for !strings.Contains(got.String(), "three") {
				n, err := resp.Body.Read(buf)
				got.Write(buf[:n])
				if err != nil {
					t.Fatalf("stream ended early: %v (%q)", err, got.String())
				}
			}
			cancel()
			resp.Body.Close()

			rows := m.waitRows(p, 1)
			if len(rows) != 1 {
				t.Fatalf("%d rows after the disconnect", len(rows))
			}
			r := rows[0]
			if r.ErrorCode != "CLIENT_DISCONNECTED" || !r.UsageEstimated || r.InputTokens != tt.wantIn || r.OutputTokens <= 0 || r.CostNano <= 0 || !r.Stream {
				t.Errorf("row %+v: want an estimated, non-free, streamed row flagged CLIENT_DISCONNECTED with %d input tokens", r, tt.wantIn)
			}
			if got := m.engine.Reserved(budget.ProjectScope, p.id); got != 0 {
				t.Errorf("reserved %d after the disconnect", got)
			}
		})
	}
}

// BenchmarkProviderRoundTrip is one whole request through the proxy (key auth, budget gate,
// relay, metering, usage row) to an in-process fake provider and back, per provider and
// framing. The figure includes the fake upstream's and the client's own work.
func BenchmarkProviderRoundTrip(b *testing.B) {
	m := newMultiApp(b, 0)
	p := m.project(projectOptions{daily: 1e6})
	cases := []struct{ name, path, body string }{
		{"anthropic", "/proxy/anthropic/v1/messages", anthropicBody("claude-haiku-4-5", false)},
		{"anthropic-stream", "/proxy/anthropic/v1/messages", anthropicBody("claude-haiku-4-5", true)},
		{"gemini", "/proxy/gemini/v1beta/models/gemini-2.5-flash:generateContent", geminiBody},
		{"gemini-sse", "/proxy/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", geminiBody},
		{"gemini-array", "/proxy/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent", geminiBody},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp := m.do(context.Background(), "POST", c.path, c.body, "x-tokenguard-key", p.key)
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}

// A model id that steps out of its path segment never reaches another provider endpoint with
// the project's or the operator's key.
func TestProviderPathTraversalRefused(t *testing.T) {
	m := newMultiApp(t, 0)
	p := m.project(projectOptions{daily: 5})
	for _, path := range []string{
		"/proxy/anthropic/v1/models/../files",
		"/proxy/anthropic/v1/models/%2e%2e/files",
		"/proxy/anthropic/v1/models/%2E%2E",
		"/proxy/gemini/v1beta/models/..",
		"/proxy/gemini/v1beta/models/%2e%2e/files",
		"/proxy/gemini/v1beta/models/%2e%2e%2Fcachedcontents",
	} {
		resp, body := m.send("GET", path, "", "x-tokenguard-key", p.key)
		if resp.StatusCode != 400 && resp.StatusCode != 404 {
			t.Errorf("GET %s: %d %s, want 400 or 404", path, resp.StatusCode, body)
		}
	}
	if n := len(m.anth.Requests()) + len(m.gem.Requests()); n != 0 {
		t.Errorf("%d requests reached a provider", n)
	}
}
