package web

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"tokenguard/app/account"
	"tokenguard/app/apperr"
	"tokenguard/app/budget"
	"tokenguard/views"
)

// keyVault holds a freshly created key for the one GET that shows it, so that creation can
// follow POST-redirect-GET (a reload never creates a second project) while the key never sits
// in a URL, a cookie or the database. A ticket is random, bound to the session that created it,
// read once, and gone after keyTicketTTL or a restart (the user then regenerates).
type keyVault struct {
	mu      sync.Mutex
	tickets map[string]keyTicket
	now     func() time.Time
}

type keyTicket struct {
	session     [16]byte
	projectID   int64
	name        string
	key         string
	regenerated bool
	expires     time.Time
}

const keyTicketTTL = 10 * time.Minute

func (v *keyVault) put(t keyTicket) (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	id := hex.EncodeToString(b)
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	for k, old := range v.tickets { // prune: the map only ever holds a few entries
		if now.After(old.expires) {
			delete(v.tickets, k)
		}
	}
	t.expires = now.Add(keyTicketTTL)
	v.tickets[id] = t
	return id, nil
}

func (v *keyVault) take(id string, session [16]byte, projectID int64) (keyTicket, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	t, ok := v.tickets[id]
	if !ok || t.session != session || t.projectID != projectID || v.now().After(t.expires) {
		return keyTicket{}, false
	}
	delete(v.tickets, id)
	return t, true
}

func (s *Server) bar(spend int64, limit *int64) views.Bar {
	return views.Bar{Spend: spend, Limit: limit}
}

func (s *Server) projectsPage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	ps, err := s.opt.Accounts.Projects(r.Context(), c.actor(r), c.ws.ID)
	if err != nil {
		return err
	}
	wsSpend := s.opt.Budget.Spend(budget.WorkspaceScope, c.ws.ID)
	v := views.ProjectsList{
		Now:     s.now(),
		Refresh: max(1, int(s.opt.Refresh/time.Second)),
		WSToday: s.bar(int64(wsSpend.Day), nanoPtr64(c.ws.DailyBudget)),
		WSMonth: s.bar(int64(wsSpend.Month), nanoPtr64(c.ws.MonthlyBudget)),
	}
	for _, p := range ps {
		sp := s.opt.Budget.Spend(budget.ProjectScope, p.ID)
		row := views.ProjectRow{ID: p.ID, Name: p.Name, Active: p.Active, KeyPrefix: p.KeyPrefix, Guard: s.guard(c, p),
			Today: s.bar(int64(sp.Day), nanoPtr64(p.DailyBudget)), Month: s.bar(int64(sp.Month), nanoPtr64(p.MonthlyBudget))}
		if p.LastUsedAt != nil {
			row.LastUsed = *p.LastUsedAt
		}
		v.Projects = append(v.Projects, row)
	}
	return s.render(w, r, http.StatusOK, views.ProjectsPage(s.layout(r, c, "Projects", "projects"), v))
}

func (s *Server) newProjectPage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if !account.Can(c.ws.Role, account.ManageProjects) {
		return apperr.New(apperr.Forbidden, "Your role (%s) cannot create projects", c.ws.Role)
	}
	f := views.ProjectForm{Models: s.opt.Prices.Models()}
	return s.render(w, r, http.StatusOK, views.NewProjectPage(s.layout(r, c, "New project", "projects"), f))
}

// projectForm reads and checks the project form; errors name the form's fields.
func projectForm(r *http.Request) (views.ProjectForm, account.Budget, account.Budget) {
	f := views.ProjectForm{
		Name:          strings.TrimSpace(r.PostFormValue("name")),
		DailyBudget:   strings.TrimSpace(r.PostFormValue("dailyBudgetUsd")),
		MonthlyBudget: strings.TrimSpace(r.PostFormValue("monthlyBudgetUsd")),
		BudgetMode:    r.PostFormValue("budgetMode"),
		FallbackModel: strings.TrimSpace(r.PostFormValue("fallbackModel")),
		AlertEmail:    strings.TrimSpace(r.PostFormValue("alertEmail")),
		Errors:        views.FieldErrors{},
	}
	if f.Name == "" {
		f.Errors["name"] = "Give the project a name."
	}
	daily, msg := parseBudget("dailyBudgetUsd", f.DailyBudget)
	if msg != "" {
		f.Errors["dailyBudgetUsd"] = msg
	}
	monthly, msg := parseBudget("monthlyBudgetUsd", f.MonthlyBudget)
	if msg != "" {
		f.Errors["monthlyBudgetUsd"] = msg
	}
	return f, daily, monthly
}

// fieldError places a service validation message (which starts with the field's name) next to
// its form field.
func fieldError(err error, fields ...string) (views.FieldErrors, bool) {
	if apperr.Code(err) != apperr.InvalidRequest {
		return nil, false
	}
	msg := apperr.Message(err)
	for _, f := range fields {
		if strings.HasPrefix(msg, f+" ") {
			return views.FieldErrors{f: readable(msg)}, true
		}
	}
	return views.FieldErrors{fields[0]: readable(msg)}, true
}

var projectFields = append([]string{"name", "dailyBudgetUsd", "monthlyBudgetUsd", "budgetMode", "fallbackModel", "alertEmail"}, controlFields...)

// formBudgetMode is the form's budget mode for the service: nil when the form sent none (the
// default on create, unchanged on update), so a form without the field cannot reset it.
func formBudgetMode(r *http.Request) *string {
	if _, ok := r.PostForm["budgetMode"]; !ok {
		return nil
	}
	m := r.PostFormValue("budgetMode")
	return &m
}

func (s *Server) createProject(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	f, daily, monthly := projectForm(r)
	s.checkProjectFields(r, &f)
	controls := projectControls(r, &f)
	f.Models = s.opt.Prices.Models()
	if len(f.Errors) == 0 {
		p, key, err := s.opt.Accounts.CreateProject(r.Context(), c.actor(r), c.ws.ID, account.ProjectInput{
			Name: f.Name, DailyBudget: daily.Value, MonthlyBudget: monthly.Value, BudgetMode: formBudgetMode(r),
			FallbackModel: f.FallbackModel, AlertEmail: f.AlertEmail, Controls: controls,
		})
		if err == nil {
			return s.showKeyRedirect(w, r, c, p, key, false)
		}
		errs, ok := fieldError(err, projectFields...)
		if !ok {
			return err
		}
		f.Errors = errs
	}
	return s.render(w, r, http.StatusBadRequest, views.NewProjectPage(s.layout(r, c, "New project", "projects"), f))
}

// showKeyRedirect parks the key for one read and redirects to the key page.
func (s *Server) showKeyRedirect(w http.ResponseWriter, r *http.Request, c *reqCtx, p account.Project, key string, regenerated bool) error {
	id, err := s.keys.put(keyTicket{session: c.sess.ID, projectID: p.ID, name: p.Name, key: key, regenerated: regenerated})
	if err != nil {
		return err
	}
	s.redirect(w, r, views.WSPath(c.ws.ID, "/projects/"+strconv.FormatInt(p.ID, 10)+"?key="+id))
	return nil
}

// projectOf loads a project of the current workspace; a project of another workspace is
// NOT_FOUND exactly like one that does not exist.
func (s *Server) projectOf(r *http.Request, c *reqCtx) (account.Project, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return account.Project{}, err
	}
	p, err := s.opt.Accounts.Project(r.Context(), c.actor(r), id)
	if err != nil {
		return account.Project{}, err
	}
	if p.WorkspaceID != c.ws.ID {
		return account.Project{}, apperr.New(apperr.NotFound, "project not found")
	}
	return p, nil
}

func (s *Server) projectPage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, err := s.projectOf(r, c)
	if err != nil {
		return err
	}
	if ticket := r.URL.Query().Get("key"); ticket != "" {
		return s.keyPage(w, r, c, p, ticket)
	}
	return s.renderProject(w, r, c, p, http.StatusOK, nil)
}

// keyPage shows a parked key once. It is no-store and kept out of HTMX history; reloading it
// finds the ticket gone and says so instead of showing the key again.
func (s *Server) keyPage(w http.ResponseWriter, r *http.Request, c *reqCtx, p account.Project, ticket string) error {
	w.Header().Set("Cache-Control", "no-store")
	t, ok := s.keys.take(ticket, c.sess.ID, p.ID)
	if !ok {
		c.flash = views.Flash{Kind: "warn", Text: "That key has already been shown and cannot be shown again. Regenerate it if you did not copy it."}
		return s.renderProject(w, r, c, p, http.StatusOK, nil)
	}
	l := s.layout(r, c, "Your key", "projects")
	l.NoHistory = true
	return s.render(w, r, http.StatusOK, views.KeyShownOnce(l, views.KeyPage{
		ProjectID: p.ID, ProjectName: t.name, Key: t.key, BaseURL: s.base, Regenerated: t.regenerated,
	}))
}

var providerLabels = map[string]string{"openai": "OpenAI", "anthropic": "Anthropic", "gemini": "Google Gemini"}

func (s *Server) renderProject(w http.ResponseWriter, r *http.Request, c *reqCtx, p account.Project, status int, form *views.ProjectForm) error {
	sp := s.opt.Budget.Spend(budget.ProjectScope, p.ID)
	d := views.ProjectDetail{
		ID: p.ID, Name: p.Name, Active: p.Active, KeyPrefix: p.KeyPrefix, CreatedAt: p.CreatedAt, Now: s.now(), Guard: s.guard(c, p),
		Today: s.bar(int64(sp.Day), nanoPtr64(p.DailyBudget)), Month: s.bar(int64(sp.Month), nanoPtr64(p.MonthlyBudget)),
		ConfirmRegenerate: r.Method == http.MethodGet && r.URL.Query().Get("confirm") == "regenerate",
	}
	if p.LastUsedAt != nil {
		d.LastUsed = *p.LastUsedAt
	}
	if form != nil {
		d.Form = *form
	} else {
		d.Form = views.ProjectForm{Name: p.Name, DailyBudget: views.USDInput(nanoPtr64(p.DailyBudget)),
			MonthlyBudget: views.USDInput(nanoPtr64(p.MonthlyBudget)), BudgetMode: string(p.BudgetMode),
			FallbackModel: p.FallbackModel, AlertEmail: p.AlertEmail}
		controlsForm(p, &d.Form)
	}
	if account.Can(c.ws.Role, account.ManageProjects) {
		d.Form.Models = s.opt.Prices.Models()
	}
	for _, prov := range account.Providers {
		d.ProviderKeys = append(d.ProviderKeys, views.ProviderKeyRow{Provider: prov, Label: providerLabels[prov], Masked: p.ProviderKeys[prov]})
	}
	recent, err := s.recentUsage(r, c, p)
	if err != nil {
		return err
	}
	d.Recent = recent
	return s.render(w, r, status, views.ProjectPage(s.layout(r, c, p.Name, "projects"), d))
}

func (s *Server) updateProject(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, err := s.projectOf(r, c)
	if err != nil {
		return err
	}
	f, daily, monthly := projectForm(r)
	s.checkProjectFields(r, &f)
	controls := projectControls(r, &f)
	if len(f.Errors) == 0 {
		_, err := s.opt.Accounts.UpdateProject(r.Context(), c.actor(r), p.ID, account.ProjectPatch{
			Name: &f.Name, DailyBudget: daily, MonthlyBudget: monthly, BudgetMode: formBudgetMode(r),
			FallbackModel: &f.FallbackModel, AlertEmail: &f.AlertEmail, Controls: controls,
		})
		if err == nil {
			return s.done(w, r, views.WSPath(c.ws.ID, "/projects/"+strconv.FormatInt(p.ID, 10)), "Settings saved.")
		}
		errs, ok := fieldError(err, projectFields...)
		if !ok {
			return err
		}
		f.Errors = errs
	}
	return s.renderProject(w, r, c, p, http.StatusBadRequest, &f)
}

func (s *Server) setProviderKey(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, err := s.projectOf(r, c)
	if err != nil {
		return err
	}
	prov := r.PostFormValue("provider")
	change := account.ProviderKeyChange{Set: true}
	msg := providerLabels[prov] + " key cleared."
	if r.PostFormValue("action") != "clear" {
		change.Value = strings.TrimSpace(r.PostFormValue("key"))
		if change.Value == "" {
			return apperr.New(apperr.InvalidRequest, "Paste the %s key to store, or use Clear.", firstNonEmpty(providerLabels[prov], "provider"))
		}
		msg = providerLabels[prov] + " key saved (encrypted)."
	}
	if _, err := s.opt.Accounts.SetProviderKeys(r.Context(), c.actor(r), p.ID, map[string]account.ProviderKeyChange{prov: change}); err != nil {
		return err
	}
	return s.done(w, r, views.WSPath(c.ws.ID, "/projects/"+strconv.FormatInt(p.ID, 10)), msg)
}

func (s *Server) regenerateKey(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, err := s.projectOf(r, c)
	if err != nil {
		return err
	}
	p, key, err := s.opt.Accounts.RegenerateKey(r.Context(), c.actor(r), p.ID)
	if err != nil {
		return err
	}
	return s.showKeyRedirect(w, r, c, p, key, true)
}

func (s *Server) setActive(w http.ResponseWriter, r *http.Request, c *reqCtx, active bool) error {
	p, err := s.projectOf(r, c)
	if err != nil {
		return err
	}
	if _, err := s.opt.Accounts.SetActive(r.Context(), c.actor(r), p.ID, active); err != nil {
		return err
	}
	msg := p.Name + " deactivated: its key now gets 401."
	if active {
		msg = p.Name + " activated."
	}
	return s.done(w, r, views.WSPath(c.ws.ID, "/projects/"+strconv.FormatInt(p.ID, 10)), msg)
}

func (s *Server) deactivateProject(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	return s.setActive(w, r, c, false)
}

func (s *Server) activateProject(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	return s.setActive(w, r, c, true)
}

func (s *Server) deleteProject(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, err := s.projectOf(r, c)
	if err != nil {
		return err
	}
	if err := s.opt.Accounts.DeleteProject(r.Context(), c.actor(r), p.ID); err != nil {
		return err
	}
	return s.done(w, r, views.WSPath(c.ws.ID, "/projects"), "Project "+p.Name+" deleted.")
}
