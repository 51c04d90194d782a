package proxy

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"

	"tokenguard/app/budget"
	"tokenguard/app/ratelimit"
)

// budgetInfo is the answer of GET /proxy/budget: what the holder of a project key may know of
// the limits its requests are held to, and nothing of any other project.
type budgetInfo struct {
	ProjectID   int64 `json:"projectId"`
	WorkspaceID int64 `json:"workspaceId"`
	// Level and RemainingUSD are the tightest budget's, as in the budget headers; "ok" and null
	// when no budget applies.
	Level        string          `json:"level"`
	RemainingUSD *float64        `json:"remainingUsd"`
	Budgets      []budgetJSON    `json:"budgets"`
	RateLimits   []rateLimitJSON `json:"rateLimits"`
}

type budgetJSON struct {
	Scope        string    `json:"scope"`  // project or workspace
	Period       string    `json:"period"` // daily or monthly
	Mode         string    `json:"mode"`   // soft or strict
	LimitUSD     float64   `json:"limitUsd"`
	SpentUSD     float64   `json:"spentUsd"`
	RemainingUSD float64   `json:"remainingUsd"`
	Level        string    `json:"level"`
	ResetAt      time.Time `json:"resetAt"`
}

type rateLimitJSON struct {
	Scope     ratelimit.Scope `json:"scope"`
	Kind      ratelimit.Kind  `json:"kind"` // requests or tokens (per minute)
	Limit     int64           `json:"limit"`
	Remaining int64           `json:"remaining"`
	// ResetSeconds is the RateLimit-Reset of the limit: seconds until the current window ends.
	ResetSeconds int64 `json:"resetSeconds"`
}

// serveBudget answers GET /proxy/budget for the project of the request's key, in any of the
// proxy's key slots; a missing, invalid or deactivated key gets the proxy's usual 401.
func (p *Proxy) serveBudget(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	proj, _, ok := p.authenticate(w, r)
	if !ok {
		return
	}
	st := p.cfg.Budget.Standing(proj.subject)
	out := budgetInfo{
		ProjectID: proj.id, WorkspaceID: proj.workspaceID, Level: levelOK,
		Budgets: []budgetJSON{}, RateLimits: []rateLimitJSON{},
	}
	if b, ok := tightest(st); ok {
		out.Level = budgetLevel(b, proj.subject.HasFallback)
		left := max(b.Limit-b.Spent, 0).Dollars()
		out.RemainingUSD = &left
	}
	for _, b := range st.Budgets {
		scope, limits := "project", proj.subject.Project
		if b.Budget == budget.WorkspaceDaily || b.Budget == budget.WorkspaceMonthly {
			scope, limits = "workspace", proj.subject.Workspace
		}
		period := "daily"
		if b.Budget == budget.ProjectMonthly || b.Budget == budget.WorkspaceMonthly {
			period = "monthly"
		}
		mode := "soft"
		if limits.Strict {
			mode = "strict"
		}
		out.Budgets = append(out.Budgets, budgetJSON{
			Scope: scope, Period: period, Mode: mode, LimitUSD: b.Limit.Dollars(), SpentUSD: b.Spent.Dollars(),
			RemainingUSD: max(b.Limit-b.Spent, 0).Dollars(), Level: budgetLevel(b, proj.subject.HasFallback), ResetAt: b.ResetAt.UTC(),
		})
	}
	for _, s := range p.limits.Peek(proj.limits) {
		out.RateLimits = append(out.RateLimits, rateLimitJSON{Scope: s.Scope, Kind: s.Kind, Limit: s.Limit,
			Remaining: s.Remaining, ResetSeconds: ceilSeconds(s.Reset)})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(out)
}
