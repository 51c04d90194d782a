// Package analytics answers TokenGuard's reporting questions (PRODUCT-DOCS "Reporting"): KPI
// overview, daily trends, per-provider, per-model and per-project breakdowns, the CSV export and
// the monthly digest — and, for the dashboard, spend over time stacked by provider, model or
// project (Series) and the month-end forecast (Forecast). Sums are computed in SQL over integer nano-dollars (store.AggregateUsage,
// which reads the hourly and daily rollups and only the part-hours at a range's edges from the
// rows) and converted to float USD only in the answer, so figures equal the usage rows exactly,
// at any range edge.
// Every method checks the caller's membership first (account.Service.Authorize).
package analytics

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"time"

	"tokenguard/app/account"
	"tokenguard/app/apperr"
	"tokenguard/app/mail"
	"tokenguard/app/pricing"
	"tokenguard/store"

	"golang.org/x/sync/errgroup"
)

// Store is the SQL the package reads (*store.DB implements it).
type Store interface {
	AggregateUsage(ctx context.Context, f store.AnalyticsFilter, g store.UsageGroup, limit int) ([]store.UsageAggregate, error)
	AggregateEndUserUsage(ctx context.Context, f store.AnalyticsFilter, endUser string, g store.UsageGroup, limit int) ([]store.UsageAggregate, error)
	ListUsage(ctx context.Context, f store.UsageFilter) ([]store.UsageRow, string, error)
}

// endUserStore is the Store of one end user's rows. The rollups have no end-user key, so its
// aggregations sum the raw rows of the range (store.AggregateEndUserUsage).
type endUserStore struct {
	Store
	user string
}

func (e endUserStore) AggregateUsage(ctx context.Context, f store.AnalyticsFilter, g store.UsageGroup, limit int) ([]store.UsageAggregate, error) {
	return e.Store.AggregateEndUserUsage(ctx, f, e.user, g, limit)
}

func (e endUserStore) ListUsage(ctx context.Context, f store.UsageFilter) ([]store.UsageRow, string, error) {
	f.EndUser = e.user
	return e.Store.ListUsage(ctx, f)
}

// Mailer sends the digest (*mail.Mailer implements it).
type Mailer interface {
	Configured() bool
	Send(mail.Message) error
}

// Options are the service's dependencies. Store and Accounts are required.
type Options struct {
	Store    Store
	Accounts *account.Service
	// Mailer sends digests; nil means mail is not configured (delivery "skipped").
	Mailer Mailer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Service answers analytics queries for workspace members.
type Service struct {
	db     Store
	acct   *account.Service
	mail   Mailer
	digest mail.Template
	now    func() time.Time
}

// New returns a Service over o.
func New(o Options) *Service {
	s := &Service{db: o.Store, acct: o.Accounts, mail: o.Mailer, digest: digestTemplate(), now: o.Now}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Now is the service's clock (callers parse filters against it).
func (s *Service) Now() time.Time { return s.now() }

// DefaultRange is how far back a query reaches when it names no "from".
const DefaultRange = 30 * 24 * time.Hour

// ModelLimit is how many models the models breakdown lists.
const ModelLimit = 20

// Filter is a query's filters (PRODUCT-DOCS: from, to, provider, projectId, model; and endUser,
// an exact match).
type Filter struct {
	From, To  time.Time // From inclusive, To exclusive
	Provider  string
	ProjectID int64
	Model     string
	EndUser   string
}

// ParseFilter reads and validates the filters from a query string. "from" defaults to 30 days
// before now and "to" to now; dates are UTC days and a date as "to" includes that day. Bad input
// is INVALID_REQUEST naming the parameter.
func ParseFilter(q url.Values, now time.Time) (Filter, error) {
	f := Filter{From: now.UTC().Add(-DefaultRange), To: now.UTC(), Provider: q.Get("provider"), Model: strings.TrimSpace(q.Get("model")),
		EndUser: q.Get("endUser")}
	var err error
	if v := q.Get("from"); v != "" {
		if f.From, err = parseTime(v, "from", false); err != nil {
			return Filter{}, err
		}
	}
	if v := q.Get("to"); v != "" {
		if f.To, err = parseTime(v, "to", true); err != nil {
			return Filter{}, err
		}
	}
	if !f.From.Before(f.To) {
		return Filter{}, invalid("from must be before to")
	}
	switch f.Provider {
	case "", "openai", "anthropic", "gemini":
	default:
		return Filter{}, invalid("provider must be openai, anthropic or gemini")
	}
	if len(f.Model) > 200 {
		return Filter{}, invalid("model must be at most 200 characters")
	}
	if len(f.EndUser) > store.MaxEndUser {
		return Filter{}, invalid("endUser must be at most %d bytes", store.MaxEndUser)
	}
	if v := q.Get("projectId"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return Filter{}, invalid("projectId must be a project id")
		}
		f.ProjectID = n
	}
	return f, nil
}

func parseTime(v, name string, endOfDay bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", v); err == nil {
		if endOfDay {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	return time.Time{}, invalid("%s must be a date (2006-01-02) or an RFC 3339 time", name)
}

func invalid(format string, args ...any) error {
	return apperr.New(apperr.InvalidRequest, format, args...)
}

// usd converts nano-dollars to dollars at the edge.
func usd(nano int64) float64 { return float64(nano) / 1e9 }

// scope is a checked request: the workspace, its projects by id, the store filter, and the
// store that answers it (one end user's rows under an endUser filter).
type scope struct {
	ws       account.Workspace
	projects map[int64]account.Project
	order    []account.Project
	f        store.AnalyticsFilter
	db       Store
}

// open authorizes the actor in the workspace, and checks the projectId filter names one of its
// projects (NOT_FOUND otherwise, exactly like an unknown id).
func (s *Service) open(ctx context.Context, actor account.Actor, wsID int64, f Filter) (scope, error) {
	ws, err := s.acct.Authorize(ctx, actor, wsID, account.ViewWorkspace)
	if err != nil {
		return scope{}, err
	}
	ps, err := s.acct.Projects(ctx, actor, wsID)
	if err != nil {
		return scope{}, err
	}
	sc := scope{ws: ws, projects: make(map[int64]account.Project, len(ps)), order: ps,
		f: store.AnalyticsFilter{WorkspaceID: wsID, From: f.From.UnixMilli(), To: f.To.UnixMilli(),
			ProjectID: f.ProjectID, Provider: f.Provider, Model: f.Model}, db: s.db}
	if f.EndUser != "" {
		sc.db = endUserStore{Store: s.db, user: f.EndUser}
	}
	for _, p := range ps {
		sc.projects[p.ID] = p
	}
	if f.ProjectID != 0 {
		if _, ok := sc.projects[f.ProjectID]; !ok {
			return scope{}, apperr.New(apperr.NotFound, "project not found")
		}
	}
	return sc, nil
}

func (sc scope) projectName(id int64) string {
	if p, ok := sc.projects[id]; ok {
		return p.Name
	}
	return "deleted project"
}

func (s *Service) total(ctx context.Context, db Store, f store.AnalyticsFilter) (store.UsageAggregate, error) {
	if f.To <= f.From {
		return store.UsageAggregate{}, nil
	}
	rows, err := db.AggregateUsage(ctx, f, store.GroupNone, 0)
	if err != nil || len(rows) == 0 {
		return store.UsageAggregate{}, err
	}
	return rows[0], nil
}

// Range is the period an answer covers.
type Range struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Ranked is the leader of a breakdown (top provider, model or project).
type Ranked struct {
	Name      string  `json:"name"`
	Provider  string  `json:"provider,omitempty"`
	ProjectID int64   `json:"projectId,omitempty"`
	SpendUSD  float64 `json:"spendUsd"`
	Requests  int64   `json:"requests"`
}

// BudgetRisk is a project at or over 80% of one of its budgets in the current period.
type BudgetRisk struct {
	ProjectID      int64   `json:"projectId"`
	Name           string  `json:"name"`
	Period         string  `json:"period"` // "daily" or "monthly"
	SpendUSD       float64 `json:"spendUsd"`
	BudgetUSD      float64 `json:"budgetUsd"`
	UtilizationPct float64 `json:"utilizationPct"`
}

// RiskThreshold is the share of a budget from which a project is listed as at risk.
const RiskThreshold = 0.8

// Overview is the KPI summary.
type Overview struct {
	Range
	SpendTodayUSD float64      `json:"spendTodayUsd"`
	SpendMonthUSD float64      `json:"spendMonthUsd"`
	RequestsToday int64        `json:"requestsToday"`
	RequestsMonth int64        `json:"requestsMonth"`
	SpendUSD      float64      `json:"spendUsd"`
	Requests      int64        `json:"requests"`
	Errors        int64        `json:"errors"`
	Blocked       int64        `json:"blocked"`
	TopProvider   *Ranked      `json:"topProvider"`
	TopModel      *Ranked      `json:"topModel"`
	BudgetRisk    []BudgetRisk `json:"budgetRiskProjects"`
}

// Overview answers GET /api/analytics/overview. Today and this month are UTC periods up to now
// (they ignore from/to but honour the other filters); the other figures cover the range.
func (s *Service) Overview(ctx context.Context, actor account.Actor, wsID int64, f Filter) (Overview, error) {
	sc, err := s.open(ctx, actor, wsID, f)
	if err != nil {
		return Overview{}, err
	}
	now := s.now().UTC()
	o := Overview{Range: Range{f.From, f.To}}
	// The reads are independent: side by side, the answer takes as long as the longest.
	var (
		ps           periodSpend
		today, month store.UsageAggregate
		byModel      []store.UsageAggregate
	)
	filtered := f.Provider != "" || f.Model != "" || f.EndUser != ""
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { ps, err = s.periodSpend(gctx, sc, now); return err })
	// The model breakdown holds the range's totals, its leader and the provider leader in one
	// read of the range.
	g.Go(func() (err error) { byModel, err = sc.db.AggregateUsage(gctx, sc.f, store.GroupModel, 0); return err })
	if filtered {
		// The per-project spend behind budgets ignores these filters; the KPIs honour them.
		end := now.UnixMilli() + 1
		todayF, monthF := sc.f, sc.f
		todayF.From, todayF.To = dayStart(now).UnixMilli(), end
		monthF.From, monthF.To = monthStart(now).UnixMilli(), end
		g.Go(func() (err error) { today, err = s.total(gctx, sc.db, todayF); return err })
		g.Go(func() (err error) { month, err = s.total(gctx, sc.db, monthF); return err })
	}
	if err := g.Wait(); err != nil {
		return Overview{}, err
	}
	o.BudgetRisk = budgetRisk(sc, ps)
	if !filtered {
		today, month = sum(ps.day), sum(ps.month)
	}
	o.SpendTodayUSD, o.RequestsToday = usd(today.CostNano), today.Requests
	o.SpendMonthUSD, o.RequestsMonth = usd(month.CostNano), month.Requests
	all := sum(byModel)
	o.SpendUSD, o.Requests, o.Errors, o.Blocked = usd(all.CostNano), all.Requests, all.Errors, all.Blocked
	o.TopModel, o.TopProvider = tops(byModel)
	return o, nil
}

// tops is the leading model and the leading provider of a model breakdown (nil when empty),
// ranked as AggregateUsage ranks groups: by cost, then requests, descending, then by name.
func tops(byModel []store.UsageAggregate) (model, provider *Ranked) {
	if len(byModel) == 0 {
		return nil, nil
	}
	m := byModel[0]
	model = &Ranked{Name: m.Key, Provider: m.Provider, SpendUSD: usd(m.CostNano), Requests: m.Requests}
	byProvider := map[string]*store.UsageAggregate{}
	var best *store.UsageAggregate
	for _, r := range byModel {
		p := byProvider[r.Provider]
		if p == nil {
			p = &store.UsageAggregate{Key: r.Provider}
			byProvider[r.Provider] = p
		}
		p.CostNano += r.CostNano
		p.Requests += r.Requests
	}
	for _, p := range byProvider {
		if best == nil || p.CostNano > best.CostNano || p.CostNano == best.CostNano &&
			(p.Requests > best.Requests || p.Requests == best.Requests && p.Key < best.Key) {
			best = p
		}
	}
	return model, &Ranked{Name: best.Key, SpendUSD: usd(best.CostNano), Requests: best.Requests}
}

// sum adds up aggregates (Key, Provider, ProjectID are left empty).
func sum(rows []store.UsageAggregate) store.UsageAggregate {
	var t store.UsageAggregate
	for _, r := range rows {
		t.Requests += r.Requests
		t.CostNano += r.CostNano
		t.InputTokens += r.InputTokens
		t.OutputTokens += r.OutputTokens
		t.TotalTokens += r.TotalTokens
		t.LatencyMs += r.LatencyMs
		t.Errors += r.Errors
		t.Blocked += r.Blocked
		t.LastAt = max(t.LastAt, r.LastAt)
	}
	return t
}

// periodSpend is every project's usage today and this month (UTC, up to now), by spend
// descending. Budgets cap all spend, so only the projectId filter applies.
type periodSpend struct {
	day, month []store.UsageAggregate
}

func (s *Service) periodSpend(ctx context.Context, sc scope, now time.Time) (periodSpend, error) {
	dayF := store.AnalyticsFilter{WorkspaceID: sc.f.WorkspaceID, ProjectID: sc.f.ProjectID, From: dayStart(now).UnixMilli(), To: now.UnixMilli() + 1}
	monthF := dayF
	monthF.From = monthStart(now).UnixMilli()
	var ps periodSpend
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { ps.day, err = s.db.AggregateUsage(gctx, dayF, store.GroupProject, 0); return err })
	g.Go(func() (err error) {
		ps.month, err = s.db.AggregateUsage(gctx, monthF, store.GroupProject, 0)
		return err
	})
	if err := g.Wait(); err != nil {
		return periodSpend{}, err
	}
	return ps, nil
}

// budgetRisk lists the projects whose spend today or this month is at least 80% of the daily or
// monthly budget.
func budgetRisk(sc scope, ps periodSpend) []BudgetRisk {
	byProject := func(rows []store.UsageAggregate) map[int64]int64 {
		m := make(map[int64]int64, len(rows))
		for _, r := range rows {
			m[r.ProjectID] = r.CostNano
		}
		return m
	}
	daily, monthly := byProject(ps.day), byProject(ps.month)
	out := []BudgetRisk{}
	for _, p := range sc.order {
		if sc.f.ProjectID != 0 && p.ID != sc.f.ProjectID {
			continue
		}
		for _, b := range []struct {
			period string
			budget *int64
			spent  int64
		}{{"daily", nanoPtr(p.DailyBudget), daily[p.ID]}, {"monthly", nanoPtr(p.MonthlyBudget), monthly[p.ID]}} {
			if b.budget == nil || *b.budget <= 0 || float64(b.spent) < RiskThreshold*float64(*b.budget) {
				continue
			}
			out = append(out, BudgetRisk{ProjectID: p.ID, Name: p.Name, Period: b.period, SpendUSD: usd(b.spent),
				BudgetUSD: usd(*b.budget), UtilizationPct: pct(b.spent, *b.budget)})
		}
	}
	return out
}

// Day is one day of the trends series.
type Day struct {
	Date         string  `json:"date"`
	Requests     int64   `json:"requests"`
	SpendUSD     float64 `json:"spendUsd"`
	InputTokens  int64   `json:"inputTokens"`
	OutputTokens int64   `json:"outputTokens"`
	TotalTokens  int64   `json:"totalTokens"`
	Blocked      int64   `json:"blocked"`
	Errors       int64   `json:"errors"`
}

// Trends is the daily series.
type Trends struct {
	Range
	Data []Day `json:"data"`
}

// MaxTrendDays bounds the series (one row per day, empty days filled).
const MaxTrendDays = 732

// Trends answers GET /api/analytics/trends: one entry per UTC day of the range, days without
// usage included with zeros.
func (s *Service) Trends(ctx context.Context, actor account.Actor, wsID int64, f Filter) (Trends, error) {
	first, last := dayStart(f.From), dayStart(f.To.Add(-time.Millisecond))
	if last.Sub(first) > MaxTrendDays*24*time.Hour {
		return Trends{}, invalid("trends cover at most %d days", MaxTrendDays)
	}
	sc, err := s.open(ctx, actor, wsID, f)
	if err != nil {
		return Trends{}, err
	}
	rows, err := sc.db.AggregateUsage(ctx, sc.f, store.GroupDay, 0)
	if err != nil {
		return Trends{}, err
	}
	byDay := make(map[string]store.UsageAggregate, len(rows))
	for _, r := range rows {
		byDay[r.Key] = r
	}
	t := Trends{Range: Range{f.From, f.To}, Data: []Day{}}
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		key := d.Format("2006-01-02")
		r := byDay[key]
		t.Data = append(t.Data, Day{Date: key, Requests: r.Requests, SpendUSD: usd(r.CostNano), InputTokens: r.InputTokens,
			OutputTokens: r.OutputTokens, TotalTokens: r.TotalTokens, Blocked: r.Blocked, Errors: r.Errors})
	}
	return t, nil
}

// ProviderRow is one provider's breakdown. ErrorRate is failed (non-blocked) requests over all
// requests, 0..1.
type ProviderRow struct {
	Provider     string  `json:"provider"`
	SpendUSD     float64 `json:"spendUsd"`
	Requests     int64   `json:"requests"`
	InputTokens  int64   `json:"inputTokens"`
	OutputTokens int64   `json:"outputTokens"`
	Tokens       int64   `json:"tokens"`
	AvgLatencyMs float64 `json:"avgLatencyMs"`
	Errors       int64   `json:"errors"`
	ErrorRate    float64 `json:"errorRate"`
	Blocked      int64   `json:"blocked"`
}

// Providers answers GET /api/analytics/providers, by spend descending.
func (s *Service) Providers(ctx context.Context, actor account.Actor, wsID int64, f Filter) ([]ProviderRow, error) {
	sc, err := s.open(ctx, actor, wsID, f)
	if err != nil {
		return nil, err
	}
	rows, err := sc.db.AggregateUsage(ctx, sc.f, store.GroupProvider, 0)
	if err != nil {
		return nil, err
	}
	out := make([]ProviderRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, ProviderRow{Provider: r.Key, SpendUSD: usd(r.CostNano), Requests: r.Requests,
			InputTokens: r.InputTokens, OutputTokens: r.OutputTokens, Tokens: r.TotalTokens,
			AvgLatencyMs: ratio(r.LatencyMs, r.Requests), Errors: r.Errors, ErrorRate: ratio(r.Errors, r.Requests), Blocked: r.Blocked})
	}
	return out, nil
}

// ModelRow is one model's breakdown.
type ModelRow struct {
	Model                string  `json:"model"`
	Provider             string  `json:"provider"`
	SpendUSD             float64 `json:"spendUsd"`
	Requests             int64   `json:"requests"`
	AvgCostPerRequestUSD float64 `json:"avgCostPerRequestUsd"`
	AvgLatencyMs         float64 `json:"avgLatencyMs"`
	Tokens               int64   `json:"tokens"`
	Errors               int64   `json:"errors"`
	Blocked              int64   `json:"blocked"`
}

// Models answers GET /api/analytics/models: the 20 models with the most spend (the model that
// served the request, after any fallback).
func (s *Service) Models(ctx context.Context, actor account.Actor, wsID int64, f Filter) ([]ModelRow, error) {
	sc, err := s.open(ctx, actor, wsID, f)
	if err != nil {
		return nil, err
	}
	rows, err := sc.db.AggregateUsage(ctx, sc.f, store.GroupModel, ModelLimit)
	if err != nil {
		return nil, err
	}
	out := make([]ModelRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, ModelRow{Model: r.Key, Provider: r.Provider, SpendUSD: usd(r.CostNano), Requests: r.Requests,
			AvgCostPerRequestUSD: ratio(r.CostNano, r.Requests) / 1e9, AvgLatencyMs: ratio(r.LatencyMs, r.Requests),
			Tokens: r.TotalTokens, Errors: r.Errors, Blocked: r.Blocked})
	}
	return out, nil
}

// ProjectRow is one project's breakdown. Budget utilization is this month's spend over the
// monthly budget, in percent (null without a monthly budget). LastUsedAt is the newest request
// in the range.
type ProjectRow struct {
	ProjectID            int64      `json:"projectId"`
	Name                 string     `json:"name"`
	Requests             int64      `json:"requests"`
	SpendUSD             float64    `json:"spendUsd"`
	MonthSpendUSD        float64    `json:"monthSpendUsd"`
	MonthlyBudgetUSD     *float64   `json:"monthlyBudgetUsd"`
	BudgetUtilizationPct *float64   `json:"budgetUtilizationPct"`
	Blocked              int64      `json:"blocked"`
	Errors               int64      `json:"errors"`
	LastUsedAt           *time.Time `json:"lastUsedAt"`
}

// Projects answers GET /api/analytics/projects: every project of the workspace (and any deleted
// one with usage in the range), by spend descending.
func (s *Service) Projects(ctx context.Context, actor account.Actor, wsID int64, f Filter) ([]ProjectRow, error) {
	sc, err := s.open(ctx, actor, wsID, f)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	monthF := store.AnalyticsFilter{WorkspaceID: wsID, ProjectID: f.ProjectID, From: monthStart(now).UnixMilli(), To: now.UnixMilli() + 1}
	var rows, monthRows []store.UsageAggregate
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { rows, err = sc.db.AggregateUsage(gctx, sc.f, store.GroupProject, 0); return err })
	g.Go(func() (err error) {
		monthRows, err = s.db.AggregateUsage(gctx, monthF, store.GroupProject, 0)
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	month := make(map[int64]int64, len(monthRows))
	for _, r := range monthRows {
		month[r.ProjectID] = r.CostNano
	}
	out := []ProjectRow{}
	seen := map[int64]bool{}
	add := func(id int64, r store.UsageAggregate) {
		seen[id] = true
		row := ProjectRow{ProjectID: id, Name: sc.projectName(id), Requests: r.Requests, SpendUSD: usd(r.CostNano),
			MonthSpendUSD: usd(month[id]), Blocked: r.Blocked, Errors: r.Errors}
		if p, ok := sc.projects[id]; ok {
			if b := nanoPtr(p.MonthlyBudget); b != nil {
				v, u := usd(*b), pct(month[id], *b)
				row.MonthlyBudgetUSD, row.BudgetUtilizationPct = &v, &u
			}
		}
		if r.LastAt != 0 {
			t := time.UnixMilli(r.LastAt).UTC()
			row.LastUsedAt = &t
		}
		out = append(out, row)
	}
	for _, r := range rows {
		add(r.ProjectID, r)
	}
	for _, p := range sc.order {
		if !seen[p.ID] && (f.ProjectID == 0 || p.ID == f.ProjectID) {
			add(p.ID, store.UsageAggregate{})
		}
	}
	return out, nil
}

// nanoPtr reads an optional budget.
func nanoPtr(b *pricing.NanoUSD) *int64 {
	if b == nil {
		return nil
	}
	v := int64(*b)
	return &v
}

func dayStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// pct is spent/budget in percent, rounded to 0.1.
func pct(spent, budget int64) float64 {
	if budget <= 0 {
		return 0
	}
	return float64(int64(float64(spent)*1000/float64(budget)+0.5)) / 10
}
