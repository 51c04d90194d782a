package metrics_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"tokenguard/app/budget"
	"tokenguard/app/metrics"
	"tokenguard/app/metrics/metricstest"
	"tokenguard/app/pricing"
	"tokenguard/app/usage"
	"tokenguard/store"
	"tokenguard/store/storetest"
)

// TestObserve ensures each kind of usage row is counted under the outcome, status class and
// reason an operator alerts on, with its tokens and cost, and that models are labelled by the
// price table's name: dated names as their model, unknown names as "other".
func TestObserve(t *testing.T) {
	ok := usage.Record{Provider: "openai", OriginalModel: "gpt-4o-mini", FinalModel: "gpt-4o-mini", Status: 200,
		InputTokens: 20, OutputTokens: 5, CacheReadTokens: 4, Cost: pricing.FromDollars(0.5), LatencyMs: 1500, TTFBMs: 200}
	tests := []struct {
		name       string
		rec        usage.Record
		labels     []string // of tokenguard_requests_total
		upstream   string   // reason counted in tokenguard_upstream_errors_total, "" for none
		wantTokens float64  // input tokens counted for the row's model label
	}{
		{"ok", ok, []string{"model", "gpt-4o-mini", "status_class", "2xx", "outcome", "ok"}, "", 20},
		{"dated name of a known model", with(ok, func(r *usage.Record) { r.FinalModel = "gpt-4o-mini-2024-07-18" }),
			[]string{"model", "gpt-4o-mini", "outcome", "ok"}, "", 20},
		{"unknown model", with(ok, func(r *usage.Record) { r.FinalModel, r.PricedByDefault = "my-own-model-9000", true }),
			[]string{"model", "other", "outcome", "ok"}, "", 20},
		{"fallback", with(ok, func(r *usage.Record) { r.WasFallback = true }),
			[]string{"outcome", "fallback"}, "", 20},
		{"budget exceeded", usage.Record{Provider: "openai", FinalModel: "gpt-4o-mini", Status: 429, ErrorCode: "BUDGET_EXCEEDED"},
			[]string{"status_class", "4xx", "outcome", "blocked"}, "", 0},
		{"rate limited", usage.Record{Provider: "anthropic", FinalModel: "claude-haiku-4-5", Status: 429, ErrorCode: "RATE_LIMITED"},
			[]string{"provider", "anthropic", "outcome", "rate_limited"}, "", 0},
		{"model not allowed", usage.Record{Provider: "openai", FinalModel: "gpt-4o", Status: 403, ErrorCode: "MODEL_NOT_ALLOWED"},
			[]string{"outcome", "model_not_allowed"}, "", 0},
		{"provider 5xx", usage.Record{Provider: "openai", FinalModel: "gpt-4o", Status: 503, ErrorCode: "UPSTREAM_ERROR"},
			[]string{"status_class", "5xx", "outcome", "upstream_error"}, "http_5xx", 0},
		{"provider 4xx", usage.Record{Provider: "openai", FinalModel: "gpt-4o", Status: 400, ErrorCode: "UPSTREAM_ERROR"},
			[]string{"status_class", "4xx", "outcome", "upstream_error"}, "http_4xx", 0},
		{"error event in a stream", usage.Record{Provider: "anthropic", FinalModel: "claude-haiku-4-5", Status: 200, ErrorCode: "overloaded_error"},
			[]string{"status_class", "2xx", "outcome", "upstream_error"}, "stream_error", 0},
		{"unreachable", usage.Record{Provider: "gemini", FinalModel: "gemini-2.5-flash", Status: 502, ErrorCode: "UPSTREAM_UNAVAILABLE"},
			[]string{"outcome", "upstream_unavailable"}, "unreachable", 0},
		{"timeout", usage.Record{Provider: "gemini", FinalModel: "gemini-2.5-flash", Status: 504, ErrorCode: "UPSTREAM_TIMEOUT"},
			[]string{"outcome", "upstream_timeout"}, "timeout", 0},
		{"client left", usage.Record{Provider: "openai", FinalModel: "gpt-4o", Status: 499, ErrorCode: "CLIENT_DISCONNECTED"},
			[]string{"outcome", "client_disconnected"}, "", 0},
		{"a code added later", usage.Record{Provider: "openai", FinalModel: "gpt-4o", Status: 400, ErrorCode: "SOMETHING_NEW"},
			[]string{"outcome", "error"}, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := metricstest.New(t)
			m.Observe("", tt.rec)
			m.Observe("", tt.rec)
			f := metricstest.Scrape(t, metrics.Handler(reg, ""), "")
			if got := f.Value("tokenguard_requests_total", append([]string{"provider", tt.rec.Provider}, tt.labels...)...); got != 2 {
				t.Errorf("tokenguard_requests_total%v = %v, want 2", tt.labels, got)
			}
			if got, want := len(f.Series("tokenguard_requests_total")), 1; got != want {
				t.Errorf("%d request series, want %d", got, want)
			}
			var wantErrors float64
			if tt.upstream != "" {
				wantErrors = 2
			}
			if got := f.Value("tokenguard_upstream_errors_total", "provider", tt.rec.Provider, "reason", tt.upstream); got != wantErrors {
				t.Errorf("upstream errors (%s) = %v, want %v", tt.upstream, got, wantErrors)
			}
			if got := f.Value("tokenguard_tokens_total", "type", "input", "model", tt.labels[1]); tt.labels[0] == "model" && got != 2*tt.wantTokens {
				t.Errorf("input tokens = %v, want %v", got, 2*tt.wantTokens)
			}
			if got := f.Value("tokenguard_request_duration_seconds", "provider", tt.rec.Provider); got != 2 {
				t.Errorf("latency observations = %v, want 2", got)
			}
		})
	}

	m, reg := metricstest.New(t)
	m.Observe("", ok)
	f := metricstest.Scrape(t, metrics.Handler(reg, ""), "")
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"tokenguard_tokens_total", []string{"type", "output"}, 5},
		{"tokenguard_tokens_total", []string{"type", "cache_read"}, 4},
		{"tokenguard_cost_usd_total", []string{"model", "gpt-4o-mini"}, 0.5},
		{"tokenguard_time_to_first_byte_seconds", []string{"provider", "openai"}, 1},
	} {
		if got := f.Value(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if h := f.Series("tokenguard_request_duration_seconds")[0].Histogram; h.GetSampleSum() != 1.5 {
		t.Errorf("latency sum = %v, want 1.5", h.GetSampleSum())
	}
}

func with(r usage.Record, f func(*usage.Record)) usage.Record {
	f(&r)
	return r
}

// TestModelLabelIsBounded ensures a key holder sending ever new model names cannot mint new
// series: every name the price table does not know, dated variants of known names included,
// shares one label.
func TestModelLabelIsBounded(t *testing.T) {
	m, reg := metricstest.New(t)
	for i := range 500 {
		m.Observe("", usage.Record{Provider: "openai", FinalModel: fmt.Sprintf("made-up-%d", i), PricedByDefault: true, Status: 200})
		m.Observe("", usage.Record{Provider: "openai", FinalModel: fmt.Sprintf("gpt-4o-20%02d-01-01", i%100), Status: 200})
	}
	f := metricstest.Scrape(t, metrics.Handler(reg, ""), "")
	if got, want := len(f.Series("tokenguard_requests_total")), 2; got != want {
		t.Errorf("%d request series after 1,000 distinct model names, want %d", got, want)
	}
	if got := f.Value("tokenguard_requests_total", "model", "other"); got != 500 {
		t.Errorf("other = %v, want 500", got)
	}
}

// TestHandlerAuth ensures /metrics behind a token answers only a request bearing it, with the
// contract's 401 body otherwise, and that a handler without a token (its own listener) serves.
func TestHandlerAuth(t *testing.T) {
	_, reg := metricstest.New(t)
	tests := []struct {
		name, token, auth string
		want              int
	}{
		{"own listener, no token", "", "", 200},
		{"no credentials", "s3cret-metrics-token", "", 401},
		{"wrong token", "s3cret-metrics-token", "Bearer nope", 401},
		{"token as basic", "s3cret-metrics-token", "Basic s3cret-metrics-token", 401},
		{"right token", "s3cret-metrics-token", "Bearer s3cret-metrics-token", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/metrics", nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			metrics.Handler(reg, tt.token).ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status = %d, want %d", rec.Code, tt.want)
			}
			if tt.want == 401 {
				var body struct{ Error struct{ Code string } }
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code != "UNAUTHORIZED" {
					t.Errorf("body %s, want code UNAUTHORIZED", rec.Body)
				}
			}
		})
	}
}

// budgetFixture is a database with n projects (one workspace each), project i with a daily
// budget of $100 and spend of $i in the budget engine, so project i is at i% of its budget;
// every workspace has a monthly budget of $1,000.
func budgetFixture(t testing.TB, n int) (*store.DB, *budget.Engine) {
	t.Helper()
	db := storetest.Open(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	engine := budget.New(func() time.Time { return now })
	var counters []budget.Counter
	err := db.WriteTx(context.Background(), func(tx *sql.Tx) error {
		for i := 1; i <= n; i++ {
			res, err := tx.Exec(`INSERT INTO workspaces (name, monthly_budget_nano, created_at) VALUES ('ws', ?, 0)`, int64(pricing.FromDollars(1000)))
			if err != nil {
				return err
			}
			ws, _ := res.LastInsertId()
			res, err = tx.Exec(`INSERT INTO projects (workspace_id, name, daily_budget_nano, key_prefix, key_hash, created_at, updated_at)
				VALUES (?, 'p', ?, ?, 'x', 0, 0)`, ws, int64(pricing.FromDollars(100)), "prefix"+strconv.Itoa(i))
			if err != nil {
				return err
			}
			id, _ := res.LastInsertId()
			counters = append(counters, budget.Counter{Scope: budget.ProjectScope, ID: id, Period: budget.DayKey(now), Spend: pricing.FromDollars(float64(i))},
				budget.Counter{Scope: budget.WorkspaceScope, ID: ws, Period: budget.MonthKey(now), Spend: pricing.FromDollars(float64(i))})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Load(counters); err != nil {
		t.Fatal(err)
	}
	return db, engine
}

// TestBudgetGauges ensures the budget gauges read the spend of the engine against the budgets
// of the database at scrape time, keep a series only for the projects of highest utilisation,
// and still count every budget by level.
func TestBudgetGauges(t *testing.T) {
	const n = metrics.MaxBudgetSeries + 20
	db, engine := budgetFixture(t, n)
	_, reg := metricstest.New(t)
	if err := metrics.Watch(reg, metrics.Sources{Budgets: db.ListBudgetLimits, Spend: engine.Spend}); err != nil {
		t.Fatal(err)
	}
	f := metricstest.Scrape(t, metrics.Handler(reg, ""), "")
	projects := f.Series("tokenguard_budget_utilization_ratio", "scope", "project", "period", "daily")
	if got, want := len(projects), metrics.MaxBudgetSeries; got != want {
		t.Fatalf("%d project gauges, want %d", got, want)
	}
	lowest := 2.0
	for _, m := range projects {
		lowest = min(lowest, m.Gauge.GetValue())
	}
	// Projects 21..120 are the top 100, at 21%..120%.
	if want := 0.21; lowest < want-1e-9 || lowest > want+1e-9 {
		t.Errorf("lowest utilisation kept = %v, want %v", lowest, want)
	}
	if got := f.Value("tokenguard_budget_utilization_ratio", "scope", "project", "id", "120"); got < 1.2-1e-9 || got > 1.2+1e-9 {
		t.Errorf("project 120 = %v, want 1.2", got)
	}
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"scope", "project", "period", "daily", "level", "under_80"}, 79},
		{[]string{"scope", "project", "period", "daily", "level", "80_to_100"}, 20},
		{[]string{"scope", "project", "period", "daily", "level", "at_or_over_100"}, 21},
		{[]string{"scope", "project", "period", "monthly"}, 0},
		{[]string{"scope", "workspace", "period", "monthly", "level", "under_80"}, n},
	} {
		if got := f.Value("tokenguard_budgets", c.labels...); got != c.want {
			t.Errorf("tokenguard_budgets%v = %v, want %v", c.labels, got, c.want)
		}
	}
}

// TestQueueGauges ensures the usage writer's queue, its batches and the mail queue are
// exposed as the writer and mailer report them.
func TestQueueGauges(t *testing.T) {
	db := storetest.Open(t)
	m, reg := metricstest.New(t)
	w := usage.NewWriter(db, slog.New(slog.NewTextHandler(io.Discard, nil)), usage.WriterOptions{FlushInterval: time.Hour, MaxQueue: 50, OnBatch: m.ObserveBatch})
	t.Cleanup(func() { w.Close(context.Background()) })
	if err := metrics.Watch(reg, metrics.Sources{Usage: w.Status, Mail: func() (int, int) { return 3, 2 }}); err != nil {
		t.Fatal(err)
	}
	for range 7 {
		if err := w.Add(usage.Record{CreatedAt: time.Now(), ProjectID: 1, WorkspaceID: 1, Provider: "openai", Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Acquire(); err != nil {
		t.Fatal(err)
	}
	before := metricstest.Scrape(t, metrics.Handler(reg, ""), "")
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := metricstest.Scrape(t, metrics.Handler(reg, ""), "")
	for _, c := range []struct {
		f      metricstest.Families
		name   string
		labels []string
		want   float64
	}{
		{before, "tokenguard_usage_queue_rows", nil, 7},
		{before, "tokenguard_usage_inflight_slots", nil, 1},
		{before, "tokenguard_usage_queue_max", nil, 50},
		{before, "tokenguard_usage_write_failing", nil, 0},
		{after, "tokenguard_usage_queue_rows", nil, 0},
		{after, "tokenguard_usage_batch_rows", nil, 1},
		{after, "tokenguard_usage_flush_seconds", nil, 1},
		{after, "tokenguard_mail_queue_messages", []string{"state", "ready"}, 3},
		{after, "tokenguard_mail_queue_messages", []string{"state", "waiting"}, 2},
	} {
		if got := c.f.Value(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := after.Series("tokenguard_usage_batch_rows")[0].Histogram.GetSampleSum(); got != 7 {
		t.Errorf("batch rows sum = %v, want 7", got)
	}
}

// Recording one request on the request path: a map lookup and a few atomic adds, no
// allocation.
func BenchmarkObserve(b *testing.B) {
	m, _ := metricstest.New(b)
	recs := []usage.Record{
		{Provider: "openai", FinalModel: "gpt-4o-mini", Status: 200, InputTokens: 20, OutputTokens: 5, Cost: 1000, LatencyMs: 300, TTFBMs: 80},
		{Provider: "anthropic", FinalModel: "claude-haiku-4-5", Status: 429, ErrorCode: "BUDGET_EXCEEDED"},
		{Provider: "openai", FinalModel: "made-up", PricedByDefault: true, Status: 502, ErrorCode: "UPSTREAM_UNAVAILABLE"},
	}
	for _, r := range recs {
		m.Observe("", r)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.Observe("", recs[i%len(recs)])
			i++
		}
	})
}

// A whole /metrics scrape with 1,000 projects and 1,000 workspaces with budgets (and the
// request-path series of three providers): the budget listing, the engine lookups and the
// text encoding.
func BenchmarkScrape(b *testing.B) {
	db, engine := budgetFixture(b, 1000)
	m, reg := metricstest.New(b)
	if err := metrics.Watch(reg, metrics.Sources{Budgets: db.ListBudgetLimits, Spend: engine.Spend,
		Usage: func() usage.Status { return usage.Status{Max: 10} }, Mail: func() (int, int) { return 0, 0 }}); err != nil {
		b.Fatal(err)
	}
	for _, p := range []string{"openai", "anthropic", "gemini"} {
		m.Observe("", usage.Record{Provider: p, FinalModel: "gpt-4o", Status: 200, InputTokens: 1, LatencyMs: 5})
	}
	h := metrics.Handler(reg, "t0ken-t0ken-t0ken")
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Authorization", "Bearer t0ken-t0ken-t0ken")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}
