package metrics

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tokenguard/app/budget"
	"tokenguard/app/pricing"
	"tokenguard/app/usage"
	"tokenguard/store"
)

// Sources are what the scrape-time collectors read. A nil field registers no metrics for it.
type Sources struct {
	// Usage is the usage writer's Status.
	Usage func() usage.Status
	// Mail is the mailer's queue: messages ready to send and messages waiting to be retried.
	Mail func() (ready, waiting int)
	// Budgets lists the budgets set (store.DB.ListBudgetLimits); Spend is the engine's spend
	// (budget.Engine.Spend). Both are needed for the budget gauges.
	Budgets func(context.Context) (projects, workspaces []store.BudgetLimits, err error)
	Spend   func(budget.Scope, int64) budget.Spend
}

// MaxBudgetSeries is how many projects, and how many workspaces, get a utilisation gauge: those
// of highest utilisation (the higher of daily and monthly). Every budget, past the cut too, is
// counted in tokenguard_budgets by level, so none goes unseen.
const MaxBudgetSeries = 100

// budgetTimeout bounds the budget listing of one scrape.
const budgetTimeout = 5 * time.Second

// Watch registers on reg the collectors of every source set in s; they read their source when
// /metrics is scraped, so the request path pays nothing for them.
func Watch(reg prometheus.Registerer, s Sources) error {
	var cs []prometheus.Collector
	if s.Usage != nil {
		gauge := func(name, help string, v func(usage.Status) float64) prometheus.Collector {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return v(s.Usage()) })
		}
		cs = append(cs,
			gauge("tokenguard_usage_queue_rows", "Usage rows in memory, not yet stored (the batch being written included).",
				func(st usage.Status) float64 { return float64(st.Queued) }),
			gauge("tokenguard_usage_inflight_slots", "Usage-row slots held by requests in flight.",
				func(st usage.Status) float64 { return float64(st.Reserved) }),
			gauge("tokenguard_usage_queue_max", "Bound on queued rows plus in-flight slots (USAGE_QUEUE_MAX); at it metered requests get 503.",
				func(st usage.Status) float64 { return float64(st.Max) }),
			gauge("tokenguard_usage_write_failing", "1 while the usage writer's writes are failing, else 0.",
				func(st usage.Status) float64 {
					if st.FailingSince.IsZero() {
						return 0
					}
					return 1
				}),
		)
	}
	if s.Mail != nil {
		cs = append(cs, &mailCollector{queued: s.Mail, desc: prometheus.NewDesc("tokenguard_mail_queue_messages",
			"Mail in memory, by state: ready to send, or waiting to be retried.", []string{"state"}, nil)})
	}
	if s.Budgets != nil && s.Spend != nil {
		cs = append(cs, &budgetCollector{list: s.Budgets, spend: s.Spend,
			utilization: prometheus.NewDesc("tokenguard_budget_utilization_ratio",
				"Committed spend over the budget in the current UTC day or month (1 = at the budget), for the "+
					strconv.Itoa(MaxBudgetSeries)+" projects and workspaces of highest utilisation.",
				[]string{"scope", "id", "workspace_id", "period"}, nil),
			byLevel: prometheus.NewDesc("tokenguard_budgets",
				"Budgets set, by scope, period and level: under_80, 80_to_100 (the fallback applies), at_or_over_100 (requests are refused).",
				[]string{"scope", "period", "level"}, nil),
		})
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

type mailCollector struct {
	queued func() (ready, waiting int)
	desc   *prometheus.Desc
}

func (c *mailCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *mailCollector) Collect(ch chan<- prometheus.Metric) {
	ready, waiting := c.queued()
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(ready), "ready")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(waiting), "waiting")
}

// budgetCollector reads the budgets set from the database and the spend from the budget engine
// at each scrape: one query and one engine lookup per budget, no state of its own.
type budgetCollector struct {
	list                 func(context.Context) (projects, workspaces []store.BudgetLimits, err error)
	spend                func(budget.Scope, int64) budget.Spend
	utilization, byLevel *prometheus.Desc
}

func (c *budgetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.utilization
	ch <- c.byLevel
}

// standing is one project's or workspace's utilisation of its daily and monthly budgets
// (NaN-free: -1 when that budget is not set).
type standing struct {
	id, workspaceID int64
	day, month      float64
}

func (s standing) top() float64 { return max(s.day, s.month) }

func (c *budgetCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), budgetTimeout)
	defer cancel()
	projects, workspaces, err := c.list(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.utilization, err)
		return
	}
	c.collectScope(ch, budget.ProjectScope, projects)
	c.collectScope(ch, budget.WorkspaceScope, workspaces)
}

// Levels of tokenguard_budgets, by index.
var levels = [...]string{"under_80", "80_to_100", "at_or_over_100"}

func levelIndex(u float64) int {
	switch {
	case u >= budget.BlockLevel:
		return 2
	case u >= budget.FallbackLevel:
		return 1
	}
	return 0
}

func (c *budgetCollector) collectScope(ch chan<- prometheus.Metric, scope budget.Scope, limits []store.BudgetLimits) {
	st := make([]standing, len(limits))
	var counts [2][len(levels)]int // by period (day, month), then level
	for i, l := range limits {
		sp := c.spend(scope, l.ID)
		st[i] = standing{id: l.ID, workspaceID: l.WorkspaceID, day: utilization(sp.Day, l.Daily), month: utilization(sp.Month, l.Monthly)}
		for p, u := range [2]float64{st[i].day, st[i].month} {
			if u >= 0 {
				counts[p][levelIndex(u)]++
			}
		}
	}
	for p, period := range [2]string{"daily", "monthly"} {
		for lv, name := range levels {
			ch <- prometheus.MustNewConstMetric(c.byLevel, prometheus.GaugeValue, float64(counts[p][lv]), string(scope), period, name)
		}
	}
	if len(st) > MaxBudgetSeries {
		slices.SortFunc(st, func(a, b standing) int { return cmp.Or(cmp.Compare(b.top(), a.top()), cmp.Compare(a.id, b.id)) })
		st = st[:MaxBudgetSeries]
	}
	for _, s := range st {
		id, ws := strconv.FormatInt(s.id, 10), strconv.FormatInt(s.workspaceID, 10)
		if s.day >= 0 {
			ch <- prometheus.MustNewConstMetric(c.utilization, prometheus.GaugeValue, s.day, string(scope), id, ws, "daily")
		}
		if s.month >= 0 {
			ch <- prometheus.MustNewConstMetric(c.utilization, prometheus.GaugeValue, s.month, string(scope), id, ws, "monthly")
		}
	}
}

// utilization is spend over limit as the budget engine counts it (a zero budget is always at
// 100%), or -1 when no limit is set.
func utilization(spend pricing.NanoUSD, limit *int64) float64 {
	switch {
	case limit == nil:
		return -1
	case *limit <= 0:
		return budget.BlockLevel
	}
	return float64(spend) / float64(*limit)
}
