package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"tokenguard/app/account"
	"tokenguard/app/apperr"
)

func invalid(format string, args ...any) error {
	return apperr.New(apperr.InvalidRequest, format, args...)
}

// mode is a PATCH's budgetMode: absent is nil (unchanged); null is refused, since a mode cannot
// be cleared, only set to "soft" or "strict" (which the service checks).
func (o optString) mode() (*string, error) {
	if !o.set {
		return nil, nil
	}
	if o.null {
		return nil, invalid(`budgetMode cannot be null; use "soft" or "strict"`)
	}
	return &o.v, nil
}

// listWorkspaces: GET /api/workspaces → {data:[workspace…]} with the caller's role in each.
func (a *API) listWorkspaces(w http.ResponseWriter, r *http.Request, _ httprouter.Params, c Caller) error {
	ws, err := a.acct.Workspaces(r.Context(), c.User.ID)
	if err != nil {
		return err
	}
	return Reply(w, http.StatusOK, list[workspaceJSON]{Data: mapList(ws, workspaceView)})
}

type createWorkspaceRequest struct {
	Name       string  `json:"name"`
	BudgetMode *string `json:"budgetMode"`
}

// createWorkspace: POST /api/workspaces {name,budgetMode} → 201 {workspace}; budgetMode absent
// or null is "soft".
func (a *API) createWorkspace(w http.ResponseWriter, r *http.Request, _ httprouter.Params, c Caller) error {
	var req createWorkspaceRequest
	if err := a.Decode(w, r, &req); err != nil {
		return err
	}
	ws, err := a.acct.CreateWorkspace(r.Context(), c.Actor, account.WorkspaceInput{Name: req.Name, BudgetMode: req.BudgetMode})
	if err != nil {
		return err
	}
	return Reply(w, http.StatusCreated, map[string]any{"workspace": workspaceView(ws)})
}

// getWorkspace: GET /api/workspaces/:id → {workspace}.
func (a *API) getWorkspace(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c Caller) error {
	id, err := pathID(ps, "id", "workspace")
	if err != nil {
		return err
	}
	ws, err := a.acct.Workspace(r.Context(), c.Actor, id)
	if err != nil {
		return err
	}
	return Reply(w, http.StatusOK, map[string]any{"workspace": workspaceView(ws)})
}

type patchWorkspaceRequest struct {
	Name             optString `json:"name"`
	DailyBudgetUSD   optNumber `json:"dailyBudgetUsd"`
	MonthlyBudgetUSD optNumber `json:"monthlyBudgetUsd"`
	BudgetMode       optString `json:"budgetMode"`
	RPMLimit         optNumber `json:"rpmLimit"`
	TPMLimit         optNumber `json:"tpmLimit"`
}

// patchWorkspace: PATCH /api/workspaces/:id {name,dailyBudgetUsd,monthlyBudgetUsd,budgetMode,
// rpmLimit,tpmLimit} → {workspace}; a null limit is 0, no limit.
func (a *API) patchWorkspace(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c Caller) error {
	id, err := pathID(ps, "id", "workspace")
	if err != nil {
		return err
	}
	var req patchWorkspaceRequest
	if err := a.Decode(w, r, &req); err != nil {
		return err
	}
	patch := account.WorkspacePatch{
		DailyBudget:   account.Budget{Set: req.DailyBudgetUSD.set, Value: req.DailyBudgetUSD.v},
		MonthlyBudget: account.Budget{Set: req.MonthlyBudgetUSD.set, Value: req.MonthlyBudgetUSD.v},
	}
	if req.Name.set {
		if req.Name.null {
			return invalid("name cannot be null")
		}
		patch.Name = &req.Name.v
	}
	if patch.BudgetMode, err = req.BudgetMode.mode(); err != nil {
		return err
	}
	if patch.RPMLimit, err = wholeLimit("rpmLimit", req.RPMLimit); err != nil {
		return err
	}
	if patch.TPMLimit, err = wholeLimit("tpmLimit", req.TPMLimit); err != nil {
		return err
	}
	ws, err := a.acct.UpdateWorkspace(r.Context(), c.Actor, id, patch)
	if err != nil {
		return err
	}
	return Reply(w, http.StatusOK, map[string]any{"workspace": workspaceView(ws)})
}

type deleteWorkspaceRequest struct {
	ConfirmName string `json:"confirmName"`
}

// deleteWorkspace: DELETE /api/workspaces/:id {confirmName} → 204.
func (a *API) deleteWorkspace(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c Caller) error {
	id, err := pathID(ps, "id", "workspace")
	if err != nil {
		return err
	}
	// Authorize before reading the body, so an outsider learns nothing from a body error.
	if _, err := a.acct.Authorize(r.Context(), c.Actor, id, account.DeleteWorkspace); err != nil {
		return err
	}
	var req deleteWorkspaceRequest
	if err := a.Decode(w, r, &req); err != nil {
		return err
	}
	if err := a.acct.DeleteWorkspace(r.Context(), c.Actor, id, req.ConfirmName); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type billingRequest struct {
	Plan string `json:"plan"`
}

// putBilling: PUT /api/workspaces/:id/billing {plan} → {workspace}; owners only.
func (a *API) putBilling(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c Caller) error {
	id, err := pathID(ps, "id", "workspace")
	if err != nil {
		return err
	}
	var req billingRequest
	if err := a.Decode(w, r, &req); err != nil {
		return err
	}
	ws, err := a.acct.SetPlan(r.Context(), c.Actor, id, req.Plan)
	if err != nil {
		return err
	}
	return Reply(w, http.StatusOK, map[string]any{"workspace": workspaceView(ws)})
}

// listMembers: GET /api/workspaces/:id/members → {data:[member…]}.
func (a *API) listMembers(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c Caller) error {
	id, err := pathID(ps, "id", "workspace")
	if err != nil {
		return err
	}
	ms, err := a.acct.Members(r.Context(), c.Actor, id)
	if err != nil {
		return err
	}
	return Reply(w, http.StatusOK, list[memberJSON]{Data: mapList(ms, memberView)})
}

type patchMemberRequest struct {
	Role string `json:"role"`
}

// patchMember: PATCH /api/workspaces/:id/members/:userId {role} → {member}.
func (a *API) patchMember(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c Caller) error {
	id, err := pathID(ps, "id", "workspace")
	if err != nil {
		return err
	}
	userID, err := pathID(ps, "userId", "member")
	if err != nil {
		return err
	}
	var req patchMemberRequest
	if err := a.Decode(w, r, &req); err != nil {
		return err
	}
	m, err := a.acct.ChangeRole(r.Context(), c.Actor, id, userID, account.Role(req.Role))
	if err != nil {
		return err
	}
	return Reply(w, http.StatusOK, map[string]any{"member": memberView(m)})
}

// deleteMember: DELETE /api/workspaces/:id/members/:userId → 204 (own id: leave).
func (a *API) deleteMember(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c Caller) error {
	id, err := pathID(ps, "id", "workspace")
	if err != nil {
		return err
	}
	userID, err := pathID(ps, "userId", "member")
	if err != nil {
		return err
	}
	if err := a.acct.RemoveMember(r.Context(), c.Actor, id, userID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listAudit: GET /api/workspaces/:id/audit?action=&actor=&from=&to=&cursor=&limit= →
// {data:[event…],nextCursor}; owners and admins.
func (a *API) listAudit(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c Caller) error {
	id, err := pathID(ps, "id", "workspace")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	aq := account.AuditQuery{Action: q.Get("action"), Cursor: q.Get("cursor")}
	if aq.ActorUserID, err = queryInt(q.Get("actor"), "actor"); err != nil {
		return err
	}
	limit, err := queryInt(q.Get("limit"), "limit")
	if err != nil {
		return err
	}
	if q.Has("limit") && limit <= 0 {
		return invalid("limit must be a positive integer")
	}
	aq.Limit = int(limit)
	if aq.From, err = queryTime(q.Get("from"), "from", false); err != nil {
		return err
	}
	if aq.To, err = queryTime(q.Get("to"), "to", true); err != nil {
		return err
	}
	page, err := a.acct.Audit(r.Context(), c.Actor, id, aq)
	if err != nil {
		return err
	}
	return Reply(w, http.StatusOK, list[auditJSON]{Data: mapList(page.Entries, auditView), NextCursor: page.NextCursor})
}

func queryInt(v, name string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, invalid("%s must be a non-negative integer", name)
	}
	return n, nil
}

// queryTime parses an RFC 3339 time or an ISO date (YYYY-MM-DD, UTC). A date used as an
// exclusive upper bound ("to") means the end of that day, so to=2026-11-26 includes the 26th.
func queryTime(v, name string, endOfDay bool) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", strings.TrimSpace(v)); err == nil {
		if endOfDay {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	return time.Time{}, invalid("%s must be a date (2006-01-02) or an RFC 3339 time", name)
}
