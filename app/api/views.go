package api

import (
	"encoding/json"
	"time"

	"tokenguard/app/account"
	"tokenguard/app/pricing"
)

// The JSON shapes of DESIGN §5. Money is float USD at this edge (nano-dollars inside); times are
// RFC 3339 UTC.

type userJSON struct {
	ID        int64     `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
}

func userView(u account.User) userJSON {
	return userJSON{ID: u.ID, Email: u.Email, Name: u.Name, CreatedAt: u.CreatedAt}
}

type workspaceJSON struct {
	ID               int64     `json:"id"`
	Name             string    `json:"name"`
	Role             string    `json:"role"`
	DailyBudgetUSD   *float64  `json:"dailyBudgetUsd"`
	MonthlyBudgetUSD *float64  `json:"monthlyBudgetUsd"`
	BudgetMode       string    `json:"budgetMode"`
	Plan             string    `json:"plan"`
	CreatedAt        time.Time `json:"createdAt"`
	RPMLimit         int64     `json:"rpmLimit"`
	TPMLimit         int64     `json:"tpmLimit"`
}

func workspaceView(w account.Workspace) workspaceJSON {
	return workspaceJSON{
		ID: w.ID, Name: w.Name, Role: string(w.Role), Plan: w.Plan, CreatedAt: w.CreatedAt,
		DailyBudgetUSD: usd(w.DailyBudget), MonthlyBudgetUSD: usd(w.MonthlyBudget), BudgetMode: string(w.BudgetMode),
		RPMLimit: w.RPMLimit, TPMLimit: w.TPMLimit,
	}
}

type projectJSON struct {
	ID               int64              `json:"id"`
	WorkspaceID      int64              `json:"workspaceId"`
	Name             string             `json:"name"`
	KeyPrefix        string             `json:"keyPrefix"`
	DailyBudgetUSD   *float64           `json:"dailyBudgetUsd"`
	MonthlyBudgetUSD *float64           `json:"monthlyBudgetUsd"`
	BudgetMode       string             `json:"budgetMode"`
	FallbackModel    string             `json:"fallbackModel"`
	AlertEmail       string             `json:"alertEmail"`
	Active           bool               `json:"active"`
	LastUsedAt       *time.Time         `json:"lastUsedAt"`
	CreatedAt        time.Time          `json:"createdAt"`
	UpdatedAt        time.Time          `json:"updatedAt"`
	ProviderKeys     map[string]*string `json:"providerKeys"`
	// The controls of DESIGN §7: 0 is no limit, [] every model.
	RPMLimit              int64    `json:"rpmLimit"`
	TPMLimit              int64    `json:"tpmLimit"`
	AllowedModels         []string `json:"allowedModels"`
	FallbackOnError       bool     `json:"fallbackOnError"`
	EndUserDailyBudgetUSD float64  `json:"endUserDailyBudgetUsd"`
}

func projectView(p account.Project) projectJSON {
	return projectJSON{
		ID: p.ID, WorkspaceID: p.WorkspaceID, Name: p.Name, KeyPrefix: p.KeyPrefix,
		DailyBudgetUSD: usd(p.DailyBudget), MonthlyBudgetUSD: usd(p.MonthlyBudget), BudgetMode: string(p.BudgetMode),
		FallbackModel: p.FallbackModel, AlertEmail: p.AlertEmail, Active: p.Active,
		LastUsedAt: p.LastUsedAt, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
		ProviderKeys: maskedKeys(p),
		RPMLimit:     p.RPMLimit, TPMLimit: p.TPMLimit, AllowedModels: append([]string{}, p.AllowedModels...),
		FallbackOnError: p.FallbackOnError, EndUserDailyBudgetUSD: p.EndUserDailyBudget.Dollars(),
	}
}

// maskedKeys lists every provider, null when no key is stored; values are masked ("sk-…abcd").
func maskedKeys(p account.Project) map[string]*string {
	out := make(map[string]*string, len(account.Providers))
	for _, name := range account.Providers {
		if m, ok := p.ProviderKeys[name]; ok {
			out[name] = &m
		} else {
			out[name] = nil
		}
	}
	return out
}

type memberJSON struct {
	UserID   int64     `json:"userId"`
	Email    string    `json:"email"`
	Name     string    `json:"name"`
	Role     string    `json:"role"`
	JoinedAt time.Time `json:"joinedAt"`
}

func memberView(m account.Member) memberJSON {
	return memberJSON{UserID: m.UserID, Email: m.Email, Name: m.Name, Role: string(m.Role), JoinedAt: m.JoinedAt}
}

type auditJSON struct {
	ID          int64           `json:"id"`
	WorkspaceID int64           `json:"workspaceId"`
	ActorUserID *int64          `json:"actorUserId"`
	ActorEmail  string          `json:"actorEmail"`
	Action      string          `json:"action"`
	TargetType  string          `json:"targetType"`
	TargetID    string          `json:"targetId"`
	Details     json.RawMessage `json:"details"`
	IP          string          `json:"ip"`
	CreatedAt   time.Time       `json:"createdAt"`
}

func auditView(e account.AuditEntry) auditJSON {
	out := auditJSON{
		ID: e.ID, WorkspaceID: e.WorkspaceID, ActorEmail: e.ActorEmail, Action: e.Action,
		TargetType: e.TargetType, TargetID: e.TargetID, Details: e.Details, IP: e.IP, CreatedAt: e.CreatedAt,
	}
	if e.ActorUserID != 0 {
		id := e.ActorUserID
		out.ActorUserID = &id
	}
	if len(out.Details) == 0 {
		out.Details = json.RawMessage("{}")
	}
	return out
}

func usd(n *pricing.NanoUSD) *float64 {
	if n == nil {
		return nil
	}
	v := n.Dollars()
	return &v
}

// list is the shape of every list response: {"data":[…]} plus "nextCursor" when more pages
// follow.
type list[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"nextCursor,omitempty"`
}

func mapList[S, T any](in []S, f func(S) T) []T {
	out := make([]T, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}
