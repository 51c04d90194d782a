package web

import (
	"net/http"
	"net/url"
	"sort"

	"tokenguard/app/account"
	"tokenguard/app/analytics"
	"tokenguard/app/budget"
	"tokenguard/views"
)

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
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="tokenguard-usage-`+s.now().UTC().Format("2006-01-02")+`.csv"`)
	h.Set("Cache-Control", "no-store")
	return analytics.WriteCSV(w, c.ws.Name, names, rows)
}
