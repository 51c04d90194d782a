package web_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestProjectControlsForm ensures the project forms offer the rate limits, allow-list, failover
// and end-user budget, save them (create and settings) for the proxy, show them back, refuse bad
// values inline naming the field without changing anything, and show them read-only to members.
func TestProjectControlsForm(t *testing.T) {
	app := newApp(t)
	c := app.client(t)
	ws := c.signup("Ada", "ada@example.com")
	form := c.get(ws + "/new-project").Body
	for _, want := range []string{`name="rpmLimit"`, `name="tpmLimit"`, `name="allowedModels"`, `name="fallbackOnError"`, `name="endUserDailyBudgetUsd"`, "MODEL_NOT_ALLOWED"} {
		if !strings.Contains(form, want) {
			t.Errorf("new-project form lacks %q", want)
		}
	}
	path, key := c.createProject(ws, url.Values{"name": {"bot"}, "rpmLimit": {"60"}, "allowedModels": {"gpt-4o-mini\nclaude-*"},
		"fallbackOnError": {"off", "on"}, "endUserDailyBudgetUsd": {"2.50"}})
	k := keyAuth(t, app, key)
	if k.RPMLimit != 60 || k.TPMLimit != 0 || !slices.Equal(k.AllowedModels, []string{"gpt-4o-mini", "claude-*"}) || !k.FallbackOnError || k.EndUserDailyBudgetNano != 2_500_000_000 {
		t.Fatalf("created: %+v", k.Controls)
	}
	page := c.get(path).Body
	for _, want := range []string{`value="60"`, "gpt-4o-mini\nclaude-*</textarea>", `value="2.5"`, `value="on" checked`} {
		if !strings.Contains(page, want) {
			t.Errorf("the settings form does not show %q", want)
		}
	}

	base := url.Values{"name": {"bot"}, "rpmLimit": {"60"}, "tpmLimit": {""}, "allowedModels": {"gpt-4o-mini\nclaude-*"},
		"fallbackOnError": {"off", "on"}, "endUserDailyBudgetUsd": {"2.50"}}
	with := func(kv ...string) url.Values {
		v := url.Values{}
		for k, vs := range base {
			v[k] = vs
		}
		for i := 0; i+1 < len(kv); i += 2 {
			v[kv[i]] = []string{kv[i+1]}
		}
		return v
	}
	steps := []struct {
		name   string
		form   url.Values
		status int
		inBody string // an inline error, for refusals
	}{
		{"rpm not a number", with("rpmLimit", "sixty"), http.StatusBadRequest, `id="rpmLimit-err"`},
		{"tpm over 1e9", with("tpmLimit", "1000000001"), http.StatusBadRequest, `id="tpmLimit-err"`},
		{"negative rpm", with("rpmLimit", "-1"), http.StatusBadRequest, `id="rpmLimit-err"`},
		{"star inside a pattern", with("allowedModels", "gpt-*-mini"), http.StatusBadRequest, `id="allowedModels-err"`},
		{"fallback not allowed", with("fallbackModel", "gemini-2.0-flash", "confirmFallback", "gemini-2.0-flash"), http.StatusBadRequest, `id="fallbackModel-err"`},
		{"bad end-user budget", with("endUserDailyBudgetUsd", "lots"), http.StatusBadRequest, `id="endUserDailyBudgetUsd-err"`},
		{"new limits, box unticked", with("rpmLimit", "120", "tpmLimit", "50,000", "fallbackOnError", "off", "endUserDailyBudgetUsd", ""), http.StatusSeeOther, ""},
	}
	for _, st := range steps {
		c.get(path)
		r := c.post(path, st.form)
		if r.Status != st.status || !strings.Contains(r.Body, st.inBody) {
			t.Errorf("%s: %d, want %d with %q", st.name, r.Status, st.status, st.inBody)
		}
		if st.status != http.StatusSeeOther {
			if k := keyAuth(t, app, key); k.RPMLimit != 60 || k.FallbackModel != "" {
				t.Errorf("%s: a refused save changed the project: %+v", st.name, k.Controls)
			}
		}
	}
	k = keyAuth(t, app, key)
	if k.RPMLimit != 120 || k.TPMLimit != 50000 || k.FallbackOnError || k.EndUserDailyBudgetNano != 0 {
		t.Errorf("after saving: %+v", k.Controls)
	}
	if r := c.post(path, url.Values{"name": {"bot"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("a form without the controls: %d", r.Status)
	}
	if k := keyAuth(t, app, key); k.RPMLimit != 120 || len(k.AllowedModels) != 2 {
		t.Errorf("a form without the controls changed them: %+v", k.Controls)
	}

	mel := join(t, app, c, ws, "Mel", "mel@example.com", "member")
	view := mel.get(path).Body
	if strings.Contains(view, `name="rpmLimit"`) || !strings.Contains(view, `<dt class="label">Requests per minute</dt><dd>120</dd>`) ||
		!strings.Contains(view, "claude-*") {
		t.Error("a member's project page does not show the controls read-only")
	}
}

// TestWorkspaceLimitsForm ensures the workspace settings form saves the workspace's rate limits
// for every project key of the workspace and refuses a bad value inline without changing them.
func TestWorkspaceLimitsForm(t *testing.T) {
	app := newApp(t)
	c := app.client(t)
	ws := c.signup("Ada", "ada@example.com")
	_, key := c.createProject(ws, url.Values{"name": {"bot"}})
	if r := c.post(ws+"/settings", url.Values{"name": {"Acme"}, "rpmLimit": {"600"}, "tpmLimit": {"90000"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("save: %d %s", r.Status, r.Body)
	}
	if k := keyAuth(t, app, key); k.WorkspaceRPM != 600 || k.WorkspaceTPM != 90000 {
		t.Errorf("key auth workspace limits %d/%d", k.WorkspaceRPM, k.WorkspaceTPM)
	}
	if page := c.get(ws + "/settings").Body; !strings.Contains(page, `id="ws-rpmLimit" name="rpmLimit" type="text" inputmode="numeric" value="600"`) {
		t.Error("the saved limit is not shown")
	}
	if r := c.post(ws+"/settings", url.Values{"name": {"Acme"}, "rpmLimit": {"1.5"}}); r.Status != http.StatusBadRequest || !strings.Contains(r.Body, `id="rpmLimit-err"`) {
		t.Errorf("a fraction: %d, want 400 with an inline error", r.Status)
	}
	if k := keyAuth(t, app, key); k.WorkspaceRPM != 600 {
		t.Error("a refused save changed the limit")
	}
}
