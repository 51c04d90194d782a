package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"tokenguard/store"
)

// TestKeyShownOnce ensures the key appears on exactly one response — no-store, out of HTMX
// history — and never again: not on a reload, not on the project or projects pages.
func TestKeyShownOnce(t *testing.T) {
	app := newApp(t)
	c := app.client(t)
	ws := c.signup("Ada", "ada@example.com")

	c.get(ws + "/new-project")
	r := c.post(ws+"/projects", url.Values{"name": {"support-bot"}, "dailyBudgetUsd": {"5"}, "monthlyBudgetUsd": {"100"}})
	if got, want := r.Status, http.StatusSeeOther; got != want {
		t.Fatalf("create: status %d, want %d: %s", got, want, r.Body)
	}
	loc := r.Header.Get("Location")
	if keyRe.MatchString(loc) {
		t.Fatalf("the key travels in the redirect URL %q", loc)
	}
	page := c.get(loc)
	key := keyRe.FindString(page.Body)
	if key == "" {
		t.Fatalf("key page shows no key: %s", page.Body)
	}
	if got, want := page.Header.Get("Cache-Control"), "no-store"; got != want {
		t.Errorf("key page Cache-Control = %q, want %q", got, want)
	}
	if !strings.Contains(page.Body, `hx-history="false"`) {
		t.Error("key page is not kept out of HTMX history")
	}
	if !strings.Contains(page.Body, app.URL+"/proxy/openai/v1") {
		t.Error("snippets do not use this server's base URL")
	}
	if !strings.Contains(page.Body, "will not be shown again") {
		t.Error("no warning that the key is shown once")
	}

	again := c.get(loc)
	if strings.Contains(again.Body, key) {
		t.Error("reloading the key page shows the key again")
	}
	if !strings.Contains(again.Body, "already been shown") {
		t.Error("the reload does not say the key was already shown")
	}
	projectPath, _, _ := strings.Cut(loc, "?")
	for _, p := range []string{ws + "/projects", projectPath, ws + "/usage", ws + "/team", ws + "/settings", ws + "/audit"} {
		if body := c.get(p).Body; strings.Contains(body, key) {
			t.Errorf("%s shows the full key", p)
		}
	}
	var logged int
	app.DB.Read.QueryRow(`SELECT count(*) FROM audit_log WHERE details LIKE ?`, "%"+key[len(key)-8:]+"%").Scan(&logged)
	if logged != 0 {
		t.Error("the key is in the audit log")
	}
	sendChat(t, app, key)
	// A refused request with the key in the path must not log it either.
	c.postFrom(loc, url.Values{"x": {key}}, "https://evil.example", true)
	if strings.Contains(app.Logs.String(), key) {
		t.Error("the key is in the server log")
	}
}

// TestCSRF ensures a state change needs both a same-origin request and the session's token.
func TestCSRF(t *testing.T) {
	app := newApp(t)
	c := app.client(t)
	ws := c.signup("Ada", "ada@example.com")
	c.get(ws + "/new-project")
	form := func() url.Values { return url.Values{"name": {"evil"}} }

	cases := []struct {
		name      string
		origin    string
		withToken bool
	}{
		{"cross-site origin with a valid cookie and token", "https://evil.example", true},
		{"same origin without the token", app.URL, false},
		{"no origin and no token", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := c.postFrom(ws+"/projects", form(), tc.origin, tc.withToken)
			if got, want := r.Status, http.StatusForbidden; got != want {
				t.Errorf("status %d, want %d", got, want)
			}
		})
	}
	projects := c.get(ws + "/projects")
	if strings.Contains(projects.Body, "evil") {
		t.Fatal("a refused request created a project")
	}
	// The same request from the page itself works.
	if r := c.post(ws+"/projects", form()); r.Status != http.StatusSeeOther {
		t.Fatalf("same-origin request with token: status %d", r.Status)
	}
	// GET never changes state: logout is POST only.
	if r := c.get("/logout"); r.Status == http.StatusSeeOther {
		t.Error("GET /logout signed out")
	}
}

// TestUserSuppliedNamesRenderInert ensures a hostile project name is escaped on every page
// that shows it.
func TestUserSuppliedNamesRenderInert(t *testing.T) {
	app := newApp(t)
	c := app.client(t)
	ws := c.signup("<script>alert(1)</script>", "ada@example.com")
	const evil = `<img src=x onerror=alert(1)>`
	path, key := c.createProject(ws, url.Values{"name": {evil}})
	sendChat(t, app, key)
	waitUsage(t, app, 1)

	for _, p := range []string{ws + "/projects", path, ws + "/usage", ws + "/audit", ws + "/team"} {
		body := c.get(p).Body
		if strings.Contains(body, "<img src=x") || strings.Contains(body, "<script>alert") {
			t.Errorf("%s renders the name as markup", p)
		}
	}
	for _, p := range []string{ws + "/projects", path, ws + "/usage"} {
		if body := c.get(p).Body; !strings.Contains(body, "&lt;img src=x onerror=alert(1)&gt;") {
			t.Errorf("%s does not show the name as text", p)
		}
	}
}

// TestRolesAndIsolation walks an invite through to a member, who sees no management controls
// and whose direct POSTs are refused; and an outsider, who gets 404 for everything.
func TestRolesAndIsolation(t *testing.T) {
	app := newApp(t)
	owner := app.client(t)
	ws := owner.signup("Olivia", "olivia@example.com")
	projectPath, _ := owner.createProject(ws, url.Values{"name": {"alpha"}})

	owner.get(ws + "/team")
	r := owner.post(ws+"/team/invites", url.Values{"email": {"mel@example.com"}, "role": {"member"}})
	link := regexp.MustCompile(`http://[^"<\s]+/invites/[A-Za-z0-9_\-]+`).FindString(r.Body)
	if link == "" {
		t.Fatalf("no invite link shown: %d %s", r.Status, r.Body)
	}
	msgs := app.Mail.Wait(1, 5*time.Second)
	if !strings.Contains(msgs[0].Text, link) {
		t.Errorf("the mailed invite does not carry the link %s", link)
	}
	invitePath := strings.TrimPrefix(link, app.URL)

	mel := app.client(t)
	page := mel.get(invitePath)
	if !strings.Contains(page.Body, "Create an account") {
		t.Fatalf("invite page for a signed-out visitor: %s", page.Body)
	}
	mel.get("/signup?next=" + url.QueryEscape(invitePath) + "&email=mel%40example.com")
	r = mel.post("/signup", url.Values{"name": {"Mel"}, "email": {"mel@example.com"}, "password": {"correct horse battery"}, "next": {invitePath}})
	if got, want := r.Header.Get("Location"), invitePath; got != want {
		t.Fatalf("after signup redirected to %q, want %q", got, want)
	}
	mel.get(invitePath)
	r = mel.post(invitePath+"/accept", nil)
	if got, want := r.Header.Get("Location"), ws+"/projects"; got != want {
		t.Fatalf("accept redirected to %q, want %q (%d %s)", got, want, r.Status, r.Body)
	}

	team := mel.get(ws + "/team").Body
	for _, control := range []string{"/team/invites", "/role", "/remove", "Send invite"} {
		if strings.Contains(team, control) {
			t.Errorf("member's team page renders control %q", control)
		}
	}
	if body := mel.get(projectPath).Body; strings.Contains(body, "/regenerate") || strings.Contains(body, "Delete project") {
		t.Error("member's project page renders management controls")
	}
	if body := mel.get(ws + "/projects").Body; strings.Contains(body, "New project") {
		t.Error("member's projects page offers New project")
	}
	var ownerID int64
	app.DB.Read.QueryRow(`SELECT id FROM users WHERE email = 'olivia@example.com'`).Scan(&ownerID)
	for _, p := range []string{
		fmt.Sprintf("%s/team/members/%d/role", ws, ownerID),
		fmt.Sprintf("%s/team/members/%d/remove", ws, ownerID),
		ws + "/team/invites",
		ws + "/projects",
		projectPath + "/regenerate",
		ws + "/settings/delete",
	} {
		if r := mel.post(p, url.Values{"role": {"member"}, "email": {"x@example.com"}, "name": {"x"}, "confirmName": {"x"}}); r.Status != http.StatusForbidden {
			t.Errorf("member POST %s: status %d, want 403", p, r.Status)
		}
	}
	var role string
	app.DB.Read.QueryRow(`SELECT role FROM memberships WHERE user_id = ?`, ownerID).Scan(&role)
	if role != "owner" {
		t.Fatalf("owner's role became %q", role)
	}

	eve := app.client(t)
	eve.signup("Eve", "eve@example.com")
	for _, p := range []string{ws + "/projects", projectPath, ws + "/usage", ws + "/team"} {
		if r := eve.get(p); r.Status != http.StatusNotFound {
			t.Errorf("outsider GET %s: status %d, want 404", p, r.Status)
		}
	}
}

// TestUsageLogPaging ensures the usage log pages by cursor with no row repeated or skipped,
// also for a filter that is searched window by window.
func TestUsageLogPaging(t *testing.T) {
	app := newApp(t)
	c := app.client(t)
	ws, wsID, projectID := c.signupWithProject()
	now := time.Now().UnixMilli()
	// 150 rows, one every 30 minutes (75 hours: many search windows); every other one a 429.
	rows := make([]store.UsageRow, 150)
	for i := range rows {
		status := 200
		if i%2 == 0 {
			status = 429
		}
		rows[i] = store.UsageRow{RequestID: fmt.Sprintf("req-%03d", i), CreatedAt: now - int64(i)*30*60*1000, WorkspaceID: wsID, ProjectID: projectID,
			Provider: "openai", OriginalModel: "gpt-4o", FinalModel: "gpt-4o", Status: status, InputTokens: 10, OutputTokens: 5, TotalTokens: 15, CostNano: 1000}
	}
	rows[0].PricesVersion = "genai-prices 0.1.8 (test)"
	if _, err := app.DB.InsertUsage(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	// The cost says which prices computed it.
	if page := c.get(ws + "/usage"); !strings.Contains(page.Body, `title="Priced with genai-prices 0.1.8 (test)"`) {
		t.Errorf("the usage log does not name the prices version of a row")
	}
	idRe := regexp.MustCompile(`data-usage-id="(\d+)"`)
	nextRe := regexp.MustCompile(`hx-get="([^"]+fragment=rows[^"]*)"`)
	pageAll := func(query string) int {
		seen := map[string]bool{}
		page := c.get(ws + "/usage" + query)
		for pages := 0; ; pages++ {
			for _, m := range idRe.FindAllStringSubmatch(page.Body, -1) {
				if seen[m[1]] {
					t.Fatalf("%s: row %s shown twice", query, m[1])
				}
				seen[m[1]] = true
			}
			next := nextRe.FindStringSubmatch(page.Body)
			if next == nil {
				return len(seen)
			}
			if pages > 200 {
				t.Fatalf("%s: paging does not end", query)
			}
			req, _ := http.NewRequest(http.MethodGet, app.URL+strings.ReplaceAll(next[1], "&amp;", "&"), nil)
			req.Header.Set("HX-Request", "true")
			page = c.do(req)
			if strings.Contains(page.Body, "<html") {
				t.Fatal("Load more returned a whole page instead of rows")
			}
		}
	}
	if got, want := pageAll(""), 150; got != want {
		t.Errorf("paged through %d rows, want %d", got, want)
	}
	if got, want := pageAll("?status=429"), 75; got != want {
		t.Errorf("status=429: paged through %d rows, want %d", got, want)
	}
	if got, want := pageAll("?status=503"), 0; got != want {
		t.Errorf("status=503: %d rows, want none", got)
	}
	if bad := c.get(ws + "/usage?status=abc"); !strings.Contains(bad.Body, "Status must be an HTTP status") {
		t.Error("a bad status filter is not reported")
	}
}

// TestHeadersAndAssets ensures pages carry the CSP and security headers and assets are served
// fingerprinted and immutable.
func TestHeadersAndAssets(t *testing.T) {
	app := newApp(t)
	c := app.client(t)
	r := c.get("/login")
	csp := r.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP = %q", csp)
	}
	if got := r.Header.Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("X-Frame-Options = %q", got)
	}
	if strings.Contains(r.Body, "<script>") {
		t.Error("the page has an inline script")
	}
	asset := regexp.MustCompile(`/static/htmx-2\.0\.11\.min\.[0-9a-f]{12}\.js`).FindString(r.Body)
	if asset == "" {
		t.Fatalf("no fingerprinted htmx in the page: %s", r.Body)
	}
	a := c.get(asset)
	if a.Status != http.StatusOK || a.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Errorf("asset: %d %q", a.Status, a.Header.Get("Cache-Control"))
	}
	if got := c.get("/static/htmx.min.js").Status; got != http.StatusNotFound {
		t.Errorf("unfingerprinted asset: status %d, want 404", got)
	}
	// The dashboard never takes a JWT from the query string or a bearer header.
	sess, err := app.Accounts.Signup(context.Background(), accountSignup("bob@example.com"), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	anon := app.client(t)
	if r := anon.get(fmt.Sprintf("/w/%d/projects?token=%s", sess.Workspace.ID, sess.Token)); r.Status != http.StatusSeeOther {
		t.Errorf("a JWT in the query string opened the dashboard: %d", r.Status)
	}
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/w/%d/projects", app.URL, sess.Workspace.ID), nil)
	req.Header.Set("Authorization", "Bearer "+sess.Token)
	if r := anon.do(req); r.Status != http.StatusSeeOther {
		t.Errorf("a bearer JWT opened the dashboard: %d", r.Status)
	}
}

// TestCookieOnlyForDashboard ensures the dashboard's session cookie opens neither the JSON API
// nor the proxy: each surface takes only its own credential.
func TestCookieOnlyForDashboard(t *testing.T) {
	app := newApp(t)
	c := app.client(t)
	c.signup("Ada", "ada@example.com")
	if r := c.get("/api/me"); r.Status != http.StatusUnauthorized {
		t.Errorf("GET /api/me with the dashboard cookie: status %d, want 401", r.Status)
	}
	req, _ := http.NewRequest(http.MethodPost, app.URL+"/proxy/openai/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Content-Type", "application/json")
	r := c.do(req)
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, "MISSING_KEY") {
		t.Errorf("proxy with the dashboard cookie: %d %s, want 401 MISSING_KEY", r.Status, r.Body)
	}
	if got := len(app.Upstream.Received()); got != 0 {
		t.Errorf("%d requests reached the upstream", got)
	}
	// The cookie's token as a bearer token does not open the API either.
	u, _ := url.Parse(app.URL)
	var cookieToken string
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == "tg_session" {
			cookieToken = ck.Value
		}
	}
	req, _ = http.NewRequest(http.MethodGet, app.URL+"/api/me", nil)
	req.Header.Set("Authorization", "Bearer "+cookieToken)
	if r := app.client(t).do(req); r.Status != http.StatusUnauthorized {
		t.Errorf("/api/me with the dashboard token as bearer: %d, want 401", r.Status)
	}
	// And an API token planted in the dashboard cookie does not open the dashboard.
	sess, err := app.Accounts.Login(context.Background(), "ada@example.com", "correct horse battery", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest(http.MethodGet, app.URL+"/", nil)
	req.AddCookie(&http.Cookie{Name: "tg_session", Value: sess.Token})
	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := res.Header.Get("Location"); got != "/login" {
		t.Errorf("an API token in the cookie led to %q, want /login", got)
	}
	// The cookie is HttpOnly and SameSite=Lax (not Secure on plain http, so no __Host- prefix).
	login := app.client(t).post("/login", url.Values{"email": {"ada@example.com"}, "password": {"correct horse battery"}})
	var found bool
	for _, ck := range (&http.Response{Header: login.Header}).Cookies() {
		if ck.Name == "tg_session" {
			found = true
			if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode {
				t.Errorf("session cookie HttpOnly=%v SameSite=%v", ck.HttpOnly, ck.SameSite)
			}
		}
	}
	if !found {
		t.Error("signing in set no tg_session cookie")
	}
}

// TestInvitePageStates ensures a used or cancelled invite link gets a clear page, not a form.
func TestInvitePageStates(t *testing.T) {
	app := newApp(t)
	owner := app.client(t)
	ws := owner.signup("Olivia", "olivia@example.com")
	owner.get(ws + "/team")
	r := owner.post(ws+"/team/invites", url.Values{"email": {"sam@example.com"}, "role": {"admin"}})
	link := regexp.MustCompile(`/invites/[A-Za-z0-9_\-]+`).FindString(r.Body)
	invID := regexp.MustCompile(`data-invite-id="(\d+)"`).FindStringSubmatch(r.Body)
	if link == "" || invID == nil {
		t.Fatalf("no invite shown: %s", r.Body)
	}
	anon := app.client(t)
	if body := anon.get(link).Body; !strings.Contains(body, "Join Olivia") || !strings.Contains(body, "as admin") {
		t.Errorf("pending invite page: %s", body)
	}
	owner.get(ws + "/team")
	if r := owner.post(ws+"/team/invites/"+invID[1]+"/cancel", nil); r.Status != http.StatusSeeOther {
		t.Fatalf("cancel: %d", r.Status)
	}
	if body := anon.get(link).Body; !strings.Contains(body, "This invite was cancelled") || strings.Contains(body, "Create an account") {
		t.Errorf("cancelled invite page: %s", body)
	}
	if r := anon.get("/invites/not-a-real-token"); r.Status != http.StatusNotFound || !strings.Contains(r.Body, "Invite not found") {
		t.Errorf("unknown invite: %d", r.Status)
	}
}

// proxyStatus sends a chat completion with key and returns the status and body.
func proxyStatus(t *testing.T, app *testApp, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, app.URL+"/proxy/openai/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-tokenguard-key", key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b := new(strings.Builder)
	_, _ = io.Copy(b, res.Body)
	return res.StatusCode, b.String()
}

// TestProjectLifecycle drives the project page's actions and checks the proxy obeys at once:
// settings with inline errors, a provider key shown only masked, regenerate (confirm step, old
// key dead), deactivate and activate, delete.
func TestProjectLifecycle(t *testing.T) {
	app := newApp(t)
	c := app.client(t)
	ws := c.signup("Ada", "ada@example.com")
	path, key := c.createProject(ws, url.Values{"name": {"alpha"}})
	if st, body := proxyStatus(t, app, key); st != http.StatusOK {
		t.Fatalf("new key: %d %s", st, body)
	}

	c.get(path)
	r := c.post(path, url.Values{"name": {"alpha"}, "dailyBudgetUsd": {"-3"}, "alertEmail": {"not-an-email"}})
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, `id="dailyBudgetUsd-err"`) {
		t.Errorf("negative budget: %d, no inline error", r.Status)
	}
	r = c.post(path, url.Values{"name": {"alpha"}, "alertEmail": {"not-an-email"}})
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, `id="alertEmail-err"`) {
		t.Errorf("bad alert email: %d, no inline error", r.Status)
	}
	if r := c.post(path, url.Values{"name": {"alpha-renamed"}, "dailyBudgetUsd": {"$12.50"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("save settings: %d %s", r.Status, r.Body)
	}
	if body := c.get(path).Body; !strings.Contains(body, "alpha-renamed") || !strings.Contains(body, `value="12.5"`) || !strings.Contains(body, "Settings saved.") {
		t.Error("saved settings are not shown (or no flash)")
	}

	const providerKey = "sk-proj-abcdefghijklmnop1234"
	if r := c.post(path+"/provider-keys", url.Values{"provider": {"openai"}, "key": {providerKey}}); r.Status != http.StatusSeeOther {
		t.Fatalf("set provider key: %d %s", r.Status, r.Body)
	}
	body := c.get(path).Body
	if strings.Contains(body, providerKey) || !strings.Contains(body, "…1234") {
		t.Error("the provider key is not shown masked (or is shown in full)")
	}
	if st, _ := proxyStatus(t, app, key); st != http.StatusOK {
		t.Fatalf("request after setting a provider key: %d", st)
	}
	if got := app.Upstream.Last().Header.Get("Authorization"); got != "Bearer "+providerKey {
		t.Errorf("upstream got Authorization %q, want the project's key", got)
	}

	if body := c.get(path + "?confirm=regenerate").Body; !strings.Contains(body, "Yes, regenerate") {
		t.Error("no confirmation step before regenerating")
	}
	r = c.post(path+"/regenerate", nil)
	newKey := keyRe.FindString(c.get(r.Header.Get("Location")).Body)
	if newKey == "" || newKey == key {
		t.Fatalf("regenerate showed key %q", newKey)
	}
	if st, body := proxyStatus(t, app, key); st != http.StatusUnauthorized || !strings.Contains(body, "INVALID_KEY") {
		t.Errorf("old key after regenerate: %d %s", st, body)
	}
	if st, _ := proxyStatus(t, app, newKey); st != http.StatusOK {
		t.Errorf("new key: %d", st)
	}

	c.post(path+"/deactivate", nil)
	if st, body := proxyStatus(t, app, newKey); st != http.StatusUnauthorized || !strings.Contains(body, "KEY_DEACTIVATED") {
		t.Errorf("after deactivate: %d %s", st, body)
	}
	if body := c.get(ws + "/projects").Body; !strings.Contains(body, "Deactivated") {
		t.Error("projects page does not show the project deactivated")
	}
	c.post(path+"/activate", nil)
	if st, _ := proxyStatus(t, app, newKey); st != http.StatusOK {
		t.Errorf("after activate: %d", st)
	}
	if r := c.post(path+"/delete", nil); r.Header.Get("Location") != ws+"/projects" {
		t.Fatalf("delete: %d %s", r.Status, r.Header.Get("Location"))
	}
	if st, _ := proxyStatus(t, app, newKey); st != http.StatusUnauthorized {
		t.Errorf("deleted project's key: %d", st)
	}
	if r := c.get(path); r.Status != http.StatusNotFound {
		t.Errorf("deleted project's page: %d", r.Status)
	}
}

// TestWorkspaceSettings checks rename, budgets and the typed-name delete.
func TestWorkspaceSettings(t *testing.T) {
	app := newApp(t)
	c := app.client(t)
	ws := c.signup("Ada", "ada@example.com")
	c.get(ws + "/settings")
	if body := c.get(ws + "/settings").Body; !strings.Contains(body, "only workspace") {
		t.Error("deleting the only workspace is offered")
	}
	r := c.post(ws+"/settings", url.Values{"name": {"Acme"}, "dailyBudgetUsd": {"ten"}})
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, `id="dailyBudgetUsd-err"`) {
		t.Errorf("bad budget: %d", r.Status)
	}
	if r := c.post(ws+"/settings", url.Values{"name": {"Acme"}, "dailyBudgetUsd": {"10"}, "monthlyBudgetUsd": {"200"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("save: %d %s", r.Status, r.Body)
	}
	if body := c.get(ws + "/projects").Body; !strings.Contains(body, "Acme") || !strings.Contains(body, "$10.00") {
		t.Error("renamed workspace or its budget not shown")
	}
	r = c.post("/workspaces", url.Values{"name": {"Second"}})
	second := strings.TrimSuffix(r.Header.Get("Location"), "/projects")
	if !strings.HasPrefix(second, "/w/") {
		t.Fatalf("create workspace: %d %s", r.Status, r.Body)
	}
	c.get(second + "/settings")
	if r := c.post(second+"/settings/delete", url.Values{"confirmName": {"second"}}); r.Status != http.StatusBadRequest {
		t.Errorf("delete with the wrong name: %d", r.Status)
	}
	if r := c.post(second+"/settings/delete", url.Values{"confirmName": {"Second"}}); r.Status != http.StatusSeeOther {
		t.Errorf("delete with the exact name: %d %s", r.Status, r.Body)
	}
	if r := c.get(second + "/projects"); r.Status != http.StatusNotFound {
		t.Errorf("deleted workspace: %d", r.Status)
	}
	if body := c.get(ws + "/projects").Body; strings.Contains(body, `>Second<span class="role">`) {
		t.Error("the deleted workspace is still in the switcher")
	}
}

// TestExportCSV ensures the export downloads the usage rows with the documented columns, defuses
// formula-like names, and is recorded in the audit log.
func TestExportCSV(t *testing.T) {
	app := newApp(t)
	c := app.client(t)
	ws := c.signup("Ada", "ada@example.com")
	_, key := c.createProject(ws, url.Values{"name": {"=HYPERLINK(\"http://evil\")"}})
	sendChat(t, app, key)
	sendChat(t, app, key)
	waitUsage(t, app, 2)
	c.get(ws + "/analytics")
	r := c.post(ws+"/analytics/export.csv", url.Values{"provider": {"openai"}})
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("export: %d %s", r.Status, r.Header.Get("Content-Type"))
	}
	lines := strings.Split(strings.TrimSpace(r.Body), "\n")
	if got, want := lines[0], "createdAt,workspace,project,provider,model,status,inputTokens,outputTokens,totalTokens,estimatedCostUsd,latencyMs,errorCode"; got != want {
		t.Errorf("header = %q", got)
	}
	if got, want := len(lines), 3; got != want {
		t.Fatalf("%d lines, want %d: %s", got, want, r.Body)
	}
	if !strings.Contains(lines[1], `'=HYPERLINK`) || !strings.Contains(lines[1], ",openai,gpt-4o-mini,200,") {
		t.Errorf("row = %q", lines[1])
	}
	var n int
	app.DB.Read.QueryRow(`SELECT count(*) FROM audit_log WHERE action = 'usage_exported'`).Scan(&n)
	if n != 1 {
		t.Errorf("%d usage_exported audit events, want 1", n)
	}
	if r := c.get(ws + "/analytics/export.csv"); r.Status != http.StatusMethodNotAllowed && r.Status != http.StatusNotFound {
		t.Errorf("GET export: %d (an export must be a POST)", r.Status)
	}
}

// TestNoWorkspace ensures a user left without a workspace is offered to create one.
func TestNoWorkspace(t *testing.T) {
	app := newApp(t)
	owner := app.client(t)
	ws := owner.signup("Olivia", "olivia@example.com")
	owner.get(ws + "/team")
	r := owner.post(ws+"/team/invites", url.Values{"email": {"mel@example.com"}, "role": {"admin"}})
	invitePath := strings.TrimPrefix(regexp.MustCompile(`http://[^"<\s]+/invites/[A-Za-z0-9_\-]+`).FindString(r.Body), app.URL)
	mel := app.client(t)
	mel.get("/signup?next=" + url.QueryEscape(invitePath))
	r = mel.post("/signup", url.Values{"name": {"Mel"}, "email": {"mel@example.com"}, "password": {"correct horse battery"}, "next": {invitePath}})
	mel.get(invitePath)
	mel.post(invitePath+"/accept", nil)
	// Mel deletes her own first workspace, then the owner removes her from Olivia's.
	wss, _ := app.Accounts.Workspaces(context.Background(), 2)
	var own int64
	for _, w := range wss {
		if w.Name != "Olivia's workspace" {
			own = w.ID
		}
	}
	mel.get(fmt.Sprintf("/w/%d/settings", own))
	if r := mel.post(fmt.Sprintf("/w/%d/settings/delete", own), url.Values{"confirmName": {"Mel's workspace"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("delete own workspace: %d %s", r.Status, r.Body)
	}
	owner.get(ws + "/team")
	if r := owner.post(ws+"/team/members/2/remove", nil); r.Status != http.StatusSeeOther {
		t.Fatalf("remove: %d %s", r.Status, r.Body)
	}
	home := mel.get("/")
	if home.Status != http.StatusOK || !strings.Contains(home.Body, `action="/workspaces"`) {
		t.Fatalf("home without a workspace: %d %s", home.Status, home.Body)
	}
	if r := mel.post("/workspaces", url.Values{"name": {"Fresh start"}}); r.Status != http.StatusSeeOther {
		t.Errorf("create workspace: %d", r.Status)
	}
}

// join invites email into ws with role (as inviter) and has a new client sign up and accept.
func join(t *testing.T, app *testApp, inviter *client, ws, name, email, role string) *client {
	t.Helper()
	inviter.get(ws + "/team")
	r := inviter.post(ws+"/team/invites", url.Values{"email": {email}, "role": {role}})
	invitePath := strings.TrimPrefix(regexp.MustCompile(`http://[^"<\s]+/invites/[A-Za-z0-9_\-]+`).FindString(r.Body), app.URL)
	if invitePath == "" {
		t.Fatalf("invite %s: %d %s", email, r.Status, r.Body)
	}
	c := app.client(t)
	c.get("/signup?next=" + url.QueryEscape(invitePath))
	c.post("/signup", url.Values{"name": {name}, "email": {email}, "password": {"correct horse battery"}, "next": {invitePath}})
	c.get(invitePath)
	if r := c.post(invitePath+"/accept", nil); r.Header.Get("Location") != ws+"/projects" {
		t.Fatalf("%s accept: %d %s", email, r.Status, r.Body)
	}
	return c
}

// TestAdminControls ensures an admin gets the controls the matrix gives admins — invites, and
// role/remove on non-owners without granting owner — and none on the owner's row.
func TestAdminControls(t *testing.T) {
	app := newApp(t)
	owner := app.client(t)
	ws := owner.signup("Olivia", "olivia@example.com")
	admin := join(t, app, owner, ws, "Sam", "sam@example.com", "admin")
	join(t, app, owner, ws, "Mel", "mel@example.com", "member")
	ids := map[string]int64{}
	for _, e := range []string{"olivia@example.com", "mel@example.com"} {
		var id int64
		app.DB.Read.QueryRow(`SELECT id FROM users WHERE email = ?`, e).Scan(&id)
		ids[e] = id
	}
	team := admin.get(ws + "/team").Body
	if !strings.Contains(team, "Send invite") {
		t.Error("an admin is not offered the invite form")
	}
	if strings.Contains(team, fmt.Sprintf("/team/members/%d/", ids["olivia@example.com"])) {
		t.Error("an admin is offered controls on the owner")
	}
	if !strings.Contains(team, fmt.Sprintf("/team/members/%d/role", ids["mel@example.com"])) {
		t.Error("an admin is not offered a role change for a member")
	}
	if strings.Contains(team, `<option value="owner"`) {
		t.Error("an admin is offered the owner role")
	}
	if settings := admin.get(ws + "/settings").Body; strings.Contains(settings, "/settings/delete") || strings.Contains(settings, "/settings/billing") || strings.Contains(settings, `id="ws-name"`) {
		t.Error("an admin is offered owner-only workspace settings")
	}
	if r := admin.post(fmt.Sprintf("%s/team/members/%d/role", ws, ids["mel@example.com"]), url.Values{"role": {"owner"}}); r.Status != http.StatusForbidden {
		t.Errorf("admin granting owner: %d, want 403", r.Status)
	}
	if r := admin.post(fmt.Sprintf("%s/team/members/%d/role", ws, ids["mel@example.com"]), url.Values{"role": {"admin"}}); r.Status != http.StatusSeeOther {
		t.Errorf("admin promoting a member to admin: %d", r.Status)
	}
}

// TestSignedOut ensures a signed-out visitor is sent to sign in — and back afterwards — and that
// a form posted after the session ended changes nothing.
func TestSignedOut(t *testing.T) {
	app := newApp(t)
	c := app.client(t)
	ws := c.signup("Ada", "ada@example.com")
	c.post("/logout", nil)
	r := c.get(ws + "/usage?provider=openai")
	if got, want := r.Header.Get("Location"), "/login?next="+url.QueryEscape(ws+"/usage?provider=openai"); got != want {
		t.Errorf("GET signed out: redirected to %q, want %q", got, want)
	}
	r = c.postFrom(ws+"/projects", url.Values{"name": {"ghost"}}, app.URL, true)
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
		t.Errorf("POST signed out: %d to %q", r.Status, r.Header.Get("Location"))
	}
	var n int
	app.DB.Read.QueryRow(`SELECT count(*) FROM projects`).Scan(&n)
	if n != 0 {
		t.Error("a signed-out POST created a project")
	}
	c.get("/login")
	r = c.post("/login", url.Values{"email": {"ada@example.com"}, "password": {"correct horse battery"}, "next": {ws + "/usage"}})
	if got := r.Header.Get("Location"); got != ws+"/usage" {
		t.Errorf("after sign-in: redirected to %q", got)
	}
	r = app.client(t).post("/login", url.Values{"email": {"ada@example.com"}, "password": {"wrong password"}})
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, "Invalid email or password") {
		t.Errorf("wrong password: %d", r.Status)
	}
}
