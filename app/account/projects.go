package account

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"tokenguard/app/apikey"
	"tokenguard/app/apperr"
	"tokenguard/app/secret"
	"tokenguard/store"
)

// ProjectInput is a new project. Nil budgets mean no limit; a nil BudgetMode is BudgetSoft.
type ProjectInput struct {
	Name          string
	DailyBudget   *float64 // USD
	MonthlyBudget *float64 // USD
	BudgetMode    *string  // "soft" or "strict"
	FallbackModel string
	AlertEmail    string
	// Controls are the rate limits, allow-list, failover and end-user budget; nil fields are
	// the defaults (none).
	Controls ControlsPatch
}

// ProjectPatch is a partial update of a project; nil/unset fields stay as they are.
type ProjectPatch struct {
	Name          *string
	DailyBudget   Budget
	MonthlyBudget Budget
	BudgetMode    *string // "soft" or "strict"
	FallbackModel *string // "" clears it
	AlertEmail    *string // "" clears it
	Controls      ControlsPatch
}

// CreateProject creates a project in workspaceID with a new key; owners and admins only. The
// full key is returned here and nowhere else: only its bcrypt hash and lookup prefix are stored.
// A budget mode other than "soft" or "strict", a control out of bounds, and a fallback model the
// allow-list refuses are INVALID_REQUEST. Records project_created.
func (s *Service) CreateProject(ctx context.Context, actor Actor, workspaceID int64, in ProjectInput) (Project, string, error) {
	if _, err := s.Authorize(ctx, actor, workspaceID, ManageProjects); err != nil {
		return Project{}, "", err
	}
	p := store.Project{WorkspaceID: workspaceID}
	var err error
	if p.Name, err = projectName(in.Name); err != nil {
		return Project{}, "", err
	}
	if p.DailyBudgetNano, err = budgetNano("dailyBudgetUsd", in.DailyBudget); err != nil {
		return Project{}, "", err
	}
	if p.MonthlyBudgetNano, err = budgetNano("monthlyBudgetUsd", in.MonthlyBudget); err != nil {
		return Project{}, "", err
	}
	mode, err := budgetModeOr(in.BudgetMode, BudgetSoft)
	if err != nil {
		return Project{}, "", err
	}
	p.BudgetMode = string(mode)
	if p.FallbackModel, err = fallbackModel(in.FallbackModel); err != nil {
		return Project{}, "", err
	}
	if p.AlertEmail, err = alertEmail(in.AlertEmail); err != nil {
		return Project{}, "", err
	}
	controls := map[string]any{}
	c, err := in.Controls.apply(Controls{}, controls)
	if err != nil {
		return Project{}, "", err
	}
	if err := checkFallbackAllowed(p.FallbackModel, c.AllowedModels, false); err != nil {
		return Project{}, "", err
	}
	p.Controls = c.store()
	key, err := apikey.Generate()
	if err != nil {
		return Project{}, "", err
	}
	hash, err := apikey.Hash(key.Full)
	if err != nil {
		return Project{}, "", err
	}
	p.KeyPrefix, p.Active = key.Prefix, true
	p.CreatedAt = s.nowMs()
	p.UpdatedAt = p.CreatedAt
	err = s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		id, err := s.db.InsertProject(ctx, tx, p, hash)
		if err != nil {
			return err
		}
		p.ID = id
		details := map[string]any{"name": p.Name, "keyPrefix": p.KeyPrefix, "budgetMode": p.BudgetMode}
		// Only the controls set at creation, each as its value (not a from/to diff).
		for field, d := range controls {
			details[field] = d.(map[string]any)["to"]
		}
		return s.AppendAudit(ctx, tx, actor, workspaceID, AuditEvent{
			Action: AuditProjectCreated, TargetType: "project", TargetID: id, Details: details,
		})
	})
	if err != nil {
		return Project{}, "", err
	}
	return projectFrom(p, nil), key.Full, nil
}

// Projects lists a workspace's live projects (any member; NOT_FOUND for outsiders).
func (s *Service) Projects(ctx context.Context, actor Actor, workspaceID int64) ([]Project, error) {
	if _, err := s.Authorize(ctx, actor, workspaceID, ViewWorkspace); err != nil {
		return nil, err
	}
	rows, err := s.db.ListProjects(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	masks, err := s.db.ProviderKeyMasks(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	out := make([]Project, len(rows))
	for i, p := range rows {
		out[i] = projectFrom(p, masks[p.ID])
	}
	return out, nil
}

// Project returns one project (any member of its workspace; NOT_FOUND for everyone else, and
// for deleted projects or workspaces).
func (s *Service) Project(ctx context.Context, actor Actor, projectID int64) (Project, error) {
	p, _, err := s.project(ctx, actor, projectID, ViewWorkspace)
	if err != nil {
		return Project{}, err
	}
	return s.withMasks(ctx, p)
}

// project loads a live project and authorizes the actor for a in its workspace. An outsider
// gets NOT_FOUND for the project, exactly as for an id that does not exist.
func (s *Service) project(ctx context.Context, actor Actor, projectID int64, a Action) (store.Project, Workspace, error) {
	if projectID <= 0 {
		return store.Project{}, Workspace{}, notFound("project")
	}
	p, err := s.db.ProjectByID(ctx, projectID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Project{}, Workspace{}, notFound("project")
	}
	if err != nil {
		return store.Project{}, Workspace{}, err
	}
	ws, err := s.Authorize(ctx, actor, p.WorkspaceID, a)
	if apperr.Code(err) == apperr.NotFound {
		return store.Project{}, Workspace{}, notFound("project")
	}
	if err != nil {
		return store.Project{}, Workspace{}, err
	}
	return p, ws, nil
}

func (s *Service) withMasks(ctx context.Context, p store.Project) (Project, error) {
	masks, err := s.db.ProviderKeyMasks(ctx, p.WorkspaceID)
	if err != nil {
		return Project{}, err
	}
	return projectFrom(p, masks[p.ID]), nil
}

// UpdateProject applies a partial update; owners and admins only. Records project_updated with
// the changed fields and evicts the project's cached key, so new budgets, budget mode, fallback
// model and controls apply from the next proxied request. A fallback model the resulting
// allow-list refuses is INVALID_REQUEST, whichever of the two fields changed.
func (s *Service) UpdateProject(ctx context.Context, actor Actor, projectID int64, patch ProjectPatch) (Project, error) {
	p, _, err := s.project(ctx, actor, projectID, ManageProjects)
	if err != nil {
		return Project{}, err
	}
	cur := p
	changes := map[string]any{}
	if patch.Name != nil {
		if p.Name, err = projectName(*patch.Name); err != nil {
			return Project{}, err
		}
		if p.Name != cur.Name {
			changes["name"] = map[string]any{"from": cur.Name, "to": p.Name}
		}
	}
	d, err := patch.DailyBudget.apply("dailyBudgetUsd", nanoPtr(cur.DailyBudgetNano))
	if err != nil {
		return Project{}, err
	}
	m, err := patch.MonthlyBudget.apply("monthlyBudgetUsd", nanoPtr(cur.MonthlyBudgetNano))
	if err != nil {
		return Project{}, err
	}
	diffBudget(changes, "dailyBudgetUsd", nanoPtr(cur.DailyBudgetNano), d)
	diffBudget(changes, "monthlyBudgetUsd", nanoPtr(cur.MonthlyBudgetNano), m)
	p.DailyBudgetNano, p.MonthlyBudgetNano = int64Ptr(d), int64Ptr(m)
	mode, err := budgetModeOr(patch.BudgetMode, BudgetMode(cur.BudgetMode))
	if err != nil {
		return Project{}, err
	}
	diffBudgetMode(changes, BudgetMode(cur.BudgetMode), mode)
	p.BudgetMode = string(mode)
	if patch.FallbackModel != nil {
		if p.FallbackModel, err = fallbackModel(*patch.FallbackModel); err != nil {
			return Project{}, err
		}
		if p.FallbackModel != cur.FallbackModel {
			changes["fallbackModel"] = map[string]any{"from": cur.FallbackModel, "to": p.FallbackModel}
		}
	}
	if patch.AlertEmail != nil {
		if p.AlertEmail, err = alertEmail(*patch.AlertEmail); err != nil {
			return Project{}, err
		}
		if p.AlertEmail != cur.AlertEmail {
			changes["alertEmail"] = map[string]any{"from": cur.AlertEmail, "to": p.AlertEmail}
		}
	}
	c, err := patch.Controls.apply(controlsFrom(cur.Controls), changes)
	if err != nil {
		return Project{}, err
	}
	_, listChanged := changes["allowedModels"]
	_, fallbackChanged := changes["fallbackModel"]
	if err := checkFallbackAllowed(p.FallbackModel, c.AllowedModels, listChanged && !fallbackChanged); err != nil {
		return Project{}, err
	}
	p.Controls = c.store()
	if len(changes) == 0 {
		return s.withMasks(ctx, cur)
	}
	p.UpdatedAt = s.nowMs()
	err = s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		if err := s.db.UpdateProject(ctx, tx, p); err != nil {
			return projectGone(err)
		}
		return s.AppendAudit(ctx, tx, actor, p.WorkspaceID, AuditEvent{
			Action: AuditProjectUpdated, TargetType: "project", TargetID: p.ID, Details: changes,
		})
	})
	if err != nil {
		return Project{}, err
	}
	s.evictProject(p.ID)
	return s.withMasks(ctx, p)
}

// DeleteProject soft-deletes a project; owners and admins only. Its key stops working at once
// (the cache is evicted) and its usage rows stay. Records project_deleted.
func (s *Service) DeleteProject(ctx context.Context, actor Actor, projectID int64) error {
	p, _, err := s.project(ctx, actor, projectID, ManageProjects)
	if err != nil {
		return err
	}
	err = s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		if err := s.db.SoftDeleteProject(ctx, tx, p.ID, s.nowMs()); err != nil {
			return projectGone(err)
		}
		return s.AppendAudit(ctx, tx, actor, p.WorkspaceID, AuditEvent{
			Action: AuditProjectDeleted, TargetType: "project", TargetID: p.ID,
			Details: map[string]any{"name": p.Name},
		})
	})
	if err != nil {
		return err
	}
	s.evictProject(p.ID)
	return nil
}

// RegenerateKey replaces a project's key; owners and admins only. The old key is dead as soon as
// this returns (row replaced, cache evicted). Spend belongs to the project, not the key, so no
// budget window is reset. The new full key is returned here only. Records key_regenerated.
func (s *Service) RegenerateKey(ctx context.Context, actor Actor, projectID int64) (Project, string, error) {
	p, _, err := s.project(ctx, actor, projectID, ManageProjects)
	if err != nil {
		return Project{}, "", err
	}
	key, err := apikey.Generate()
	if err != nil {
		return Project{}, "", err
	}
	hash, err := apikey.Hash(key.Full)
	if err != nil {
		return Project{}, "", err
	}
	old := p.KeyPrefix
	p.KeyPrefix, p.UpdatedAt = key.Prefix, s.nowMs()
	err = s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		if err := s.db.SetProjectKey(ctx, tx, p.ID, key.Prefix, hash, p.UpdatedAt); err != nil {
			return projectGone(err)
		}
		return s.AppendAudit(ctx, tx, actor, p.WorkspaceID, AuditEvent{
			Action: AuditKeyRegenerated, TargetType: "project", TargetID: p.ID,
			Details: map[string]any{"oldKeyPrefix": old, "keyPrefix": key.Prefix},
		})
	})
	if err != nil {
		return Project{}, "", err
	}
	s.evictProject(p.ID)
	out, err := s.withMasks(ctx, p)
	return out, key.Full, err
}

// SetActive deactivates (active=false) or activates a project; owners and admins only. A
// deactivated project's key gets 401 KEY_DEACTIVATED from its next request on. Records
// project_deactivated or project_activated (only when the state changes).
func (s *Service) SetActive(ctx context.Context, actor Actor, projectID int64, active bool) (Project, error) {
	p, _, err := s.project(ctx, actor, projectID, ManageProjects)
	if err != nil {
		return Project{}, err
	}
	if p.Active == active {
		return s.withMasks(ctx, p)
	}
	action := AuditProjectDeactivated
	if active {
		action = AuditProjectActivated
	}
	p.Active, p.UpdatedAt = active, s.nowMs()
	err = s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		if err := s.db.SetProjectActive(ctx, tx, p.ID, active, p.UpdatedAt); err != nil {
			return projectGone(err)
		}
		return s.AppendAudit(ctx, tx, actor, p.WorkspaceID, AuditEvent{
			Action: action, TargetType: "project", TargetID: p.ID, Details: map[string]any{"name": p.Name},
		})
	})
	if err != nil {
		return Project{}, err
	}
	s.evictProject(p.ID)
	return s.withMasks(ctx, p)
}

// ProviderKeyChange is a change of one provider key: Set false leaves it; Set with Value ""
// clears it; otherwise Value is the new key.
type ProviderKeyChange struct {
	Set   bool
	Value string
}

// SetProviderKeys sets, replaces or clears a project's provider keys (by provider name: openai,
// anthropic, gemini); owners and admins only. Keys are sealed with AES-256-GCM bound to the
// project and provider; only masked values come back. Records provider_keys_updated with which
// providers were set or cleared (never the keys) and evicts the project's cached key.
func (s *Service) SetProviderKeys(ctx context.Context, actor Actor, projectID int64, changes map[string]ProviderKeyChange) (Project, error) {
	p, _, err := s.project(ctx, actor, projectID, ManageProjects)
	if err != nil {
		return Project{}, err
	}
	for name, c := range changes {
		if !isProvider(name) {
			return Project{}, apperr.New(apperr.InvalidRequest, "unknown provider %q (openai, anthropic or gemini)", name)
		}
		if c.Set && c.Value != "" {
			if err := checkProviderKey(name, c.Value); err != nil {
				return Project{}, err
			}
		}
	}
	set, cleared := []string{}, []string{}
	now := s.nowMs()
	err = s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		for _, name := range Providers {
			c := changes[name]
			switch {
			case !c.Set:
				continue
			case c.Value == "":
				if err := s.db.DeleteProviderKey(ctx, tx, p.ID, name); err != nil {
					return err
				}
				cleared = append(cleared, name)
			default:
				err := s.db.PutProviderKey(ctx, tx, store.ProviderKey{
					ProjectID: p.ID, Provider: name, Masked: secret.Mask(c.Value), UpdatedAt: now,
					Ciphertext: s.box.Seal([]byte(c.Value), secret.ProviderKeyAD(p.ID, name)),
				})
				if err != nil {
					return err
				}
				set = append(set, name)
			}
		}
		if len(set)+len(cleared) == 0 {
			return nil
		}
		return s.AppendAudit(ctx, tx, actor, p.WorkspaceID, AuditEvent{
			Action: AuditProviderKeysUpdated, TargetType: "project", TargetID: p.ID,
			Details: map[string]any{"set": set, "cleared": cleared},
		})
	})
	if err != nil {
		return Project{}, err
	}
	if len(set)+len(cleared) > 0 {
		s.evictProject(p.ID)
	}
	return s.withMasks(ctx, p)
}

func projectGone(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFound("project")
	}
	return err
}

func isProvider(name string) bool {
	for _, p := range Providers {
		if p == name {
			return true
		}
	}
	return false
}

// checkProviderKey rejects values that cannot be a provider key: too short or long, whitespace
// or control characters, or a TokenGuard key (which must never be sent upstream).
func checkProviderKey(provider, v string) error {
	if len(v) < 8 || len(v) > 512 {
		return apperr.New(apperr.InvalidRequest, "%s key must be 8 to 512 characters", provider)
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] >= 0x7f {
			return apperr.New(apperr.InvalidRequest, "%s key must be printable ASCII without spaces", provider)
		}
	}
	if apikey.LooksLike(v) {
		return apperr.New(apperr.InvalidRequest, "%s key is a TokenGuard key; store the provider's own key", provider)
	}
	return nil
}

func projectName(s string) (string, error) {
	s = strings.TrimSpace(s)
	return s, checkText("name", s, 1, 100)
}

func fallbackModel(s string) (string, error) {
	s = strings.TrimSpace(s)
	if err := checkText("fallbackModel", s, 0, 200); err != nil {
		return "", err
	}
	if strings.ContainsAny(s, " \t") {
		return "", apperr.New(apperr.InvalidRequest, "fallbackModel must be a model name without spaces")
	}
	return s, nil
}

func alertEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	e, err := NormalizeEmail(s)
	if err != nil {
		return "", apperr.New(apperr.InvalidRequest, "alertEmail must be a valid address like name@example.com")
	}
	return e, nil
}

func budgetNano(field string, usd *float64) (*int64, error) {
	if usd == nil {
		return nil, nil
	}
	n, err := BudgetFromUSD(field, *usd)
	if err != nil {
		return nil, err
	}
	return int64Ptr(&n), nil
}
