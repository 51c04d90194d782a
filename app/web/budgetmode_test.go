package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"tokenguard/app/apikey"
	"tokenguard/store"
)

// keyAuth reads what the proxy will gate key's requests on.
func keyAuth(t *testing.T, app *testApp, key string) store.KeyAuth {
	t.Helper()
	prefix, ok := apikey.Parse(key)
	if !ok {
		t.Fatalf("%q is not a key", key)
	}
	k, err := app.DB.KeyAuthByPrefix(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestProjectBudgetModeForm ensures the project forms offer the budget mode with its trade-off
// stated beside it, save it (create and settings), show it back, refuse a forged value inline,
// and leave it alone when a form does not send the field.
func TestProjectBudgetModeForm(t *testing.T) {
	app := newApp(t)
	c := app.client(t)
	ws := c.signup("Ada", "ada@example.com")
	form := c.get(ws + "/new-project").Body
	for _, want := range []string{`name="budgetMode"`, `<option value="soft" selected>Soft (default)</option>`,
		"a burst can overshoot by about one request", "late answers may be cut short", "x-tokenguard-max-output-tokens",
		"refuses only when even a short answer cannot be paid"} {
		if !strings.Contains(form, want) {
			t.Errorf("new-project form lacks %q", want)
		}
	}

	path, key := c.createProject(ws, url.Values{"name": {"careful"}, "budgetMode": {"strict"}})
	if k := keyAuth(t, app, key); !k.ProjectStrict || k.WorkspaceStrict {
		t.Errorf("created strict: key auth strict %v/%v, want true/false", k.ProjectStrict, k.WorkspaceStrict)
	}
	page := c.get(path).Body
	if !strings.Contains(page, `<option value="strict" selected>Strict</option>`) || !strings.Contains(page, "Strict budget") {
		t.Error("the project page does not show the strict mode")
	}

	steps := []struct {
		name       string
		form       url.Values
		wantStatus int
		wantStrict bool
		wantInBody string
	}{
		{"forged value", url.Values{"name": {"careful"}, "budgetMode": {"hard"}}, http.StatusBadRequest, true, `id="budgetMode-err"`},
		{"empty value", url.Values{"name": {"careful"}, "budgetMode": {""}}, http.StatusBadRequest, true, `id="budgetMode-err"`},
		{"field absent", url.Values{"name": {"careful"}}, http.StatusSeeOther, true, ""},
		{"to soft", url.Values{"name": {"careful"}, "budgetMode": {"soft"}}, http.StatusSeeOther, false, ""},
		{"back to strict", url.Values{"name": {"careful"}, "budgetMode": {"strict"}}, http.StatusSeeOther, true, ""},
	}
	for _, st := range steps {
		c.get(path)
		r := c.post(path, st.form)
		if r.Status != st.wantStatus || !strings.Contains(r.Body, st.wantInBody) {
			t.Errorf("%s: %d, want %d with %q", st.name, r.Status, st.wantStatus, st.wantInBody)
		}
		if k := keyAuth(t, app, key); k.ProjectStrict != st.wantStrict {
			t.Errorf("%s: project strict = %v, want %v", st.name, k.ProjectStrict, st.wantStrict)
		}
	}

	// A member sees the mode without a form.
	mel := join(t, app, c, ws, "Mel", "mel@example.com", "member")
	view := mel.get(path).Body
	if strings.Contains(view, `name="budgetMode"`) || !strings.Contains(view, "<dt class=\"label\">Budget mode</dt><dd>Strict</dd>") {
		t.Error("a member's project page does not show the mode read-only")
	}
}

// TestWorkspaceBudgetModeForm ensures the workspace settings form offers the budget mode with
// its trade-off, saves it for every project key of the workspace, and refuses a forged value
// inline without changing it.
func TestWorkspaceBudgetModeForm(t *testing.T) {
	app := newApp(t)
	c := app.client(t)
	ws := c.signup("Ada", "ada@example.com")
	_, key := c.createProject(ws, url.Values{"name": {"bot"}})
	page := c.get(ws + "/settings").Body
	for _, want := range []string{`id="ws-budgetMode"`, `<option value="soft" selected>Soft (default)</option>`, "late answers may be cut short"} {
		if !strings.Contains(page, want) {
			t.Errorf("settings form lacks %q", want)
		}
	}
	if r := c.post(ws+"/settings", url.Values{"name": {"Acme"}, "budgetMode": {"strict"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("save strict: %d %s", r.Status, r.Body)
	}
	if k := keyAuth(t, app, key); k.ProjectStrict || !k.WorkspaceStrict {
		t.Errorf("after saving strict: key auth strict %v/%v, want false/true", k.ProjectStrict, k.WorkspaceStrict)
	}
	if !strings.Contains(c.get(ws+"/settings").Body, `<option value="strict" selected>Strict</option>`) {
		t.Error("the saved mode is not shown")
	}
	r := c.post(ws+"/settings", url.Values{"name": {"Acme"}, "budgetMode": {"off"}})
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, `id="budgetMode-err"`) {
		t.Errorf("forged value: %d, want 400 with an inline budgetMode error", r.Status)
	}
	if k := keyAuth(t, app, key); !k.WorkspaceStrict {
		t.Error("a refused save changed the workspace's mode")
	}
	mel := join(t, app, c, ws, "Mel", "mel@example.com", "member")
	if view := mel.get(ws + "/settings").Body; !strings.Contains(view, `<span class="label">Budget mode:</span> Strict`) {
		t.Error("a member's settings page does not show the mode")
	}
}
