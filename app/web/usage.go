package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"tokenguard/app/account"
	"tokenguard/store"
	"tokenguard/views"
)

const usagePageSize = 50

// usageQuery reads the usage filters from the query string into a store filter and the values
// to show back in the form. A bad value is reported, not silently dropped.
func usageQuery(q url.Values, wsID int64) (store.UsageFilter, views.UsageFilters, string) {
	f := store.UsageFilter{WorkspaceID: wsID, Limit: usagePageSize, Cursor: q.Get("cursor")}
	v := views.UsageFilters{From: q.Get("from"), To: q.Get("to"), Provider: q.Get("provider"), Model: strings.TrimSpace(q.Get("model")), Status: strings.TrimSpace(q.Get("status"))}
	var problems []string
	if v.From != "" {
		t, err := time.Parse("2006-01-02", v.From)
		if err != nil {
			problems = append(problems, "From must be a date.")
		} else {
			f.From = t.UnixMilli()
		}
	}
	if v.To != "" {
		t, err := time.Parse("2006-01-02", v.To)
		if err != nil {
			problems = append(problems, "To must be a date.")
		} else {
			f.To = t.AddDate(0, 0, 1).UnixMilli() // the whole "to" day is included
		}
	}
	if p := q.Get("projectId"); p != "" {
		id, err := strconv.ParseInt(p, 10, 64)
		if err != nil || id <= 0 {
			problems = append(problems, "Unknown project.")
		} else {
			f.ProjectID, v.ProjectID = id, id
		}
	}
	switch v.Provider {
	case "", "openai", "anthropic", "gemini":
		f.Provider = v.Provider
	default:
		problems = append(problems, "Provider must be OpenAI, Anthropic or Gemini.")
		v.Provider = ""
	}
	if len(v.Model) > 200 {
		v.Model = v.Model[:200]
	}
	f.Model = v.Model
	if v.Status != "" {
		n, err := strconv.Atoi(v.Status)
		if err != nil || n < 100 || n > 599 {
			problems = append(problems, "Status must be an HTTP status such as 200 or 429.")
		} else {
			f.Status = n
		}
	}
	return f, v, strings.Join(problems, " ")
}

// usageRows turns store rows into view rows, naming their projects.
func usageRows(rows []store.UsageRow, names map[int64]string) []views.UsageView {
	out := make([]views.UsageView, len(rows))
	for i, r := range rows {
		out[i] = views.UsageView{
			ID: r.ID, At: time.UnixMilli(r.CreatedAt), ProjectID: r.ProjectID, Project: firstNonEmpty(names[r.ProjectID], "deleted project"),
			Provider: r.Provider, OriginalModel: r.OriginalModel, FinalModel: r.FinalModel, WasFallback: r.WasFallback,
			Status: r.Status, ErrorCode: r.ErrorCode, InputTokens: r.InputTokens, OutputTokens: r.OutputTokens,
			Cost: r.CostNano, LatencyMs: r.LatencyMs, Stream: r.Stream, UsageEstimated: r.UsageEstimated, PricedByDefault: r.PricedByDefault,
		}
	}
	return out
}

func (s *Server) usagePage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	q := r.URL.Query()
	f, v, problem := usageQuery(q, c.ws.ID)
	v.Error = problem
	projects, err := s.opt.Accounts.Projects(r.Context(), c.actor(r), c.ws.ID)
	if err != nil {
		return err
	}
	names := make(map[int64]string, len(projects))
	opts := make([]views.ProjectOption, len(projects))
	for i, p := range projects {
		names[p.ID] = p.Name
		opts[i] = views.ProjectOption{ID: p.ID, Name: p.Name}
	}
	var t views.UsageTable
	if problem == "" {
		rows, next, err := s.opt.DB.ListUsage(r.Context(), f)
		if errors.Is(err, store.ErrBadCursor) {
			v.Error = "That page link has expired; showing the newest requests."
			f.Cursor = ""
			rows, next, err = s.opt.DB.ListUsage(r.Context(), f)
		}
		if err != nil {
			return err
		}
		t.Rows = usageRows(rows, names)
		if next != "" {
			nq := url.Values{}
			for k, vs := range q {
				if k != "cursor" && k != "fragment" && len(vs) > 0 && vs[0] != "" {
					nq.Set(k, vs[0])
				}
			}
			nq.Set("cursor", next)
			nq.Set("fragment", "rows")
			t.NextURL = views.WSPath(c.ws.ID, "/usage?"+nq.Encode())
		}
	}
	l := s.layout(r, c, "Usage", "usage")
	// "Load more" asks for the next rows only; the filter form swaps the whole results panel.
	if q.Get("fragment") == "rows" && isHTMX(r) {
		return s.render(w, r, http.StatusOK, views.UsageRows(l, t, true))
	}
	return s.render(w, r, http.StatusOK, views.UsagePage(l, views.UsageLog{Filters: v, Projects: opts, Table: t}))
}

// recentUsage is a project's latest requests for its detail page.
func (s *Server) recentUsage(r *http.Request, c *reqCtx, p account.Project) (views.UsageTable, error) {
	// The page links to the full, filtered usage log for more.
	rows, _, err := s.opt.DB.ListUsage(r.Context(), store.UsageFilter{WorkspaceID: c.ws.ID, ProjectID: p.ID, Limit: 10})
	if err != nil {
		return views.UsageTable{}, err
	}
	return views.UsageTable{Rows: usageRows(rows, map[int64]string{p.ID: p.Name})}, nil
}
