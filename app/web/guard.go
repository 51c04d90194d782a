package web

import (
	"math"
	"strconv"

	"tokenguard/app/account"
	"tokenguard/app/budget"
	"tokenguard/app/pricing"
	"tokenguard/views"
)

// guardNames are the budgets' names on the dashboard.
var guardNames = map[budget.Budget]string{
	budget.ProjectDaily: "Daily", budget.ProjectMonthly: "Monthly",
	budget.WorkspaceDaily: "Workspace daily", budget.WorkspaceMonthly: "Workspace monthly",
}

// guard is what the budget engine does with p's requests now (budget.Engine.Standing), and
// every budget that applies with its share spent.
func (s *Server) guard(c *reqCtx, p account.Project) views.Guard {
	st := s.opt.Budget.Standing(budget.Subject{
		ProjectID: p.ID, WorkspaceID: c.ws.ID, HasFallback: p.FallbackModel != "",
		Project:   budget.Limits{Daily: p.DailyBudget, Monthly: p.MonthlyBudget},
		Workspace: budget.Limits{Daily: c.ws.DailyBudget, Monthly: c.ws.MonthlyBudget},
	})
	g := views.Guard{State: views.GuardNormal, FallbackModel: p.FallbackModel, Now: s.now(), ResetAt: st.ResetAt,
		Budget: guardNames[st.Budget], WorkspaceWide: st.Budget == budget.WorkspaceDaily || st.Budget == budget.WorkspaceMonthly}
	for _, b := range st.Budgets {
		g.Budgets = append(g.Budgets, views.GuardBudget{Name: guardNames[b.Budget], Spent: int64(b.Spent), Limit: int64(b.Limit),
			Permille: permille(b.Spent, b.Limit), Workspace: b.Budget == budget.WorkspaceDaily || b.Budget == budget.WorkspaceMonthly})
	}
	switch {
	case !p.Active:
		g.State = views.GuardDeactivated
	case st.Blocked:
		g.State = views.GuardBlocked
	case st.Fallback:
		g.State = views.GuardFallback
	}
	// The budget behind the state is raised in the project's settings, or the workspace's.
	switch {
	case g.WorkspaceWide && account.Can(c.ws.Role, account.UpdateWorkspace):
		g.RaiseURL = views.WSPath(c.ws.ID, "/settings")
	case !g.WorkspaceWide && account.Can(c.ws.Role, account.ManageProjects):
		g.RaiseURL = views.WSPath(c.ws.ID, "/projects/"+strconv.FormatInt(p.ID, 10)+"#settings-h")
	}
	return g
}

// permille is spent over limit in tenths of a percent, saturating (a zero limit is spent).
func permille(spent, limit pricing.NanoUSD) int64 {
	if limit <= 0 {
		return 1000
	}
	v := math.Round(float64(spent) * 1000 / float64(limit))
	if v >= math.MaxInt32 {
		return math.MaxInt32
	}
	return int64(v)
}
