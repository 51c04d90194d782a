package analytics

import (
	"context"
	"math"
	"time"

	"tokenguard/app/account"
)

// Forecast is where this UTC month's spend ends at its pace so far, and when each monthly
// budget runs out at that pace. Only the projectId filter applies (budgets cap all spend).
type Forecast struct {
	Now, MonthStart, MonthEnd time.Time
	// SpendNano is the month's spend so far; MonthEndNano what it reaches at the month's end
	// if it goes on at the same average rate.
	SpendNano, MonthEndNano int64
	// Budgets are the monthly budgets that apply: the workspace's (ProjectID 0, when no project
	// is selected) and each project's.
	Budgets []Runout
}

// Runout is one monthly budget at this month's pace. RunsOut is when spend reaches the budget
// (zero when that is not this month); Spent is set when it already has.
type Runout struct {
	Name       string
	ProjectID  int64
	BudgetNano int64
	SpendNano  int64
	Spent      bool
	RunsOut    time.Time
}

// minElapsed keeps the pace of a month's first minutes from being extrapolated from almost
// nothing.
const minElapsed = time.Hour

// Forecast answers the analytics page's forecast from the month's per-project spend, as
// budgets count it.
func (s *Service) Forecast(ctx context.Context, actor account.Actor, wsID int64, f Filter) (Forecast, error) {
	sc, err := s.open(ctx, actor, wsID, f)
	if err != nil {
		return Forecast{}, err
	}
	now := s.now().UTC()
	ps, err := s.periodSpend(ctx, sc, now)
	if err != nil {
		return Forecast{}, err
	}
	start := monthStart(now)
	fc := Forecast{Now: now, MonthStart: start, MonthEnd: start.AddDate(0, 1, 0), SpendNano: sum(ps.month).CostNano}
	elapsed := max(now.Sub(start), minElapsed)
	rate := float64(fc.SpendNano) / float64(elapsed) // nano-dollars per nanosecond of the month
	fc.MonthEndNano = satFloat(float64(fc.SpendNano) + rate*float64(fc.MonthEnd.Sub(now)))
	runout := func(name string, id, budget, spent int64) {
		r := Runout{Name: name, ProjectID: id, BudgetNano: budget, SpendNano: spent, Spent: spent >= budget}
		if !r.Spent && spent > 0 {
			// Each budget runs out at its own spender's pace.
			own := float64(spent) / float64(elapsed)
			if left := float64(budget-spent) / own; left < float64(fc.MonthEnd.Sub(now)) {
				r.RunsOut = now.Add(time.Duration(left))
			}
		}
		fc.Budgets = append(fc.Budgets, r)
	}
	if b := nanoPtr(sc.ws.MonthlyBudget); b != nil && f.ProjectID == 0 {
		runout(sc.ws.Name, 0, *b, fc.SpendNano)
	}
	month := map[int64]int64{}
	for _, r := range ps.month {
		month[r.ProjectID] = r.CostNano
	}
	for _, p := range sc.order {
		if b := nanoPtr(p.MonthlyBudget); b != nil && (f.ProjectID == 0 || p.ID == f.ProjectID) {
			runout(p.Name, p.ID, *b, month[p.ID])
		}
	}
	return fc, nil
}

// satFloat converts a non-negative amount to int64, saturating instead of overflowing.
func satFloat(v float64) int64 {
	if v >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}
