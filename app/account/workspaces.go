package account

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"tokenguard/app/apperr"
	"tokenguard/app/pricing"
	"tokenguard/store"
)

// Plans are the billing plans a workspace can be on.
var Plans = []string{"free", "pro", "team", "enterprise"}

// createWorkspaceTx creates the soft-budget workspace a signup starts with.
func (s *Service) createWorkspaceTx(ctx context.Context, tx *sql.Tx, actor Actor, name string, now int64) (store.WorkspaceRole, error) {
	return s.insertWorkspaceTx(ctx, tx, actor, store.Workspace{Name: name, BudgetMode: string(BudgetSoft), CreatedAt: now})
}

// insertWorkspaceTx inserts w (on the free plan) with the actor as its owner and records
// workspace_created, in tx.
func (s *Service) insertWorkspaceTx(ctx context.Context, tx *sql.Tx, actor Actor, w store.Workspace) (store.WorkspaceRole, error) {
	w.Plan = "free"
	now := w.CreatedAt
	id, err := s.db.InsertWorkspace(ctx, tx, w)
	if err != nil {
		return store.WorkspaceRole{}, err
	}
	w.ID = id
	if err := s.db.InsertMembership(ctx, tx, id, actor.UserID, string(RoleOwner), now); err != nil {
		return store.WorkspaceRole{}, err
	}
	err = s.AppendAudit(ctx, tx, actor, id, AuditEvent{
		Action: AuditWorkspaceCreated, TargetType: "workspace", TargetID: id,
		Details: map[string]any{"name": w.Name, "budgetMode": w.BudgetMode},
	})
	return store.WorkspaceRole{Workspace: w, Role: string(RoleOwner), JoinedAt: now}, err
}

// WorkspaceInput is a new workspace; a nil BudgetMode is BudgetSoft.
type WorkspaceInput struct {
	Name       string
	BudgetMode *string // "soft" or "strict"
}

// CreateWorkspace creates a workspace with the actor as its owner. INVALID_REQUEST for a bad
// name (1–100 characters) or a budget mode other than "soft" or "strict".
func (s *Service) CreateWorkspace(ctx context.Context, actor Actor, in WorkspaceInput) (Workspace, error) {
	name := strings.TrimSpace(in.Name)
	if err := checkText("name", name, 1, 100); err != nil {
		return Workspace{}, err
	}
	mode, err := budgetModeOr(in.BudgetMode, BudgetSoft)
	if err != nil {
		return Workspace{}, err
	}
	var ws store.WorkspaceRole
	err = s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		ws, err = s.insertWorkspaceTx(ctx, tx, actor, store.Workspace{Name: name, BudgetMode: string(mode), CreatedAt: s.nowMs()})
		return err
	})
	if err != nil {
		return Workspace{}, err
	}
	return workspaceFrom(ws), nil
}

// Workspaces lists the user's live workspaces with their role, in the order they joined (the
// first is the default workspace).
func (s *Service) Workspaces(ctx context.Context, userID int64) ([]Workspace, error) {
	rows, err := s.db.WorkspacesOfUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]Workspace, len(rows))
	for i, r := range rows {
		out[i] = workspaceFrom(r)
	}
	return out, nil
}

// Workspace returns one workspace as the actor sees it (NOT_FOUND for non-members).
func (s *Service) Workspace(ctx context.Context, actor Actor, workspaceID int64) (Workspace, error) {
	return s.Authorize(ctx, actor, workspaceID, ViewWorkspace)
}

// DefaultWorkspace returns the user's first live workspace, or NOT_FOUND when they have none
// left (every one deleted or left).
func (s *Service) DefaultWorkspace(ctx context.Context, userID int64) (Workspace, error) {
	ws, err := s.Workspaces(ctx, userID)
	if err != nil {
		return Workspace{}, err
	}
	if len(ws) == 0 {
		return Workspace{}, apperr.New(apperr.NotFound, "You are not a member of any workspace; create one first")
	}
	return ws[0], nil
}

// WorkspacePatch is a partial update of a workspace; nil/unset fields stay as they are.
type WorkspacePatch struct {
	Name          *string
	DailyBudget   Budget
	MonthlyBudget Budget
	BudgetMode    *string // "soft" or "strict"
	// RPMLimit and TPMLimit are requests and tokens per minute over all its projects, 0 (no
	// limit) to MaxRateLimit.
	RPMLimit, TPMLimit *int64
}

// UpdateWorkspace renames a workspace and/or sets its budgets, budget mode and rate limits;
// owners only. It records workspace_updated with what changed and evicts the workspace's cached
// keys when a budget, the budget mode or a limit changed, so the proxy applies them on its next
// request.
func (s *Service) UpdateWorkspace(ctx context.Context, actor Actor, workspaceID int64, p WorkspacePatch) (Workspace, error) {
	ws, err := s.Authorize(ctx, actor, workspaceID, UpdateWorkspace)
	if err != nil {
		return Workspace{}, err
	}
	next := ws
	changes := map[string]any{}
	if p.Name != nil {
		name := strings.TrimSpace(*p.Name)
		if err := checkText("name", name, 1, 100); err != nil {
			return Workspace{}, err
		}
		if name != ws.Name {
			changes["name"] = map[string]any{"from": ws.Name, "to": name}
		}
		next.Name = name
	}
	if next.DailyBudget, err = p.DailyBudget.apply("dailyBudgetUsd", ws.DailyBudget); err != nil {
		return Workspace{}, err
	}
	if next.MonthlyBudget, err = p.MonthlyBudget.apply("monthlyBudgetUsd", ws.MonthlyBudget); err != nil {
		return Workspace{}, err
	}
	budgetsChanged := diffBudget(changes, "dailyBudgetUsd", ws.DailyBudget, next.DailyBudget)
	budgetsChanged = diffBudget(changes, "monthlyBudgetUsd", ws.MonthlyBudget, next.MonthlyBudget) || budgetsChanged
	if next.BudgetMode, err = budgetModeOr(p.BudgetMode, ws.BudgetMode); err != nil {
		return Workspace{}, err
	}
	budgetsChanged = diffBudgetMode(changes, ws.BudgetMode, next.BudgetMode) || budgetsChanged
	n := len(changes)
	if next.RPMLimit, err = rateLimitOr(changes, "rpmLimit", p.RPMLimit, ws.RPMLimit); err != nil {
		return Workspace{}, err
	}
	if next.TPMLimit, err = rateLimitOr(changes, "tpmLimit", p.TPMLimit, ws.TPMLimit); err != nil {
		return Workspace{}, err
	}
	budgetsChanged = len(changes) > n || budgetsChanged
	if len(changes) == 0 {
		return ws, nil
	}
	err = s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		err := s.db.UpdateWorkspace(ctx, tx, store.Workspace{
			ID: workspaceID, Name: next.Name,
			DailyBudgetNano: int64Ptr(next.DailyBudget), MonthlyBudgetNano: int64Ptr(next.MonthlyBudget),
			BudgetMode: string(next.BudgetMode), RPMLimit: next.RPMLimit, TPMLimit: next.TPMLimit,
		})
		if errors.Is(err, store.ErrNotFound) {
			return notFound("workspace")
		}
		if err != nil {
			return err
		}
		return s.AppendAudit(ctx, tx, actor, workspaceID, AuditEvent{
			Action: AuditWorkspaceUpdated, TargetType: "workspace", TargetID: workspaceID, Details: changes,
		})
	})
	if err != nil {
		return Workspace{}, err
	}
	if budgetsChanged {
		s.evictWorkspace(workspaceID)
	}
	return next, nil
}

// diffBudget records a budget change in changes and reports whether there was one.
func diffBudget(changes map[string]any, field string, from, to *pricing.NanoUSD) bool {
	if (from == nil) == (to == nil) && (from == nil || *from == *to) {
		return false
	}
	changes[field] = map[string]any{"from": usdOrNil(from), "to": usdOrNil(to)}
	return true
}

// diffBudgetMode records a budget mode change in changes and reports whether there was one.
func diffBudgetMode(changes map[string]any, from, to BudgetMode) bool {
	if from == to {
		return false
	}
	changes["budgetMode"] = map[string]any{"from": from, "to": to}
	return true
}

func usdOrNil(n *pricing.NanoUSD) any {
	if n == nil {
		return nil
	}
	return n.Dollars()
}

// DeleteWorkspace soft-deletes a workspace; owners only. confirmName must equal the workspace's
// exact name (INVALID_REQUEST otherwise), and a user's only workspace cannot be deleted
// (CONFLICT). The workspace leaves every listing at once and its projects' keys stop working;
// its rows stay in the database.
func (s *Service) DeleteWorkspace(ctx context.Context, actor Actor, workspaceID int64, confirmName string) error {
	ws, err := s.Authorize(ctx, actor, workspaceID, DeleteWorkspace)
	if err != nil {
		return err
	}
	if confirmName != ws.Name {
		return apperr.New(apperr.InvalidRequest, "confirmName must be the workspace's exact name")
	}
	err = s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		n, err := s.db.CountLiveWorkspaces(ctx, tx, actor.UserID)
		if err != nil {
			return err
		}
		if n <= 1 {
			return apperr.New(apperr.Conflict, "You cannot delete your only workspace; create another one first")
		}
		err = s.db.SoftDeleteWorkspace(ctx, tx, workspaceID, s.nowMs())
		if errors.Is(err, store.ErrNotFound) {
			return notFound("workspace")
		}
		if err != nil {
			return err
		}
		return s.AppendAudit(ctx, tx, actor, workspaceID, AuditEvent{
			Action: AuditWorkspaceDeleted, TargetType: "workspace", TargetID: workspaceID,
			Details: map[string]any{"name": ws.Name},
		})
	})
	if err != nil {
		return err
	}
	s.evictWorkspace(workspaceID)
	return nil
}

// SetPlan changes a workspace's billing plan (one of Plans); owners only. It records
// billing_plan_changed.
func (s *Service) SetPlan(ctx context.Context, actor Actor, workspaceID int64, plan string) (Workspace, error) {
	ws, err := s.Authorize(ctx, actor, workspaceID, ManageBilling)
	if err != nil {
		return Workspace{}, err
	}
	valid := false
	for _, p := range Plans {
		valid = valid || p == plan
	}
	if !valid {
		return Workspace{}, apperr.New(apperr.InvalidRequest, "plan must be one of %s", strings.Join(Plans, ", "))
	}
	if plan == ws.Plan {
		return ws, nil
	}
	err = s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		if err := s.db.SetWorkspacePlan(ctx, tx, workspaceID, plan); err != nil {
			return err
		}
		return s.AppendAudit(ctx, tx, actor, workspaceID, AuditEvent{
			Action: AuditBillingPlanChanged, TargetType: "workspace", TargetID: workspaceID,
			Details: map[string]any{"from": ws.Plan, "to": plan},
		})
	})
	if err != nil {
		return Workspace{}, err
	}
	ws.Plan = plan
	return ws, nil
}
