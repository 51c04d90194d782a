package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"tokenguard/app/provider/openai/openaitest"
	"tokenguard/store"
	"tokenguard/views"
)

// owner is a signed-up user with a browser session on the dashboard and a JWT for the API.
type owner struct {
	app   *testApp
	b     *browser
	ws    string // the workspace's dashboard path, "/w/1"
	wsID  int64
	token string
}

// newOwner signs up in the browser, as a person would, and signs in to the API with the same
// account.
func newOwner(t *testing.T, email string) *owner {
	app := newApp(t)
	b := newBrowser(t)
	b.run(
		chromedp.Navigate(app.URL+"/signup"),
		b.fill("#name", "Grace Hopper"),
		b.fill("#email", email),
		b.fill("#password", "correct horse battery"),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS(".empty")),
	)
	o := &owner{app: app, b: b, ws: strings.TrimSuffix(strings.TrimPrefix(b.location(), app.URL), "/projects")}
	o.wsID, _ = strconv.ParseInt(strings.TrimPrefix(o.ws, "/w/"), 10, 64)
	var login struct{ Token string }
	o.api(t, http.MethodPost, "/api/auth/login", `{"email":"`+email+`","password":"correct horse battery"}`, &login)
	o.token = login.Token
	return o
}

// api calls the JSON API as the owner and decodes the answer into out.
func (o *owner) api(t *testing.T, method, path, body string, out any) {
	t.Helper()
	req, _ := http.NewRequest(method, o.app.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if o.token != "" {
		req.Header.Set("Authorization", "Bearer "+o.token)
		req.Header.Set("X-Workspace-Id", strconv.FormatInt(o.wsID, 10))
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

// project creates a project through the API and returns its id and key.
func (o *owner) project(t *testing.T, body string) (int64, string) {
	t.Helper()
	var p struct {
		Project struct{ ID int64 }
		Key     string
	}
	o.api(t, http.MethodPost, "/api/projects", body, &p)
	return p.Project.ID, p.Key
}

// seedTraffic stores 40 days of usage on three providers and two projects, errors and blocked
// requests included, through the store's real batch insert (which keeps the rollups).
func seedTraffic(t *testing.T, o *owner, alpha, beta int64) {
	t.Helper()
	now := time.Now().UTC()
	models := []struct{ provider, model string }{{"openai", "gpt-4o-mini"}, {"anthropic", "claude-haiku-4-5"}, {"gemini", "gemini-2.5-flash"}}
	var rows []store.UsageRow
	for i := range 400 {
		m := models[i%3]
		at := now.Add(-time.Duration(i) * 149 * time.Minute) // about 41 days, every hour of the day
		r := store.UsageRow{RequestID: fmt.Sprintf("%032x", i+1), CreatedAt: at.UnixMilli(), WorkspaceID: o.wsID, ProjectID: alpha,
			Provider: m.provider, OriginalModel: m.model, FinalModel: m.model, Status: 200, InputTokens: int64(100 + i),
			OutputTokens: int64(50 + i%70), CostNano: int64(1_000_000 + 37_000*i), LatencyMs: 300}
		r.TotalTokens = r.InputTokens + r.OutputTokens
		if i%2 == 1 {
			r.ProjectID = beta
		}
		switch i % 11 {
		case 3:
			r.Status, r.ErrorCode, r.CostNano, r.OutputTokens, r.TotalTokens = 500, "UPSTREAM_ERROR", 0, 0, r.InputTokens
		case 7:
			r.Status, r.ErrorCode, r.CostNano, r.InputTokens, r.OutputTokens, r.TotalTokens = 429, store.BlockedErrorCode, 0, 0, 0, 0
		}
		rows = append(rows, r)
	}
	if _, err := o.app.DB.InsertUsage(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
}

// pageFigures is what the analytics page shows, read from the DOM.
type pageFigures struct {
	From, To   string
	ExportFrom string
	ExportTo   string
	KPI        map[string]string
	Spend      [][2]string // bucket key, total nano-dollars
	Requests   [][2]string
	Tokens     [][2]string
	// ErrBlocked is each requests-chart table row's errors and blocked cells.
	ErrBlocked [][2]string
	Models     []map[string]string
	Providers  []map[string]string
	Projects   []map[string]string
}

func readFigures(b *browser) pageFigures {
	return eval[pageFigures](b, `(() => {
		const bars = id => [...document.querySelectorAll("#chart-" + id + " svg g.bar")].map(g => [g.dataset.key, g.dataset.total]);
		const rows = id => [...document.querySelectorAll("#" + id + " tbody tr")].map(r => ({...r.dataset}));
		const kpi = {};
		document.querySelectorAll("[data-kpi]").forEach(e => kpi[e.dataset.kpi] = e.textContent.trim());
		const r = document.querySelector("#analytics-range");
		return {From: r.dataset.from, To: r.dataset.to,
			ExportFrom: document.querySelector("#export [name=from]").value, ExportTo: document.querySelector("#export [name=to]").value,
			KPI: kpi, Spend: bars("spend"), Requests: bars("requests"), Tokens: bars("tokens"),
			ErrBlocked: [...document.querySelectorAll("#chart-requests table tbody tr")].map(r => [r.cells[2].textContent.trim(), r.cells[3].textContent.trim()]),
			Models: rows("by-model"), Providers: rows("by-provider"), Projects: rows("by-project")};
	})()`)
}

// sameUSD reports whether a page's nano-dollar figure is the API's dollars: the API divides the
// same integer by 1e9, so the floats are equal exactly.
func sameUSD(nano string, usd float64) bool {
	n, err := strconv.ParseInt(nano, 10, 64)
	return err == nil && float64(n)/1e9 == usd
}

// checkAgainstAPI asserts every figure on the open analytics page equals the API's answer for
// the page's own range and the filters given.
func checkAgainstAPI(t *testing.T, o *owner, filters url.Values) pageFigures {
	t.Helper()
	got := readFigures(o.b)
	q := url.Values{"from": {got.From}, "to": {got.To}}
	for k, v := range filters {
		q[k] = v
	}
	var trends struct {
		Data []struct {
			Date                                                 string
			SpendUsd                                             float64
			Requests, InputTokens, OutputTokens, Errors, Blocked int64
		}
	}
	o.api(t, http.MethodGet, "/api/analytics/trends?"+q.Encode(), "", &trends)
	var ov struct {
		SpendUsd                  float64
		Requests, Errors, Blocked int64
	}
	o.api(t, http.MethodGet, "/api/analytics/overview?"+q.Encode(), "", &ov)
	if got.KPI["spend"] != views.USD(int64(ov.SpendUsd*1e9+0.5)) || got.KPI["requests"] != views.Int(ov.Requests) ||
		got.KPI["errors"] != views.Int(ov.Errors) || got.KPI["blocked"] != views.Int(ov.Blocked) {
		t.Errorf("KPIs %v, API overview %+v", got.KPI, ov)
	}
	if strings.Contains(got.Spend[0][0], "T") { // hourly: the hours add up to the API's day totals
		var spend, requests int64
		for i, b := range got.Spend {
			n, _ := strconv.ParseInt(b[1], 10, 64)
			spend += n
			r, _ := strconv.ParseInt(got.Requests[i][1], 10, 64)
			requests += r
		}
		var daySpend float64
		var dayRequests int64
		for _, d := range trends.Data {
			daySpend += d.SpendUsd
			dayRequests += d.Requests
		}
		if float64(spend)/1e9 != ov.SpendUsd || requests != ov.Requests || len(trends.Data) != 1 || float64(spend)/1e9 != daySpend || requests != dayRequests {
			t.Errorf("hourly bars sum to %d nano-USD and %d requests; API: overview %+v, trends %+v", spend, requests, ov, trends.Data)
		}
	} else {
		if len(got.Spend) != len(trends.Data) {
			t.Fatalf("%d daily bars, the API has %d days", len(got.Spend), len(trends.Data))
		}
		for i, d := range trends.Data {
			if got.Spend[i][0] != d.Date || !sameUSD(got.Spend[i][1], d.SpendUsd) || got.Requests[i][1] != strconv.FormatInt(d.Requests, 10) ||
				got.Tokens[i][1] != strconv.FormatInt(d.InputTokens+d.OutputTokens, 10) ||
				got.ErrBlocked[i] != [2]string{views.Int(d.Errors), views.Int(d.Blocked)} {
				t.Errorf("day %s: page spend %s, requests %s, tokens %s, errors/blocked %v; API %+v",
					d.Date, got.Spend[i][1], got.Requests[i][1], got.Tokens[i][1], got.ErrBlocked[i], d)
			}
		}
	}
	type row struct {
		Name     string `json:"-"`
		Model    string
		Provider string
		SpendUsd float64
		Requests int64
	}
	compare := func(what string, page []map[string]string, api []row, name func(row) string) {
		t.Helper()
		if len(page) != len(api) {
			t.Errorf("%s: %d rows on the page, %d from the API", what, len(page), len(api))
			return
		}
		byName := map[string]row{}
		for _, r := range api {
			byName[name(r)] = r
		}
		for _, p := range page {
			r, ok := byName[p["name"]]
			if !ok || !sameUSD(p["spend"], r.SpendUsd) || p["requests"] != strconv.FormatInt(r.Requests, 10) {
				t.Errorf("%s %q: page %v, API %+v", what, p["name"], p, r)
			}
		}
	}
	var models, providers struct{ Data []row }
	o.api(t, http.MethodGet, "/api/analytics/models?"+q.Encode(), "", &models)
	o.api(t, http.MethodGet, "/api/analytics/providers?"+q.Encode(), "", &providers)
	var projects struct {
		Data []struct {
			Name     string
			SpendUsd float64
			Requests int64
		}
	}
	o.api(t, http.MethodGet, "/api/analytics/projects?"+q.Encode(), "", &projects)
	compare("model", got.Models, models.Data, func(r row) string { return r.Model })
	compare("provider", got.Providers, providers.Data, func(r row) string { return r.Provider })
	var pr []row
	for _, p := range projects.Data {
		pr = append(pr, row{Name: p.Name, SpendUsd: p.SpendUsd, Requests: p.Requests})
	}
	compare("project", got.Projects, pr, func(r row) string { return r.Name })
	return got
}

// TestBrowserAnalytics ensures the analytics page shows the API's own figures: every chart point,
// KPI and breakdown row equals /api/analytics for the page's range and filters; a range preset
// changes every figure and the export; the short range goes by the hour; the stacking toggle
// and the sort work; and the SVG charts run under the CSP with a table beside them.
func TestBrowserAnalytics(t *testing.T) {
	o := newOwner(t, "grace@example.com")
	alpha, _ := o.project(t, `{"name":"alpha","monthlyBudgetUsd":20}`)
	beta, _ := o.project(t, `{"name":"beta"}`)
	seedTraffic(t, o, alpha, beta)
	b := o.b

	b.run(chromedp.Navigate(o.app.URL+o.ws+"/analytics"), chromedp.WaitVisible(chromedp.CSS("#chart-spend svg")))
	month := checkAgainstAPI(t, o, nil)
	if len(month.Spend) != 30 {
		t.Errorf("the default range has %d daily bars, want 30", len(month.Spend))
	}
	if month.ExportFrom != time.Now().UTC().AddDate(0, 0, -29).Format("2006-01-02") || month.ExportTo != time.Now().UTC().Format("2006-01-02") {
		t.Errorf("export covers %s to %s", month.ExportFrom, month.ExportTo)
	}
	if n := eval[int](b, `document.querySelectorAll("#chart-spend table tbody tr").length`); n != 30 {
		t.Errorf("the spend chart's table has %d rows, want 30", n)
	}
	b.shot("a1-analytics-30d")

	// A range preset changes every figure on the page, and the export with them.
	b.run(chromedp.Click(chromedp.CSS(`a[data-range="7d"]`), chromedp.NodeVisible), chromedp.WaitVisible(chromedp.CSS(`a.current[data-range="7d"]`)))
	if loc := b.location(); !strings.Contains(loc, "range=7d") {
		t.Errorf("the preset is not in the URL: %s", loc)
	}
	week := checkAgainstAPI(t, o, nil)
	for name, pair := range map[string][2]string{
		"from": {month.From, week.From}, "export from": {month.ExportFrom, week.ExportFrom},
		"spend": {month.KPI["spend"], week.KPI["spend"]}, "requests": {month.KPI["requests"], week.KPI["requests"]},
		"errors": {month.KPI["errors"], week.KPI["errors"]}, "blocked": {month.KPI["blocked"], week.KPI["blocked"]},
		"tokens": {month.KPI["tokens"], week.KPI["tokens"]}, "bars": {strconv.Itoa(len(month.Spend)), strconv.Itoa(len(week.Spend))},
		"top model spend":      {month.Models[0]["spend"], week.Models[0]["spend"]},
		"top project requests": {month.Projects[0]["requests"], week.Projects[0]["requests"]},
	} {
		if pair[0] == pair[1] {
			t.Errorf("after choosing 7 days, %s is still %s", name, pair[0])
		}
	}
	b.shot("a2-analytics-7d")

	// Filters are in the URL and drive every figure, the export included.
	b.run(chromedp.Navigate(o.app.URL+o.ws+"/analytics?range=30d&provider=anthropic&projectId="+strconv.FormatInt(beta, 10)),
		chromedp.WaitVisible(chromedp.CSS("#chart-spend svg")))
	filtered := checkAgainstAPI(t, o, url.Values{"provider": {"anthropic"}, "projectId": {strconv.FormatInt(beta, 10)}})
	if len(filtered.Providers) != 1 || filtered.Providers[0]["name"] != "anthropic" || len(filtered.Projects) != 1 || filtered.Projects[0]["name"] != "beta" {
		t.Errorf("filtered breakdowns: providers %v, projects %v", filtered.Providers, filtered.Projects)
	}
	if got := eval[string](b, `new URLSearchParams(new FormData(document.querySelector("#export"))).toString()`); !strings.Contains(got, "provider=anthropic") ||
		!strings.Contains(got, "projectId="+strconv.FormatInt(beta, 10)) {
		t.Errorf("the export form sends %s", got)
	}

	// Today goes by the hour.
	b.run(chromedp.Navigate(o.app.URL+o.ws+"/analytics"), chromedp.Click(chromedp.CSS(`a[data-range="today"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`a.current[data-range="today"]`)))
	today := checkAgainstAPI(t, o, nil)
	if want := time.Now().UTC().Hour() + 1; len(today.Spend) != want {
		t.Errorf("today has %d hourly bars, want %d", len(today.Spend), want)
	}
	b.shot("a3-analytics-today")

	// Stacked by model: the legend names the models and each bar's parts add up to its total.
	b.run(chromedp.Navigate(o.app.URL+o.ws+"/analytics?range=30d"), chromedp.Click(chromedp.CSS(`a[data-stack="model"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`a.current[data-stack="model"]`)))
	if legend := b.text("#chart-spend .legend"); !strings.Contains(legend, "claude-haiku-4-5 (anthropic)") || !strings.Contains(legend, "gpt-4o-mini (openai)") {
		t.Errorf("stacked by model, the legend reads %q", legend)
	}
	if bad := eval[[]string](b, `[...document.querySelectorAll("#chart-spend svg g.bar")].filter(g =>
		[...g.querySelectorAll("rect")].reduce((s, r) => s + BigInt(r.dataset.value), 0n) !== BigInt(g.dataset.total)).map(g => g.dataset.key)`); len(bad) > 0 {
		t.Errorf("bars whose parts do not add up: %v", bad)
	}
	checkAgainstAPI(t, o, nil)
	b.shot("a4-analytics-by-model")

	// Sorting a breakdown by requests, then reversing it.
	b.run(chromedp.Click(chromedp.CSS(`#by-model th a[data-sort="requests"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`#by-model th[aria-sort="descending"] a[data-sort="requests"]`)))
	desc := eval[[]int](b, `[...document.querySelectorAll("#by-model tbody tr")].map(r => +r.dataset.requests)`)
	for i := 1; i < len(desc); i++ {
		if desc[i] > desc[i-1] {
			t.Errorf("sorted by requests, descending: %v", desc)
			break
		}
	}
	b.run(chromedp.Click(chromedp.CSS(`#by-model th a[data-sort="requests"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`#by-model th[aria-sort="ascending"] a[data-sort="requests"]`)))
	if a := eval[[]int](b, `[...document.querySelectorAll("#by-model tbody tr")].map(r => +r.dataset.requests)`); len(a) > 1 && a[0] > a[len(a)-1] {
		t.Errorf("sorted by requests, ascending: %v", a)
	}

	// The forecast names the project's monthly budget.
	if f := b.text("#forecast"); !strings.Contains(f, "alpha") || !strings.Contains(f, "at this month's pace") {
		t.Errorf("forecast reads %q", f)
	}
	checkWidths(t, b, o.app.URL+o.ws+"/analytics?range=30d", "a5-analytics")

	// In the dark scheme the axis labels still read against their panel (WCAG AA, 4.5:1).
	for _, scheme := range []string{"dark", "light"} {
		b.run(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
			return err
		}), chromedp.Navigate(o.app.URL+o.ws+"/analytics?range=30d"), chromedp.WaitVisible(chromedp.CSS("#chart-spend svg")))
		if ratio := eval[float64](b, `(() => {
			const rgb = c => c.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number).map(v => v / 255).map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
			const lum = c => { const [r, g, b] = rgb(c); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
			const fg = lum(getComputedStyle(document.querySelector("#chart-spend .tick")).fill);
			const bg = lum(getComputedStyle(document.querySelector("#chart-spend").closest(".panel")).backgroundColor);
			return (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
		})()`); ratio < 4.5 {
			t.Errorf("%s scheme: the chart's labels have a contrast of %.2f:1 against their panel", scheme, ratio)
		}
		b.shot("a6-analytics-" + scheme)
	}
	b.noProblems()
}

// checkWidths loads a page at a laptop's and a phone's width and fails if it is wider than the
// screen or ships more than 100 KB of JavaScript; screenshots of both when TG_SCREENSHOTS is set.
func checkWidths(t *testing.T, b *browser, url, shot string) {
	t.Helper()
	for _, w := range []struct {
		width, height int64
		name          string
	}{{1280, 900, "-1280"}, {390, 844, "-390"}} {
		b.run(chromedp.EmulateViewport(w.width, w.height), chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("main h1")))
		if over := eval[int](b, `document.documentElement.scrollWidth - window.innerWidth`); over > 0 {
			t.Errorf("%s at %dpx is %dpx wider than the screen", url, w.width, over)
		}
		if js := eval[int](b, `performance.getEntriesByType("resource").filter(e => e.initiatorType === "script").reduce((n, e) => n + e.decodedBodySize, 0)`); js > 100<<10 {
			t.Errorf("%s ships %d bytes of JavaScript, over 100 KB", url, js)
		}
		b.shot(shot + w.name)
	}
	b.run(chromedp.EmulateViewport(1280, 900))
}

// TestBrowserRequestDetail ensures a usage row opens its detail with what was recorded (the
// provider's error message of a real upstream error included), the id search finds a request,
// and another workspace's request id is a 404.
func TestBrowserRequestDetail(t *testing.T) {
	o := newOwner(t, "ada@example.com")
	projectID, key := o.project(t, `{"name":"support-bot"}`)
	app, b := o.app, o.b
	sendChat(t, app, key)
	app.Upstream.Set(openaitest.Behavior{Status: http.StatusServiceUnavailable})
	if st, _ := proxyStatus(t, app, key); st != http.StatusServiceUnavailable {
		t.Fatalf("upstream error relayed as %d", st)
	}
	app.Upstream.Set(openaitest.Behavior{})
	waitUsage(t, app, 2)
	streamed := store.UsageRow{RequestID: "0123456789abcdef0123456789abcdef", CreatedAt: time.Now().Add(-time.Hour).UnixMilli(), WorkspaceID: o.wsID,
		ProjectID: projectID, Provider: "openai", OriginalModel: "gpt-4o", FinalModel: "gpt-4o-mini", WasFallback: true, Status: 200,
		InputTokens: 1200, OutputTokens: 400, TotalTokens: 1600, CacheReadTokens: 300, ReasoningTokens: 50, CostNano: 420_000,
		LatencyMs: 900, TTFBMs: 120, Stream: true, PricesVersion: "genai-prices@test"}
	if _, err := app.DB.InsertUsage(context.Background(), []store.UsageRow{streamed}); err != nil {
		t.Fatal(err)
	}

	// Clicking the failed request's row opens its detail.
	b.run(chromedp.Navigate(app.URL+o.ws+"/usage"), chromedp.WaitVisible(chromedp.CSS("tr[data-usage-id]")))
	b.shot("d1-usage")
	b.run(chromedp.Click(chromedp.CSS(`tr[data-usage-id]:has(.badge.bad) a[data-request-id]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="request-id"]`)))
	failedID := b.text(`[data-testid="request-id"]`)
	if got := strings.TrimPrefix(b.location(), app.URL); got != o.ws+"/usage/"+failedID {
		t.Errorf("the row opened %s", got)
	}
	for sel, want := range map[string]string{`[data-testid="status"]`: "503", `[data-testid="error-code"]`: "UPSTREAM_ERROR",
		`[data-testid="error-message"]`: "upstream says 503", `[data-testid="final-model"]`: "gpt-4o-mini"} {
		if got := b.text(sel); got != want {
			t.Errorf("%s = %q, want %q", sel, got, want)
		}
	}
	checkWidths(t, b, b.location(), "d2-request-error")

	// The id search finds the streamed request, with its token parts, TTFB, flags and prices.
	b.run(chromedp.Navigate(app.URL+o.ws+"/usage"), b.fill("#request-id", streamed.RequestID), chromedp.Submit(chromedp.CSS("#request-id")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="request-id"]`)))
	if got := b.text(`[data-testid="request-id"]`); got != streamed.RequestID {
		t.Errorf("the search opened request %q", got)
	}
	main := b.text("main")
	for _, want := range []string{"gpt-4o", "300", "50", "120 ms", "900 ms", "fallback", "stream", "genai-prices@test", "$0.15 input", "$0.60 output", views.USD(streamed.CostNano)} {
		if !strings.Contains(main, want) {
			t.Errorf("the detail page lacks %q: %s", want, main)
		}
	}
	checkWidths(t, b, b.location(), "d3-request-stream")

	// Another workspace's request id is not found, by URL or by search.
	eve := app.client(t)
	eveWS := eve.signup("Eve", "eve@example.com")
	eveID, _ := strconv.ParseInt(strings.TrimPrefix(eveWS, "/w/"), 10, 64)
	theirs := store.UsageRow{RequestID: "fedcba9876543210fedcba9876543210", CreatedAt: time.Now().UnixMilli(), WorkspaceID: eveID, ProjectID: 999,
		Provider: "openai", OriginalModel: "gpt-4o", FinalModel: "gpt-4o", Status: 200}
	if _, err := app.DB.InsertUsage(context.Background(), []store.UsageRow{theirs}); err != nil {
		t.Fatal(err)
	}
	if st := eval[int](b, `fetch("`+o.ws+`/usage/`+theirs.RequestID+`").then(r => r.status)`); st != http.StatusNotFound {
		t.Errorf("another workspace's request: status %d, want 404", st)
	}
	if r := eve.get(eveWS + "/usage/" + theirs.RequestID); r.Status != http.StatusOK {
		t.Errorf("its own workspace's request: status %d", r.Status)
	}
	b.run(chromedp.Navigate(app.URL+o.ws+"/usage"), b.fill("#request-id", theirs.RequestID), chromedp.Submit(chromedp.CSS("#request-id")),
		chromedp.WaitVisible(chromedp.CSS(".flash.error")))
	if got := b.text(".flash.error"); !strings.Contains(got, "No request with that id in this workspace") {
		t.Errorf("searching another workspace's id says %q", got)
	}
	b.noProblems()
}

// TestBrowserGuardState ensures the projects list and the project page say what the budget gate
// does: normal, then "fallback → MODEL" from 80%, then "blocked until 00:00 UTC (in …)" at
// 100% with a banner linking to the budget, "deactivated" for a deactivated project; and the
// 429 the proxy answers then carries Retry-After and error.resetAt for the same reset.
func TestBrowserGuardState(t *testing.T) {
	o := newOwner(t, "hedy@example.com")
	id, key := o.project(t, `{"name":"guarded","dailyBudgetUsd":0.001,"fallbackModel":"gpt-4o-mini"}`)
	offID, _ := o.project(t, `{"name":"dormant"}`)
	o.api(t, http.MethodPost, fmt.Sprintf("/api/projects/%d/deactivate", offID), "", nil)
	app, b := o.app, o.b
	row := fmt.Sprintf(`tr[data-project-id="%d"]`, id)
	projects, page := app.URL+o.ws+"/projects", app.URL+o.ws+fmt.Sprintf("/projects/%d", id)

	b.run(chromedp.Navigate(projects), chromedp.WaitVisible(chromedp.CSS(row+` [data-guard="normal"]`)))
	if got := b.text(fmt.Sprintf(`tr[data-project-id="%d"] [data-guard]`, offID)); got != "Deactivated" {
		t.Errorf("the deactivated project's state reads %q", got)
	}

	// 2 × $0.00045 of a $0.001 daily budget: 90%, on the fallback model.
	app.Upstream.Set(openaitest.Behavior{Usage: openaitest.Usage{Prompt: 1000, Completion: 500}})
	sendChat(t, app, key)
	sendChat(t, app, key)
	waitUsage(t, app, 2)
	b.run(chromedp.Navigate(projects), chromedp.WaitVisible(chromedp.CSS(row+` [data-guard="fallback"]`)))
	if got := b.text(row + ` [data-guard]`); got != "Fallback → gpt-4o-mini" {
		t.Errorf("at 90%% the state reads %q", got)
	}
	if got := b.text(row + ` [data-budget="Daily"] strong`); got != "90.0%" {
		t.Errorf("at 90%% the daily budget reads %q", got)
	}
	b.shot("g1-projects-fallback")
	b.run(chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS(`[data-guard-banner="fallback"]`)))
	// The project's recent requests open their detail too.
	if n := eval[int](b, `document.querySelectorAll("tr[data-usage-id] a[data-request-id]").length`); n != 2 {
		t.Errorf("the project page links %d recent requests to their detail, want 2", n)
	}
	if got := b.text(`[data-guard-banner]`); !strings.Contains(got, "fallback model gpt-4o-mini") || !strings.Contains(got, "daily budget") {
		t.Errorf("the fallback banner reads %q", got)
	}
	b.shot("g2-project-fallback")

	// A third request takes it to 135%: blocked until midnight.
	sendChat(t, app, key)
	waitUsage(t, app, 3)
	now := time.Now().UTC()
	midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
	blocked := regexp.MustCompile(`^Blocked until 00:00 UTC \(in (\d+ h \d+ min|\d+ min|under a minute)\)$`)
	b.run(chromedp.Navigate(projects), chromedp.WaitVisible(chromedp.CSS(row+` [data-guard="blocked"]`)))
	if got := b.text(row + ` [data-guard]`); !blocked.MatchString(got) {
		t.Errorf("past the budget the state reads %q", got)
	}
	if got := b.text(row + ` [data-budget="Daily"] strong`); got != "135.0%" {
		t.Errorf("past the budget the daily budget reads %q", got)
	}
	b.shot("g3-projects-blocked")
	b.run(chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS(`[data-guard-banner="blocked"]`)))
	if got := b.text(`.pagehead [data-guard]`); !blocked.MatchString(got) {
		t.Errorf("the project page's state reads %q", got)
	}
	if href := eval[string](b, `document.querySelector("[data-guard-banner] a").getAttribute("href")`); href != fmt.Sprintf("%s/projects/%d#settings-h", o.ws, id) {
		t.Errorf("the banner's link goes to %q", href)
	}
	checkWidths(t, b, page, "g4-project-blocked")

	// The proxy's refusal names the same reset.
	req, _ := http.NewRequest(http.MethodPost, app.URL+"/proxy/openai/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("x-tokenguard-key", key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Error struct{ Code, ResetAt string }
	}
	json.NewDecoder(res.Body).Decode(&body)
	retry, _ := strconv.Atoi(res.Header.Get("Retry-After"))
	if left := int(time.Until(midnight) / time.Second); res.StatusCode != http.StatusTooManyRequests || body.Error.Code != "BUDGET_EXCEEDED" ||
		retry < left-5 || retry > left+5 || body.Error.ResetAt != midnight.Format(time.RFC3339) {
		t.Errorf("429: status %d, code %s, Retry-After %q (midnight is in %d s), resetAt %q (want %s)",
			res.StatusCode, body.Error.Code, res.Header.Get("Retry-After"), left, body.Error.ResetAt, midnight.Format(time.RFC3339))
	}
	b.noProblems()
}
