package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"tokenguard/app/account"
	"tokenguard/app/budget"
	"tokenguard/app/pricing"
	"tokenguard/app/provider/openai"
	"tokenguard/app/provider/openai/openaitest"
	"tokenguard/app/proxy"
	"tokenguard/app/secret"
	"tokenguard/app/usage"
	"tokenguard/store"
)

// withProxy serves the real proxy (OpenAI upstream faked at the wire level) beside the API, and
// makes it the account service's key cache, as main wires them.
func withProxy(tb testing.TB) appOption {
	return func(o *account.Options, d *Deps) {
		db := d.Usage.(*store.DB)
		log := slog.New(slog.DiscardHandler)
		prices, err := pricing.New(nil, pricing.DefaultUnknownPrice())
		if err != nil {
			tb.Fatal(err)
		}
		eng := budget.New(time.Now)
		if err := usage.LoadCounters(context.Background(), db, eng, time.Now()); err != nil {
			tb.Fatal(err)
		}
		writer := usage.NewWriter(db, log, usage.WriterOptions{FlushInterval: 10 * time.Millisecond})
		upstream := openaitest.New(tb)
		box, _ := secret.NewBox(testEncKey)
		px, err := proxy.New(proxy.Config{DB: db, Prices: prices, Budget: eng, Usage: writer, Logger: log, Box: box, Now: time.Now},
			proxy.Upstream{Adapter: openai.New(), BaseURL: upstream.URL, EnvKey: "sk-upstream-env-key"})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			px.Close(context.Background())
			writer.Close(context.Background())
		})
		o.Keys = px
	}
}

// chat sends one chat completion through the proxy with key and returns the status and error
// code.
func (a *testApp) chat(key string) (int, string) {
	a.t.Helper()
	r := a.call("", http.MethodPost, "/proxy/openai/v1/chat/completions",
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":16}`, "x-tokenguard-key", key)
	return r.status, r.errCode()
}

// TestKeysThroughProxy ensures that what the API changes, the real proxy enforces on the very
// next request: regenerated, deactivated, deleted projects and deleted workspaces lose their
// keys, activation restores it, and a budget set to zero blocks at once.
func TestKeysThroughProxy(t *testing.T) {
	a := newApp(t, withProxy(t))
	alice := a.signup("alice@example.com")
	var created struct{ Workspace struct{ ID int64 } }
	a.mustJSON(alice.call(http.MethodPost, "/api/workspaces", map[string]any{"name": "Prod"}), 201, &created)
	ws := created.Workspace.ID
	p := alice.createProject(ws, "bot")
	path := fmt.Sprintf("/api/projects/%d", p.Project.ID)
	expect := func(step, key string, status int, code string) {
		t.Helper()
		gotStatus, gotCode := a.chat(key)
		if gotStatus != status || gotCode != code {
			t.Fatalf("%s: proxy answered %d %q, want %d %q", step, gotStatus, gotCode, status, code)
		}
	}
	expect("new key", p.Key, 200, "")

	var regen struct{ Key string }
	a.mustJSON(alice.call(http.MethodPost, path+"/regenerate-key", nil), 200, &regen)
	expect("old key after regenerate", p.Key, 401, "INVALID_KEY")
	expect("regenerated key", regen.Key, 200, "")

	a.mustJSON(alice.call(http.MethodPost, path+"/deactivate", nil), 200, nil)
	expect("deactivated", regen.Key, 401, "KEY_DEACTIVATED")
	a.mustJSON(alice.call(http.MethodPost, path+"/activate", nil), 200, nil)
	expect("activated", regen.Key, 200, "")

	a.mustJSON(alice.call(http.MethodPatch, path, `{"dailyBudgetUsd":0}`), 200, nil)
	expect("daily budget 0", regen.Key, 429, "BUDGET_EXCEEDED")
	a.mustJSON(alice.call(http.MethodPatch, path, `{"dailyBudgetUsd":null}`), 200, nil)
	expect("budget cleared", regen.Key, 200, "")

	a.mustJSON(alice.call(http.MethodPatch, fmt.Sprintf("/api/workspaces/%d", ws), `{"monthlyBudgetUsd":0}`), 200, nil)
	status, code := a.chat(regen.Key)
	if status != 429 || code != "BUDGET_EXCEEDED" {
		t.Fatalf("workspace budget 0: %d %s", status, code)
	}
	a.mustJSON(alice.call(http.MethodPatch, fmt.Sprintf("/api/workspaces/%d", ws), `{"monthlyBudgetUsd":null}`), 200, nil)
	expect("workspace budget cleared", regen.Key, 200, "")

	a.mustJSON(alice.call(http.MethodDelete, fmt.Sprintf("/api/workspaces/%d", ws), map[string]any{"confirmName": "Prod"}), 204, nil)
	expect("workspace deleted", regen.Key, 401, "INVALID_KEY")

	q := alice.createProject(alice.ws, "other")
	expect("second project", q.Key, 200, "")
	a.mustJSON(alice.call(http.MethodDelete, fmt.Sprintf("/api/projects/%d", q.Project.ID), nil), 204, nil)
	expect("project deleted", q.Key, 401, "INVALID_KEY")
}
