package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"tokenguard/store"
)

// layoutFixture is a signed-in browser on a workspace whose usage log holds the widest rows the
// dashboard renders: long model names with a fallback, streams, estimated usage, the default
// price, a refused request with its error code, and large token counts.
type layoutFixture struct {
	app     *testApp
	b       *browser
	ws      string // "/w/1"
	project string // the project page's path
	pages   []string
}

func newLayoutFixture(t *testing.T) *layoutFixture {
	t.Helper()
	app := newApp(t)
	b := newBrowser(t)
	b.run(
		chromedp.Navigate(app.URL+"/signup"),
		b.fill("#name", "Ada Lovelace"),
		b.fill("#email", "ada@example.com"),
		b.fill("#password", "correct horse battery"),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS(".empty")),
	)
	ws := strings.TrimSuffix(strings.TrimPrefix(b.location(), app.URL), "/projects")
	b.run(
		chromedp.Navigate(app.URL+ws+"/new-project"),
		b.fill("#name", "customer-support-assistant-eu"),
		b.fill("#dailyBudgetUsd", "25"),
		b.fill("#monthlyBudgetUsd", "500"),
		b.fill("#fallbackModel", "claude-3-5-haiku-20241022"),
		chromedp.Submit(chromedp.CSS("#name")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="api-key"]`)),
	)
	project := strings.TrimPrefix(strings.SplitN(b.location(), "?", 2)[0], app.URL)
	var wsID, projectID int64
	app.DB.Read.QueryRow(`SELECT workspace_id, id FROM projects LIMIT 1`).Scan(&wsID, &projectID)
	now := time.Now()
	rows := []store.UsageRow{
		{Provider: "anthropic", OriginalModel: "claude-3-5-sonnet-20241022", FinalModel: "claude-3-5-haiku-20241022", WasFallback: true,
			Stream: true, Status: 200, InputTokens: 1_234_567, OutputTokens: 987_654, CostNano: 12_345_678_900, LatencyMs: 123_456},
		{Provider: "openai", OriginalModel: "gpt-4o-mini-2024-07-18", FinalModel: "gpt-4o-mini-2024-07-18", Status: 200,
			InputTokens: 120_000, OutputTokens: 4_096, CostNano: 19_000_000, LatencyMs: 2_345, UsageEstimated: true, PricedByDefault: true},
		{Provider: "gemini", OriginalModel: "gemini-2.5-flash-preview-09-2025", FinalModel: "gemini-2.5-flash-preview-09-2025",
			Status: 429, ErrorCode: store.BlockedErrorCode, LatencyMs: 1},
		{Provider: "openai", OriginalModel: "o3-deep-research-2025-06-26", FinalModel: "o3-deep-research-2025-06-26", Status: 502,
			ErrorCode: "UPSTREAM_ERROR", InputTokens: 88, LatencyMs: 30_001},
	}
	for i := range rows {
		rows[i].RequestID = fmt.Sprintf("req-layout-%d", i)
		rows[i].CreatedAt = now.Add(-time.Duration(i) * time.Minute).UnixMilli()
		rows[i].WorkspaceID, rows[i].ProjectID = wsID, projectID
		rows[i].TotalTokens = rows[i].InputTokens + rows[i].OutputTokens
	}
	if _, err := app.DB.InsertUsage(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	return &layoutFixture{app: app, b: b, ws: ws, project: project, pages: []string{
		ws + "/projects", project, ws + "/usage", ws + "/analytics", ws + "/team", ws + "/audit",
		ws + "/settings", ws + "/quickstart", ws + "/new-project",
	}}
}

// pageName names a page's screenshot: "/w/1/projects/3" → "projects-3".
func (f *layoutFixture) pageName(p string) string {
	return strings.ReplaceAll(strings.Trim(strings.TrimPrefix(p, f.ws), "/"), "/", "-")
}

// TestBrowserLayoutHolds ensures that at a desktop width (1280 px) and a phone width (390 px)
// no page is wider than the window and no table is wider than its panel (nothing clipped or
// hidden behind a scrollbar), that the usage tables turn into labelled card rows on the phone,
// and that every page is screenshotted at both widths when TG_SCREENSHOTS is set.
func TestBrowserLayoutHolds(t *testing.T) {
	f := newLayoutFixture(t)
	b := f.b
	for _, width := range []int64{1280, 390} {
		b.run(chromedp.EmulateViewport(width, 900))
		for _, p := range f.pages {
			b.run(chromedp.Navigate(f.app.URL+p), chromedp.WaitVisible(chromedp.CSS("main h1")))
			if w := eval[int](b, `document.documentElement.scrollWidth - document.documentElement.clientWidth`); w > 0 {
				t.Errorf("%d px, %s: the page is %d px wider than the window", width, p, w)
			}
			clipped := eval[[]string](b, `[...document.querySelectorAll("main table")]
				.map(t => [t, t.closest(".tablewrap") || t.parentElement])
				.filter(([t, box]) => box.scrollWidth > box.clientWidth || t.offsetWidth > box.clientWidth)
				.map(([t, box]) => (t.closest("section,div[id]")?.id || t.className || "table") + ": " + box.scrollWidth + " > " + box.clientWidth)`)
			if len(clipped) > 0 {
				t.Errorf("%d px, %s: tables clipped: %v", width, p, clipped)
			}
			b.shot(fmt.Sprintf("layout-%d-%s", width, f.pageName(p)))
		}
	}

	// On the phone the usage log's rows are cards: every cell of a row is shown with its label.
	b.run(chromedp.Navigate(f.app.URL+f.ws+"/usage"), chromedp.WaitVisible(chromedp.CSS("tr[data-usage-id]")))
	if got := eval[string](b, `getComputedStyle(document.querySelector("tr[data-usage-id]")).display`); got != "block" {
		t.Errorf("a usage row on the phone is display %q, want a card (block)", got)
	}
	labels := eval[[]string](b, `[...document.querySelector("tr[data-usage-id]").cells]
		.filter(td => td.offsetParent !== null).map(td => getComputedStyle(td, "::before").content)`)
	if want := []string{`"Time (UTC)"`, `"Project"`, `"Provider"`, `"Model"`, `"Status"`, `"End user"`, `"Tokens in / out"`, `"Cost"`, `"Latency"`}; strings.Join(labels, ",") != strings.Join(want, ",") {
		t.Errorf("a usage card shows the labels %v, want %v", labels, want)
	}
	b.noProblems()
}

// TestBrowserPhoneMenu ensures that on a phone the nav folds behind a menu button that opens it
// with every link reachable (Settings and Quickstart included) and that Escape closes it again,
// returning focus to the button.
func TestBrowserPhoneMenu(t *testing.T) {
	f := newLayoutFixture(t)
	b := f.b
	b.run(chromedp.EmulateViewport(390, 844), chromedp.Navigate(f.app.URL+f.ws+"/projects"),
		chromedp.WaitVisible(chromedp.CSS("[data-menu-toggle]")), chromedp.WaitNotVisible(chromedp.CSS("#main-nav")))
	b.shot("menu-390-closed")
	b.run(chromedp.Click(chromedp.CSS("[data-menu-toggle]")), chromedp.WaitVisible(chromedp.CSS("#main-nav")))
	b.shot("menu-390-open")
	if got := eval[string](b, `document.querySelector("[data-menu-toggle]").getAttribute("aria-expanded")`); got != "true" {
		t.Errorf("open menu: aria-expanded = %q", got)
	}
	// Every link is on screen, inside the window's width, and leads where it says.
	reachable := eval[[]string](b, `[...document.querySelectorAll("#main-nav a")].filter(a => {
		const r = a.getBoundingClientRect();
		return r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= window.innerWidth;
	}).map(a => a.textContent.trim())`)
	for _, want := range []string{"Projects", "Usage", "Analytics", "Team", "Audit log", "Settings", "Quickstart"} {
		if !strings.Contains(strings.Join(reachable, "|"), want) {
			t.Errorf("open menu: %q is not reachable (on screen: %v)", want, reachable)
		}
	}
	b.run(chromedp.KeyEvent(kb.Escape), chromedp.WaitNotVisible(chromedp.CSS("#main-nav")))
	if !eval[bool](b, `document.activeElement === document.querySelector("[data-menu-toggle]")`) {
		t.Error("after Escape, focus is not back on the menu button")
	}
	// The menu opens by keyboard too, and a link in it navigates.
	b.run(chromedp.Focus(chromedp.CSS("[data-menu-toggle]")), chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.CSS("#main-nav")),
		chromedp.Click(chromedp.CSS(`#main-nav a[href$="/quickstart"]`)), chromedp.WaitVisible(chromedp.CSS("main h1")))
	if got := b.location(); !strings.HasSuffix(got, f.ws+"/quickstart") {
		t.Errorf("the menu's Quickstart link led to %s", got)
	}
	// The workspace switcher closes with Escape as well.
	b.run(chromedp.Click(chromedp.CSS(".switcher summary")), chromedp.WaitVisible(chromedp.CSS(".switcher ul")), chromedp.KeyEvent(kb.Escape))
	if eval[bool](b, `document.querySelector(".switcher").open`) {
		t.Error("Escape left the workspace switcher open")
	}
	// On a desktop there is no menu button: the nav is always shown.
	b.run(chromedp.EmulateViewport(1280, 900), chromedp.WaitVisible(chromedp.CSS("#main-nav")), chromedp.WaitNotVisible(chromedp.CSS("[data-menu-toggle]")))
	b.noProblems()
}

// contrastJS returns, for each selector, the lowest contrast ratio (WCAG 2) of the text of the
// visible elements it matches against the first opaque background behind them.
const contrastJS = `(() => {
	const rgb = c => { const p = c.match(/[\d.]+/g).map(Number); return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
	const lum = c => { const f = v => (v /= 255) <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
	const bg = el => { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor); if (c.a > 0.5) return c; } return {r: 255, g: 255, b: 255}; };
	const ratio = el => { const a = lum(rgb(getComputedStyle(el).color)), b = lum(bg(el)); return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05); };
	return SELECTORS.map(sel => {
		const els = [...document.querySelectorAll(sel)].filter(e => e.offsetParent !== null && e.textContent.trim() !== "");
		return {sel, n: els.length, min: els.length ? Math.min(...els.map(ratio)) : 0};
	});
})()`

// TestBrowserDarkModeContrast ensures the dashboard follows prefers-color-scheme and that in
// both schemes body text, secondary text, table cells and headers, links, badges, labels and the
// nav keep a contrast ratio of at least 4.5:1 (WCAG AA) against what is behind them.
func TestBrowserDarkModeContrast(t *testing.T) {
	f := newLayoutFixture(t)
	b := f.b
	selectors := []string{"body", "main p", ".muted", "main td", "main th", "main a", ".badge", "label", ".topbar nav a", "h1", "footer"}
	quoted := make([]string, len(selectors))
	for i, s := range selectors {
		quoted[i] = fmt.Sprintf("%q", s)
	}
	js := strings.Replace(contrastJS, "SELECTORS", "["+strings.Join(quoted, ",")+"]", 1)
	type result struct {
		Sel string  `json:"sel"`
		N   int     `json:"n"`
		Min float64 `json:"min"`
	}
	for _, scheme := range []string{"light", "dark"} {
		if _, err := chromedp.Call(b.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}}); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{f.ws + "/usage", f.project, f.ws + "/settings", f.ws + "/team"} {
			b.run(chromedp.Navigate(f.app.URL+p), chromedp.WaitVisible(chromedp.CSS("main h1")))
			dark := eval[bool](b, `(() => { const p = getComputedStyle(document.body).backgroundColor.match(/\d+/g).map(Number); return p[0] + p[1] + p[2] < 3 * 64; })()`)
			if dark != (scheme == "dark") {
				t.Errorf("%s scheme, %s: the page background is dark = %v", scheme, p, dark)
			}
			for _, r := range eval[[]result](b, js) {
				if r.N > 0 && r.Min < 4.5 {
					t.Errorf("%s scheme, %s: %q has text at a contrast ratio of %.2f, want >= 4.5", scheme, p, r.Sel, r.Min)
				}
			}
			b.shot(fmt.Sprintf("scheme-%s-%s", scheme, f.pageName(p)))
		}
	}
	b.noProblems()
}

// TestBrowserNotFound ensures an unknown path, in the dashboard or under /static/, gets the
// styled 404 page (the dashboard's stylesheet applied, a way back), while unknown paths of the
// JSON API and the proxy keep the contract's JSON NOT_FOUND error.
func TestBrowserNotFound(t *testing.T) {
	f := newLayoutFixture(t)
	b := f.b
	for _, p := range []string{"/no-such-page", f.ws + "/no-such-page", "/static/missing.css", "/w/999999/projects"} {
		resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(f.app.URL+p))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != int64(http.StatusNotFound) {
			t.Errorf("%s: status %d, want 404", p, resp.Status)
		}
		b.run(chromedp.WaitVisible(chromedp.CSS(".notfound h1")))
		if got := b.text(".notfound h1"); got != "Page not found" {
			t.Errorf("%s: heading %q", p, got)
		}
		// Styled: the stylesheet loaded (the panel has its border radius), and the user stays
		// signed in with a way back.
		if got := eval[string](b, `getComputedStyle(document.querySelector(".notfound")).borderRadius`); got != "8px" {
			t.Errorf("%s: the 404 page is unstyled (panel radius %q)", p, got)
		}
		if n := eval[int](b, `document.querySelectorAll('.notfound a.btn, form[action="/logout"]').length`); n < 2 {
			t.Errorf("%s: the 404 page offers no way back or sign-out", p)
		}
		b.shot("notfound-" + strings.ReplaceAll(strings.Trim(p, "/"), "/", "-"))
	}
	for _, p := range []string{"/api/no-such-endpoint", "/proxy/no-such-provider/v1/chat/completions"} {
		res, err := http.Get(f.app.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") ||
			!strings.Contains(string(body), `"code":"NOT_FOUND"`) {
			t.Errorf("%s: %d %s %s, want the JSON NOT_FOUND error", p, res.StatusCode, res.Header.Get("Content-Type"), body)
		}
	}
	b.noProblems()
}

// TestBrowserSignOutRevokes ensures signing out in the browser ends the session on the server:
// the session cookie, captured before signing out and put back afterwards, opens nothing.
func TestBrowserSignOutRevokes(t *testing.T) {
	f := newLayoutFixture(t)
	b := f.b
	b.run(chromedp.Navigate(f.app.URL+f.ws+"/usage"), chromedp.WaitVisible(chromedp.CSS("tr[data-usage-id]")))
	cookies, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{f.app.URL}})
	if err != nil {
		t.Fatal(err)
	}
	var saved []*network.CookieParam
	for _, c := range cookies.Cookies {
		if c.Name == "tg_session" {
			saved = append(saved, &network.CookieParam{Name: c.Name, Value: c.Value, URL: f.app.URL, Path: c.Path, HTTPOnly: c.HTTPOnly, SameSite: c.SameSite})
		}
	}
	if len(saved) != 1 {
		t.Fatalf("signed in, the browser holds %d session cookies", len(saved))
	}
	b.run(chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)), chromedp.WaitVisible(chromedp.CSS(`a[href="/signup"]`)))
	if _, err := chromedp.Call(b.ctx, network.SetCookies, network.SetCookiesParams{Cookies: saved}); err != nil {
		t.Fatal(err)
	}
	b.run(chromedp.Navigate(f.app.URL+f.ws+"/usage"), chromedp.WaitVisible(chromedp.CSS(`input[type=password]`)))
	if got := b.location(); !strings.HasPrefix(got, f.app.URL+"/login") {
		t.Errorf("the signed-out cookie opened %s, want the sign-in page", got)
	}
	if strings.Contains(eval[string](b, `document.body.innerText`), "req-layout") {
		t.Error("the signed-out cookie still shows the usage log")
	}
	b.noProblems()
}
