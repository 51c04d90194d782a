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
	v := views.UsageFilters{From: q.Get("from"), To: q.Get("to"), Provider: q.Get("provider"), Model: strings.TrimSpace(q.Get("model")), Status: strings.TrimSpace(q.Get("status")),
		EndUser: strings.TrimSpace(q.Get("endUser"))}
	from, to, problems := dayRange(v.From, v.To)
	if !from.IsZero() {
		f.From = from.UnixMilli()
	}
	if !to.IsZero() {
		f.To = to.UnixMilli()
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
	if len(v.EndUser) > store.MaxEndUser {
		problems = append(problems, "End user must be at most 256 bytes.")
	} else {
		f.EndUser = v.EndUser
	}
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

// dayRange reads a filter's From and To days (YYYY-MM-DD, each optional, To inclusive) as the
// instants from (inclusive) and to (exclusive): zero where a day is not given, and a problem to
// show for each day that does not parse.
func dayRange(fromDay, toDay string) (from, to time.Time, problems []string) {
	if fromDay != "" {
		t, err := time.Parse(time.DateOnly, fromDay)
		if err != nil {
			problems = append(problems, "From must be a date.")
		}
		from = t
	}
	if toDay != "" {
		t, err := time.Parse(time.DateOnly, toDay)
		if err != nil {
			problems = append(problems, "To must be a date.")
		} else {
			to = t.AddDate(0, 0, 1) // the whole "to" day is included
		}
	}
	return from, to, problems
}

// usageRows turns store rows into view rows, naming their projects.
func usageRows(rows []store.UsageRow, names map[int64]string) []views.UsageView {
	out := make([]views.UsageView, len(rows))
	for i, r := range rows {
		out[i] = views.UsageView{
			ID: r.ID, RequestID: r.RequestID, At: time.UnixMilli(r.CreatedAt), ProjectID: r.ProjectID, Project: firstNonEmpty(names[r.ProjectID], "deleted project"),
			Provider: r.Provider, OriginalModel: r.OriginalModel, FinalModel: r.FinalModel, WasFallback: r.WasFallback,
			Status: r.Status, ErrorCode: r.ErrorCode, InputTokens: r.InputTokens, OutputTokens: r.OutputTokens,
			Cost: r.CostNano, LatencyMs: r.LatencyMs, Stream: r.Stream, UsageEstimated: r.UsageEstimated, PricedByDefault: r.PricedByDefault,
			PricesVersion: r.PricesVersion, EndUser: r.EndUser,
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
	if q.Get("fragment") == "totals" {
		// The totals the page asks for once it is shown (UsageLog.TotalsURL).
		var totals *views.UsageTotals
		note := problem
		if problem == "" {
			if totals, note, err = s.usageTotals(r, f); err != nil {
				return err
			}
		}
		return s.render(w, r, http.StatusOK, views.UsageTotalsFragment(totals, note))
	}
	var t views.UsageTable
	if problem == "" {
		rows, next, err := s.listUsage(r, f, q.Get("scan"))
		if errors.Is(err, store.ErrBadCursor) || errors.Is(err, errBadScan) {
			v.Error = "That page link has expired; showing the newest requests."
			f.Cursor = ""
			rows, next, err = s.listUsage(r, f, "")
		}
		if err != nil {
			return err
		}
		t.Rows = usageRows(rows, names)
		if !next.empty() {
			nq := usageFilterQuery(q)
			if next.cursor != "" {
				nq.Set("cursor", next.cursor)
			}
			if next.scan != 0 {
				nq.Set("scan", strconv.FormatInt(next.scan, 10))
			}
			nq.Set("fragment", "rows")
			t.NextURL = views.WSPath(c.ws.ID, "/usage?"+nq.Encode())
			t.Older = len(rows) < f.Limit
			if t.Older {
				t.OlderThan = time.UnixMilli(next.scan)
			}
		}
	}
	l := s.layout(r, c, "Usage", "usage")
	// "Load more" asks for the next rows only; the filter form swaps the whole results panel.
	if q.Get("fragment") == "rows" && isHTMX(r) {
		return s.render(w, r, http.StatusOK, views.UsageRows(l, t, true))
	}
	u := views.UsageLog{Filters: v, Projects: opts, Table: t, Presets: usagePresets(c, q, v, s.now())}
	if problem == "" {
		tq := usageFilterQuery(q)
		tq.Set("fragment", "totals")
		u.TotalsURL = views.WSPath(c.ws.ID, "/usage?"+tq.Encode())
		if u.RawRowsSince, err = s.rawRowsSince(r, f.From); err != nil {
			return err
		}
	}
	return s.render(w, r, http.StatusOK, views.UsagePage(l, u))
}

// usageFilterQuery is q's filters alone (no paging position), for links that keep them.
func usageFilterQuery(q url.Values) url.Values {
	nq := url.Values{}
	for k, vs := range q {
		if k != "cursor" && k != "scan" && k != "fragment" && len(vs) > 0 && vs[0] != "" {
			nq.Set(k, vs[0])
		}
	}
	return nq
}

// usagePresets are the usage log's date-range links (the analytics page's presets but
// "custom", resolved to from/to days), each keeping the other filters. A preset is current
// when the filter's days are exactly its days.
func usagePresets(c *reqCtx, q url.Values, v views.UsageFilters, now time.Time) []views.PageLink {
	var out []views.PageLink
	for _, p := range rangePresets {
		if p.key == "custom" {
			continue
		}
		days, _ := analyticsRange(url.Values{"range": {p.key}}, now)
		nq := usageFilterQuery(q)
		nq.Set("from", days.From)
		nq.Set("to", days.To)
		out = append(out, views.PageLink{Key: p.key, Text: p.text, URL: views.WSPath(c.ws.ID, "/usage?"+nq.Encode()),
			Current: v.From == days.From && v.To == days.To})
	}
	return out
}

// usageTotals sums every request the filter selects from the usage rollups (store.AggregateUsage:
// a few rollup rows whatever the range), not from the page. The rollups keep no status and no
// end user, so under those filters the rows of the range are summed, up to maxRawTotalsRows.
func (s *Server) usageTotals(r *http.Request, f store.UsageFilter) (*views.UsageTotals, string, error) {
	to := f.To
	if to == 0 {
		to = s.now().UnixMilli() + 1
	}
	if to <= f.From {
		return &views.UsageTotals{}, "", nil
	}
	af := store.AnalyticsFilter{WorkspaceID: f.WorkspaceID, From: f.From, To: to, ProjectID: f.ProjectID, Provider: f.Provider, Model: f.Model}
	var (
		aggs []store.UsageAggregate
		err  error
	)
	switch {
	case f.Status != 0 || f.EndUser != "":
		var a store.UsageAggregate
		a, err = s.opt.DB.UsageRawTotals(r.Context(), af, f.EndUser, f.Status, maxRawTotalsRows)
		if errors.Is(err, store.ErrTooManyRows) {
			return nil, "Totals with a status or end-user filter are shown for ranges of up to 50,000 requests: narrow the dates to see them.", nil
		}
		aggs = []store.UsageAggregate{a}
	default:
		aggs, err = s.opt.DB.AggregateUsage(r.Context(), af, store.GroupNone, 0)
	}
	if err != nil || len(aggs) == 0 {
		return nil, "", err
	}
	a := aggs[0]
	return &views.UsageTotals{Requests: a.Requests, InputTokens: a.InputTokens, OutputTokens: a.OutputTokens, Cost: a.CostNano,
		Errors: a.Errors, Blocked: a.Blocked}, "", nil
}

// rawRowsSince is the time from which usage rows are kept when a range starting at from (unix
// ms, 0 for the beginning) reaches back before it, so some rows it asks for are gone; else zero.
func (s *Server) rawRowsSince(r *http.Request, from int64) (time.Time, error) {
	kept, err := s.opt.DB.Retained(r.Context())
	if err != nil || !kept.RawPrunedFrom(from) {
		return time.Time{}, err
	}
	return time.UnixMilli(kept.RawSince).UTC(), nil
}

// maxRawTotalsRows bounds the rows the usage log's totals read under a status or end-user
// filter (store.UsageRawTotals reads at most about twice as many).
const maxRawTotalsRows = 50_000

// recentUsage is a project's latest requests for its detail page.
func (s *Server) recentUsage(r *http.Request, c *reqCtx, p account.Project) (views.UsageTable, error) {
	// The page links to the full, filtered usage log for more.
	rows, _, err := s.opt.DB.ListUsage(r.Context(), store.UsageFilter{WorkspaceID: c.ws.ID, ProjectID: p.ID, Limit: 10})
	if err != nil {
		return views.UsageTable{}, err
	}
	return views.UsageTable{Rows: usageRows(rows, map[int64]string{p.ID: p.Name})}, nil
}

// A filter on provider, model or status cannot use an index, so a filter that matches little
// would walk the whole log. The usage log therefore searches such filters in time windows, newest
// first, within a time budget per request: each page costs at most about one window's rows, and
// when a page is not full the next link continues from where the search stopped ("Search older").
const (
	scanWindow = 6 * time.Hour
	scanBudget = 25 * time.Millisecond
)

var errBadScan = errors.New("invalid scan position")

// usageNext is where the next page starts: a store cursor inside the window ending at scan, or
// (no cursor) the window ending at scan.
type usageNext struct {
	cursor string
	scan   int64
}

func (n usageNext) empty() bool { return n.cursor == "" && n.scan == 0 }

func (s *Server) listUsage(r *http.Request, f store.UsageFilter, scanParam string) ([]store.UsageRow, usageNext, error) {
	ctx := r.Context()
	if f.Provider == "" && f.Model == "" && f.Status == 0 && f.EndUser == "" {
		rows, next, err := s.opt.DB.ListUsage(ctx, f)
		return rows, usageNext{cursor: next}, err
	}
	end := s.now().UnixMilli() + 1
	if f.To != 0 {
		end = f.To
	}
	if scanParam != "" {
		v, err := strconv.ParseInt(scanParam, 10, 64)
		if err != nil || v <= 0 || v > end {
			return nil, usageNext{}, errBadScan
		}
		end = v
	}
	// The search stops at the "from" date or the workspace's oldest row, whichever is later.
	oldest, found, err := s.opt.DB.OldestUsage(ctx, f.WorkspaceID)
	if err != nil || !found {
		return nil, usageNext{}, err
	}
	floor := max(f.From, oldest)
	if end <= floor {
		return nil, usageNext{}, nil
	}
	limit := f.Limit
	started := time.Now() // a performance budget: real time, not the injected clock
	var out []store.UsageRow
	for {
		w := f
		w.To = end
		w.From = max(end-scanWindow.Milliseconds(), floor) // From is inclusive: the oldest row is searched
		w.Limit = limit - len(out)
		rows, next, err := s.opt.DB.ListUsage(ctx, w)
		if err != nil {
			return nil, usageNext{}, err
		}
		out = append(out, rows...)
		f.Cursor = "" // a cursor only applies to the first window
		if next != "" {
			return out, usageNext{cursor: next, scan: end}, nil
		}
		if w.From <= floor {
			return out, usageNext{}, nil
		}
		end = w.From
		if len(out) >= limit || time.Since(started) > scanBudget {
			return out, usageNext{scan: end}, nil
		}
	}
}
