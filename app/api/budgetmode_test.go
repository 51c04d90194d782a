package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"tokenguard/app/account"
)

type modeJSON struct{ BudgetMode string }

// TestProjectBudgetModeAPI ensures budgetMode round-trips through POST, GET, list and PATCH of
// /api/projects ("soft" when not given), reaches key auth, evicts the cached key, and that any
// value but "soft" or "strict" is 400 INVALID_REQUEST naming the field and changes nothing.
func TestProjectBudgetModeAPI(t *testing.T) {
	a := newApp(t)
	alice := a.signup("alice@example.com")
	var created struct {
		Project struct {
			ID         int64
			KeyPrefix  string
			BudgetMode string
		}
	}
	a.mustJSON(alice.call(http.MethodPost, "/api/projects", map[string]any{"name": "default"}), 201, &created)
	if got, want := created.Project.BudgetMode, "soft"; got != want {
		t.Errorf("POST without budgetMode: %q, want %q", got, want)
	}
	a.mustJSON(alice.call(http.MethodPost, "/api/projects", `{"name":"explicit","budgetMode":"strict"}`), 201, &created)
	if got, want := created.Project.BudgetMode, "strict"; got != want {
		t.Errorf("POST strict: %q, want %q", got, want)
	}
	var list struct{ Data []modeJSON }
	a.mustJSON(alice.call(http.MethodGet, "/api/projects", nil), 200, &list)
	if len(list.Data) != 2 || list.Data[0].BudgetMode != "soft" || list.Data[1].BudgetMode != "strict" {
		t.Errorf("list: %+v, want soft then strict", list.Data)
	}

	p := alice.createProject(alice.ws, "bot")
	path := fmt.Sprintf("/api/projects/%d", p.Project.ID)
	var got struct{ Project modeJSON }
	a.mustJSON(alice.call(http.MethodPatch, path, `{"budgetMode":"strict"}`), 200, &got)
	if got.Project.BudgetMode != "strict" {
		t.Errorf("PATCH strict answered %q", got.Project.BudgetMode)
	}
	if !a.evict.project(p.Project.ID) {
		t.Error("budgetMode change did not evict the project's cached key")
	}
	if k, _ := a.db.KeyAuthByPrefix(context.Background(), p.Project.KeyPrefix); !k.ProjectStrict || k.WorkspaceStrict {
		t.Errorf("key auth strict = %v/%v, want true/false", k.ProjectStrict, k.WorkspaceStrict)
	}
	var events struct {
		Data []struct{ Details map[string]any }
	}
	a.mustJSON(alice.call(http.MethodGet, fmt.Sprintf("/api/workspaces/%d/audit?action=project_updated", alice.ws), nil), 200, &events)
	if len(events.Data) != 1 || fmt.Sprint(events.Data[0].Details["budgetMode"]) != "map[from:soft to:strict]" {
		t.Errorf("project_updated events: %+v", events.Data)
	}

	bad := []struct{ name, body string }{
		{"unknown mode", `{"budgetMode":"hard"}`},
		{"empty", `{"budgetMode":""}`},
		{"null", `{"budgetMode":null}`},
		{"capitalised", `{"budgetMode":"Soft"}`},
		{"padded", `{"budgetMode":"soft "}`},
		{"number", `{"budgetMode":1}`},
		{"bool", `{"budgetMode":true}`},
	}
	for _, tc := range bad {
		t.Run("PATCH "+tc.name, func(t *testing.T) {
			r := alice.call(http.MethodPatch, path, tc.body)
			if r.status != http.StatusBadRequest || r.errCode() != "INVALID_REQUEST" || !strings.Contains(string(r.body), "budgetMode") {
				t.Errorf("got %s, want 400 INVALID_REQUEST naming budgetMode", r)
			}
		})
		if tc.name == "null" {
			continue // null on create means "not given": the default
		}
		t.Run("POST "+tc.name, func(t *testing.T) {
			body := strings.Replace(tc.body, "{", `{"name":"refused",`, 1)
			r := alice.call(http.MethodPost, "/api/projects", body)
			if r.status != http.StatusBadRequest || r.errCode() != "INVALID_REQUEST" || !strings.Contains(string(r.body), "budgetMode") {
				t.Errorf("got %s, want 400 INVALID_REQUEST naming budgetMode", r)
			}
		})
	}
	a.mustJSON(alice.call(http.MethodGet, path, nil), 200, &got)
	if got.Project.BudgetMode != "strict" {
		t.Errorf("after refused patches the mode is %q, want strict", got.Project.BudgetMode)
	}
	a.mustJSON(alice.call(http.MethodGet, "/api/projects", nil), 200, &list)
	if len(list.Data) != 3 {
		t.Errorf("%d projects after refused creates, want 3", len(list.Data))
	}
}

// TestWorkspaceBudgetModeAPI ensures budgetMode round-trips through POST, GET, list and PATCH of
// /api/workspaces ("soft" for signup's workspace and when not given), evicts the workspace's
// cached keys, and refuses bad values with 400 naming the field.
func TestWorkspaceBudgetModeAPI(t *testing.T) {
	a := newApp(t)
	alice := a.signup("alice@example.com")
	p := alice.createProject(alice.ws, "bot")
	path := fmt.Sprintf("/api/workspaces/%d", alice.ws)
	var got struct{ Workspace modeJSON }
	a.mustJSON(alice.call(http.MethodGet, path, nil), 200, &got)
	if got.Workspace.BudgetMode != "soft" {
		t.Errorf("signup workspace: %q, want soft", got.Workspace.BudgetMode)
	}
	a.mustJSON(alice.call(http.MethodPatch, path, `{"budgetMode":"strict"}`), 200, &got)
	if got.Workspace.BudgetMode != "strict" {
		t.Errorf("PATCH strict answered %q", got.Workspace.BudgetMode)
	}
	if !a.evict.workspace(alice.ws) {
		t.Error("budgetMode change did not evict the workspace's keys")
	}
	if k, _ := a.db.KeyAuthByPrefix(context.Background(), p.Project.KeyPrefix); k.ProjectStrict || !k.WorkspaceStrict {
		t.Errorf("key auth strict = %v/%v, want false/true", k.ProjectStrict, k.WorkspaceStrict)
	}

	var created struct{ Workspace modeJSON }
	a.mustJSON(alice.call(http.MethodPost, "/api/workspaces", `{"name":"plain"}`), 201, &created)
	if created.Workspace.BudgetMode != "soft" {
		t.Errorf("POST without budgetMode: %q", created.Workspace.BudgetMode)
	}
	a.mustJSON(alice.call(http.MethodPost, "/api/workspaces", `{"name":"careful","budgetMode":"strict"}`), 201, &created)
	if created.Workspace.BudgetMode != "strict" {
		t.Errorf("POST strict: %q", created.Workspace.BudgetMode)
	}
	var list struct{ Data []modeJSON }
	a.mustJSON(alice.call(http.MethodGet, "/api/workspaces", nil), 200, &list)
	if len(list.Data) != 3 || list.Data[0].BudgetMode != "strict" || list.Data[1].BudgetMode != "soft" || list.Data[2].BudgetMode != "strict" {
		t.Errorf("list: %+v", list.Data)
	}

	for _, body := range []string{`{"budgetMode":"off"}`, `{"budgetMode":""}`, `{"budgetMode":null}`, `{"budgetMode":["strict"]}`} {
		if r := alice.call(http.MethodPatch, path, body); r.status != http.StatusBadRequest || r.errCode() != "INVALID_REQUEST" || !strings.Contains(string(r.body), "budgetMode") {
			t.Errorf("PATCH %s: %s, want 400 INVALID_REQUEST naming budgetMode", body, r)
		}
	}
	if r := alice.call(http.MethodPost, "/api/workspaces", `{"name":"x","budgetMode":"hard"}`); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "budgetMode") {
		t.Errorf("POST hard: %s", r)
	}
	a.mustJSON(alice.call(http.MethodGet, path, nil), 200, &got)
	if got.Workspace.BudgetMode != "strict" {
		t.Errorf("after refused patches: %q, want strict", got.Workspace.BudgetMode)
	}
}

// TestBudgetModeIsolation ensures the mode of a project or workspace can be changed only by
// those allowed to change its budgets: an outsider gets the same 404 as for a missing id, a
// member of the workspace gets 403, and the mode stays as it was.
func TestBudgetModeIsolation(t *testing.T) {
	a := newApp(t)
	alice := a.signup("alice@example.com")
	bob := a.signup("bob@example.com")
	carol := a.signup("carol@example.com")
	a.addMember(alice.ws, carol, account.RoleMember)
	p := alice.createProject(alice.ws, "secret")
	const missing = 987654
	strict := `{"budgetMode":"strict"}`
	for _, pathf := range []string{"/api/projects/%d", "/api/workspaces/%d"} {
		id := p.Project.ID
		if strings.Contains(pathf, "workspaces") {
			id = alice.ws
		}
		real := bob.call(http.MethodPatch, fmt.Sprintf(pathf, id), strict)
		none := bob.call(http.MethodPatch, fmt.Sprintf(pathf, missing), strict)
		if real.status != http.StatusNotFound || string(real.body) != string(none.body) {
			t.Errorf("outsider PATCH %s: %s; for a missing id %s", pathf, real, none)
		}
		if r := carol.call(http.MethodPatch, fmt.Sprintf(pathf, id), strict); r.status != http.StatusForbidden {
			t.Errorf("member PATCH %s: %s, want 403", pathf, r)
		}
		var got map[string]modeJSON
		a.mustJSON(alice.call(http.MethodGet, fmt.Sprintf(pathf, id), nil), 200, &got)
		for _, v := range got {
			if v.BudgetMode != "soft" {
				t.Errorf("%s is %q after refused changes, want soft", pathf, v.BudgetMode)
			}
		}
	}
	if k, _ := a.db.KeyAuthByPrefix(context.Background(), p.Project.KeyPrefix); k.ProjectStrict || k.WorkspaceStrict {
		t.Errorf("key auth strict = %v/%v after refused changes", k.ProjectStrict, k.WorkspaceStrict)
	}
	// The member sees the mode (it explains why answers may be cut short).
	var seen struct{ Project json.RawMessage }
	a.mustJSON(carol.in(alice.ws, http.MethodGet, fmt.Sprintf("/api/projects/%d", p.Project.ID), nil), 200, &seen)
	if !strings.Contains(string(seen.Project), `"budgetMode":"soft"`) {
		t.Errorf("member's view of the project: %s", seen.Project)
	}
}
