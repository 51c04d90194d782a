package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"tokenguard/app/budget"
	"tokenguard/app/pricing"
)

// setControls writes a project's controls as the projects API stores them (sets is the SQL
// SET list) and evicts its cached key, as the API does.
func (a *app) setControls(p testProject, sets string, args ...any) {
	a.t.Helper()
	if _, err := a.db.Write.Exec(`UPDATE projects SET `+sets+` WHERE id = ?`, append(args, p.id)...); err != nil {
		a.t.Fatal(err)
	}
	a.proxy.EvictProject(p.id)
}

// setWorkspaceLimits sets the rpm and tpm limits of p's workspace.
func (a *app) setWorkspaceLimits(p testProject, rpm, tpm int64) {
	a.t.Helper()
	if _, err := a.db.Write.Exec(`UPDATE workspaces SET rpm_limit = ?, tpm_limit = ? WHERE id = ?`, rpm, tpm, p.workspaceID); err != nil {
		a.t.Fatal(err)
	}
	a.proxy.EvictWorkspace(p.workspaceID)
}

// spendOn settles amount dollars against p, as earlier requests would have.
func (a *app) spendOn(p testProject, amount float64) {
	tk, _ := a.engine.Admit(budget.Subject{ProjectID: p.id, WorkspaceID: p.workspaceID}, nil)
	tk.Settle(a.now, pricing.FromDollars(amount))
}

// post sends a proxied POST with p's key and reads the whole answer.
func (a *app) post(p testProject, path, body string) (*http.Response, string) {
	a.t.Helper()
	resp := a.do(context.Background(), http.MethodPost, path, body, "x-tokenguard-key", p.key)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

const (
	chatPath  = "/proxy/openai/v1/chat/completions"
	smallChat = `{"model":"gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`
)

// worstTokens reads the tokens a request of body reserves against a tpm limit, from
// RateLimit-Remaining under a limit far above it.
func (a *app) worstTokens(p testProject, body string) int64 {
	a.t.Helper()
	a.setControls(p, `tpm_limit = ?`, int64(1e9))
	resp, _ := a.post(p, chatPath, body)
	left, err := strconv.ParseInt(resp.Header.Get("RateLimit-Remaining"), 10, 64)
	if resp.StatusCode != 200 || err != nil {
		a.t.Fatalf("probe: %d, RateLimit-Remaining %q", resp.StatusCode, resp.Header.Get("RateLimit-Remaining"))
	}
	return 1e9 - left
}

// TestRateLimitBurst ensures a concurrent burst through the real proxy is admitted exactly up to
// the limit, no more — requests and tokens per minute, of a project and of a workspace whose
// other project already used part of it — and that the rest get 429 with Retry-After and
// resetAt.
func TestRateLimitBurst(t *testing.T) {
	cases := []struct {
		name string
		set  func(a *app, p, sibling testProject) (want int)
	}{
		{"project rpm", func(a *app, p, _ testProject) int {
			a.setControls(p, `rpm_limit = 10`)
			return 10
		}},
		{"project tpm", func(a *app, p, _ testProject) int {
			w := a.worstTokens(p, smallChat)
			a.now = a.now.Add(2 * time.Minute) // the probe's window is gone
			a.setControls(p, `tpm_limit = ?`, 4*w+w/2)
			return 4
		}},
		{"workspace rpm shared with a sibling", func(a *app, p, sibling testProject) int {
			a.setWorkspaceLimits(p, 12, 0)
			for range 5 {
				if resp, body := a.post(sibling, chatPath, smallChat); resp.StatusCode != 200 {
					t.Fatalf("sibling: %d %s", resp.StatusCode, body)
				}
			}
			return 7
		}},
		{"workspace tpm shared with a sibling", func(a *app, p, sibling testProject) int {
			w := a.worstTokens(sibling, smallChat)
			a.now = a.now.Add(2 * time.Minute)
			a.setControls(sibling, `tpm_limit = 0`)
			a.setWorkspaceLimits(p, 0, 6*w)
			a.post(sibling, chatPath, smallChat) // settles to its actual tokens, under w
			return 5
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, up, _ := newAttackApp(t)
			p, sibling := a.project(projectOptions{}), a.project(projectOptions{})
			if _, err := a.db.Write.Exec(`UPDATE projects SET workspace_id = ? WHERE id = ?`, p.workspaceID, sibling.id); err != nil {
				t.Fatal(err)
			}
			sibling.workspaceID = p.workspaceID
			want := c.set(a, p, sibling)
			for len(up.arrived) > 0 { // the set-up's requests, which burst must not count
				<-up.arrived
			}
			res := a.burst(up, p.key, chatPath, smallChat, 30)
			if res.admitted != want || res.refused != 30-want {
				t.Errorf("admitted %d, refused %d of 30; want exactly %d admitted", res.admitted, res.refused, want)
			}
			limited := 0
			for _, r := range a.waitRows(p, 30) {
				if r.ErrorCode == "RATE_LIMITED" && r.Status == 429 && r.CostNano == 0 {
					limited++
				}
			}
			if limited != 30-want {
				t.Errorf("%d RATE_LIMITED rows, want %d", limited, 30-want)
			}
		})
	}
}

// TestRateLimitedAnswer ensures the 429 a client gets says what it needs: RATE_LIMITED (not
// BUDGET_EXCEEDED), Retry-After that is exactly when a retry succeeds, error.resetAt, and the
// IETF RateLimit-* headers, which admitted responses carry too; and that requests the budget
// refuses do not use up the rate limit.
func TestRateLimitedAnswer(t *testing.T) {
	a := newApp(t, appOptions{})
	p := a.project(projectOptions{})
	a.setControls(p, `rpm_limit = 3`)
	for i, want := range []string{"2", "1", "0"} {
		resp, body := a.chat(p.key, chatBody("gpt-4o", false, ""))
		if resp.StatusCode != 200 || resp.Header.Get("RateLimit-Limit") != "3" || resp.Header.Get("RateLimit-Remaining") != want || resp.Header.Get("RateLimit-Reset") != "60" {
			t.Fatalf("request %d: %d %v %s", i, resp.StatusCode, resp.Header, body)
		}
	}
	resp, body := a.chat(p.key, chatBody("gpt-4o", true, ""))
	retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != 429 || errorCode(t, body) != "RATE_LIMITED" || err != nil || retry <= 0 {
		t.Fatalf("4th request: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if resp.Header.Get("RateLimit-Remaining") != "0" || resp.Header.Get("RateLimit-Reset") != strconv.Itoa(retry) {
		t.Errorf("429 headers: %v", resp.Header)
	}
	var e struct{ Error struct{ ResetAt time.Time } }
	json.Unmarshal([]byte(body), &e)
	if want := a.now.Add(time.Duration(retry) * time.Second); !e.Error.ResetAt.Equal(want) {
		t.Errorf("resetAt %v, want %v", e.Error.ResetAt, want)
	}
	rows := a.waitRows(p, 4)
	if last := rows[len(rows)-1]; last.Status != 429 || last.ErrorCode != "RATE_LIMITED" || last.CostNano != 0 || !last.Stream {
		t.Errorf("refused row: %+v", last)
	}
	start := a.now
	a.now = start.Add(time.Duration(retry)*time.Second - time.Millisecond)
	if resp, _ := a.chat(p.key, chatBody("gpt-4o", false, "")); resp.StatusCode != 429 {
		t.Errorf("admitted before Retry-After: %d", resp.StatusCode)
	}
	a.now = start.Add(time.Duration(retry) * time.Second)
	if resp, body := a.chat(p.key, chatBody("gpt-4o", false, "")); resp.StatusCode != 200 {
		t.Errorf("refused at Retry-After: %d %s", resp.StatusCode, body)
	}

	spent := a.project(projectOptions{daily: 0.01})
	a.setControls(spent, `rpm_limit = 1`)
	a.spendOn(spent, 0.02)
	for i := range 3 {
		if resp, body := a.chat(spent.key, chatBody("gpt-4o", false, "")); errorCode(t, body) != "BUDGET_EXCEEDED" {
			t.Errorf("request %d over budget: %d %s", i, resp.StatusCode, body)
		}
	}
}

// TestAllowListOnEveryRoute ensures a model outside the project's allow-list is refused with
// 403 MODEL_NOT_ALLOWED before any upstream call, on every route that names a model (metered
// or free, the model in the body or in Gemini's path), each refusal a usage row; and that the
// allowed models, by exact name or pattern, pass.
func TestAllowListOnEveryRoute(t *testing.T) {
	a, up, _ := newAttackApp(t)
	p := a.project(projectOptions{})
	a.setControls(p, `allowed_models = ?`, `["gpt-4o-mini","claude-3-5-haiku-*","gemini-2.0-flash"]`)
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	routes := []struct {
		name, path, body string // %s is the model
	}{
		{"chat", chatPath, `{"model":%q,` + msgs + `}`},
		{"responses", "/proxy/openai/v1/responses", `{"model":%q,"input":"hi"}`},
		{"completions", "/proxy/openai/v1/completions", `{"model":%q,"prompt":"hi"}`},
		{"embeddings", "/proxy/openai/v1/embeddings", `{"model":%q,"input":"hi"}`},
		{"messages", "/proxy/anthropic/v1/messages", `{"model":%q,"max_tokens":10,` + msgs + `}`},
		{"count_tokens (free)", "/proxy/anthropic/v1/messages/count_tokens", `{"model":%q,` + msgs + `}`},
		{"generateContent", "/proxy/gemini/v1beta/models/%s:generateContent", `{"contents":[{"parts":[{"text":"hi"}]}]}`},
		{"streamGenerateContent", "/proxy/gemini/v1beta/models/%s:streamGenerateContent?alt=sse", `{"contents":[{"parts":[{"text":"hi"}]}]}`},
		{"slash form", "/proxy/gemini/v1beta/models/%s/generateContent", `{"contents":[{"parts":[{"text":"hi"}]}]}`},
		{"countTokens (free)", "/proxy/gemini/v1beta/models/%s:countTokens", `{"contents":[{"parts":[{"text":"hi"}]}]}`},
	}
	models := map[string][2]string{ // provider prefix → refused, allowed
		"/proxy/openai/":    {"gpt-4o", "gpt-4o-mini"},
		"/proxy/anthropic/": {"claude-sonnet-4-5", "claude-3-5-haiku-latest"},
		"/proxy/gemini/":    {"gemini-2.5-pro", "gemini-2.0-flash"},
	}
	refused := 0
	for _, rt := range routes {
		var pair [2]string
		for prefix, m := range models {
			if strings.HasPrefix(rt.path, prefix) {
				pair = m
			}
		}
		for i, model := range pair {
			path, body := rt.path, rt.body
			if strings.Contains(path, "%s") {
				path = fmt.Sprintf(path, model)
			} else {
				body = fmt.Sprintf(body, model)
			}
			calls := up.calls.Load()
			resp, got := a.post(p, path, body)
			if i == 0 {
				refused++
				if resp.StatusCode != 403 || errorCode(t, got) != "MODEL_NOT_ALLOWED" || !strings.Contains(got, model) {
					t.Errorf("%s %s: %d %s, want 403 MODEL_NOT_ALLOWED", rt.name, model, resp.StatusCode, got)
				}
				if up.calls.Load() != calls {
					t.Errorf("%s %s: the refused request reached the upstream", rt.name, model)
				}
				continue
			}
			if resp.StatusCode == 403 || up.calls.Load() != calls+1 {
				t.Errorf("%s %s (allowed): %d %s", rt.name, model, resp.StatusCode, got)
			}
		}
	}
	blocked := 0
	for _, r := range a.waitRows(p, refused) {
		if r.ErrorCode == "MODEL_NOT_ALLOWED" && r.Status == 403 && r.CostNano == 0 {
			blocked++
		}
	}
	if blocked != refused {
		t.Errorf("%d MODEL_NOT_ALLOWED rows, want %d", blocked, refused)
	}
}

// TestAllowListAndFallback ensures the fallback model is held to the allow-list too: served
// when allowed, never when not (a list stored without it, bypassing the API's check, keeps the
// requested model), and refused when asked for by name outside the list.
func TestAllowListAndFallback(t *testing.T) {
	a := newApp(t, appOptions{})
	p := a.project(projectOptions{daily: 1, fallback: "gpt-4o-mini"})
	a.spendOn(p, 0.85)
	steps := []struct {
		name, allowed, model string
		status               int
		final                string
	}{
		{"fallback allowed", `["gpt-4o","gpt-4o-mini"]`, "gpt-4o", 200, "gpt-4o-mini"},
		{"fallback outside the list", `["gpt-4o"]`, "gpt-4o", 200, "gpt-4o"},
		{"fallback asked for by name outside the list", `["gpt-4o"]`, "gpt-4o-mini", 403, ""},
	}
	for _, st := range steps {
		a.setControls(p, `allowed_models = ?`, st.allowed)
		resp, body := a.chat(p.key, chatBody(st.model, false, ""))
		if resp.StatusCode != st.status || resp.Header.Get("X-Tokenguard-Final-Model") != st.final {
			t.Errorf("%s: %d final %q %s; want %d %q", st.name, resp.StatusCode, resp.Header.Get("X-Tokenguard-Final-Model"), body, st.status, st.final)
		}
	}
}

// TestBudgetHeaders ensures every metered response, refusals of any kind included, tells the
// key holder the tightest budget's remaining dollars and its level — ok, warning (80% without a
// fallback), fallback (80% with one), exceeded — and that responses without a budget, or
// unmetered, carry none.
func TestBudgetHeaders(t *testing.T) {
	a := newApp(t, appOptions{})
	cases := []struct {
		name            string
		opts            projectOptions
		spend           float64
		remaining, want string
		status          int
	}{
		{"no budget", projectOptions{}, 0.5, "", "", 200},
		{"ok", projectOptions{daily: 1, monthly: 10}, 0.25, "0.750000", "ok", 200},
		{"warning without a fallback", projectOptions{daily: 1}, 0.85, "0.150000", "warning", 200},
		{"fallback", projectOptions{daily: 1, fallback: "gpt-4o-mini"}, 0.85, "0.150000", "fallback", 200},
		{"tightest is the workspace's", projectOptions{daily: 10, wsDaily: 1}, 0.9, "0.100000", "warning", 200},
		{"exceeded", projectOptions{monthly: 1}, 1.2, "0.000000", "exceeded", 429},
	}
	for _, c := range cases {
		p := a.project(c.opts)
		a.spendOn(p, c.spend)
		resp, body := a.chat(p.key, chatBody("gpt-4o", false, ""))
		if resp.StatusCode != c.status || resp.Header.Get("X-Tokenguard-Budget-Remaining-Usd") != c.remaining || resp.Header.Get("X-Tokenguard-Budget-Level") != c.want {
			t.Errorf("%s: %d remaining %q level %q %s; want %d %q %q", c.name, resp.StatusCode,
				resp.Header.Get("X-Tokenguard-Budget-Remaining-Usd"), resp.Header.Get("X-Tokenguard-Budget-Level"), body, c.status, c.remaining, c.want)
		}
		a.setControls(p, `allowed_models = '["gpt-4o"]'`)
		resp, _ = a.chat(p.key, chatBody("o3", false, ""))
		if resp.StatusCode != 403 || resp.Header.Get("X-Tokenguard-Budget-Level") != c.want {
			t.Errorf("%s: a model refused by the allow-list: %d level %q, want 403 %q", c.name, resp.StatusCode, resp.Header.Get("X-Tokenguard-Budget-Level"), c.want)
		}
		models := a.do(context.Background(), http.MethodGet, "/proxy/openai/v1/models", "", "x-tokenguard-key", p.key)
		models.Body.Close()
		if models.Header.Get("X-Tokenguard-Budget-Level") != "" {
			t.Errorf("%s: the unmetered model list carries budget headers", c.name)
		}
	}
}

// TestBudgetEndpoint ensures GET /proxy/budget, with the project key in any of the proxy's key
// slots, returns spend, limits, level, mode and reset of every budget that applies and the rate
// limits, and nothing of another project; and that a missing, invalid or deactivated key gets
// the proxy's usual 401.
func TestBudgetEndpoint(t *testing.T) {
	a := newApp(t, appOptions{})
	pa := a.project(projectOptions{daily: 1, monthly: 10, wsDaily: 5})
	pb := a.project(projectOptions{daily: 2, monthly: 30})
	a.setControls(pa, `rpm_limit = 60, tpm_limit = 100000, budget_mode = 'strict'`)
	a.spendOn(pa, 0.4)
	a.spendOn(pb, 1.75)
	a.chat(pa.key, chatBody("gpt-4o", false, "")) // counted against the rate limits
	get := func(path string, headers ...string) (int, string) {
		resp := a.do(context.Background(), http.MethodGet, path, "", headers...)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	slots := [][]string{
		{"x-tokenguard-key", pa.key}, {"Authorization", "Bearer " + pa.key}, {"x-api-key", pa.key},
		{"x-goog-api-key", pa.key}, nil,
	}
	for _, h := range slots {
		path := "/proxy/budget"
		if h == nil {
			path += "?key=" + pa.key
		}
		status, body := get(path, h...)
		var got struct {
			ProjectID, WorkspaceID int64
			Level                  string
			RemainingUSD           *float64 `json:"remainingUsd"`
			Budgets                []struct {
				Scope, Period, Mode, Level string
				Limit                      float64 `json:"limitUsd"`
				Spent                      float64 `json:"spentUsd"`
				Remaining                  float64 `json:"remainingUsd"`
				ResetAt                    time.Time
			}
			RateLimits []struct {
				Scope, Kind                    string
				Limit, Remaining, ResetSeconds int64
			}
		}
		if err := json.Unmarshal([]byte(body), &got); status != 200 || err != nil {
			t.Fatalf("%v: %d %s", h, status, body)
		}
		spentA := got.Budgets[0].Spent
		if got.ProjectID != pa.id || got.WorkspaceID != pa.workspaceID || len(got.Budgets) != 3 || got.Level != "ok" || got.RemainingUSD == nil {
			t.Fatalf("%v: %s", h, body)
		}
		day := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
		want := []string{
			fmt.Sprintf("project daily strict 1 %v", day), fmt.Sprintf("project monthly strict 10 %v", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)),
			fmt.Sprintf("workspace daily soft 5 %v", day),
		}
		for i, b := range got.Budgets {
			if s := fmt.Sprintf("%s %s %s %v %v", b.Scope, b.Period, b.Mode, b.Limit, b.ResetAt); s != want[i] || b.Spent != spentA || math.Abs(b.Remaining-(b.Limit-b.Spent)) > 1e-9 {
				t.Errorf("budget %d: %s spent %v remaining %v; want %s", i, s, b.Spent, b.Remaining, want[i])
			}
		}
		if spentA < 0.4 || spentA > 0.41 || math.Abs(*got.RemainingUSD-(1-spentA)) > 1e-9 {
			t.Errorf("spent %v, remaining %v; want $0.40 and a little for the one request", spentA, *got.RemainingUSD)
		}
		if len(got.RateLimits) != 2 || got.RateLimits[0].Kind != "requests" || got.RateLimits[0].Limit != 60 || got.RateLimits[0].Remaining != 59 ||
			got.RateLimits[1].Kind != "tokens" || got.RateLimits[1].Limit != 100000 || got.RateLimits[0].ResetSeconds != 60 {
			t.Errorf("rate limits: %+v", got.RateLimits)
		}
		if strings.Contains(body, "1.75") || strings.Contains(body, `"limitUsd":2,`) || strings.Contains(body, `"limitUsd":30`) {
			t.Errorf("project A's answer shows project B: %s", body)
		}
	}

	inactive := a.project(projectOptions{inactive: true})
	bad := []struct {
		name    string
		headers []string
		code    string
	}{
		{"no key", nil, "MISSING_KEY"},
		{"unknown key", []string{"x-tokenguard-key", "tg_live_" + strings.Repeat("x", 40)}, "INVALID_KEY"},
		{"deactivated", []string{"x-tokenguard-key", inactive.key}, "KEY_DEACTIVATED"},
	}
	for _, c := range bad {
		if status, body := get("/proxy/budget", c.headers...); status != 401 || errorCode(t, body) != c.code {
			t.Errorf("%s: %d %s, want 401 %s", c.name, status, body, c.code)
		}
	}
}

// BenchmarkProxyControls compares, in one run, a proxied chat completion of a project without
// controls and of one held to all four rate limits and an allow-list: the difference is what the
// controls gate costs per request (process CPU, allocations).
func BenchmarkProxyControls(b *testing.B) {
	for _, bc := range []struct {
		name string
		set  func(a *app, p testProject)
	}{
		{"unset", func(*app, testProject) {}},
		{"limits and allow-list", func(a *app, p testProject) {
			a.setControls(p, `rpm_limit = ?, tpm_limit = ?, allowed_models = ?`, int64(1e9), int64(1e9),
				`["gpt-4o","gpt-4.1-*","claude-*","gemini-*","gpt-4o-mini"]`)
			a.setWorkspaceLimits(p, 1e9, 1e9)
			a.chat(p.key, smallChat) // the key's one bcrypt check, again after the eviction
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			a, p, body := benchApp(b)
			bc.set(a, p)
			benchChat(b, a, p, body)
		})
	}
}
