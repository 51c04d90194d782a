package web

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"tokenguard/app/account"
	"tokenguard/app/analytics"
	"tokenguard/app/apperr"
	"tokenguard/app/budget"
	"tokenguard/app/pricing"
	"tokenguard/views"
)

// The analytics page's range presets, in the order the page offers them.
var rangePresets = []struct{ key, text string }{
	{"today", "Today"}, {"7d", "7 days"}, {"30d", "30 days"}, {"month", "This month"}, {"lastmonth", "Last month"}, {"custom", "Custom"},
}

const defaultPreset = "30d"

// analyticsRange resolves the page's date range (a preset, or custom from/to days, "to"
// inclusive) to the from/to instants every figure on the page is read for. Presets end at now;
// "today" and the day presets start at a UTC midnight so their buckets are whole days.
func analyticsRange(q url.Values, now time.Time) (views.AnalyticsFilters, string) {
	now = now.UTC()
	end := now.Truncate(time.Millisecond).Add(time.Millisecond) // the request of this very millisecond counts
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	v := views.AnalyticsFilters{Preset: q.Get("range")}
	var from, to time.Time
	switch v.Preset {
	case "today":
		from, to = today, end
	case "7d":
		from, to = today.AddDate(0, 0, -6), end
	case "month":
		from, to = month, end
	case "lastmonth":
		from, to = month.AddDate(0, -1, 0), month
	case "custom":
		v.From, v.To = q.Get("from"), q.Get("to")
		f, errF := time.Parse("2006-01-02", v.From)
		t, errT := time.Parse("2006-01-02", v.To)
		switch {
		case errF != nil || errT != nil:
			return v, "Give the custom range a From and a To date."
		case t.Before(f):
			return v, "From must be on or before To."
		}
		from, to = f, t.AddDate(0, 0, 1)
	default:
		v.Preset = defaultPreset
		from, to = today.AddDate(0, 0, -29), end
	}
	if v.Preset != "custom" {
		v.From, v.To = from.Format("2006-01-02"), to.Add(-time.Millisecond).Format("2006-01-02")
	}
	v.RangeFrom, v.RangeTo = from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano)
	return v, ""
}

// analyticsSorts are the breakdown tables' sortable columns; "spend" descending is the default.
var analyticsSorts = map[string]bool{"name": true, "spend": true, "requests": true, "tokens": true, "errors": true}

func (s *Server) analyticsPage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	ctx, actor := r.Context(), c.actor(r)
	q := r.URL.Query()
	v, problem := analyticsRange(q, s.now())
	v.Provider, v.Model, v.Stack = q.Get("provider"), strings.TrimSpace(q.Get("model")), string(analytics.ParseStack(q.Get("stack")))
	v.Sort, v.Dir = q.Get("sort"), q.Get("dir")
	if !analyticsSorts[v.Sort] {
		v.Sort = "spend"
	}
	if v.Dir != "asc" {
		v.Dir = "desc"
	}
	ps, err := s.opt.Accounts.Projects(ctx, actor, c.ws.ID)
	if err != nil {
		return err
	}
	wsSpend := s.opt.Budget.Spend(budget.WorkspaceScope, c.ws.ID)
	a := views.Analytics{
		WSToday: s.bar(int64(wsSpend.Day), nanoPtr64(c.ws.DailyBudget)),
		WSMonth: s.bar(int64(wsSpend.Month), nanoPtr64(c.ws.MonthlyBudget)),
		// A flash (the export's bad input) is shown by the layout; Error is this page's own
		// problem, which replaces its figures.
		Error: problem,
	}
	for _, p := range ps {
		a.ProjectOptions = append(a.ProjectOptions, views.ProjectOption{ID: p.ID, Name: p.Name})
	}
	// The filters go through the API's own parser, so the page and the API read the same range.
	fq := url.Values{"from": {v.RangeFrom}, "to": {v.RangeTo}, "provider": {v.Provider}, "model": {v.Model}, "projectId": {q.Get("projectId")}}
	var f analytics.Filter
	if problem == "" {
		if f, err = analytics.ParseFilter(fq, s.now()); err != nil {
			if apperr.Code(err) != apperr.InvalidRequest {
				return err
			}
			a.Error = apperr.Message(err)
		}
		v.ProjectID = f.ProjectID
	}
	a.Filters = v
	a.Presets, a.Stacks = s.analyticsLinks(c, v)
	if a.Error == "" {
		if a.RawRowsSince, err = s.rawRowsSince(r, f.From.UnixMilli()); err != nil {
			return err
		}
		if err := s.analyticsFigures(r, c, f, &a); err != nil {
			if apperr.Code(err) != apperr.InvalidRequest && apperr.Code(err) != apperr.NotFound {
				return err
			}
			a.Error = apperr.Message(err)
		}
	}
	return s.render(w, r, http.StatusOK, views.AnalyticsPage(s.layout(r, c, "Analytics", "analytics"), a))
}

// analyticsFigures fills every figure of the page from the analytics service, the one the API
// answers from.
func (s *Server) analyticsFigures(r *http.Request, c *reqCtx, f analytics.Filter, a *views.Analytics) error {
	// The figures are independent reads of the same instant: they run side by side on the read
	// pool, and a sum two of them need is read once.
	ctx, actor, svc := r.Context(), c.actor(r), s.opt.Analytics.ForPage()
	var (
		ov        analytics.Overview
		series    analytics.Series
		providers []analytics.ProviderRow
		models    []analytics.ModelRow
		projects  []analytics.ProjectRow
		fc        analytics.Forecast
	)
	err := all(
		func() (err error) { ov, err = svc.Overview(ctx, actor, c.ws.ID, f); return },
		func() (err error) {
			series, err = svc.Series(ctx, actor, c.ws.ID, f, analytics.Stack(a.Filters.Stack))
			return
		},
		func() (err error) { providers, err = svc.Providers(ctx, actor, c.ws.ID, f); return },
		func() (err error) { models, err = svc.Models(ctx, actor, c.ws.ID, f); return },
		func() (err error) { projects, err = svc.Projects(ctx, actor, c.ws.ID, f); return },
		func() (err error) { fc, err = svc.Forecast(ctx, actor, c.ws.ID, f); return },
	)
	if err != nil {
		return err
	}
	a.KPI = views.AnalyticsKPI{Spend: nano(ov.SpendUSD), Requests: ov.Requests, Errors: ov.Errors, Blocked: ov.Blocked}
	for _, p := range providers {
		a.KPI.InputTokens += p.InputTokens
		a.KPI.OutputTokens += p.OutputTokens
	}
	a.Spend, a.Requests, a.Tokens = seriesCharts(series)
	cols := s.sortColumns(c, a.Filters)
	a.Models = views.Breakdown{ID: "by-model", Title: "By model", Cols: cols}
	for _, m := range models {
		a.Models.Rows = append(a.Models.Rows, views.BreakdownRow{Name: m.Model, Sub: m.Provider, Spend: nano(m.SpendUSD),
			Requests: m.Requests, Tokens: m.Tokens, Errors: m.Errors, Blocked: m.Blocked})
	}
	a.Providers = views.Breakdown{ID: "by-provider", Title: "By provider", Cols: cols}
	for _, p := range providers {
		a.Providers.Rows = append(a.Providers.Rows, views.BreakdownRow{Name: p.Provider, Spend: nano(p.SpendUSD),
			Requests: p.Requests, Tokens: p.Tokens, Errors: p.Errors, Blocked: p.Blocked})
	}
	a.Projects = views.Breakdown{ID: "by-project", Title: "By project", Cols: cols}
	for _, p := range projects {
		row := views.BreakdownRow{Name: p.Name, Spend: nano(p.SpendUSD), Requests: p.Requests, Errors: p.Errors, Blocked: p.Blocked, NoTokens: true}
		if liveProject(p.ProjectID, a.ProjectOptions) {
			row.Href = views.WSPath(c.ws.ID, "/projects/"+strconv.FormatInt(p.ProjectID, 10))
		}
		a.Projects.Rows = append(a.Projects.Rows, row)
	}
	for _, t := range []*views.Breakdown{&a.Models, &a.Providers, &a.Projects} {
		sortBreakdown(t.Rows, a.Filters.Sort, a.Filters.Dir == "asc")
	}
	a.Forecast = views.ForecastView{Spend: fc.SpendNano, MonthEnd: fc.MonthEndNano, MonthEndDay: fc.MonthEnd.Add(-time.Millisecond), Now: fc.Now}
	for _, b := range fc.Budgets {
		a.Forecast.Budgets = append(a.Forecast.Budgets, views.RunoutView{Name: b.Name, Workspace: b.ProjectID == 0,
			Budget: b.BudgetNano, Spend: b.SpendNano, Spent: b.Spent, RunsOut: b.RunsOut})
	}
	return nil
}

// all runs fns concurrently and returns one of their errors (nil when none failed): a failure
// of the server's own (no contract code) before a refusal of the request, which would otherwise
// hide it from the log behind the page's message.
func all(fns ...func() error) error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Go(func() { errs[i] = fn() })
	}
	wg.Wait()
	var first error
	for _, err := range errs {
		if err != nil && apperr.Code(err) == apperr.Internal {
			return err
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// liveProject reports whether id is one of the workspace's live projects (a deleted project's
// row has no page to link to).
func liveProject(id int64, opts []views.ProjectOption) bool {
	for _, o := range opts {
		if o.ID == id {
			return true
		}
	}
	return false
}

// nano converts the service's dollars back to the nano-dollars the views format; the dollars
// were computed from integer nano-dollars, so this is exact for any real amount.
func nano(usd float64) int64 { return int64(pricing.FromDollars(usd)) }

// seriesCharts draws the series as three stacked bar charts: spend by the stacking, requests
// (served, errors, blocked) and tokens (in, out).
func seriesCharts(s analytics.Series) (spend, requests, tokens views.Chart) {
	hourly := s.Step < 24*time.Hour
	spend = views.Chart{ID: "spend", Title: "Spend", Money: true}
	for i, k := range s.Keys {
		name := k.Name
		if s.Stack == analytics.StackModel && k.Provider != "" {
			name = k.Name + " (" + k.Provider + ")"
		}
		spend.Keys = append(spend.Keys, views.ChartKey{Name: name, Class: "s" + strconv.Itoa(i)})
	}
	requests = views.Chart{ID: "requests", Title: "Requests", Compact: true, Keys: []views.ChartKey{
		{Name: "served", Class: "s-ok"}, {Name: "errors", Class: "s-bad"}, {Name: "blocked", Class: "s-warn"}}}
	tokens = views.Chart{ID: "tokens", Title: "Tokens", Compact: true, Keys: []views.ChartKey{{Name: "in", Class: "s0"}, {Name: "out", Class: "s1"}}}
	for _, b := range s.Data {
		bar := views.ChartBar{Key: b.Start.Format("2006-01-02"), Title: b.Start.Format("Mon 2 Jan 2006"), Label: b.Start.Format("2 Jan")}
		if hourly {
			bar.Key, bar.Title, bar.Label = b.Start.Format("2006-01-02T15"), b.Start.Format("Mon 2 Jan 15:00")+" UTC", b.Start.Format("15:00")
		}
		sp, rq, tk := bar, bar, bar
		sp.Parts, sp.Total = b.Parts, b.CostNano
		served := max(0, b.Requests-b.Errors-b.Blocked)
		rq.Parts, rq.Total = []int64{served, b.Errors, b.Blocked}, b.Requests
		tk.Parts, tk.Total = []int64{b.InputTokens, b.OutputTokens}, b.InputTokens+b.OutputTokens
		spend.Bars, requests.Bars, tokens.Bars = append(spend.Bars, sp), append(requests.Bars, rq), append(tokens.Bars, tk)
	}
	return spend, requests, tokens
}

// analyticsLinks are the range presets and the stacking toggle, each keeping every other
// setting of the page.
func (s *Server) analyticsLinks(c *reqCtx, v views.AnalyticsFilters) (presets, stacks []views.PageLink) {
	for _, p := range rangePresets {
		if p.key == "custom" {
			presets = append(presets, views.PageLink{Key: p.key, Text: p.text, Current: v.Preset == "custom"})
			continue
		}
		presets = append(presets, views.PageLink{Key: p.key, Text: p.text, Current: v.Preset == p.key,
			URL: analyticsURL(c, v, "range", p.key, "from", "", "to", "")})
	}
	for _, st := range []analytics.Stack{analytics.StackProvider, analytics.StackModel, analytics.StackProject} {
		stacks = append(stacks, views.PageLink{Key: string(st), Text: "By " + string(st), Current: v.Stack == string(st),
			URL: analyticsURL(c, v, "stack", string(st))})
	}
	return presets, stacks
}

// sortColumns are the breakdown tables' header links: a click sorts by the column, a second
// click reverses it.
func (s *Server) sortColumns(c *reqCtx, v views.AnalyticsFilters) []views.SortColumn {
	var cols []views.SortColumn
	for _, col := range []struct{ key, text string }{{"name", "Name"}, {"spend", "Spend"}, {"requests", "Requests"}, {"tokens", "Tokens"}, {"errors", "Errors / blocked"}} {
		sc := views.SortColumn{Key: col.key, Text: col.text}
		dir := "desc"
		if col.key == "name" {
			dir = "asc"
		}
		if v.Sort == col.key {
			sc.Sort = map[string]string{"asc": "ascending", "desc": "descending"}[v.Dir]
			dir = map[string]string{"asc": "desc", "desc": "asc"}[v.Dir]
		}
		sc.URL = analyticsURL(c, v, "sort", col.key, "dir", dir)
		cols = append(cols, sc)
	}
	return cols
}

// analyticsURL is the page's URL with v's settings and the given key/value pairs replaced (an
// empty value drops the key).
func analyticsURL(c *reqCtx, v views.AnalyticsFilters, kv ...string) string {
	q := url.Values{}
	set := func(k, val string) {
		if val == "" {
			q.Del(k)
		} else {
			q.Set(k, val)
		}
	}
	set("range", v.Preset)
	if v.Preset == "custom" {
		set("from", v.From)
		set("to", v.To)
	}
	if v.ProjectID != 0 {
		set("projectId", strconv.FormatInt(v.ProjectID, 10))
	}
	set("provider", v.Provider)
	set("model", v.Model)
	set("stack", v.Stack)
	set("sort", v.Sort)
	set("dir", v.Dir)
	for i := 0; i+1 < len(kv); i += 2 {
		set(kv[i], kv[i+1])
	}
	return views.WSPath(c.ws.ID, "/analytics?"+q.Encode())
}

// sortBreakdown orders rows by the column, name breaking ties.
func sortBreakdown(rows []views.BreakdownRow, by string, asc bool) {
	key := func(r views.BreakdownRow) int64 {
		switch by {
		case "requests":
			return r.Requests
		case "tokens":
			return r.Tokens
		case "errors":
			return r.Errors + r.Blocked
		}
		return r.Spend
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if by == "name" || key(a) == key(b) {
			if asc || by != "name" {
				return a.Name < b.Name
			}
			return a.Name > b.Name
		}
		if asc {
			return key(a) < key(b)
		}
		return key(a) > key(b)
	})
}

// exportCSV streams up to 10,000 usage rows as CSV and records the export in the audit log. It is
// a POST (it writes an audit event), carrying the CSRF token like every other form.
func (s *Server) exportCSV(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := r.ParseForm(); err != nil {
		return err
	}
	q := url.Values{}
	for _, k := range []string{"from", "to", "projectId", "provider", "model"} {
		if v := r.PostForm.Get(k); v != "" {
			q.Set(k, v)
		}
	}
	f, _, problem := usageQuery(q, c.ws.ID)
	if problem != "" {
		c.flash = views.Flash{Kind: "error", Text: problem}
		return s.analyticsPage(w, r, c)
	}
	ps, err := s.opt.Accounts.Projects(r.Context(), c.actor(r), c.ws.ID)
	if err != nil {
		return err
	}
	names := make(map[int64]string, len(ps))
	for _, p := range ps {
		names[p.ID] = p.Name
	}
	// Read everything before writing, so a failure is an error page rather than a cut-off file.
	rows, err := analytics.ExportRows(r.Context(), s.opt.DB, f)
	if err != nil {
		return err
	}
	details := map[string]any{"rows": len(rows), "format": "csv", "surface": "dashboard"}
	for k, v := range q {
		details[k] = v[0]
	}
	if err := s.opt.Accounts.Record(r.Context(), c.actor(r), c.ws.ID, account.AuditEvent{
		Action: account.AuditUsageExported, TargetType: "workspace", TargetID: c.ws.ID, Details: details,
	}); err != nil {
		return err
	}

	h := w.Header()
	since, err := s.rawRowsSince(r, f.From)
	if err != nil {
		return err
	}
	if !since.IsZero() {
		h.Set(analytics.RawRowsSinceHeader, since.Format(time.RFC3339))
	}
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="tokenguard-usage-`+s.now().UTC().Format("2006-01-02")+`.csv"`)
	h.Set("Cache-Control", "no-store")
	return analytics.WriteCSV(w, c.ws.Name, names, rows)
}
