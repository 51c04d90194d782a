package web

import (
	"encoding/csv"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"tokenguard/app/account"
	"tokenguard/app/budget"
	"tokenguard/store"
	"tokenguard/views"
)

// maxExportRows is the export's row limit (PRODUCT-DOCS: up to 10,000 rows).
const maxExportRows = 10_000

func (s *Server) analyticsPage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	ps, err := s.opt.Accounts.Projects(r.Context(), c.actor(r), c.ws.ID)
	if err != nil {
		return err
	}
	wsSpend := s.opt.Budget.Spend(budget.WorkspaceScope, c.ws.ID)
	a := views.Analytics{
		WSToday: s.bar(int64(wsSpend.Day), nanoPtr64(c.ws.DailyBudget)),
		WSMonth: s.bar(int64(wsSpend.Month), nanoPtr64(c.ws.MonthlyBudget)),
		From:    s.now().UTC().AddDate(0, 0, -30).Format("2006-01-02"),
		To:      s.now().UTC().Format("2006-01-02"),
	}
	for _, p := range ps {
		a.ProjectOptions = append(a.ProjectOptions, views.ProjectOption{ID: p.ID, Name: p.Name})
		sp := s.opt.Budget.Spend(budget.ProjectScope, p.ID)
		if sp.Month == 0 {
			continue
		}
		a.Projects = append(a.Projects, views.ProjectSpend{ID: p.ID, Name: p.Name,
			Today: s.bar(int64(sp.Day), nanoPtr64(p.DailyBudget)), Month: s.bar(int64(sp.Month), nanoPtr64(p.MonthlyBudget))})
	}
	sort.SliceStable(a.Projects, func(i, j int) bool { return a.Projects[i].Month.Spend > a.Projects[j].Month.Spend })
	return s.render(w, r, http.StatusOK, views.AnalyticsPage(s.layout(r, c, "Analytics", "analytics"), a))
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
	var rows []store.UsageRow
	f.Limit = store.MaxUsageLimit
	for len(rows) < maxExportRows {
		f.Limit = min(store.MaxUsageLimit, maxExportRows-len(rows))
		page, next, err := s.opt.DB.ListUsage(r.Context(), f)
		if err != nil {
			return err
		}
		rows = append(rows, page...)
		if next == "" {
			break
		}
		f.Cursor = next
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
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="tokenguard-usage-`+s.now().UTC().Format("2006-01-02")+`.csv"`)
	h.Set("Cache-Control", "no-store")
	cw := csv.NewWriter(w)
	cw.Write([]string{"createdAt", "workspace", "project", "provider", "model", "status", "inputTokens", "outputTokens",
		"totalTokens", "estimatedCostUsd", "latencyMs", "errorCode"})
	ws := csvCell(c.ws.Name)
	for _, u := range rows {
		cw.Write([]string{
			time.UnixMilli(u.CreatedAt).UTC().Format(time.RFC3339), ws, csvCell(firstNonEmpty(names[u.ProjectID], "deleted project")),
			u.Provider, csvCell(u.FinalModel), strconv.Itoa(u.Status), strconv.FormatInt(u.InputTokens, 10),
			strconv.FormatInt(u.OutputTokens, 10), strconv.FormatInt(u.TotalTokens, 10),
			strconv.FormatFloat(float64(u.CostNano)/1e9, 'f', -1, 64), strconv.FormatInt(u.LatencyMs, 10), u.ErrorCode,
		})
	}
	cw.Flush()
	return nil
}

// csvCell defuses spreadsheet formulas: a user-supplied name starting with =, +, -, @ or a
// control character would otherwise run as a formula when the file is opened.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
