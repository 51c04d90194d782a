package web

import (
	"net/http"
	"strconv"
	"strings"

	"tokenguard/app/account"
	"tokenguard/app/apperr"
	"tokenguard/app/pricing"
	"tokenguard/views"
)

func nanoPtr64(v *pricing.NanoUSD) *int64 {
	if v == nil {
		return nil
	}
	n := int64(*v)
	return &n
}

// parseBudget reads an optional USD amount typed in a form: "" is no limit; "$12.50" and
// "12.5" are accepted.
func parseBudget(field, raw string) (account.Budget, string) {
	raw = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(raw), "$"))
	raw = strings.ReplaceAll(raw, ",", "")
	if raw == "" {
		return account.Budget{Set: true}, ""
	}
	v, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		return account.Budget{}, "Enter an amount in USD, like 25 or 12.50, or leave empty for no limit."
	}
	if _, err := account.BudgetFromUSD(field, v); err != nil {
		return account.Budget{}, readable(apperr.Message(err))
	}
	return account.Budget{Set: true, Value: &v}, ""
}

func (s *Server) settingsView(r *http.Request, c *reqCtx) (views.Settings, error) {
	wss, err := s.userWorkspaces(r.Context(), c)
	if err != nil {
		return views.Settings{}, err
	}
	v := views.Settings{
		Name:          c.ws.Name,
		DailyBudget:   views.USDInput(nanoPtr64(c.ws.DailyBudget)),
		MonthlyBudget: views.USDInput(nanoPtr64(c.ws.MonthlyBudget)),
		BudgetMode:    string(c.ws.BudgetMode),
		RPMLimit:      limitInput(c.ws.RPMLimit),
		TPMLimit:      limitInput(c.ws.TPMLimit),
		Plan:          c.ws.Plan,
		Plans:         account.Plans,
		OnlyWorkspace: len(wss) <= 1,
	}
	v.Webhook, err = s.webhookSettings(r, c)
	return v, err
}

func (s *Server) settingsPage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	v, err := s.settingsView(r, c)
	if err != nil {
		return err
	}
	return s.render(w, r, http.StatusOK, views.SettingsPage(s.layout(r, c, "Settings", "settings"), v))
}

func (s *Server) updateWorkspace(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	v, err := s.settingsView(r, c)
	if err != nil {
		return err
	}
	v.Name = strings.TrimSpace(r.PostFormValue("name"))
	v.DailyBudget = r.PostFormValue("dailyBudgetUsd")
	v.MonthlyBudget = r.PostFormValue("monthlyBudgetUsd")
	if m := formBudgetMode(r); m != nil {
		v.BudgetMode = *m
	}
	v.Errors = views.FieldErrors{}
	patch := account.WorkspacePatch{Name: &v.Name, BudgetMode: formBudgetMode(r)}
	var msg string
	if patch.DailyBudget, msg = parseBudget("dailyBudgetUsd", v.DailyBudget); msg != "" {
		v.Errors["dailyBudgetUsd"] = msg
	}
	if patch.MonthlyBudget, msg = parseBudget("monthlyBudgetUsd", v.MonthlyBudget); msg != "" {
		v.Errors["monthlyBudgetUsd"] = msg
	}
	if v.Name == "" {
		v.Errors["name"] = "Give the workspace a name."
	}
	patch.RPMLimit = formLimit(r, "rpmLimit", &v.RPMLimit, v.Errors)
	patch.TPMLimit = formLimit(r, "tpmLimit", &v.TPMLimit, v.Errors)
	if len(v.Errors) == 0 {
		_, err = s.opt.Accounts.UpdateWorkspace(r.Context(), c.actor(r), c.ws.ID, patch)
		if err == nil {
			return s.done(w, r, views.WSPath(c.ws.ID, "/settings"), "Workspace settings saved.")
		}
		errs, ok := fieldError(err, "name", "dailyBudgetUsd", "monthlyBudgetUsd", "budgetMode", "rpmLimit", "tpmLimit")
		if !ok {
			return err
		}
		v.Errors = errs
	}
	return s.render(w, r, http.StatusBadRequest, views.SettingsPage(s.layout(r, c, "Settings", "settings"), v))
}

func (s *Server) setPlan(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if _, err := s.opt.Accounts.SetPlan(r.Context(), c.actor(r), c.ws.ID, r.PostFormValue("plan")); err != nil {
		return err
	}
	return s.done(w, r, views.WSPath(c.ws.ID, "/settings"), "Billing plan changed.")
}

func (s *Server) deleteWorkspace(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	err := s.opt.Accounts.DeleteWorkspace(r.Context(), c.actor(r), c.ws.ID, r.PostFormValue("confirmName"))
	if err != nil {
		if code := apperr.Code(err); code != apperr.InvalidRequest && code != apperr.Conflict {
			return err
		}
		v, verr := s.settingsView(r, c)
		if verr != nil {
			return verr
		}
		v.DeleteError = apperr.Message(err)
		return s.render(w, r, apperr.Status(err), views.SettingsPage(s.layout(r, c, "Settings", "settings"), v))
	}
	s.cookies.setFlash(w, "ok", "Workspace "+c.ws.Name+" deleted.")
	s.redirect(w, r, "/")
	return nil
}

func (s *Server) createWorkspace(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	ws, err := s.opt.Accounts.CreateWorkspace(r.Context(), c.actor(r), account.WorkspaceInput{Name: r.PostFormValue("name")})
	if err != nil {
		return err
	}
	return s.done(w, r, views.WSPath(ws.ID, "/projects"), "Workspace "+ws.Name+" created.")
}

func (s *Server) quickstartPage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	return s.render(w, r, http.StatusOK, views.QuickstartPage(s.layout(r, c, "Quickstart", "quickstart"), s.base))
}
