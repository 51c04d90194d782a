package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"tokenguard/app/account"
)

// team is a workspace with one user of each role, a second member to act on, and an outsider
// who owns a workspace of their own.
type team struct {
	app                                     *testApp
	owner, admin, member, member2, outsider *user
	ws                                      int64
	name                                    string
}

// users signs up the five people the team tests use, once per app.
func (a *testApp) people() (owner, admin, member, member2, outsider *user) {
	return a.signup("owner@example.com"), a.signup("admin@example.com"), a.signup("member@example.com"),
		a.signup("member2@example.com"), a.signup("outsider@example.com")
}

// newTeam creates a fresh workspace owned by owner with admin, member and member2 in it.
func (a *testApp) newTeam(owner, admin, member, member2, outsider *user) *team {
	a.t.Helper()
	name := fmt.Sprintf("Team %d", a.clock.Now().UnixNano())
	a.clock.Add(1)
	ws, err := a.acct.CreateWorkspace(context.Background(), account.Actor{UserID: owner.id}, account.WorkspaceInput{Name: name})
	if err != nil {
		a.t.Fatal(err)
	}
	a.addMember(ws.ID, admin, account.RoleAdmin)
	a.addMember(ws.ID, member, account.RoleMember)
	a.addMember(ws.ID, member2, account.RoleMember)
	return &team{app: a, owner: owner, admin: admin, member: member, member2: member2, outsider: outsider, ws: ws.ID, name: name}
}

func (tm *team) as(role string) *user {
	switch role {
	case "owner":
		return tm.owner
	case "admin":
		return tm.admin
	case "member":
		return tm.member
	}
	return tm.outsider
}

// TestRoleMatrix ensures every API route answers each of owner, admin, member and an outsider
// exactly as the issue-4 matrix says; an outsider always gets 404 for the team's ids. The cases
// are checked against the route table, so a new route without a case fails this test.
func TestRoleMatrix(t *testing.T) {
	a := newApp(t)
	owner, admin, member, member2, outsider := a.people()
	type req struct {
		path string
		body any
	}
	type matrixCase struct {
		method, route string
		// build makes the request against a fresh team; it may create a project.
		build func(tm *team) req
		// want is the status for owner, admin, member, outsider.
		want [4]int
	}
	project := func(tm *team) int64 { return tm.owner.createProject(tm.ws, "p").Project.ID }
	proj := func(suffix string, body any) func(tm *team) req {
		return func(tm *team) req { return req{fmt.Sprintf("/api/projects/%d%s", project(tm), suffix), body} }
	}
	wsr := func(suffix string, body func(tm *team) any) func(tm *team) req {
		return func(tm *team) req {
			var b any
			if body != nil {
				b = body(tm)
			}
			return req{fmt.Sprintf("/api/workspaces/%d%s", tm.ws, suffix), b}
		}
	}
	fixed := func(path string, body any) func(tm *team) req {
		return func(*team) req { return req{path, body} }
	}
	const ok, created, gone, forbid, notFound = 200, 201, 204, 403, 404
	cases := []matrixCase{
		{"GET", "/api/me", fixed("/api/me", nil), [4]int{ok, ok, ok, ok}},
		{"GET", "/api/projects", fixed("/api/projects", nil), [4]int{ok, ok, ok, notFound}},
		{"POST", "/api/projects", fixed("/api/projects", map[string]any{"name": "new"}), [4]int{created, created, forbid, notFound}},
		{"GET", "/api/projects/:id", proj("", nil), [4]int{ok, ok, ok, notFound}},
		{"PATCH", "/api/projects/:id", proj("", map[string]any{"name": "renamed"}), [4]int{ok, ok, forbid, notFound}},
		{"DELETE", "/api/projects/:id", proj("", nil), [4]int{gone, gone, forbid, notFound}},
		{"POST", "/api/projects/:id/regenerate-key", proj("/regenerate-key", nil), [4]int{ok, ok, forbid, notFound}},
		{"POST", "/api/projects/:id/deactivate", proj("/deactivate", nil), [4]int{ok, ok, forbid, notFound}},
		{"POST", "/api/projects/:id/activate", proj("/activate", nil), [4]int{ok, ok, forbid, notFound}},
		{"PUT", "/api/projects/:id/provider-keys", proj("/provider-keys", map[string]any{"openai": "sk-test-1234567890"}), [4]int{ok, ok, forbid, notFound}},
		{"GET", "/api/workspaces", fixed("/api/workspaces", nil), [4]int{ok, ok, ok, ok}},
		{"POST", "/api/workspaces", fixed("/api/workspaces", map[string]any{"name": "Side project"}), [4]int{created, created, created, created}},
		{"GET", "/api/workspaces/:id", wsr("", nil), [4]int{ok, ok, ok, notFound}},
		{"PATCH", "/api/workspaces/:id", wsr("", func(*team) any { return map[string]any{"name": "Renamed", "dailyBudgetUsd": 10} }), [4]int{ok, forbid, forbid, notFound}},
		{"DELETE", "/api/workspaces/:id", wsr("", func(tm *team) any { return map[string]any{"confirmName": tm.name} }), [4]int{gone, forbid, forbid, notFound}},
		{"PUT", "/api/workspaces/:id/billing", wsr("/billing", func(*team) any { return map[string]any{"plan": "pro"} }), [4]int{ok, forbid, forbid, notFound}},
		{"GET", "/api/workspaces/:id/members", wsr("/members", nil), [4]int{ok, ok, ok, notFound}},
		{"PATCH", "/api/workspaces/:id/members/:userId", func(tm *team) req {
			return req{fmt.Sprintf("/api/workspaces/%d/members/%d", tm.ws, tm.member2.id), map[string]any{"role": "admin"}}
		}, [4]int{ok, ok, forbid, notFound}},
		{"DELETE", "/api/workspaces/:id/members/:userId", func(tm *team) req {
			return req{fmt.Sprintf("/api/workspaces/%d/members/%d", tm.ws, tm.member2.id), nil}
		}, [4]int{gone, gone, forbid, notFound}},
		{"GET", "/api/workspaces/:id/audit", wsr("/audit", nil), [4]int{ok, ok, forbid, notFound}},
		{"GET", "/api/usage", fixed("/api/usage", nil), [4]int{ok, ok, ok, notFound}},
		{"GET", "/api/analytics/overview", fixed("/api/analytics/overview", nil), [4]int{ok, ok, ok, notFound}},
		{"GET", "/api/analytics/trends", fixed("/api/analytics/trends", nil), [4]int{ok, ok, ok, notFound}},
		{"GET", "/api/analytics/providers", fixed("/api/analytics/providers", nil), [4]int{ok, ok, ok, notFound}},
		{"GET", "/api/analytics/models", fixed("/api/analytics/models", nil), [4]int{ok, ok, ok, notFound}},
		{"GET", "/api/analytics/projects", fixed("/api/analytics/projects", nil), [4]int{ok, ok, ok, notFound}},
		{"GET", "/api/analytics/export.csv", fixed("/api/analytics/export.csv", nil), [4]int{ok, ok, ok, notFound}},
		{"POST", "/api/analytics/monthly-digest/test", fixed("/api/analytics/monthly-digest/test", nil), [4]int{ok, ok, forbid, notFound}},
	}
	// Routes outside the matrix: they act on the caller's own account, not on a workspace.
	exempt := map[string]bool{"POST /api/auth/signup": true, "POST /api/auth/login": true, "POST /api/auth/password": true}
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.method+" "+c.route] = true
	}
	for _, rt := range a.api.routes() {
		if k := rt.method + " " + rt.path; !covered[k] && !exempt[k] {
			t.Errorf("route %s has no role-matrix case", k)
		}
	}

	for _, c := range cases {
		for i, role := range []string{"owner", "admin", "member", "outsider"} {
			t.Run(c.method+" "+c.route+" as "+role, func(t *testing.T) {
				tm := a.newTeam(owner, admin, member, member2, outsider)
				r := c.build(tm)
				// The workspace context always names the team's workspace, outsiders included.
				res := tm.as(role).in(tm.ws, c.method, r.path, r.body)
				if got, want := res.status, c.want[i]; got != want {
					t.Fatalf("%s %s as %s: status %d, want %d (%s)", c.method, r.path, role, got, want, res.body)
				}
			})
		}
	}
}

// TestIsolation ensures a user of another workspace cannot tell A's ids from ids that do not
// exist: every answer is the same 404.
func TestIsolation(t *testing.T) {
	a := newApp(t)
	alice := a.signup("alice@example.com")
	bob := a.signup("bob@example.com")
	p := alice.createProject(alice.ws, "secret project")
	const missing = 987654
	probes := []struct{ method, path string }{
		{"GET", "/api/projects/%d"}, {"PATCH", "/api/projects/%d"}, {"DELETE", "/api/projects/%d"},
		{"POST", "/api/projects/%d/regenerate-key"}, {"POST", "/api/projects/%d/deactivate"},
		{"POST", "/api/projects/%d/activate"}, {"PUT", "/api/projects/%d/provider-keys"},
	}
	for _, pr := range probes {
		real := bob.call(pr.method, fmt.Sprintf(pr.path, p.Project.ID), `{}`)
		none := bob.call(pr.method, fmt.Sprintf(pr.path, missing), `{}`)
		if real.status != http.StatusNotFound || string(real.body) != string(none.body) {
			t.Errorf("%s %s: bob got %s; for a missing id %s", pr.method, pr.path, real, none)
		}
	}
	wsProbes := []struct{ method, path, body string }{
		{"GET", "/api/workspaces/%d", ""}, {"PATCH", "/api/workspaces/%d", `{"name":"x"}`},
		{"DELETE", "/api/workspaces/%d", `{"confirmName":"x"}`}, {"PUT", "/api/workspaces/%d/billing", `{"plan":"pro"}`},
		{"GET", "/api/workspaces/%d/members", ""}, {"GET", "/api/workspaces/%d/audit", ""},
		{"PATCH", "/api/workspaces/%d/members/" + fmt.Sprint(alice.id), `{"role":"member"}`},
		{"DELETE", "/api/workspaces/%d/members/" + fmt.Sprint(alice.id), ""},
	}
	for _, pr := range wsProbes {
		var body any
		if pr.body != "" {
			body = pr.body
		}
		real := bob.call(pr.method, fmt.Sprintf(pr.path, alice.ws), body)
		none := bob.call(pr.method, fmt.Sprintf(pr.path, missing), body)
		if real.status != http.StatusNotFound || string(real.body) != string(none.body) {
			t.Errorf("%s %s: bob got %s; for a missing id %s", pr.method, pr.path, real, none)
		}
	}
	for _, path := range []string{"/api/projects", "/api/usage"} {
		if r := bob.in(alice.ws, http.MethodGet, path, nil); r.status != http.StatusNotFound {
			t.Errorf("GET %s in alice's workspace: %s", path, r)
		}
		if r := bob.in(alice.ws, http.MethodPost, "/api/projects", map[string]any{"name": "intruder"}); r.status != http.StatusNotFound {
			t.Errorf("POST /api/projects in alice's workspace: %s", r)
		}
	}
	// Nothing of alice's changed.
	var got struct{ Project struct{ Name string } }
	a.mustJSON(alice.call(http.MethodGet, fmt.Sprintf("/api/projects/%d", p.Project.ID), nil), 200, &got)
	if got.Project.Name != "secret project" {
		t.Errorf("alice's project is now %q", got.Project.Name)
	}
	if r := bob.call(http.MethodGet, "/api/projects/abc", nil); r.status != http.StatusNotFound {
		t.Errorf("malformed id: %s", r)
	}
	if r := bob.call(http.MethodGet, "/api/projects", nil, "X-Workspace-Id", "abc"); r.status != http.StatusBadRequest {
		t.Errorf("malformed X-Workspace-Id: %s", r)
	}
	if r := bob.call(http.MethodGet, fmt.Sprintf("/api/projects?workspaceId=%d", alice.ws), nil); r.status != http.StatusNotFound {
		t.Errorf("workspaceId query naming alice's workspace: %s", r)
	}
}

// TestEscalation ensures admins cannot touch the owner role and members cannot manage anything.
func TestEscalation(t *testing.T) {
	a := newApp(t)
	tm := a.newTeam(a.people())
	member := func(u *user) string { return fmt.Sprintf("/api/workspaces/%d/members/%d", tm.ws, u.id) }
	attempts := []struct {
		name string
		by   *user
		do   func(u *user) response
	}{
		{"admin promotes a member to owner", tm.admin, func(u *user) response {
			return u.call(http.MethodPatch, member(tm.member), map[string]any{"role": "owner"})
		}},
		{"admin promotes self to owner", tm.admin, func(u *user) response {
			return u.call(http.MethodPatch, member(tm.admin), map[string]any{"role": "owner"})
		}},
		{"admin demotes the owner", tm.admin, func(u *user) response {
			return u.call(http.MethodPatch, member(tm.owner), map[string]any{"role": "member"})
		}},
		{"admin removes the owner", tm.admin, func(u *user) response { return u.call(http.MethodDelete, member(tm.owner), nil) }},
		{"member promotes self", tm.member, func(u *user) response {
			return u.call(http.MethodPatch, member(tm.member), map[string]any{"role": "admin"})
		}},
		{"member removes another member", tm.member, func(u *user) response { return u.call(http.MethodDelete, member(tm.member2), nil) }},
		{"member creates a project", tm.member, func(u *user) response {
			return u.in(tm.ws, http.MethodPost, "/api/projects", map[string]any{"name": "mine"})
		}},
		{"member sets workspace budgets", tm.member, func(u *user) response {
			return u.call(http.MethodPatch, fmt.Sprintf("/api/workspaces/%d", tm.ws), map[string]any{"dailyBudgetUsd": 1})
		}},
		{"admin changes the billing plan", tm.admin, func(u *user) response {
			return u.call(http.MethodPut, fmt.Sprintf("/api/workspaces/%d/billing", tm.ws), map[string]any{"plan": "enterprise"})
		}},
	}
	for _, at := range attempts {
		t.Run(at.name, func(t *testing.T) {
			r := at.do(at.by)
			if r.status != http.StatusForbidden || r.errCode() != "FORBIDDEN" {
				t.Fatalf("got %s, want 403 FORBIDDEN", r)
			}
		})
	}
	var ms struct {
		Data []struct {
			UserID int64
			Role   string
		}
	}
	a.mustJSON(tm.owner.call(http.MethodGet, fmt.Sprintf("/api/workspaces/%d/members", tm.ws), nil), 200, &ms)
	roles := map[int64]string{}
	for _, m := range ms.Data {
		roles[m.UserID] = m.Role
	}
	if roles[tm.owner.id] != "owner" || roles[tm.admin.id] != "admin" || roles[tm.member.id] != "member" || roles[tm.member2.id] != "member" {
		t.Errorf("roles changed: %v", roles)
	}
}

// TestLastOwner ensures a workspace always keeps an owner.
func TestLastOwner(t *testing.T) {
	a := newApp(t)
	tm := a.newTeam(a.people())
	member := func(u *user) string { return fmt.Sprintf("/api/workspaces/%d/members/%d", tm.ws, u.id) }
	if r := tm.owner.call(http.MethodPatch, member(tm.owner), map[string]any{"role": "admin"}); r.status != http.StatusConflict {
		t.Errorf("last owner demotes self: %s, want 409", r)
	}
	if r := tm.owner.call(http.MethodDelete, member(tm.owner), nil); r.status != http.StatusConflict {
		t.Errorf("last owner leaves: %s, want 409", r)
	}
	// With a second owner, the first may step down and leave; the second is then the last.
	a.mustJSON(tm.owner.call(http.MethodPatch, member(tm.admin), map[string]any{"role": "owner"}), 200, nil)
	a.mustJSON(tm.owner.call(http.MethodPatch, member(tm.owner), map[string]any{"role": "admin"}), 200, nil)
	if r := tm.owner.call(http.MethodDelete, member(tm.owner), nil); r.status != http.StatusNoContent {
		t.Errorf("former owner leaves: %s, want 204", r)
	}
	if r := tm.admin.call(http.MethodDelete, member(tm.admin), nil); r.status != http.StatusConflict {
		t.Errorf("new last owner leaves: %s, want 409", r)
	}
	// Anyone else may leave.
	if r := tm.member.call(http.MethodDelete, member(tm.member), nil); r.status != http.StatusNoContent {
		t.Errorf("member leaves: %s, want 204", r)
	}
}

// TestRoleChangeTakesEffectAtOnce ensures a demotion or removal applies to the very next
// request made with the same session token.
func TestRoleChangeTakesEffectAtOnce(t *testing.T) {
	a := newApp(t)
	tm := a.newTeam(a.people())
	member := fmt.Sprintf("/api/workspaces/%d/members/%d", tm.ws, tm.admin.id)
	if r := tm.admin.in(tm.ws, http.MethodPost, "/api/projects", map[string]any{"name": "before"}); r.status != http.StatusCreated {
		t.Fatalf("admin creates a project: %s", r)
	}
	a.mustJSON(tm.owner.call(http.MethodPatch, member, map[string]any{"role": "member"}), 200, nil)
	if r := tm.admin.in(tm.ws, http.MethodPost, "/api/projects", map[string]any{"name": "after"}); r.status != http.StatusForbidden {
		t.Fatalf("demoted admin creates a project: %s, want 403", r)
	}
	a.mustJSON(tm.owner.call(http.MethodDelete, member, nil), 204, nil)
	for _, path := range []string{"/api/projects", fmt.Sprintf("/api/workspaces/%d", tm.ws)} {
		if r := tm.admin.in(tm.ws, http.MethodGet, path, nil); r.status != http.StatusNotFound {
			t.Errorf("removed member GET %s: %s, want 404", path, r)
		}
	}
}

// TestDeleteWorkspace ensures soft delete needs the exact name and another workspace, hides the
// workspace everywhere, kills its keys (cache evicted, key auth sees it deleted) and keeps rows.
func TestDeleteWorkspace(t *testing.T) {
	a := newApp(t)
	alice := a.signup("alice@example.com")
	var created struct{ Workspace struct{ ID int64 } }
	a.mustJSON(alice.call(http.MethodPost, "/api/workspaces", map[string]any{"name": "Acme Prod"}), 201, &created)
	ws := created.Workspace.ID
	p := alice.createProject(ws, "api")
	path := fmt.Sprintf("/api/workspaces/%d", ws)

	if r := alice.call(http.MethodDelete, path, map[string]any{"confirmName": "acme prod"}); r.status != http.StatusBadRequest {
		t.Errorf("wrong confirmName: %s, want 400", r)
	}
	if r := alice.call(http.MethodDelete, path, nil); r.status != http.StatusBadRequest {
		t.Errorf("no body: %s, want 400", r)
	}
	a.mustJSON(alice.call(http.MethodDelete, path, map[string]any{"confirmName": "Acme Prod"}), 204, nil)
	if !a.evict.workspace(ws) {
		t.Error("workspace delete did not evict its keys")
	}
	auth, err := a.db.KeyAuthByPrefix(context.Background(), p.Project.KeyPrefix)
	if err != nil {
		t.Fatalf("project row must remain: %v", err)
	}
	if !auth.WorkspaceDeleted {
		t.Error("key auth does not see the workspace as deleted")
	}
	var list struct{ Data []struct{ ID int64 } }
	a.mustJSON(alice.call(http.MethodGet, "/api/workspaces", nil), 200, &list)
	if len(list.Data) != 1 || list.Data[0].ID != alice.ws {
		t.Errorf("workspaces after delete: %+v", list.Data)
	}
	for _, r := range []response{
		alice.call(http.MethodGet, path, nil),
		alice.call(http.MethodGet, fmt.Sprintf("/api/projects/%d", p.Project.ID), nil),
		alice.in(ws, http.MethodGet, "/api/projects", nil),
		alice.call(http.MethodGet, path+"/audit", nil),
	} {
		if r.status != http.StatusNotFound {
			t.Errorf("deleted workspace still answers: %s", r)
		}
	}
	var n int
	a.db.Read.QueryRow(`SELECT count(*) FROM workspaces WHERE id = ? AND deleted_at IS NOT NULL`, ws).Scan(&n)
	if n != 1 {
		t.Error("workspace row is gone; soft delete must keep it")
	}
	// The only workspace left cannot be deleted.
	r := alice.call(http.MethodDelete, fmt.Sprintf("/api/workspaces/%d", alice.ws), map[string]any{"confirmName": "User alice@example.com's workspace"})
	if r.status != http.StatusConflict || !strings.Contains(string(r.body), "only workspace") {
		t.Errorf("deleting the only workspace: %s, want 409", r)
	}
}

// TestWorkspaceBudgets ensures workspace budgets are stored in nano-dollars, cleared by null and
// evict the workspace's cached keys.
func TestWorkspaceBudgets(t *testing.T) {
	a := newApp(t)
	alice := a.signup("alice@example.com")
	p := alice.createProject(alice.ws, "api")
	var got struct {
		Workspace struct {
			Name             string
			DailyBudgetUsd   *float64
			MonthlyBudgetUsd *float64
		}
	}
	path := fmt.Sprintf("/api/workspaces/%d", alice.ws)
	a.mustJSON(alice.call(http.MethodPatch, path, map[string]any{"dailyBudgetUsd": 2.5, "monthlyBudgetUsd": 40}), 200, &got)
	if *got.Workspace.DailyBudgetUsd != 2.5 || *got.Workspace.MonthlyBudgetUsd != 40 {
		t.Errorf("budgets = %v %v", *got.Workspace.DailyBudgetUsd, *got.Workspace.MonthlyBudgetUsd)
	}
	if !a.evict.workspace(alice.ws) {
		t.Error("budget change did not evict the workspace's keys")
	}
	auth, _ := a.db.KeyAuthByPrefix(context.Background(), p.Project.KeyPrefix)
	if auth.WorkspaceDaily == nil || *auth.WorkspaceDaily != 2_500_000_000 {
		t.Errorf("stored daily budget = %v, want 2.5e9 nano", auth.WorkspaceDaily)
	}
	a.mustJSON(alice.call(http.MethodPatch, path, `{"dailyBudgetUsd":null}`), 200, &got)
	if got.Workspace.DailyBudgetUsd != nil || got.Workspace.MonthlyBudgetUsd == nil {
		t.Errorf("after null: %+v", got.Workspace)
	}
	if r := alice.call(http.MethodPatch, path, `{"monthlyBudgetUsd":-3}`); r.status != http.StatusBadRequest {
		t.Errorf("negative: %s", r)
	}
	if r := alice.call(http.MethodPut, path+"/billing", `{"plan":"platinum"}`); r.status != http.StatusBadRequest {
		t.Errorf("unknown plan: %s", r)
	}
}

// TestCORS ensures only CORS_ORIGIN gets CORS headers, and preflights are answered.
func TestCORS(t *testing.T) {
	a := newApp(t, withCORS("https://app.example.com"))
	r := a.call("", http.MethodOptions, "/api/projects", nil, "Origin", "https://app.example.com", "Access-Control-Request-Method", "POST")
	if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight from the allowed origin: %d %v", r.status, r.header)
	}
	r = a.call("", http.MethodOptions, "/api/projects", nil, "Origin", "https://evil.example.com")
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin got CORS headers: %v", r.header)
	}
	r = a.call("", http.MethodGet, "/api/me", nil, "Origin", "https://app.example.com")
	if r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("error response lacks CORS header: %v", r.header)
	}
	b := newApp(t)
	if r := b.call("", http.MethodGet, "/api/me", nil, "Origin", "https://app.example.com"); r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("no CORS_ORIGIN, yet CORS headers: %v", r.header)
	}
}
