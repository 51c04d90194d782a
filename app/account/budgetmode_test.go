package account

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"tokenguard/app/apperr"
)

// evictionLog records, in order, what the service evicted from the proxy's key cache, as
// "project 3" or "workspace 1".
type evictionLog struct {
	mu  sync.Mutex
	log []string
}

func (e *evictionLog) EvictProject(id int64)   { e.add("project", id) }
func (e *evictionLog) EvictWorkspace(id int64) { e.add("workspace", id) }

func (e *evictionLog) add(kind string, id int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log = append(e.log, fmt.Sprintf("%s %d", kind, id))
}

// take returns the evictions since the last take.
func (e *evictionLog) take() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.log
	e.log = nil
	return out
}

// ownerWithProject signs up an owner and creates one soft project in their first workspace.
func ownerWithProject(t *testing.T, s *Service) (Actor, int64, Project) {
	t.Helper()
	sess := mustSignup(t, s, "owner@example.com")
	actor := Actor{UserID: sess.User.ID}
	p, _, err := s.CreateProject(context.Background(), actor, sess.Workspace.ID, ProjectInput{Name: "bot"})
	if err != nil {
		t.Fatal(err)
	}
	return actor, sess.Workspace.ID, p
}

// evictingOwner is a service whose key-cache evictions are logged, with an owner and one
// project (created before the log starts).
func evictingOwner(t *testing.T) (*Service, *evictionLog, Actor, int64, Project) {
	t.Helper()
	s := newService(t, bcrypt.MinCost)
	ev := &evictionLog{}
	s.keys = ev
	actor, ws, p := ownerWithProject(t, s)
	ev.take()
	return s, ev, actor, ws, p
}

func ptr(s string) *string { return &s }

// budgetModeDiffs returns the budgetMode diffs of action's audit events in ws, newest first.
func budgetModeDiffs(t *testing.T, s *Service, actor Actor, ws int64, action string) []map[string]any {
	t.Helper()
	page, err := s.Audit(context.Background(), actor, ws, AuditQuery{Action: action})
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, e := range page.Entries {
		var d map[string]any
		if err := json.Unmarshal(e.Details, &d); err != nil {
			t.Fatal(err)
		}
		if m, ok := d["budgetMode"].(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// TestBudgetModeValidation ensures every way in (project create and patch, workspace create and
// patch) takes exactly "soft" or "strict" and refuses anything else with INVALID_REQUEST naming
// budgetMode, changing nothing.
func TestBudgetModeValidation(t *testing.T) {
	s := newService(t, bcrypt.MinCost)
	ctx := context.Background()
	actor, ws, p := ownerWithProject(t, s)
	ways := map[string]func(mode *string) (BudgetMode, error){
		"create project": func(m *string) (BudgetMode, error) {
			p, _, err := s.CreateProject(ctx, actor, ws, ProjectInput{Name: "p", BudgetMode: m})
			return p.BudgetMode, err
		},
		"patch project": func(m *string) (BudgetMode, error) {
			p, err := s.UpdateProject(ctx, actor, p.ID, ProjectPatch{BudgetMode: m})
			return p.BudgetMode, err
		},
		"create workspace": func(m *string) (BudgetMode, error) {
			w, err := s.CreateWorkspace(ctx, actor, WorkspaceInput{Name: "w", BudgetMode: m})
			return w.BudgetMode, err
		},
		"patch workspace": func(m *string) (BudgetMode, error) {
			w, err := s.UpdateWorkspace(ctx, actor, ws, WorkspacePatch{BudgetMode: m})
			return w.BudgetMode, err
		},
	}
	cases := []struct {
		mode *string
		want BudgetMode // "" = refused
	}{
		{nil, BudgetSoft}, // absent: the default on create, unchanged on patch (still soft here)
		{ptr("strict"), BudgetStrict},
		{ptr("soft"), BudgetSoft},
		{ptr(""), ""},
		{ptr("hard"), ""},
		{ptr("Strict"), ""},
		{ptr(" strict"), ""},
		{ptr("strict\x00"), ""},
	}
	for name, do := range ways {
		for _, c := range cases {
			got, err := do(c.mode)
			if c.want != "" {
				if err != nil || got != c.want {
					t.Errorf("%s %q: got %q, %v; want %q", name, deref(c.mode), got, err, c.want)
				}
				continue
			}
			if apperr.Code(err) != apperr.InvalidRequest || !strings.Contains(apperr.Message(err), "budgetMode") {
				t.Errorf("%s %q: err = %v, want INVALID_REQUEST naming budgetMode", name, deref(c.mode), err)
			}
		}
	}
	// The refused patches left the last accepted value ("soft") in place.
	if got, err := s.Project(ctx, actor, p.ID); err != nil || got.BudgetMode != BudgetSoft {
		t.Errorf("project after refused patches: %q, %v", got.BudgetMode, err)
	}
	if got, err := s.Workspace(ctx, actor, ws); err != nil || got.BudgetMode != BudgetSoft {
		t.Errorf("workspace after refused patches: %q, %v", got.BudgetMode, err)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<absent>"
	}
	return *s
}

// TestBudgetModeChangesAreAuditedAndEvict ensures a mode change is recorded like a budget change
// (from/to in project_updated or workspace_updated), evicts the proxy's cached keys so the next
// request is gated in the new mode, and reaches key auth; while saving the same mode again
// records and evicts nothing.
func TestBudgetModeChangesAreAuditedAndEvict(t *testing.T) {
	s, ev, actor, ws, p := evictingOwner(t)
	ctx := context.Background()
	proj, wsp := []string{fmt.Sprintf("project %d", p.ID)}, []string{fmt.Sprintf("workspace %d", ws)}

	patchProject := func(pp ProjectPatch) func() error {
		return func() error { _, err := s.UpdateProject(ctx, actor, p.ID, pp); return err }
	}
	patchWorkspace := func(mode string) func() error {
		return func() error {
			_, err := s.UpdateWorkspace(ctx, actor, ws, WorkspacePatch{BudgetMode: ptr(mode)})
			return err
		}
	}
	steps := []struct {
		name          string
		do            func() error
		action        string
		wantDiffs     int // budgetMode diffs in action's log after the step
		wantEvicted   []string
		projectStrict bool
		wsStrict      bool
	}{
		{"project to strict", patchProject(ProjectPatch{BudgetMode: ptr("strict")}), AuditProjectUpdated, 1, proj, true, false},
		{"project strict again", patchProject(ProjectPatch{BudgetMode: ptr("strict")}), AuditProjectUpdated, 1, nil, true, false},
		{"workspace to strict", patchWorkspace("strict"), AuditWorkspaceUpdated, 1, wsp, true, true},
		{"workspace strict again", patchWorkspace("strict"), AuditWorkspaceUpdated, 1, nil, true, true},
		{"workspace back to soft", patchWorkspace("soft"), AuditWorkspaceUpdated, 2, wsp, true, false},
		{"project renamed keeps strict", patchProject(ProjectPatch{Name: ptr("bot 2")}), AuditProjectUpdated, 1, proj, true, false},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		diffs := budgetModeDiffs(t, s, actor, ws, st.action)
		if got := len(diffs); got != st.wantDiffs {
			t.Errorf("%s: %d budgetMode diffs in %s, want %d", st.name, got, st.action, st.wantDiffs)
		}
		if got := ev.take(); !slices.Equal(got, st.wantEvicted) {
			t.Errorf("%s: evicted %v, want %v", st.name, got, st.wantEvicted)
		}
		k, err := s.db.KeyAuthByPrefix(ctx, p.KeyPrefix)
		if err != nil {
			t.Fatal(err)
		}
		if k.ProjectStrict != st.projectStrict || k.WorkspaceStrict != st.wsStrict {
			t.Errorf("%s: key auth strict %v/%v, want %v/%v", st.name, k.ProjectStrict, k.WorkspaceStrict, st.projectStrict, st.wsStrict)
		}
	}
	last := budgetModeDiffs(t, s, actor, ws, AuditWorkspaceUpdated)[0]
	if last["from"] != "strict" || last["to"] != "soft" {
		t.Errorf("last workspace diff = %v, want strict → soft", last)
	}
}

// TestBudgetModeOnCreate ensures a project or workspace created strict says so in its
// project_created or workspace_created event and to key auth, and that signup's first
// workspace is soft.
func TestBudgetModeOnCreate(t *testing.T) {
	s := newService(t, bcrypt.MinCost)
	ctx := context.Background()
	sess := mustSignup(t, s, "owner@example.com")
	actor := Actor{UserID: sess.User.ID}
	if got := sess.Workspace.BudgetMode; got != BudgetSoft {
		t.Errorf("signup workspace mode = %q, want soft", got)
	}
	w, err := s.CreateWorkspace(ctx, actor, WorkspaceInput{Name: "strict ws", BudgetMode: ptr("strict")})
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := s.CreateProject(ctx, actor, w.ID, ProjectInput{Name: "strict p", BudgetMode: ptr("strict")})
	if err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{AuditWorkspaceCreated, AuditProjectCreated} {
		page, err := s.Audit(ctx, actor, w.ID, AuditQuery{Action: action})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Entries) != 1 || !strings.Contains(string(page.Entries[0].Details), `"budgetMode":"strict"`) {
			t.Errorf("%s events = %+v, want one with budgetMode strict", action, page.Entries)
		}
	}
	k, err := s.db.KeyAuthByPrefix(ctx, p.KeyPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if !k.ProjectStrict || !k.WorkspaceStrict {
		t.Errorf("key auth strict = %v/%v, want true/true", k.ProjectStrict, k.WorkspaceStrict)
	}
}
