package proxy_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"tokenguard/app/pricing"
)

// TestEndUserRecorded ensures each provider's own end-user field, and the x-tokenguard-user
// header over any of them, ends up on the request's usage row, and that the header does not
// reach the upstream.
func TestEndUserRecorded(t *testing.T) {
	a, up, _ := newAttackApp(t)
	p := a.project(projectOptions{})
	cases := []struct {
		name, path, body string
		header           string
		want             string
	}{
		{"OpenAI user", "/proxy/openai/v1/chat/completions", `{"model":"gpt-4o-mini","user":"oa-user","messages":[]}`, "", "oa-user"},
		{"OpenAI safety_identifier", "/proxy/openai/v1/chat/completions", `{"model":"gpt-4o-mini","user":"u","safety_identifier":"oa-safety","messages":[]}`, "", "oa-safety"},
		{"Anthropic metadata.user_id", "/proxy/anthropic/v1/messages", `{"model":"claude-3-5-haiku-latest","max_tokens":10,"metadata":{"user_id":"an-user"},"messages":[]}`, "", "an-user"},
		{"Gemini header", "/proxy/gemini/v1beta/models/gemini-2.0-flash:generateContent", `{"contents":[{"parts":[{"text":"hi"}]}]}`, "gm-header", "gm-header"},
		{"header wins", "/proxy/anthropic/v1/messages", `{"model":"claude-3-5-haiku-latest","max_tokens":10,"metadata":{"user_id":"an-user"},"messages":[]}`, "hd-user", "hd-user"},
		{"none", "/proxy/openai/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[]}`, "", ""},
	}
	for i, tc := range cases {
		headers := []string{"x-tokenguard-key", p.key}
		if tc.header != "" {
			headers = append(headers, "x-tokenguard-user", tc.header)
		}
		resp := a.do(context.Background(), "POST", tc.path, tc.body, headers...)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", tc.name, resp.StatusCode, b)
		}
		rows := a.waitRows(p, i+1)
		if got := rows[i].EndUser; got != tc.want {
			t.Errorf("%s: row's end user %q, want %q", tc.name, got, tc.want)
		}
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if got := len(up.bodies); got != len(cases) {
		t.Fatalf("upstream saw %d requests, want %d", got, len(cases))
	}
	resp, body := a.chat(p.key, `{"model":"gpt-4o-mini","messages":[]}`, "x-tokenguard-user", strings.Repeat("x", 257))
	if resp.StatusCode != http.StatusBadRequest || errorCode(t, body) != "INVALID_REQUEST" {
		t.Errorf("a 257-byte end user: %d %s, want 400 INVALID_REQUEST", resp.StatusCode, body)
	}
}

// TestEndUserBudgetBurst ensures a project's per-end-user daily budget holds under concurrent
// bursts: one end user's requests are admitted until their spend plus what is in flight reaches
// the budget, then refused with 429 BUDGET_EXCEEDED naming them (with Retry-After and resetAt),
// their spend ends within one request's worst case of the budget, the refusals are usage rows,
// and another end user of the same project is still served.
func TestEndUserBudgetBurst(t *testing.T) {
	a, up, prices := newAttackApp(t)
	p := a.project(projectOptions{})
	const body = `{"model":"gpt-4o-mini","max_tokens":2000,"user":"alice","messages":[{"role":"user","content":"hello"}]}`
	worst := prices.WorstCase("gpt-4o-mini", int64(len(body)), 2000, 1)
	limit := 10 * worst
	if _, err := a.db.Write.Exec(`UPDATE projects SET end_user_daily_budget_nano = ? WHERE id = ?`, int64(limit), p.id); err != nil {
		t.Fatal(err)
	}
	a.proxy.EvictProject(p.id)
	up.want.Store(1800) // each request spends most of its reservation

	admitted := 0
	for round := 0; round < 10; round++ {
		res := a.burst(up, p.key, "/proxy/openai/v1/chat/completions", body, 8)
		admitted += res.admitted
		if res.admitted == 0 {
			break
		}
	}
	rows := a.waitRows(p, admitted+1)
	var spent pricing.NanoUSD
	blocked := 0
	for _, r := range rows {
		if r.EndUser != "alice" {
			t.Fatalf("row of end user %q", r.EndUser)
		}
		spent += pricing.NanoUSD(r.CostNano)
		if r.ErrorCode == "BUDGET_EXCEEDED" {
			blocked++
		}
	}
	if spent > limit+worst || spent < limit-worst {
		t.Errorf("alice spent %v of a %v budget, want within one worst case (%v) of it", spent, limit, worst)
	}
	if admitted < 9 || blocked == 0 {
		t.Errorf("admitted %d, blocked %d: want the budget used and then refusals", admitted, blocked)
	}
	resp, out := a.chat(p.key, body)
	if resp.StatusCode != http.StatusTooManyRequests || errorCode(t, out) != "BUDGET_EXCEEDED" ||
		!strings.Contains(out, `end user \"alice\"`) || resp.Header.Get("Retry-After") == "" {
		t.Errorf("alice after her budget: %d %v %s", resp.StatusCode, resp.Header, out)
	}
	if resp, out := a.chat(p.key, strings.Replace(body, `"alice"`, `"bob"`, 1)); resp.StatusCode != http.StatusOK {
		t.Errorf("bob: %d %s, want 200", resp.StatusCode, out)
	}
	if resp, out := a.chat(p.key, body, "x-tokenguard-user", "carol"); resp.StatusCode != http.StatusOK {
		t.Errorf("the header names carol over the body's alice: %d %s, want 200", resp.StatusCode, out)
	}
}
