package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"tokenguard/app/provider/openai/openaitest"
	"tokenguard/store"
)

// browser is one headless chromium with its own profile (a separate "person").
type browser struct {
	t       *testing.T
	ctx     context.Context
	shots   string
	mu      sync.Mutex
	dialogs []string
	// problems are CSP violations and JavaScript errors the pages caused.
	problems []string
}

// newBrowser starts Debian's chromium. Without chromium the test is skipped — unless CI is set,
// where the browser tests must run.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed, and CI is set: the browser tests must run (apt-get install -y chromium)")
		}
		t.Skip("chromium is not installed: skipping the browser test (apt-get install -y chromium; CI runs it)")
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	b := &browser{t: t, ctx: ctx, shots: os.Getenv("TG_SCREENSHOTS")}
	// Any JavaScript dialog is recorded (an alert from injected markup fails the XSS checks) and
	// dismissed so the page never blocks.
	opening := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range opening {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.dialogs = append(b.dialogs, string(ev.Type)+": "+ev.Message)
			b.mu.Unlock()
			go chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := cdp.Call(ctx, tg, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
				return err
			}))
		}
	}()
	// CSP violations and script errors are collected: the pages (HTMX included) must run under
	// the strict CSP without a single one.
	entries := chromedp.Events(ctx, cdplog.EntryAdded)
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	go func() {
		for ev, err := range entries {
			if err != nil {
				return
			}
			if e := ev.Entry; e.Source == cdplog.EntrySourceSecurity || e.Source == cdplog.EntrySourceJavascript {
				b.problem(string(e.Source) + ": " + e.Text)
			}
		}
	}()
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			b.problem("exception: " + ev.ExceptionDetails.Text)
		}
	}()
	b.run(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, cdplog.Enable, cdp.Empty{})
		return err
	}))
	return b
}

func (b *browser) problem(p string) {
	b.mu.Lock()
	b.problems = append(b.problems, p)
	b.mu.Unlock()
}

func (b *browser) noProblems() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("browser console: %s", p)
	}
}

// stepTimeout bounds one browser step. It is a bound on a hung page, not a speed check: under
// go test ./... the browser shares two cores with every other package's tests (PostgreSQL's
// server and three TokenGuard processes among them), and a step has taken over 20 s there.
const stepTimeout = time.Minute

func (b *browser) run(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		b.t.Fatalf("browser at %s: %v", loc, err)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("read %s: %v", sel, err)
	}
	return s
}

func eval[T any](b *browser, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

func (b *browser) location() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	return loc
}

// shot writes a PNG of the whole page to $TG_SCREENSHOTS/name.png when that is set.
func (b *browser) shot(name string) {
	b.t.Helper()
	if b.shots == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(b.shots, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) noDialogs(where string) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.dialogs) > 0 {
		b.t.Errorf("%s: a JavaScript dialog opened (injected script ran): %v", where, b.dialogs)
	}
}

func (b *browser) fill(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.SendKeys(chromedp.CSS(sel), value, chromedp.NodeVisible)
}

// TestBrowserJourney walks a team's first hour in a real browser: sign up, create a project,
// copy the key, send a real proxied request with it, see it in the usage log and the spend
// bar move, invite a teammate who accepts in a second browser and, as a member, sees no team
// controls and has a direct POST refused. On the way it checks that the key page is the only
// page showing the key, that a hostile project name renders as text, and that a cross-site form
// post is refused.
func TestBrowserJourney(t *testing.T) {
	app := newApp(t)
	owner := newBrowser(t)

	// Sign up.
	owner.run(
		chromedp.Navigate(app.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/signup"]`)),
	)
	owner.shot("01-sign-in")
	owner.run(
		chromedp.Click(chromedp.CSS(`a[href="/signup"]`), chromedp.NodeVisible),
		owner.fill("#name", "Ada Lovelace"),
		owner.fill("#email", "ada@example.com"),
		owner.fill("#password", "correct horse battery"),
	)
	owner.shot("02-sign-up")
	owner.run(
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS(".empty")),
	)
	owner.shot("03-projects-empty")
	ws := strings.TrimSuffix(strings.TrimPrefix(owner.location(), app.URL), "/projects")

	// Create a project with a tiny daily budget so one request visibly moves the bar.
	owner.run(
		chromedp.Click(chromedp.CSS(`.empty a.btn`), chromedp.NodeVisible),
		owner.fill("#name", "support-bot"),
		owner.fill("#dailyBudgetUsd", "0.001"),
		owner.fill("#monthlyBudgetUsd", "abc"),
		chromedp.Submit(chromedp.CSS("#name")),
		chromedp.WaitVisible(chromedp.CSS("#monthlyBudgetUsd-err")),
	)
	if msg := owner.text("#monthlyBudgetUsd-err"); !strings.Contains(msg, "USD") {
		t.Errorf("inline validation error = %q", msg)
	}
	owner.shot("04-new-project-error")
	owner.run(
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#monthlyBudgetUsd").value = ""`),
		owner.fill("#monthlyBudgetUsd", "20"),
		owner.fill("#fallbackModel", "gpt-4o-mini"),
		chromedp.Submit(chromedp.CSS("#name")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="api-key"]`)),
	)
	key := owner.text(`[data-testid="api-key"]`)
	if !regexp.MustCompile(`^tg_live_[A-Za-z0-9]{32,}$`).MatchString(key) {
		t.Fatalf("key page shows %q", key)
	}
	if snippet := owner.text("#snip-env"); !strings.Contains(snippet, "OPENAI_BASE_URL="+app.URL+"/proxy/openai/v1") || !strings.Contains(snippet, key) {
		t.Errorf(".env snippet = %q", snippet)
	}
	owner.shot("05-key-shown-once")
	keyPage := owner.location()

	// With the projects page open, a real proxied request with the key, through the wire-format
	// upstream: the spend bar moves in place (HTMX refresh, no reload).
	owner.run(chromedp.Navigate(app.URL+ws+"/projects"), chromedp.WaitVisible(chromedp.CSS(".project-name")),
		chromedp.Evaluate[chromedp.Void](`window.__noReload = true`))
	todayBar := `tr[data-project-id] [aria-label="Today spend against budget"]`
	if got := eval[string](owner, `document.querySelector('`+todayBar+`').getAttribute("aria-valuenow")`); got != "0" {
		t.Errorf("before any request, today's bar is at %s%%", got)
	}
	app.Upstream.Set(openaitest.Behavior{Usage: openaitest.Usage{Prompt: 1000, Completion: 500}})
	sendChat(t, app, key)
	waitUsage(t, app, 1)
	// 1000 × $0.15/M + 500 × $0.60/M = $0.00045 of a $0.001 daily budget: 45%.
	owner.run(chromedp.WaitVisible(chromedp.CSS(todayBar + `[aria-valuenow="45"]`)))
	if !eval[bool](owner, `window.__noReload === true`) {
		t.Error("the projects page reloaded to show the new spend")
	}
	owner.shot("06-projects")

	// The bar turns amber from 80% (where the fallback model takes over) and red at 100% (where
	// requests are refused): 90% after a second request, 135% after a third (on the fallback).
	barColor := `getComputedStyle(document.querySelector('` + todayBar + ` > span')).backgroundColor`
	sendChat(t, app, key)
	owner.run(chromedp.WaitVisible(chromedp.CSS(todayBar + `[aria-valuenow="90"][data-level="warn"]`)))
	if got := eval[string](owner, barColor); got != "rgb(217, 138, 0)" {
		t.Errorf("the bar at 90%% is %s, want amber", got)
	}
	owner.shot("06b-projects-amber")
	sendChat(t, app, key)
	owner.run(chromedp.WaitVisible(chromedp.CSS(todayBar + `[aria-valuenow="100"][data-level="over"]`)))
	if got := eval[string](owner, barColor); got != "rgb(208, 52, 44)" {
		t.Errorf("the bar past 100%% is %s, want red", got)
	}
	owner.shot("06c-projects-red")
	if st, body := proxyStatus(t, app, key); st != http.StatusTooManyRequests || !strings.Contains(body, "BUDGET_EXCEEDED") {
		t.Errorf("past the daily budget: %d %s, want 429 BUDGET_EXCEEDED", st, body)
	}
	waitUsage(t, app, 4)

	owner.run(chromedp.Navigate(app.URL+ws+"/usage"), chromedp.WaitVisible(chromedp.CSS("tr[data-usage-id]")))
	if rows := owner.text("#usage-rows"); !strings.Contains(rows, "gpt-4o-mini") || !strings.Contains(rows, "support-bot") ||
		!strings.Contains(rows, "1,000 / 500") || !strings.Contains(rows, "BUDGET_EXCEEDED") {
		t.Errorf("usage rows = %q", rows)
	}
	// Filter by a provider with no traffic, through HTMX (no full reload).
	owner.run(
		chromedp.Evaluate[chromedp.Void](`window.__noReload = true`),
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#f-provider").value = "anthropic"`),
		chromedp.Click(chromedp.CSS(`form[aria-label="Filter requests"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#usage-results .empty")),
	)
	if !eval[bool](owner, `window.__noReload === true`) {
		t.Error("filtering the usage log reloaded the page")
	}
	owner.run(chromedp.Navigate(app.URL+ws+"/usage"), chromedp.WaitVisible(chromedp.CSS("tr[data-usage-id]")))
	owner.shot("07-usage")

	// HTMX paging in the browser: 120 older rows, "Load more" appends the next page in place.
	var wsID, projectID int64
	app.DB.Read.QueryRow(`SELECT workspace_id, project_id FROM usage_logs LIMIT 1`).Scan(&wsID, &projectID)
	older := make([]store.UsageRow, 120)
	for i := range older {
		older[i] = store.UsageRow{RequestID: fmt.Sprintf("old-%d", i), CreatedAt: time.Now().Add(-time.Duration(i+1) * time.Minute).UnixMilli(),
			WorkspaceID: wsID, ProjectID: projectID, Provider: "anthropic", OriginalModel: "claude-sonnet-4-5", FinalModel: "claude-haiku-4-5",
			WasFallback: true, Status: 200, InputTokens: 900, OutputTokens: 100, TotalTokens: 1000, CostNano: 1_500_000, LatencyMs: 640}
	}
	if _, err := app.DB.InsertUsage(context.Background(), older); err != nil {
		t.Fatal(err)
	}
	owner.run(
		chromedp.Navigate(app.URL+ws+"/usage"),
		chromedp.WaitVisible(chromedp.CSS("#usage-more button")),
		chromedp.Evaluate[chromedp.Void](`window.__noReload = true`),
		chromedp.Click(chromedp.CSS("#usage-more button")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-usage-id]:nth-child(100)`)),
	)
	if n := eval[int](owner, `document.querySelectorAll("tr[data-usage-id]").length`); n != 100 {
		t.Errorf("after one Load more: %d rows, want 100", n)
	}
	if !eval[bool](owner, `window.__noReload === true`) {
		t.Error("Load more reloaded the page")
	}
	owner.shot("07b-usage-paged")

	// The key appears on no other page, and the key page itself cannot be shown again.
	for _, p := range []string{ws + "/projects", ws + "/usage", ws + "/team", ws + "/settings", ws + "/quickstart", strings.TrimPrefix(keyPage, app.URL)} {
		owner.run(chromedp.Navigate(app.URL + p))
		if html := eval[string](owner, `document.documentElement.outerHTML`); strings.Contains(html, key) {
			t.Errorf("%s shows the key", p)
		}
	}
	if n := eval[int](owner, `Object.keys(localStorage).filter(k => localStorage.getItem(k).includes("tg_live_")).length`); n != 0 {
		t.Error("the key is in localStorage (HTMX history)")
	}
	owner.shot("08-project-detail")

	// Invite a teammate; the mail arrives at the real SMTP server.
	owner.run(
		chromedp.Navigate(app.URL+ws+"/team"),
		owner.fill("#invite-email", "mel@example.com"),
		chromedp.Submit(chromedp.CSS("#invite-email")),
		chromedp.WaitVisible(chromedp.CSS("#invite-link")),
	)
	link := owner.text("#invite-link")
	owner.shot("09-team-owner")
	mails := app.Mail.Wait(1, 10*time.Second)
	if !strings.Contains(mails[0].Text, link) || !strings.Contains(strings.Join(mails[0].To, ","), "mel@example.com") {
		t.Fatalf("invite mail to %v does not carry %s", mails[0].To, link)
	}

	// The teammate, in a second browser, signs up from the link and accepts.
	mel := newBrowser(t)
	mel.run(chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`a.btn[href^="/signup"]`)))
	mel.shot("10-invite")
	mel.run(
		chromedp.Click(chromedp.CSS(`a.btn[href^="/signup"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS("#name")),
	)
	if got := eval[string](mel, `document.querySelector("#email").value`); got != "mel@example.com" {
		t.Errorf("signup email prefilled with %q", got)
	}
	mel.run(
		mel.fill("#name", "Mel"),
		mel.fill("#password", "another good password"),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/accept"] button`)),
		chromedp.Click(chromedp.CSS(`form[action$="/accept"] button`)),
		chromedp.WaitVisible(chromedp.CSS(".project-name")),
	)
	if got := strings.TrimPrefix(mel.location(), app.URL); got != ws+"/projects" {
		t.Errorf("after accepting, the teammate is at %s, want %s/projects", got, ws)
	}
	if strings.Contains(mel.text("main"), "New project") {
		t.Error("a member is offered New project")
	}

	// As a member: no team-management controls, and a direct POST to one is refused.
	mel.run(chromedp.Navigate(app.URL+ws+"/team"), chromedp.WaitVisible(chromedp.CSS("#members-h")))
	if n := eval[int](mel, `document.querySelectorAll('form[action*="/team/"], #invite-email, select[name=role]').length`); n != 0 {
		t.Errorf("the member's team page renders %d management controls", n)
	}
	mel.shot("11-team-member")
	var ownerID int64
	app.DB.Read.QueryRow(`SELECT id FROM users WHERE email = 'ada@example.com'`).Scan(&ownerID)
	status := eval[int](mel, fmt.Sprintf(`fetch(%q, {method: "POST",
		headers: {"Content-Type": "application/x-www-form-urlencoded",
			"X-CSRF-Token": JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"]},
		body: "role=member"}).then(r => r.status)`, ws+fmt.Sprintf("/team/members/%d/role", ownerID)))
	if status != http.StatusForbidden {
		t.Errorf("member's direct role-change POST: status %d, want 403", status)
	}
	var role string
	app.DB.Read.QueryRow(`SELECT role FROM memberships WHERE user_id = ?`, ownerID).Scan(&role)
	if role != "owner" {
		t.Errorf("the owner's role is now %q", role)
	}

	// Deactivate is one click on the project page, and the key gets 401 at once; Activate undoes it.
	projectURL := strings.SplitN(keyPage, "?", 2)[0]
	owner.run(
		chromedp.Navigate(projectURL),
		chromedp.Click(chromedp.CSS(`form[action$="/deactivate"] button`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/activate"] button`)),
	)
	if st, body := proxyStatus(t, app, key); st != http.StatusUnauthorized || !strings.Contains(body, "KEY_DEACTIVATED") {
		t.Errorf("after one click on Deactivate the key gets %d %s", st, body)
	}
	owner.run(
		chromedp.Click(chromedp.CSS(`form[action$="/activate"] button`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/deactivate"] button`)),
	)
	// Accepted again: what stops it now is the spent daily budget, not the key.
	if st, _ := proxyStatus(t, app, key); st != http.StatusTooManyRequests {
		t.Errorf("after Activate the key gets %d, want 429 (budget spent)", st)
	}

	// XSS: a hostile project name renders as text everywhere it appears.
	const evil = `<img src=x onerror=alert(1)>`
	owner.run(
		chromedp.Navigate(app.URL+ws+"/new-project"),
		owner.fill("#name", evil),
		chromedp.Submit(chromedp.CSS("#name")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="api-key"]`)),
	)
	evilKey := owner.text(`[data-testid="api-key"]`)
	if n := eval[int](owner, `document.querySelectorAll('main img').length`); n != 0 || !strings.Contains(owner.text("main h1"), evil) {
		t.Error("the key page renders the hostile name as markup")
	}
	var before int
	app.DB.Read.QueryRow(`SELECT count(*) FROM usage_logs`).Scan(&before)
	sendChat(t, app, evilKey)
	waitUsage(t, app, before+1)
	evilPage := strings.TrimPrefix(strings.SplitN(owner.location(), "?", 2)[0], app.URL)
	for _, p := range []string{ws + "/projects", evilPage, ws + "/usage"} {
		owner.run(chromedp.Navigate(app.URL+p), chromedp.WaitVisible(chromedp.CSS("main")))
		if n := eval[int](owner, `document.querySelectorAll('img[src="x"], main img').length`); n != 0 {
			t.Errorf("%s: the project name became an <img> element", p)
		}
		if !strings.Contains(owner.text("main"), evil) {
			t.Errorf("%s does not show the name as text", p)
		}
	}
	owner.noDialogs("after visiting pages with the hostile name")
	owner.noProblems()
	mel.noProblems()
	owner.run(chromedp.Navigate(app.URL+ws+"/projects"), chromedp.WaitVisible(chromedp.CSS(".project-name")))
	owner.shot("12-projects-xss")

	// CSRF: a form on another site posting to the dashboard with the owner's cookie is refused.
	evilSite := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form id=f method=post action="%s%s/projects"><input name=name value=csrf-attack></form>
			<script>document.getElementById("f").submit()</script>`, app.URL, ws)
	}))
	defer evilSite.Close()
	// localhost and 127.0.0.1 are different sites to the browser.
	owner.run(chromedp.Navigate(strings.Replace(evilSite.URL, "127.0.0.1", "localhost", 1)))
	time.Sleep(500 * time.Millisecond)
	var attacked int
	app.DB.Read.QueryRow(`SELECT count(*) FROM projects WHERE name = 'csrf-attack'`).Scan(&attacked)
	if attacked != 0 {
		t.Error("a cross-site form post created a project")
	}

	// The workspace's budget mode: the trade-off is on screen next to the choice, and Strict,
	// once saved, is what the form shows again.
	owner.run(chromedp.Navigate(app.URL+ws+"/settings"), chromedp.WaitVisible(chromedp.CSS("#ws-budgetMode")))
	if hint := owner.text("#ws-budgetMode-strict"); !strings.Contains(hint, "late answers may be cut short") {
		t.Errorf("strict mode hint = %q", hint)
	}
	owner.run(
		chromedp.SetValue(chromedp.CSS("#ws-budgetMode"), "strict"),
		chromedp.Submit(chromedp.CSS("#ws-budgetMode")),
		chromedp.WaitVisible(chromedp.CSS(".flash.ok")),
	)
	if got := eval[string](owner, `document.querySelector("#ws-budgetMode").value`); got != "strict" {
		t.Errorf("after saving Strict the form shows %q", got)
	}

	// Remaining pages, for the screenshots.
	for _, p := range []struct{ path, name string }{
		{ws + "/settings", "13-settings"}, {ws + "/audit", "14-audit"}, {ws + "/quickstart", "15-quickstart"},
		{ws + "/analytics", "17-analytics"},
	} {
		owner.run(chromedp.Navigate(app.URL+p.path), chromedp.WaitVisible(chromedp.CSS("main h1")))
		owner.shot(p.name)
	}
	// On a phone, no page is wider than the screen (tables scroll inside their panel).
	owner.run(chromedp.EmulateViewport(390, 844))
	projectPage := strings.TrimPrefix(strings.SplitN(keyPage, "?", 2)[0], app.URL+ws)
	for _, p := range []string{"/projects", projectPage, "/usage", "/analytics", "/team", "/settings", "/quickstart", "/new-project", "/audit"} {
		owner.run(chromedp.Navigate(app.URL+ws+p), chromedp.WaitVisible(chromedp.CSS("main h1")))
		if w := eval[int](owner, `document.documentElement.scrollWidth - window.innerWidth`); w > 0 {
			t.Errorf("%s is %dpx wider than a phone screen", p, w)
		}
		// Every form control has a label, so forms work with a keyboard and a screen reader.
		if unlabelled := eval[[]string](owner, `[...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
			.filter(e => e.labels.length === 0 && !e.getAttribute("aria-label")).map(e => e.name || e.id)`); len(unlabelled) > 0 {
			t.Errorf("%s has form controls without a label: %v", p, unlabelled)
		}
		if p == "/projects" {
			owner.shot("16-projects-phone")
		}
	}
}
