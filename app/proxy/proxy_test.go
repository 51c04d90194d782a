package proxy_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"

	"tokenguard/app/apikey"
	"tokenguard/app/budget"
	"tokenguard/app/pricing"
	"tokenguard/app/provider/openai"
	"tokenguard/app/provider/openai/openaitest"
	"tokenguard/app/proxy"
	"tokenguard/app/secret"
	"tokenguard/app/usage"
	"tokenguard/store"
	"tokenguard/store/storetest"
)

// testModel is priced at $1 per million tokens, input and output, so costs are easy to state:
// 1,000 nano-dollars per token.
const testModel = "tg-test-model"

// envKey is the operator's OPENAI_API_KEY in tests.
const envKey = "sk-env-fallback-key-000000000000"

// syncBuffer collects log output from concurrent requests.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// app is a ready TokenGuard proxy on a temp database, in front of a fake OpenAI.
type app struct {
	t      testing.TB
	db     *store.DB
	box    *secret.Box
	engine *budget.Engine
	writer *usage.Writer
	proxy  *proxy.Proxy
	srv    *httptest.Server
	up     *openaitest.Server
	logs   *syncBuffer
	log    *slog.Logger
	now    time.Time
}

type appOptions struct {
	maxBody     int64
	upTimeout   time.Duration
	idleTimeout time.Duration
	noEnvKey    bool
	observers   []proxy.Observer
}

func newApp(t testing.TB, opts appOptions) *app {
	t.Helper()
	a := newBaseApp(t)
	prices, err := pricing.New(map[string]pricing.Price{testModel: pricing.PriceFromDollars(1, 0, 0, 1)}, pricing.DefaultUnknownPrice())
	if err != nil {
		t.Fatal(err)
	}
	a.up = openaitest.New(t)
	key := envKey
	if opts.noEnvKey {
		key = ""
	}
	a.serve(proxy.Config{Prices: prices, MaxBodyBytes: opts.maxBody, UpstreamTimeout: opts.upTimeout, StreamIdleTimeout: opts.idleTimeout,
		Observers: opts.observers},
		proxy.Upstream{Adapter: openai.New(), BaseURL: a.up.URL, EnvKey: key})
	return a
}

// newBaseApp is the part of a test app every proxy test shares: a temp database, a provider-key
// box, the budget engine on the app's clock, and a usage writer. serve completes it.
func newBaseApp(t testing.TB) *app {
	t.Helper()
	a := &app{t: t, db: storetest.Open(t), logs: &syncBuffer{}, now: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	a.log = slog.New(slog.NewTextHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var err error
	if a.box, err = secret.NewBox(strings.Repeat("ab", 32)); err != nil {
		t.Fatal(err)
	}
	a.engine = budget.New(a.clock)
	a.writer = usage.NewWriter(a.db, a.log, usage.WriterOptions{FlushInterval: 10 * time.Millisecond})
	t.Cleanup(func() { a.writer.Close(context.Background()) })
	return a
}

// clock is the app's time, shared by the engine and the proxy.
func (a *app) clock() time.Time { return a.now }

// serve builds the proxy from cfg, with the app's database, box, engine, writer, logger and clock,
// in front of ups, and starts a test server for it.
func (a *app) serve(cfg proxy.Config, ups ...proxy.Upstream) {
	a.t.Helper()
	cfg.DB, cfg.Box, cfg.Budget, cfg.Usage, cfg.Logger, cfg.Now = a.db, a.box, a.engine, a.writer, a.log, a.clock
	var err error
	if a.proxy, err = proxy.New(cfg, ups...); err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(func() { a.proxy.Close(context.Background()) })
	r := httprouter.New()
	a.proxy.Register(r)
	a.srv = httptest.NewServer(r)
	a.t.Cleanup(a.srv.Close)
}

// projectOptions are a test project's settings; budgets in dollars, 0 = none.
type projectOptions struct {
	daily, monthly, wsDaily float64
	fallback                string
	inactive                bool
	openaiKey               string
}

type testProject struct {
	key             string
	id, workspaceID int64
}

func dollars(d float64) any {
	if d == 0 {
		return nil
	}
	return int64(pricing.FromDollars(d))
}

// project creates a workspace and a project in it, the way the projects API stores them.
func (a *app) project(o projectOptions) testProject {
	a.t.Helper()
	k, err := apikey.Generate()
	if err != nil {
		a.t.Fatal(err)
	}
	hash, err := apikey.Hash(k.Full)
	if err != nil {
		a.t.Fatal(err)
	}
	ms := a.now.UnixMilli()
	var p testProject
	p.key = k.Full
	err = a.db.WriteTx(context.Background(), func(tx *sql.Tx) error {
		res, err := tx.Exec(`INSERT INTO workspaces (name, daily_budget_nano, created_at) VALUES ('ws', ?, ?)`, dollars(o.wsDaily), ms)
		if err != nil {
			return err
		}
		p.workspaceID, _ = res.LastInsertId()
		active := 1
		if o.inactive {
			active = 0
		}
		res, err = tx.Exec(`INSERT INTO projects (workspace_id, name, daily_budget_nano, monthly_budget_nano, fallback_model,
			key_prefix, key_hash, active, created_at, updated_at) VALUES (?, 'p', ?, ?, ?, ?, ?, ?, ?, ?)`,
			p.workspaceID, dollars(o.daily), dollars(o.monthly), o.fallback, k.Prefix, hash, active, ms, ms)
		if err != nil {
			return err
		}
		p.id, _ = res.LastInsertId()
		if o.openaiKey != "" {
			_, err = tx.Exec(`INSERT INTO provider_keys (project_id, provider, ciphertext, masked, updated_at) VALUES (?, 'openai', ?, ?, ?)`,
				p.id, a.box.Seal([]byte(o.openaiKey), secret.ProviderKeyAD(p.id, "openai")), secret.Mask(o.openaiKey), ms)
		}
		return err
	})
	if err != nil {
		a.t.Fatal(err)
	}
	return p
}

// do sends a proxied request; headers are name/value pairs.
func (a *app) do(ctx context.Context, method, path, body string, headers ...string) *http.Response {
	a.t.Helper()
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.srv.URL+path, rb)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	return resp
}

func (a *app) chat(key, body string, headers ...string) (*http.Response, string) {
	a.t.Helper()
	resp := a.do(context.Background(), "POST", "/proxy/openai/v1/chat/completions", body, append([]string{"x-tokenguard-key", key}, headers...)...)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return resp, string(b)
}

// rows flushes the writer and returns every usage row of the project, oldest first.
func (a *app) rows(p testProject) []store.UsageRow {
	a.t.Helper()
	if err := a.writer.Flush(context.Background()); err != nil {
		a.t.Fatal(err)
	}
	rows, _, err := a.db.ListUsage(context.Background(), store.UsageFilter{WorkspaceID: p.workspaceID, ProjectID: p.id, Limit: 1000})
	if err != nil {
		a.t.Fatal(err)
	}
	for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
		rows[i], rows[j] = rows[j], rows[i]
	}
	return rows
}

// waitRows returns the project's rows once there are at least n: a response can be fully read
// by the client a moment before the proxy has recorded it.
func (a *app) waitRows(p testProject, n int) []store.UsageRow {
	a.t.Helper()
	deadline := time.Now().Add(10 * time.Second) // returns as soon as the rows are there
	for {
		rows := a.rows(p)
		if len(rows) >= n || time.Now().After(deadline) {
			return rows
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func errorCode(t testing.TB, body string) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e.Error.Code
}

func chatBody(model string, stream bool, extra string) string {
	return fmt.Sprintf(`{"model":%q,"stream":%v,"messages":[{"role":"user","content":"Say hello"}]%s}`, model, stream, extra)
}

// A streamed and a non-streamed request with the same usage cost the same, and both are read
// from the provider's own figures (cached input and reasoning included).
func TestStreamAndNonStreamCostTheSame(t *testing.T) {
	a := newApp(t, appOptions{})
	p := a.project(projectOptions{})
	a.up.Set(openaitest.Behavior{Usage: openaitest.Usage{Prompt: 1200, Cached: 1024, Completion: 300, Reasoning: 128}, Chunks: []string{"Hel", "lo"}})

	resp, body := a.chat(p.key, chatBody("gpt-4o", false, ""))
	if resp.StatusCode != 200 || !strings.Contains(body, `"Hello"`) {
		t.Fatalf("non-stream: %d %s", resp.StatusCode, body)
	}
	if got, want := resp.Header.Get("X-Tokenguard-Final-Model"), "gpt-4o"; got != want {
		t.Errorf("final model header %q, want %q", got, want)
	}
	resp, body = a.chat(p.key, chatBody("gpt-4o", true, ""))
	if resp.StatusCode != 200 || !strings.Contains(body, "data: [DONE]") {
		t.Fatalf("stream: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(body, `"choices":[]`) {
		t.Errorf("the client did not ask for the usage chunk but got it:\n%s", body)
	}
	if !a.up.Last().IncludeUsage {
		t.Errorf("upstream was not asked for stream usage")
	}

	rows := a.waitRows(p, 2)
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2", len(rows))
	}
	// gpt-4o: $2.50 input, $1.25 cached input, $10 output per million.
	want := pricing.FromDollars((176*2.50 + 1024*1.25 + 300*10.0) / 1e6)
	for i, r := range rows {
		if r.CostNano != int64(want) || r.InputTokens != 1200 || r.OutputTokens != 300 || r.UsageEstimated {
			t.Errorf("row %d: cost %d tokens %d/%d estimated %v; want cost %d, 1200/300, exact", i, r.CostNano, r.InputTokens, r.OutputTokens, r.UsageEstimated, want)
		}
	}
	if rows[0].Stream || !rows[1].Stream {
		t.Errorf("stream flags %v %v, want false true", rows[0].Stream, rows[1].Stream)
	}
}

// Each metered response names its usage row, blocked requests included, so a client can find
// the request in the usage log.
func TestResponseNamesItsUsageRow(t *testing.T) {
	a := newApp(t, appOptions{})
	p := a.project(projectOptions{daily: 0.000001})
	var ids []string
	for _, stream := range []bool{false, true, true} { // the first spends the budget; then 429
		resp, _ := a.chat(p.key, chatBody("gpt-4o", stream, ""))
		id := resp.Header.Get("X-Tokenguard-Request-Id")
		if id == "" {
			t.Fatalf("status %d: no X-Tokenguard-Request-Id", resp.StatusCode)
		}
		ids = append(ids, id)
	}
	rows := a.waitRows(p, 3)
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rows))
	}
	for i, r := range rows {
		if r.RequestID != ids[i] {
			t.Errorf("row %d: request id %q, response said %q", i, r.RequestID, ids[i])
		}
	}
	if rows[0].Status != 200 || rows[1].Status != 429 || rows[2].Status != 429 {
		t.Errorf("row statuses %d %d %d, want 200 429 429", rows[0].Status, rows[1].Status, rows[2].Status)
	}
}

// A client that asked for the usage chunk itself still gets it.
func TestClientAskedUsageChunkKept(t *testing.T) {
	a := newApp(t, appOptions{})
	p := a.project(projectOptions{})
	_, body := a.chat(p.key, chatBody("gpt-4o-mini", true, `,"stream_options":{"include_usage":true}`))
	if !strings.Contains(body, `"choices":[],"usage":{`) {
		t.Fatalf("usage chunk missing:\n%s", body)
	}
}

// Keys are checked in the contract's order and errors carry the contract's codes.
func TestKeyErrors(t *testing.T) {
	a := newApp(t, appOptions{})
	good := a.project(projectOptions{})
	inactive := a.project(projectOptions{inactive: true})
	gone := a.project(projectOptions{})
	if _, err := a.db.Write.Exec(`UPDATE workspaces SET deleted_at = 1 WHERE id = ?`, gone.workspaceID); err != nil {
		t.Fatal(err)
	}
	unknown, _ := apikey.Generate()
	tests := []struct {
		name    string
		headers []string
		status  int
		code    string
	}{
		{"no key", nil, 401, "MISSING_KEY"},
		{"provider key only", []string{"Authorization", "Bearer sk-abc"}, 401, "MISSING_KEY"},
		{"junk tg key", []string{"x-tokenguard-key", "tg_live_nope"}, 401, "INVALID_KEY"},
		{"bad checksum", []string{"Authorization", "Bearer " + good.key[:len(good.key)-1] + "x"}, 401, "INVALID_KEY"},
		{"unknown key", []string{"x-api-key", unknown.Full}, 401, "INVALID_KEY"},
		{"deactivated", []string{"x-tokenguard-key", inactive.key}, 401, "KEY_DEACTIVATED"},
		{"deleted workspace", []string{"x-goog-api-key", gone.key}, 401, "INVALID_KEY"},
		{"good via bearer", []string{"Authorization", "Bearer " + good.key}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := a.do(context.Background(), "POST", "/proxy/openai/v1/chat/completions", chatBody("gpt-4o-mini", false, ""), tt.headers...)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, b, tt.status)
			}
			if tt.code != "" {
				if got := errorCode(t, string(b)); got != tt.code {
					t.Fatalf("code %s, want %s", got, tt.code)
				}
			}
		})
	}
	if got := len(a.waitRows(good, 1)); got != 1 {
		t.Errorf("%d rows for the good key, want 1 (rejected keys log nothing)", got)
	}

	// Deactivating evicts the cached key at once.
	if _, err := a.db.Write.Exec(`UPDATE projects SET active = 0 WHERE id = ?`, good.id); err != nil {
		t.Fatal(err)
	}
	a.proxy.EvictProject(good.id)
	resp, body := a.chat(good.key, chatBody("gpt-4o-mini", false, ""))
	if resp.StatusCode != 401 || errorCode(t, body) != "KEY_DEACTIVATED" {
		t.Fatalf("after deactivation: %d %s", resp.StatusCode, body)
	}
}

// A TokenGuard key put in every slot never reaches the upstream or a log line, and the
// upstream key comes from the caller, else the project, else the environment.
func TestCredentialCanary(t *testing.T) {
	a := newApp(t, appOptions{})
	p := a.project(projectOptions{})
	canary := p.key
	slots := []string{
		"x-tokenguard-key", canary,
		"Authorization", "Bearer " + canary,
		"x-api-key", canary,
		"x-goog-api-key", canary,
		"Cookie", "session=" + canary,
		"X-Tokenguard-Other", canary,
		"Connection", "X-Secret-Hop",
		"X-Secret-Hop", canary,
		"Accept-Encoding", "gzip",
	}
	for _, stream := range []bool{false, true} {
		resp := a.do(context.Background(), "POST", "/proxy/openai/v1/chat/completions?key="+canary+"&api-version=1", chatBody("gpt-4o-mini", stream, ""), slots...)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		if strings.Contains(string(body), canary) {
			t.Fatalf("response body holds the key")
		}
	}
	// A request that fails also never leaks it.
	a.up.Set(openaitest.Behavior{Status: 500})
	resp := a.do(context.Background(), "POST", "/proxy/openai/v1/chat/completions?key="+canary, chatBody("gpt-4o-mini", false, ""), slots...)
	resp.Body.Close()

	for _, r := range a.up.Received() {
		all := r.RawQuery + string(r.Body)
		for k, vs := range r.Header {
			all += k + ":" + strings.Join(vs, ",") + "\n"
		}
		if strings.Contains(all, canary) || strings.Contains(all, canary[:16]) {
			t.Fatalf("upstream request carries the TokenGuard key:\n%s", all)
		}
		if got, want := r.Header.Get("Authorization"), "Bearer "+envKey; got != want {
			t.Errorf("upstream Authorization %q, want %q", got, want)
		}
		if got := r.Header.Get("Accept-Encoding"); got == "gzip" {
			t.Errorf("client's Accept-Encoding reached the upstream")
		}
		if got, want := r.RawQuery, "api-version=1"; got != want && got != "" {
			t.Errorf("upstream query %q, want %q", got, want)
		}
	}
	a.rows(p)
	if logs := a.logs.String(); strings.Contains(logs, canary) || strings.Contains(logs, canary[8:24]) {
		t.Fatalf("a log line holds the key:\n%s", logs)
	}
}

// The upstream key is the caller's own, else the project's stored one, else the env key, else
// 400 NO_PROVIDER_KEY.
func TestUpstreamKeyOrder(t *testing.T) {
	a := newApp(t, appOptions{noEnvKey: true})
	stored := a.project(projectOptions{openaiKey: "sk-project-stored-key-1234"})
	bare := a.project(projectOptions{})

	a.chat(stored.key, chatBody("gpt-4o-mini", false, ""), "Authorization", "Bearer sk-callers-own-key")
	if got, want := a.up.Last().Header.Get("Authorization"), "Bearer sk-callers-own-key"; got != want {
		t.Errorf("with a caller key: upstream got %q, want %q", got, want)
	}
	a.chat(stored.key, chatBody("gpt-4o-mini", false, ""))
	if got, want := a.up.Last().Header.Get("Authorization"), "Bearer sk-project-stored-key-1234"; got != want {
		t.Errorf("with a stored key: upstream got %q, want %q", got, want)
	}
	resp, body := a.chat(bare.key, chatBody("gpt-4o-mini", false, ""))
	if resp.StatusCode != 400 || errorCode(t, body) != "NO_PROVIDER_KEY" {
		t.Errorf("no key anywhere: %d %s", resp.StatusCode, body)
	}
}

// Bad input gets its contract error, or still meters correctly; nothing panics.
func TestBadInput(t *testing.T) {
	a := newApp(t, appOptions{maxBody: 4096})
	p := a.project(projectOptions{})
	big := strings.Repeat("x", 5000)
	tests := []struct {
		name, body string
		chunked    bool
		status     int
		code       string
	}{
		{"not JSON", "model=gpt-4o", false, 400, "INVALID_REQUEST"},
		{"empty body", "", false, 400, "INVALID_REQUEST"},
		{"missing model", `{"messages":[]}`, false, 400, "INVALID_REQUEST"},
		{"duplicate model", `{"model":"gpt-4o-mini","model":"o1-pro"}`, false, 400, "INVALID_REQUEST"},
		{"case-variant model", `{"model":"gpt-4o-mini","MODEL":"o1-pro"}`, false, 400, "INVALID_REQUEST"},
		{"over the limit", `{"model":"gpt-4o-mini","x":"` + big + `"}`, false, 413, "PAYLOAD_TOO_LARGE"},
		{"over the limit, chunked", `{"model":"gpt-4o-mini","x":"` + big + `"}`, true, 413, "PAYLOAD_TOO_LARGE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rb io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				rb = io.MultiReader(rb) // hides the length: sent chunked
			}
			req, _ := http.NewRequest("POST", a.srv.URL+"/proxy/openai/v1/chat/completions", rb)
			req.Header.Set("x-tokenguard-key", p.key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || errorCode(t, string(b)) != tt.code {
				t.Fatalf("got %d %s, want %d %s", resp.StatusCode, b, tt.status, tt.code)
			}
		})
	}
	if n := len(a.up.Received()); n != 0 {
		t.Fatalf("%d bad requests reached the upstream", n)
	}

	t.Run("2 MB SSE line", func(t *testing.T) {
		huge := strings.Repeat("y", 2<<20)
		a.up.Set(openaitest.Behavior{Usage: openaitest.Usage{Prompt: 10, Completion: 524288}, Chunks: []string{"a", huge, "b"}})
		resp, body := a.chat(p.key, chatBody(testModel, true, ""))
		if resp.StatusCode != 200 || !strings.Contains(body, huge) || !strings.Contains(body, "[DONE]") {
			t.Fatalf("status %d, body of %d bytes", resp.StatusCode, len(body))
		}
		rows := a.waitRows(p, 1)
		last := rows[len(rows)-1]
		if got, want := last.CostNano, int64(524298*1000); got != want || last.UsageEstimated {
			t.Fatalf("cost %d (estimated %v), want %d", got, last.UsageEstimated, want)
		}
	})

	t.Run("client Accept-Encoding gzip", func(t *testing.T) {
		a.up.Set(openaitest.Behavior{Usage: openaitest.Usage{Prompt: 10, Completion: 5}, Chunks: []string{"hi"}})
		req, _ := http.NewRequest("POST", a.srv.URL+"/proxy/openai/v1/chat/completions", strings.NewReader(chatBody(testModel, false, "")))
		req.Header.Set("x-tokenguard-key", p.key)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !json.Valid(b) {
			t.Fatalf("status %d body %q", resp.StatusCode, b)
		}
		if got := a.up.Last().Header.Get("Accept-Encoding"); got != "" {
			t.Fatalf("upstream saw Accept-Encoding %q", got)
		}
		rows := a.waitRows(p, 2)
		if got, want := rows[len(rows)-1].CostNano, int64(15*1000); got != want {
			t.Fatalf("cost %d, want %d", got, want)
		}
	})
}

// A request marks its project as used in memory only; the time reaches the projects table in
// the next batched write, also for a project evicted from the key cache in between.
func TestLastUsedIsBatched(t *testing.T) {
	a := newApp(t, appOptions{})
	p1 := a.project(projectOptions{})
	p2 := a.project(projectOptions{})
	lastUsed := func(id int64) sql.NullInt64 {
		var v sql.NullInt64
		if err := a.db.Read.QueryRow(`SELECT last_used_at FROM projects WHERE id = ?`, id).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	a.chat(p1.key, chatBody("gpt-4o-mini", false, ""))
	a.chat(p2.key, chatBody("gpt-4o-mini", false, ""))
	if v := lastUsed(p1.id); v.Valid {
		t.Fatalf("last_used_at written per request (%d); want it batched", v.Int64)
	}
	a.proxy.EvictWorkspace(p2.workspaceID)
	if err := a.proxy.FlushLastUsed(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []testProject{p1, p2} {
		if got, want := lastUsed(p.id), a.now.UnixMilli(); !got.Valid || got.Int64 != want {
			t.Errorf("project %d last_used_at = %v, want %d", p.id, got, want)
		}
	}
}

// A deleted project's key is dead at once (the projects API evicts it).
func TestDeletedProjectKey(t *testing.T) {
	a := newApp(t, appOptions{})
	p := a.project(projectOptions{})
	if resp, _ := a.chat(p.key, chatBody("gpt-4o-mini", false, "")); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	if _, err := a.db.Write.Exec(`UPDATE projects SET deleted_at = 1 WHERE id = ?`, p.id); err != nil {
		t.Fatal(err)
	}
	a.proxy.EvictProject(p.id)
	resp, body := a.chat(p.key, chatBody("gpt-4o-mini", false, ""))
	if resp.StatusCode != 401 || errorCode(t, body) != "INVALID_KEY" {
		t.Fatalf("deleted project: %d %s", resp.StatusCode, body)
	}
}
