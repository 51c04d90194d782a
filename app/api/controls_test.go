package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

type controlsJSON struct {
	RPMLimit, TPMLimit    int64
	AllowedModels         []string
	FallbackOnError       bool
	EndUserDailyBudgetUSD float64 `json:"endUserDailyBudgetUsd"`
	FallbackModel         string
}

// TestProjectControlsAPI ensures the DESIGN §7 project fields round-trip through POST, PATCH
// and GET of /api/projects (defaults: 0, [], false), reach key auth and evict the cached key;
// null restores a default; and bad values are 400 INVALID_REQUEST naming the field, changing
// nothing.
func TestProjectControlsAPI(t *testing.T) {
	a := newApp(t)
	alice := a.signup("alice@example.com")
	var created struct{ Project controlsJSON }
	r := alice.call(http.MethodPost, "/api/projects", map[string]any{"name": "plain"})
	a.mustJSON(r, 201, &created)
	if c := created.Project; c.RPMLimit != 0 || c.TPMLimit != 0 || c.AllowedModels == nil || len(c.AllowedModels) != 0 || c.FallbackOnError || c.EndUserDailyBudgetUSD != 0 {
		t.Errorf("defaults: %+v (body %s)", c, r.body)
	}
	a.mustJSON(alice.call(http.MethodPost, "/api/projects", `{"name":"limited","rpmLimit":60,"tpmLimit":100000,
		"allowedModels":["gpt-4o-mini","claude-*"],"fallbackOnError":true,"endUserDailyBudgetUsd":2.5,"fallbackModel":"claude-haiku-4-5"}`), 201, &created)
	if c := created.Project; c.RPMLimit != 60 || c.TPMLimit != 100000 || !slices.Equal(c.AllowedModels, []string{"gpt-4o-mini", "claude-*"}) ||
		!c.FallbackOnError || c.EndUserDailyBudgetUSD != 2.5 {
		t.Errorf("POST with controls: %+v", c)
	}

	p := alice.createProject(alice.ws, "bot")
	path := fmt.Sprintf("/api/projects/%d", p.Project.ID)
	var got struct{ Project controlsJSON }
	a.mustJSON(alice.call(http.MethodPatch, path, `{"rpmLimit":1000000000,"allowedModels":["gpt-*"],"fallbackOnError":true,"endUserDailyBudgetUsd":0.75}`), 200, &got)
	if !a.evict.project(p.Project.ID) {
		t.Error("a controls change did not evict the project's cached key")
	}
	k, err := a.db.KeyAuthByPrefix(context.Background(), p.Project.KeyPrefix)
	if err != nil || k.RPMLimit != 1e9 || !slices.Equal(k.AllowedModels, []string{"gpt-*"}) || !k.FallbackOnError || k.EndUserDailyBudgetNano != 750_000_000 {
		t.Errorf("key auth after PATCH: %+v, %v", k.Controls, err)
	}
	a.mustJSON(alice.call(http.MethodPatch, path, `{"rpmLimit":null,"allowedModels":null,"fallbackOnError":null,"endUserDailyBudgetUsd":null}`), 200, &got)
	if c := got.Project; c.RPMLimit != 0 || len(c.AllowedModels) != 0 || c.FallbackOnError || c.EndUserDailyBudgetUSD != 0 {
		t.Errorf("PATCH nulls: %+v", c)
	}
	a.mustJSON(alice.call(http.MethodPatch, path, `{"tpmLimit":500,"allowedModels":["gpt-4o"]}`), 200, &got)

	bad := []struct{ name, body, field string }{
		{"fraction", `{"rpmLimit":1.5}`, "rpmLimit"},
		{"negative", `{"tpmLimit":-1}`, "tpmLimit"},
		{"over 1e9", `{"rpmLimit":1000000001}`, "rpmLimit"},
		{"huge", `{"tpmLimit":1e300}`, "tpmLimit"},
		{"string limit", `{"rpmLimit":"60"}`, "rpmLimit"},
		{"list of numbers", `{"allowedModels":[1]}`, "allowedModels"},
		{"star inside", `{"allowedModels":["gpt-*-mini"]}`, "allowedModels"},
		{"101 entries", `{"allowedModels":[` + strings.TrimSuffix(strings.Repeat(`"m",`, 101), ",") + `]}`, "allowedModels"},
		{"fallback refused by the list", `{"fallbackModel":"claude-haiku-4-5"}`, "fallbackModel"},
		{"list refusing the fallback", `{"fallbackModel":"gpt-4o"}`, ""}, // allowed: a sanity step
		{"list without the fallback", `{"allowedModels":["gpt-4o-mini"]}`, "allowedModels"},
		{"string bool", `{"fallbackOnError":"yes"}`, "fallbackOnError"},
		{"negative end-user budget", `{"endUserDailyBudgetUsd":-1}`, "endUserDailyBudgetUsd"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			r := alice.call(http.MethodPatch, path, tc.body)
			if tc.field == "" {
				if r.status != http.StatusOK {
					t.Errorf("got %s, want 200", r)
				}
				return
			}
			if r.status != http.StatusBadRequest || r.errCode() != "INVALID_REQUEST" || !strings.Contains(string(r.body), tc.field) {
				t.Errorf("got %s, want 400 INVALID_REQUEST naming %s", r, tc.field)
			}
		})
	}
	a.mustJSON(alice.call(http.MethodGet, path, nil), 200, &got)
	if c := got.Project; c.TPMLimit != 500 || !slices.Equal(c.AllowedModels, []string{"gpt-4o"}) || c.FallbackModel != "gpt-4o" {
		t.Errorf("after refused PATCHes: %+v", c)
	}
}

// TestWorkspaceLimitsAPI ensures a workspace's rpmLimit and tpmLimit round-trip through PATCH and
// GET, evict the workspace's cached keys, reach key auth, and refuse bad values naming the field.
func TestWorkspaceLimitsAPI(t *testing.T) {
	a := newApp(t)
	alice := a.signup("alice@example.com")
	p := alice.createProject(alice.ws, "bot")
	path := fmt.Sprintf("/api/workspaces/%d", alice.ws)
	var got struct {
		Workspace struct{ RPMLimit, TPMLimit int64 }
	}
	a.mustJSON(alice.call(http.MethodPatch, path, `{"rpmLimit":600,"tpmLimit":50000}`), 200, &got)
	if got.Workspace.RPMLimit != 600 || got.Workspace.TPMLimit != 50000 {
		t.Errorf("PATCH: %+v", got.Workspace)
	}
	if !a.evict.workspace(alice.ws) {
		t.Error("a limit change did not evict the workspace's keys")
	}
	if k, err := a.db.KeyAuthByPrefix(context.Background(), p.Project.KeyPrefix); err != nil || k.WorkspaceRPM != 600 || k.WorkspaceTPM != 50000 {
		t.Errorf("key auth: %d/%d, %v", k.WorkspaceRPM, k.WorkspaceTPM, err)
	}
	for _, body := range []string{`{"rpmLimit":-5}`, `{"rpmLimit":2.5}`, `{"rpmLimit":"x"}`} {
		if r := alice.call(http.MethodPatch, path, body); r.status != 400 || !strings.Contains(string(r.body), "rpmLimit") {
			t.Errorf("%s: got %s", body, r)
		}
	}
	a.mustJSON(alice.call(http.MethodGet, path, nil), 200, &got)
	if got.Workspace.RPMLimit != 600 {
		t.Errorf("after refused PATCHes: %+v", got.Workspace)
	}
}
