package api

import (
	"context"
	"encoding/csv"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"

	"tokenguard/app/account"
	"tokenguard/app/analytics"
	"tokenguard/app/mail"
	"tokenguard/app/mail/mailtest"
	"tokenguard/store"
)

// reportFixture is a workspace with hand-written usage rows; the expected figures in the tests
// below are sums of these rows worked out by hand. The clock is 2026-11-26 12:00 UTC, so the
// default range is 2026-10-27 12:00 .. 2026-11-26 12:00.
type reportFixture struct {
	app         *testApp
	alice, bob  *user
	web, batch  int64 // alice's projects: "Web app" and "=SUM(A1)"
	bobProject  int64
	aliceWSName string
}

func at(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMilli()
}

func newReportFixture(t *testing.T) *reportFixture {
	t.Helper()
	a := newApp(t)
	fx := &reportFixture{app: a, alice: a.signup("alice@example.com"), bob: a.signup("bob@example.com"), aliceWSName: "=Acme"}
	a.mustJSON(fx.alice.call(http.MethodPatch, fmt.Sprintf("/api/workspaces/%d", fx.alice.ws), map[string]any{"name": fx.aliceWSName}), http.StatusOK, nil)
	// createProject gives each project a $5 daily and $50 monthly budget.
	fx.web = fx.alice.createProject(fx.alice.ws, "Web app").Project.ID
	fx.batch = fx.alice.createProject(fx.alice.ws, "=SUM(A1)").Project.ID
	fx.bobProject = fx.bob.createProject(fx.bob.ws, "Bob's").Project.ID
	ws := fx.alice.ws
	n := 0
	row := func(when string, wsID, project int64, provider, model string, status int, in, out, total, cost, latency int64, code string) store.UsageRow {
		n++
		return store.UsageRow{RequestID: fmt.Sprintf("req-%d", n), CreatedAt: at(when), WorkspaceID: wsID, ProjectID: project,
			Provider: provider, OriginalModel: model, FinalModel: model, Status: status, InputTokens: in, OutputTokens: out,
			TotalTokens: total, CostNano: cost, LatencyMs: latency, ErrorCode: code}
	}
	rows := []store.UsageRow{
		row("2026-11-26T10:00:00Z", ws, fx.web, "openai", "gpt-4o", 200, 1000, 500, 1500, 4_200_000_000, 800, ""),
		row("2026-11-26T11:00:00Z", ws, fx.web, "anthropic", "claude-sonnet-4", 200, 200, 100, 300, 500_000_000, 1200, ""),
		row("2026-11-26T11:30:00Z", ws, fx.web, "openai", "gpt-4o", 429, 0, 0, 0, 0, 2, "BUDGET_EXCEEDED"),
		row("2026-11-25T09:00:00Z", ws, fx.batch, "openai", "gpt-4o-mini", 200, 3000, 1000, 4000, 900_000, 400, ""),
		row("2026-11-25T09:30:00Z", ws, fx.batch, "gemini", "gemini-2.5-flash", 502, 0, 0, 0, 0, 3000, "UPSTREAM_ERROR"),
		row("2026-11-23T15:00:00Z", ws, fx.batch, "gemini", "gemini-2.5-flash", 200, 100, 50, 150, 12_345, 300, ""),
		row("2026-10-30T08:00:00Z", ws, fx.web, "anthropic", "claude-sonnet-4", 200, 10, 10, 20, 1_000_000_000, 1000, ""),
		// Before the default range.
		row("2026-10-20T08:00:00Z", ws, fx.web, "openai", "gpt-4o", 200, 1, 1, 2, 7_000_000_000, 10, ""),
		// Another workspace: must never show up in alice's figures.
		row("2026-11-26T09:00:00Z", fx.bob.ws, fx.bobProject, "openai", "gpt-4o", 200, 9, 9, 18, 100_000_000_000, 50, ""),
	}
	if _, err := a.db.InsertUsage(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	return fx
}

func (fx *reportFixture) get(u *user, path string, out any) response {
	fx.app.t.Helper()
	r := u.call(http.MethodGet, path, nil)
	if out != nil {
		fx.app.mustJSON(r, http.StatusOK, out)
	}
	return r
}

func near(got, want float64) bool { return math.Abs(got-want) < 1e-9 }

func TestAnalyticsOverview(t *testing.T) {
	fx := newReportFixture(t)
	var o analytics.Overview
	fx.get(fx.alice, "/api/analytics/overview", &o)
	if !near(o.SpendTodayUSD, 4.7) || o.RequestsToday != 3 {
		t.Errorf("today: $%v in %d requests, want $4.7 in 3", o.SpendTodayUSD, o.RequestsToday)
	}
	if !near(o.SpendMonthUSD, 4.700912345) || o.RequestsMonth != 6 {
		t.Errorf("month: $%v in %d requests, want $4.700912345 in 6", o.SpendMonthUSD, o.RequestsMonth)
	}
	if !near(o.SpendUSD, 5.700912345) || o.Requests != 7 || o.Blocked != 1 || o.Errors != 1 {
		t.Errorf("range: $%v, %d requests, %d blocked, %d errors; want $5.700912345, 7, 1, 1", o.SpendUSD, o.Requests, o.Blocked, o.Errors)
	}
	if o.TopProvider == nil || o.TopProvider.Name != "openai" || !near(o.TopProvider.SpendUSD, 4.2009) || o.TopProvider.Requests != 3 {
		t.Errorf("top provider = %+v, want openai $4.2009 in 3", o.TopProvider)
	}
	if o.TopModel == nil || o.TopModel.Name != "gpt-4o" || !near(o.TopModel.SpendUSD, 4.2) || o.TopModel.Requests != 2 {
		t.Errorf("top model = %+v, want gpt-4o $4.2 in 2", o.TopModel)
	}
	// Web app spent $4.70 of its $5 daily budget today (94%); nothing else is at 80%.
	if got := o.BudgetRisk; len(got) != 1 || got[0].ProjectID != fx.web || got[0].Period != "daily" || got[0].UtilizationPct != 94 || !near(got[0].BudgetUSD, 5) {
		t.Errorf("budget risk = %+v, want Web app daily at 94%%", got)
	}
	if !o.From.Equal(time.Date(2026, 10, 27, 12, 0, 0, 0, time.UTC)) || !o.To.Equal(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("default range %v .. %v", o.From, o.To)
	}

	// Bob sees his own spend only ($100 is over both of his project's budgets).
	var b analytics.Overview
	fx.get(fx.bob, "/api/analytics/overview", &b)
	if !near(b.SpendTodayUSD, 100) || b.Requests != 1 || len(b.BudgetRisk) != 2 {
		t.Errorf("bob's overview = %+v", b)
	}
}

func TestAnalyticsFilters(t *testing.T) {
	fx := newReportFixture(t)
	tests := []struct {
		query    string
		requests int64
		spend    float64
	}{
		{"", 7, 5.700912345},
		{"provider=openai", 3, 4.2009},
		{"provider=gemini", 2, 0.000012345},
		{fmt.Sprintf("projectId=%d", fx.batch), 3, 0.000912345},
		{"model=GEMINI", 2, 0.000012345},
		{"model=gpt-4o", 3, 4.2009}, // partial: gpt-4o-mini too
		{"from=2026-11-25&to=2026-11-25", 2, 0.0009},
		{"from=2026-11-26T10:30:00Z", 2, 0.5},
		{"from=2026-10-01&to=2026-10-31", 2, 8},
		{"from=2026-10-01&provider=openai&model=4o", 4, 11.2009},
	}
	// Today and this month honour every filter but from/to.
	var o analytics.Overview
	fx.get(fx.alice, "/api/analytics/overview?provider=openai&from=2026-11-25", &o)
	if !near(o.SpendTodayUSD, 4.2) || o.RequestsToday != 2 || !near(o.SpendMonthUSD, 4.2009) || o.RequestsMonth != 3 || len(o.BudgetRisk) != 1 {
		t.Errorf("openai today/month = %+v", o)
	}
	fx.get(fx.alice, fmt.Sprintf("/api/analytics/overview?projectId=%d", fx.batch), &o)
	if !near(o.SpendTodayUSD, 0) || !near(o.SpendMonthUSD, 0.000912345) || o.RequestsMonth != 3 || len(o.BudgetRisk) != 0 {
		t.Errorf("batch today/month = %+v", o)
	}
	for _, tt := range tests {
		var o analytics.Overview
		fx.get(fx.alice, "/api/analytics/overview?"+tt.query, &o)
		if o.Requests != tt.requests || !near(o.SpendUSD, tt.spend) {
			t.Errorf("%q: %d requests, $%v; want %d, $%v", tt.query, o.Requests, o.SpendUSD, tt.requests, tt.spend)
		}
	}
}

func TestAnalyticsBadInput(t *testing.T) {
	fx := newReportFixture(t)
	for _, q := range []string{"from=yesterday", "to=2026-13-01", "from=2026-11-26&to=2026-11-01", "provider=azure",
		"projectId=abc", "projectId=-3", "model=" + strings.Repeat("m", 201)} {
		for _, ep := range []string{"overview", "trends", "providers", "models", "projects", "export.csv"} {
			r := fx.alice.call(http.MethodGet, "/api/analytics/"+ep+"?"+q, nil)
			if r.status != http.StatusBadRequest || r.errCode() != "INVALID_REQUEST" {
				t.Errorf("%s?%s: %s, want 400 INVALID_REQUEST", ep, q, r)
			}
		}
	}
	// Another workspace's project and a project that does not exist are the same 404.
	for _, ep := range []string{"overview", "trends", "providers", "models", "projects", "export.csv"} {
		theirs := fx.alice.call(http.MethodGet, fmt.Sprintf("/api/analytics/%s?projectId=%d", ep, fx.bobProject), nil)
		none := fx.alice.call(http.MethodGet, fmt.Sprintf("/api/analytics/%s?projectId=%d", ep, 987654), nil)
		if theirs.status != http.StatusNotFound || string(theirs.body) != string(none.body) {
			t.Errorf("%s with bob's project: %s; with a missing one: %s", ep, theirs, none)
		}
		if r := fx.bob.in(fx.alice.ws, http.MethodGet, "/api/analytics/"+ep, nil); r.status != http.StatusNotFound {
			t.Errorf("bob in alice's workspace, %s: %s", ep, r)
		}
	}
	if got := len(fx.app.auditRows(fx.alice.ws, account.AuditUsageExported)); got != 0 {
		t.Errorf("refused exports left %d audit events", got)
	}
}

func TestAnalyticsTrends(t *testing.T) {
	fx := newReportFixture(t)
	var tr analytics.Trends
	fx.get(fx.alice, "/api/analytics/trends", &tr)
	// 2026-10-27 .. 2026-11-26, every day present.
	if len(tr.Data) != 31 || tr.Data[0].Date != "2026-10-27" || tr.Data[30].Date != "2026-11-26" {
		t.Fatalf("series has %d days (%v .. %v)", len(tr.Data), tr.Data[0], tr.Data[len(tr.Data)-1])
	}
	days := map[string]analytics.Day{}
	var requests int64
	for _, d := range tr.Data {
		days[d.Date] = d
		requests += d.Requests
	}
	if requests != 7 {
		t.Errorf("series holds %d requests, want 7", requests)
	}
	want := map[string]analytics.Day{
		"2026-11-26": {Date: "2026-11-26", Requests: 3, SpendUSD: 4.7, InputTokens: 1200, OutputTokens: 600, TotalTokens: 1800, Blocked: 1},
		"2026-11-25": {Date: "2026-11-25", Requests: 2, SpendUSD: 0.0009, InputTokens: 3000, OutputTokens: 1000, TotalTokens: 4000, Errors: 1},
		"2026-11-23": {Date: "2026-11-23", Requests: 1, SpendUSD: 0.000012345, InputTokens: 100, OutputTokens: 50, TotalTokens: 150},
		"2026-10-30": {Date: "2026-10-30", Requests: 1, SpendUSD: 1, InputTokens: 10, OutputTokens: 10, TotalTokens: 20},
		"2026-11-24": {Date: "2026-11-24"},
	}
	for date, w := range want {
		g := days[date]
		if !near(g.SpendUSD, w.SpendUSD) {
			t.Errorf("%s spend $%v, want $%v", date, g.SpendUSD, w.SpendUSD)
		}
		g.SpendUSD = w.SpendUSD
		if g != w {
			t.Errorf("%s = %+v, want %+v", date, g, w)
		}
	}
	fx.get(fx.alice, "/api/analytics/trends?from=2026-11-25&to=2026-11-26&provider=gemini", &tr)
	if len(tr.Data) != 2 || tr.Data[0].Requests != 1 || tr.Data[0].Errors != 1 || tr.Data[1].Requests != 0 {
		t.Errorf("filtered series = %+v", tr.Data)
	}
	if r := fx.alice.call(http.MethodGet, "/api/analytics/trends?from=2000-01-01", nil); r.status != http.StatusBadRequest {
		t.Errorf("a 26-year series: %s", r)
	}
}

func TestAnalyticsProviders(t *testing.T) {
	fx := newReportFixture(t)
	var out struct{ Data []analytics.ProviderRow }
	fx.get(fx.alice, "/api/analytics/providers", &out)
	want := []analytics.ProviderRow{
		{Provider: "openai", SpendUSD: 4.2009, Requests: 3, InputTokens: 4000, OutputTokens: 1500, Tokens: 5500, AvgLatencyMs: 1202.0 / 3, Blocked: 1},
		{Provider: "anthropic", SpendUSD: 1.5, Requests: 2, InputTokens: 210, OutputTokens: 110, Tokens: 320, AvgLatencyMs: 1100},
		{Provider: "gemini", SpendUSD: 0.000012345, Requests: 2, InputTokens: 100, OutputTokens: 50, Tokens: 150, AvgLatencyMs: 1650, Errors: 1, ErrorRate: 0.5},
	}
	if len(out.Data) != len(want) {
		t.Fatalf("providers = %+v", out.Data)
	}
	for i, w := range want {
		g := out.Data[i]
		if !near(g.SpendUSD, w.SpendUSD) || !near(g.AvgLatencyMs, w.AvgLatencyMs) {
			t.Errorf("%s: $%v, %vms; want $%v, %vms", w.Provider, g.SpendUSD, g.AvgLatencyMs, w.SpendUSD, w.AvgLatencyMs)
		}
		g.SpendUSD, g.AvgLatencyMs = w.SpendUSD, w.AvgLatencyMs
		if g != w {
			t.Errorf("row %d = %+v, want %+v", i, g, w)
		}
	}
	fx.get(fx.alice, fmt.Sprintf("/api/analytics/providers?projectId=%d", fx.web), &out)
	if len(out.Data) != 2 || out.Data[0].Provider != "openai" || out.Data[0].Requests != 2 || out.Data[1].Provider != "anthropic" {
		t.Errorf("Web app's providers = %+v", out.Data)
	}
}

func TestAnalyticsModels(t *testing.T) {
	fx := newReportFixture(t)
	var out struct{ Data []analytics.ModelRow }
	fx.get(fx.alice, "/api/analytics/models", &out)
	type m struct {
		model           string
		spend, avg, lat float64
		requests        int64
	}
	want := []m{
		{"gpt-4o", 4.2, 2.1, 401, 2},
		{"claude-sonnet-4", 1.5, 0.75, 1100, 2},
		{"gpt-4o-mini", 0.0009, 0.0009, 400, 1},
		{"gemini-2.5-flash", 0.000012345, 0.0000061725, 1650, 2},
	}
	if len(out.Data) != len(want) {
		t.Fatalf("models = %+v", out.Data)
	}
	for i, w := range want {
		g := out.Data[i]
		if g.Model != w.model || !near(g.SpendUSD, w.spend) || !near(g.AvgCostPerRequestUSD, w.avg) || !near(g.AvgLatencyMs, w.lat) || g.Requests != w.requests {
			t.Errorf("row %d = %+v, want %+v", i, g, w)
		}
	}

	// Only the top 20 by spend: 25 models costing 1..25 µ$ → the 20 dearest, dearest first.
	var rows []store.UsageRow
	for i := 1; i <= 25; i++ {
		rows = append(rows, store.UsageRow{RequestID: fmt.Sprintf("many-%d", i), CreatedAt: at("2026-11-20T10:00:00Z"),
			WorkspaceID: fx.bob.ws, ProjectID: fx.bobProject, Provider: "openai", OriginalModel: fmt.Sprintf("m-%02d", i),
			FinalModel: fmt.Sprintf("m-%02d", i), Status: 200, CostNano: int64(i) * 1000})
	}
	if _, err := fx.app.db.InsertUsage(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	fx.get(fx.bob, "/api/analytics/models?model=m-", &out)
	if len(out.Data) != 20 || out.Data[0].Model != "m-25" || out.Data[19].Model != "m-06" {
		t.Errorf("top models: %d, first %+v, last %+v", len(out.Data), out.Data[0], out.Data[len(out.Data)-1])
	}
}

func TestAnalyticsProjects(t *testing.T) {
	fx := newReportFixture(t)
	var out struct{ Data []analytics.ProjectRow }
	fx.get(fx.alice, "/api/analytics/projects", &out)
	if len(out.Data) != 2 {
		t.Fatalf("projects = %+v", out.Data)
	}
	web, batch := out.Data[0], out.Data[1]
	if web.ProjectID != fx.web || web.Name != "Web app" || web.Requests != 4 || !near(web.SpendUSD, 5.7) || web.Blocked != 1 ||
		!near(web.MonthSpendUSD, 4.7) || web.BudgetUtilizationPct == nil || *web.BudgetUtilizationPct != 9.4 ||
		web.MonthlyBudgetUSD == nil || *web.MonthlyBudgetUSD != 50 || web.LastUsedAt == nil || !web.LastUsedAt.Equal(time.UnixMilli(at("2026-11-26T11:30:00Z"))) {
		t.Errorf("Web app = %+v", web)
	}
	if batch.ProjectID != fx.batch || batch.Requests != 3 || !near(batch.SpendUSD, 0.000912345) || batch.Errors != 1 || batch.Blocked != 0 ||
		batch.LastUsedAt == nil || !batch.LastUsedAt.Equal(time.UnixMilli(at("2026-11-25T09:30:00Z"))) {
		t.Errorf("batch = %+v", batch)
	}
	// A project without usage in the range is still listed, with zeros.
	fx.get(fx.alice, "/api/analytics/projects?provider=gemini", &out)
	if len(out.Data) != 2 || out.Data[0].ProjectID != fx.batch || out.Data[1].ProjectID != fx.web || out.Data[1].Requests != 0 || out.Data[1].LastUsedAt != nil {
		t.Errorf("gemini projects = %+v", out.Data)
	}
}

func TestAnalyticsExportCSV(t *testing.T) {
	fx := newReportFixture(t)
	r := fx.alice.call(http.MethodGet, "/api/analytics/export.csv", nil)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(r.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: %d %v", r.status, r.header)
	}
	recs, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(recs[0], ","), "createdAt,workspace,project,provider,model,status,inputTokens,outputTokens,totalTokens,estimatedCostUsd,latencyMs,errorCode"; got != want {
		t.Errorf("header %q", got)
	}
	if got := len(recs) - 1; got != 7 {
		t.Fatalf("%d rows, want 7:\n%s", got, r.body)
	}
	if got, want := strings.Join(recs[1], ","), "2026-11-26T11:30:00Z,'=Acme,Web app,openai,gpt-4o,429,0,0,0,0,2,BUDGET_EXCEEDED"; got != want {
		t.Errorf("newest row %q, want %q", got, want)
	}
	if got, want := strings.Join(recs[5], ","), "2026-11-25T09:00:00Z,'=Acme,'=SUM(A1),openai,gpt-4o-mini,200,3000,1000,4000,0.0009,400,"; got != want {
		t.Errorf("row 5 %q, want %q", got, want)
	}
	ev := fx.app.auditRows(fx.alice.ws, account.AuditUsageExported)
	if len(ev) != 1 || !strings.Contains(ev[0].Details, `"rows":7`) || !strings.Contains(ev[0].Details, `"surface":"api"`) {
		t.Errorf("audit events = %+v", ev)
	}

	q := url.Values{"provider": {"gemini"}, "projectId": {fmt.Sprint(fx.batch)}, "from": {"2026-11-24"}}
	r = fx.alice.call(http.MethodGet, "/api/analytics/export.csv?"+q.Encode(), nil)
	if n := strings.Count(string(r.body), "\n"); r.status != http.StatusOK || n != 2 || !strings.Contains(string(r.body), "UPSTREAM_ERROR") {
		t.Errorf("filtered export (%d lines): %s", n, r)
	}
	// Bob's export never holds alice's rows.
	r = fx.bob.call(http.MethodGet, "/api/analytics/export.csv", nil)
	if n := strings.Count(string(r.body), "\n"); n != 2 || strings.Contains(string(r.body), "Acme") {
		t.Errorf("bob's export: %s", r.body)
	}
}

func TestAnalyticsExportLimit(t *testing.T) {
	fx := newReportFixture(t)
	rows := make([]store.UsageRow, 10_050)
	base := at("2026-11-20T00:00:00Z")
	for i := range rows {
		rows[i] = store.UsageRow{RequestID: fmt.Sprintf("bulk-%d", i), CreatedAt: base + int64(i), WorkspaceID: fx.bob.ws,
			ProjectID: fx.bobProject, Provider: "openai", OriginalModel: "gpt-4o-mini", FinalModel: "gpt-4o-mini", Status: 200, CostNano: 1}
	}
	if _, err := fx.app.db.InsertUsage(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	r := fx.bob.call(http.MethodGet, "/api/analytics/export.csv", nil)
	recs, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	// 10,051 rows match; the newest 10,000 are exported (bob's gpt-4o row of the 26th first).
	if len(recs)-1 != analytics.MaxExportRows || recs[1][4] != "gpt-4o" {
		t.Errorf("%d rows, first %v", len(recs)-1, recs[1])
	}
}

type digestJSON struct {
	TotalSpendUSD     float64 `json:"totalSpendUsd"`
	TotalRequests     int64   `json:"totalRequests"`
	TopProvider       *analytics.Ranked
	TopModel          *analytics.Ranked
	TopProject        *analytics.Ranked
	BudgetWarnings    []analytics.BudgetRisk
	Blocked           int64
	RecommendedAction string
	EmailDelivery     string
	Month             string
}

func TestMonthlyDigestPreview(t *testing.T) {
	fx := newReportFixture(t)
	admin, member := fx.app.signup("admin@example.com"), fx.app.signup("member@example.com")
	fx.app.addMember(fx.alice.ws, admin, account.RoleAdmin)
	fx.app.addMember(fx.alice.ws, member, account.RoleMember)
	var d digestJSON
	fx.app.mustJSON(admin.in(fx.alice.ws, http.MethodPost, "/api/analytics/monthly-digest/test", nil), http.StatusOK, &d)
	checkDigest(t, fx, d)
	if d.EmailDelivery != "skipped" {
		t.Errorf("emailDelivery = %q without SMTP", d.EmailDelivery)
	}
	if r := member.in(fx.alice.ws, http.MethodPost, "/api/analytics/monthly-digest/test", nil); r.status != http.StatusForbidden || r.errCode() != "FORBIDDEN" {
		t.Errorf("member: %s", r)
	}
	if r := fx.bob.in(fx.alice.ws, http.MethodPost, "/api/analytics/monthly-digest/test", nil); r.status != http.StatusNotFound {
		t.Errorf("outsider: %s", r)
	}
}

func checkDigest(t *testing.T, fx *reportFixture, d digestJSON) {
	t.Helper()
	// November up to noon on the 26th: the six rows of the month.
	if d.Month != "2026-11" || !near(d.TotalSpendUSD, 4.700912345) || d.TotalRequests != 6 || d.Blocked != 1 {
		t.Errorf("digest totals = %+v", d)
	}
	if d.TopProvider == nil || d.TopProvider.Name != "openai" || d.TopModel == nil || d.TopModel.Name != "gpt-4o" ||
		d.TopProject == nil || d.TopProject.ProjectID != fx.web || d.TopProject.Name != "Web app" {
		t.Errorf("digest leaders = %+v %+v %+v", d.TopProvider, d.TopModel, d.TopProject)
	}
	if len(d.BudgetWarnings) != 1 || d.BudgetWarnings[0].ProjectID != fx.web || d.BudgetWarnings[0].UtilizationPct != 94 {
		t.Errorf("budget warnings = %+v", d.BudgetWarnings)
	}
	if !strings.Contains(d.RecommendedAction, "Web app") || !strings.Contains(d.RecommendedAction, "94.0%") {
		t.Errorf("recommended action = %q", d.RecommendedAction)
	}
}

// TestMonthlyDigestMail sends the digest through a real SMTP server.
func TestMonthlyDigestMail(t *testing.T) {
	fx := newReportFixture(t)
	smtp := mailtest.Start(t, mailtest.Options{})
	mailer, err := mail.New(fx.app.db, mail.Options{SMTP: smtp.SMTP(mail.TLSNone), Log: slog.New(slog.DiscardHandler),
		Backoff: func(int) time.Duration { return 10 * time.Millisecond }, AttemptTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mailer.Close(context.Background()) })
	// The same app, with mail configured.
	withMail := *fx.app
	withMail.api = New(Deps{Accounts: fx.app.acct, Logger: slog.New(slog.DiscardHandler),
		Analytics: analytics.New(analytics.Options{Store: fx.app.db, Accounts: fx.app.acct, Mailer: mailer, Now: fx.app.clock.Now})})
	router := httprouter.New()
	withMail.api.Register(router)
	withMail.srv = httptest.NewServer(router)
	t.Cleanup(withMail.srv.Close)
	fx.app = &withMail
	fx.alice.app = &withMail

	// A name a user chose is escaped in the HTML rendering.
	withMail.mustJSON(fx.alice.call(http.MethodPatch, fmt.Sprintf("/api/workspaces/%d", fx.alice.ws), map[string]any{"name": "<i>Acme</i>"}), http.StatusOK, nil)
	var d digestJSON
	withMail.mustJSON(fx.alice.call(http.MethodPost, "/api/analytics/monthly-digest/test", nil), http.StatusOK, &d)
	checkDigest(t, fx, d)
	if d.EmailDelivery != "queued" {
		t.Errorf("emailDelivery = %q with SMTP", d.EmailDelivery)
	}
	msgs := smtp.Wait(1, 10*time.Second)
	if len(msgs) != 1 {
		t.Fatalf("%d messages arrived", len(msgs))
	}
	m := msgs[0]
	if len(m.To) != 1 || m.To[0] != "alice@example.com" || !strings.Contains(m.Subject, "<i>Acme</i>") {
		t.Errorf("mail to %v, subject %q", m.To, m.Subject)
	}
	for _, want := range []string{"Total spend: $4.7009", "Total requests: 6", "Top provider: openai", "Top model: gpt-4o",
		"Top project: Web app", "Blocked requests: 1", "Web app: 94.0% of the daily budget", "Recommended action:"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, m.Text)
		}
	}
	if !strings.Contains(m.HTML, "<td>6</td>") || !strings.Contains(m.HTML, "Web app: 94.0%") ||
		!strings.Contains(m.HTML, "&lt;i&gt;Acme&lt;/i&gt;") || strings.Contains(m.HTML, "<i>Acme") {
		t.Errorf("html:\n%s", m.HTML)
	}
}
