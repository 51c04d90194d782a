package api

import (
	"net/http"

	"github.com/julienschmidt/httprouter"

	"tokenguard/app/account"
)

// listProjects: GET /api/projects → {data:[project…]} of the request's workspace.
func (a *API) listProjects(w http.ResponseWriter, r *http.Request, _ httprouter.Params, c Caller) error {
	wsID, err := a.workspace(r, c)
	if err != nil {
		return err
	}
	ps, err := a.acct.Projects(r.Context(), c.Actor, wsID)
	if err != nil {
		return err
	}
	return Reply(w, http.StatusOK, list[projectJSON]{Data: mapList(ps, projectView)})
}

type createProjectRequest struct {
	Name             string   `json:"name"`
	DailyBudgetUSD   *float64 `json:"dailyBudgetUsd"`
	MonthlyBudgetUSD *float64 `json:"monthlyBudgetUsd"`
	BudgetMode       *string  `json:"budgetMode"`
	FallbackModel    string   `json:"fallbackModel"`
	AlertEmail       string   `json:"alertEmail"`
	controlsRequest
}

// createProject: POST /api/projects → 201 {project,key}. The key appears in this response only;
// budgetMode absent or null is "soft".
func (a *API) createProject(w http.ResponseWriter, r *http.Request, _ httprouter.Params, c Caller) error {
	wsID, err := a.workspace(r, c)
	if err != nil {
		return err
	}
	var req createProjectRequest
	if err := a.Decode(w, r, &req); err != nil {
		return err
	}
	controls, err := req.patch()
	if err != nil {
		return err
	}
	p, key, err := a.acct.CreateProject(r.Context(), c.Actor, wsID, account.ProjectInput{
		Name: req.Name, DailyBudget: req.DailyBudgetUSD, MonthlyBudget: req.MonthlyBudgetUSD,
		BudgetMode: req.BudgetMode, FallbackModel: req.FallbackModel, AlertEmail: req.AlertEmail,
		Controls: controls,
	})
	if err != nil {
		return err
	}
	return Reply(w, http.StatusCreated, map[string]any{"project": projectView(p), "key": key})
}

// getProject: GET /api/projects/:id → {project}.
func (a *API) getProject(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c Caller) error {
	id, err := pathID(ps, "id", "project")
	if err != nil {
		return err
	}
	p, err := a.acct.Project(r.Context(), c.Actor, id)
	if err != nil {
		return err
	}
	return Reply(w, http.StatusOK, map[string]any{"project": projectView(p)})
}

type patchProjectRequest struct {
	Name             optString `json:"name"`
	DailyBudgetUSD   optNumber `json:"dailyBudgetUsd"`
	MonthlyBudgetUSD optNumber `json:"monthlyBudgetUsd"`
	BudgetMode       optString `json:"budgetMode"`
	FallbackModel    optString `json:"fallbackModel"`
	AlertEmail       optString `json:"alertEmail"`
	controlsRequest
}

// patchProject: PATCH /api/projects/:id, partial: absent fields stay, null clears a budget (and
// the fallback model or alert email); budgetMode cannot be null.
func (a *API) patchProject(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c Caller) error {
	id, err := pathID(ps, "id", "project")
	if err != nil {
		return err
	}
	var req patchProjectRequest
	if err := a.Decode(w, r, &req); err != nil {
		return err
	}
	patch := account.ProjectPatch{
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
	if req.FallbackModel.set {
		patch.FallbackModel = &req.FallbackModel.v
	}
	if req.AlertEmail.set {
		patch.AlertEmail = &req.AlertEmail.v
	}
	if patch.Controls, err = req.patch(); err != nil {
		return err
	}
	p, err := a.acct.UpdateProject(r.Context(), c.Actor, id, patch)
	if err != nil {
		return err
	}
	return Reply(w, http.StatusOK, map[string]any{"project": projectView(p)})
}

// deleteProject: DELETE /api/projects/:id → 204.
func (a *API) deleteProject(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c Caller) error {
	id, err := pathID(ps, "id", "project")
	if err != nil {
		return err
	}
	if err := a.acct.DeleteProject(r.Context(), c.Actor, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// regenerateKey: POST /api/projects/:id/regenerate-key → {key,project}.
func (a *API) regenerateKey(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c Caller) error {
	id, err := pathID(ps, "id", "project")
	if err != nil {
		return err
	}
	p, key, err := a.acct.RegenerateKey(r.Context(), c.Actor, id)
	if err != nil {
		return err
	}
	return Reply(w, http.StatusOK, map[string]any{"key": key, "project": projectView(p)})
}

// setActive returns the handler of POST /api/projects/:id/deactivate and /activate → {project}.
func (a *API) setActive(active bool) AuthedFunc {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c Caller) error {
		id, err := pathID(ps, "id", "project")
		if err != nil {
			return err
		}
		p, err := a.acct.SetActive(r.Context(), c.Actor, id, active)
		if err != nil {
			return err
		}
		return Reply(w, http.StatusOK, map[string]any{"project": projectView(p)})
	}
}

type providerKeysRequest struct {
	OpenAI    optString `json:"openai"`
	Anthropic optString `json:"anthropic"`
	Gemini    optString `json:"gemini"`
}

// putProviderKeys: PUT /api/projects/:id/provider-keys {openai,anthropic,gemini}. Each field:
// absent = unchanged, "" or null = clear, a string = set or replace. → {providerKeys} masked.
func (a *API) putProviderKeys(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c Caller) error {
	id, err := pathID(ps, "id", "project")
	if err != nil {
		return err
	}
	var req providerKeysRequest
	if err := a.Decode(w, r, &req); err != nil {
		return err
	}
	change := func(o optString) account.ProviderKeyChange {
		return account.ProviderKeyChange{Set: o.set, Value: o.v} // null leaves v "" = clear
	}
	p, err := a.acct.SetProviderKeys(r.Context(), c.Actor, id, map[string]account.ProviderKeyChange{
		"openai": change(req.OpenAI), "anthropic": change(req.Anthropic), "gemini": change(req.Gemini),
	})
	if err != nil {
		return err
	}
	return Reply(w, http.StatusOK, map[string]any{"providerKeys": maskedKeys(p)})
}
