package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"tokenguard/app/apikey"
	"tokenguard/app/secret"
	"tokenguard/store"
)

// TestProjectKeyShownOnce ensures the full key appears in the create response only: the
// database holds a bcrypt hash and GET/list show the prefix.
func TestProjectKeyShownOnce(t *testing.T) {
	a := newApp(t)
	alice := a.signup("alice@example.com")
	p := alice.createProject(alice.ws, "chatbot")
	prefix, ok := apikey.Parse(p.Key)
	if !ok {
		t.Fatalf("key %q does not parse", p.Key)
	}
	if got, want := p.Project.KeyPrefix, prefix; got != want {
		t.Errorf("keyPrefix = %q, want %q", got, want)
	}
	for _, path := range []string{"/api/projects", fmt.Sprintf("/api/projects/%d", p.Project.ID)} {
		r := alice.call(http.MethodGet, path, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %s", path, r)
		}
		if bytes.Contains(r.body, []byte(p.Key)) || bytes.Contains(r.body, []byte(p.Key[len(prefix):])) {
			t.Errorf("GET %s shows the key: %s", path, r.body)
		}
		if !bytes.Contains(r.body, []byte(prefix)) {
			t.Errorf("GET %s lacks the prefix: %s", path, r.body)
		}
	}
	auth, err := a.db.KeyAuthByPrefix(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(auth.KeyHash, p.Key) || !apikey.Verify(auth.KeyHash, p.Key) {
		t.Errorf("stored hash %q is not a bcrypt hash of the key", auth.KeyHash)
	}
	var got struct {
		Project struct {
			DailyBudgetUsd, MonthlyBudgetUsd float64
			Active                           bool
			ProviderKeys                     map[string]*string
		}
	}
	a.mustJSON(alice.call(http.MethodGet, fmt.Sprintf("/api/projects/%d", p.Project.ID), nil), 200, &got)
	if got.Project.DailyBudgetUsd != 5 || got.Project.MonthlyBudgetUsd != 50 || !got.Project.Active {
		t.Errorf("project = %+v, want budgets 5/50 and active", got.Project)
	}
	if len(got.Project.ProviderKeys) != 3 || got.Project.ProviderKeys["openai"] != nil {
		t.Errorf("providerKeys = %v, want all three null", got.Project.ProviderKeys)
	}
}

// TestRegenerateKey ensures the old key dies at once (row replaced, cache evicted) and spend and
// budgets stay with the project.
func TestRegenerateKey(t *testing.T) {
	a := newApp(t)
	alice := a.signup("alice@example.com")
	p := alice.createProject(alice.ws, "chatbot")
	ctx := context.Background()
	now := a.clock.Now()
	if _, err := a.db.InsertUsage(ctx, []store.UsageRow{{RequestID: "r1", CreatedAt: now.UnixMilli(), WorkspaceID: alice.ws,
		ProjectID: p.Project.ID, Provider: "openai", OriginalModel: "gpt-4o", FinalModel: "gpt-4o", Status: 200, CostNano: 1_500_000_000}}); err != nil {
		t.Fatal(err)
	}
	before, err := a.db.SpendCounters(ctx, now.Format("2006-01-02"), now.Format("2006-01"))
	if err != nil {
		t.Fatal(err)
	}

	var out struct {
		Key     string
		Project struct {
			KeyPrefix      string
			DailyBudgetUsd float64
		}
	}
	a.mustJSON(alice.call(http.MethodPost, fmt.Sprintf("/api/projects/%d/regenerate-key", p.Project.ID), nil), 200, &out)
	if out.Key == p.Key || out.Project.KeyPrefix == p.Project.KeyPrefix {
		t.Fatal("regenerate returned the old key")
	}
	if !a.evict.project(p.Project.ID) {
		t.Error("regenerate did not evict the project's cached key")
	}
	if _, err := a.db.KeyAuthByPrefix(ctx, p.Project.KeyPrefix); err != store.ErrNotFound {
		t.Errorf("old prefix lookup: err %v, want ErrNotFound", err)
	}
	auth, err := a.db.KeyAuthByPrefix(ctx, out.Project.KeyPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if apikey.Verify(auth.KeyHash, p.Key) || !apikey.Verify(auth.KeyHash, out.Key) {
		t.Error("stored hash must match the new key only")
	}
	after, err := a.db.SpendCounters(ctx, now.Format("2006-01-02"), now.Format("2006-01"))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(before) != fmt.Sprint(after) || len(after) != 4 {
		t.Errorf("spend counters changed: %v → %v", before, after)
	}
	if got, want := out.Project.DailyBudgetUsd, 5.0; got != want {
		t.Errorf("daily budget = %v, want %v", got, want)
	}
	if got := alice.call(http.MethodGet, fmt.Sprintf("/api/projects/%d", p.Project.ID), nil); bytes.Contains(got.body, []byte(out.Key)) {
		t.Error("GET shows the regenerated key")
	}
}

// TestProjectLifecycle ensures deactivate, activate and delete change what the proxy sees and
// evict its cache each time.
func TestProjectLifecycle(t *testing.T) {
	a := newApp(t)
	alice := a.signup("alice@example.com")
	p := alice.createProject(alice.ws, "chatbot")
	path := fmt.Sprintf("/api/projects/%d", p.Project.ID)
	ctx := context.Background()
	step := func(method, suffix string, status int, active, deleted bool) {
		t.Helper()
		a.evict.projects = nil
		if r := alice.call(method, path+suffix, nil); r.status != status {
			t.Fatalf("%s %s: %s", method, suffix, r)
		}
		if !a.evict.project(p.Project.ID) {
			t.Errorf("%s %s did not evict", method, suffix)
		}
		auth, err := a.db.KeyAuthByPrefix(ctx, p.Project.KeyPrefix)
		if err != nil {
			t.Fatal(err)
		}
		if auth.Active != active || auth.ProjectDeleted != deleted {
			t.Errorf("after %s %s: active %v deleted %v, want %v %v", method, suffix, auth.Active, auth.ProjectDeleted, active, deleted)
		}
	}
	step(http.MethodPost, "/deactivate", 200, false, false)
	step(http.MethodPost, "/activate", 200, true, false)
	step(http.MethodDelete, "", 204, true, true)
	if r := alice.call(http.MethodGet, path, nil); r.status != http.StatusNotFound {
		t.Errorf("GET deleted project: %s", r)
	}
	var list struct{ Data []any }
	a.mustJSON(alice.call(http.MethodGet, "/api/projects", nil), 200, &list)
	if len(list.Data) != 0 {
		t.Errorf("deleted project still listed: %v", list.Data)
	}
}

// TestPatchProject ensures PATCH is partial, null clears a budget, bad values are 400 and a
// change evicts the cached key.
func TestPatchProject(t *testing.T) {
	a := newApp(t)
	alice := a.signup("alice@example.com")
	p := alice.createProject(alice.ws, "chatbot")
	path := fmt.Sprintf("/api/projects/%d", p.Project.ID)
	type proj struct {
		Name             string
		DailyBudgetUsd   *float64
		MonthlyBudgetUsd *float64
		FallbackModel    string
		AlertEmail       string
	}
	var got struct{ Project proj }
	a.mustJSON(alice.call(http.MethodPatch, path, `{"fallbackModel":"gpt-4o-mini","dailyBudgetUsd":null,"monthlyBudgetUsd":12.34}`), 200, &got)
	if got.Project.Name != "chatbot" || got.Project.DailyBudgetUsd != nil || *got.Project.MonthlyBudgetUsd != 12.34 || got.Project.FallbackModel != "gpt-4o-mini" {
		t.Errorf("after patch: %+v", got.Project)
	}
	if !a.evict.project(p.Project.ID) {
		t.Error("budget change did not evict")
	}
	auth, _ := a.db.KeyAuthByPrefix(context.Background(), p.Project.KeyPrefix)
	if auth.ProjectDaily != nil || auth.ProjectMonthly == nil || *auth.ProjectMonthly != 12_340_000_000 {
		t.Errorf("stored budgets: daily %v monthly %v, want nil and 12.34e9 nano", auth.ProjectDaily, auth.ProjectMonthly)
	}
	a.mustJSON(alice.call(http.MethodPatch, path, `{"name":"renamed","alertEmail":"Ops@Example.com"}`), 200, &got)
	if got.Project.Name != "renamed" || got.Project.AlertEmail != "ops@example.com" || got.Project.FallbackModel != "gpt-4o-mini" {
		t.Errorf("after second patch: %+v", got.Project)
	}

	bad := []struct{ name, body, msg string }{
		{"negative budget", `{"dailyBudgetUsd":-1}`, "negative"},
		{"absurd budget", `{"monthlyBudgetUsd":1e300}`, "at most"},
		{"budget as string", `{"dailyBudgetUsd":"5"}`, "dailyBudgetUsd"},
		{"null name", `{"name":null}`, "name"},
		{"empty name", `{"name":"  "}`, "name"},
		{"bad alert email", `{"alertEmail":"nope"}`, "alertEmail"},
		{"unknown field", `{"keyHash":"x"}`, "keyHash"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			r := alice.call(http.MethodPatch, path, tc.body)
			if r.status != http.StatusBadRequest || r.errCode() != "INVALID_REQUEST" || !strings.Contains(string(r.body), tc.msg) {
				t.Errorf("got %s, want 400 INVALID_REQUEST mentioning %q", r, tc.msg)
			}
		})
	}
	var after struct{ Project proj }
	a.mustJSON(alice.call(http.MethodGet, path, nil), 200, &after)
	if after.Project.Name != "renamed" || *after.Project.MonthlyBudgetUsd != 12.34 {
		t.Errorf("a rejected patch changed the project: %+v", after.Project)
	}
}

// TestProviderKeys ensures provider keys are sealed at rest (no plaintext in the database file),
// bound to their row, shown masked only, and follow absent/""/null/string semantics.
func TestProviderKeys(t *testing.T) {
	a := newApp(t)
	alice := a.signup("alice@example.com")
	p1 := alice.createProject(alice.ws, "one")
	p2 := alice.createProject(alice.ws, "two")
	path := fmt.Sprintf("/api/projects/%d/provider-keys", p1.Project.ID)
	openaiKey := "sk-proj-SECRETsecretSECRET1234wxyz"
	anthropicKey := "sk-ant-api03-ANTHROPICsecret9876abcd"

	var out struct{ ProviderKeys map[string]*string }
	a.mustJSON(alice.call(http.MethodPut, path, map[string]any{"openai": openaiKey, "anthropic": anthropicKey}), 200, &out)
	if out.ProviderKeys["openai"] == nil || *out.ProviderKeys["openai"] != secret.Mask(openaiKey) || out.ProviderKeys["gemini"] != nil {
		t.Fatalf("providerKeys = %v", out.ProviderKeys)
	}
	if !a.evict.project(p1.Project.ID) {
		t.Error("provider key change did not evict")
	}
	for _, path := range []string{"/api/projects", fmt.Sprintf("/api/projects/%d", p1.Project.ID)} {
		if r := alice.call(http.MethodGet, path, nil); strings.Contains(string(r.body), "SECRET") || !strings.Contains(string(r.body), "wxyz") {
			t.Errorf("GET %s: %s", path, r.body)
		}
	}

	// Sealed: the plaintext is nowhere in the database files; the ciphertext opens with its own
	// row's additional data only.
	ctx := context.Background()
	if _, err := a.db.Write.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{a.dbPath, a.dbPath + "-wal"} {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte("SECRETsecret")) || bytes.Contains(b, []byte("ANTHROPICsecret")) {
			t.Errorf("%s holds a provider key in plaintext", f)
		}
	}
	ct, err := a.db.ProviderKeyCiphertext(ctx, p1.Project.ID, "openai")
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := a.box.Open(ct, secret.ProviderKeyAD(p1.Project.ID, "openai")); err != nil || string(pt) != openaiKey {
		t.Fatalf("open own row: %q, %v", pt, err)
	}
	if _, err := a.box.Open(ct, secret.ProviderKeyAD(p2.Project.ID, "openai")); err == nil {
		t.Error("ciphertext opened for another project")
	}
	if _, err := a.box.Open(ct, secret.ProviderKeyAD(p1.Project.ID, "anthropic")); err == nil {
		t.Error("ciphertext opened for another provider")
	}
	// A ciphertext swapped into another project's row does not open there (the proxy reads it
	// with that row's additional data).
	if _, err := a.db.Write.ExecContext(ctx, `INSERT INTO provider_keys (project_id, provider, ciphertext, masked, updated_at)
		SELECT ?, provider, ciphertext, masked, updated_at FROM provider_keys WHERE project_id = ? AND provider = 'openai'`, p2.Project.ID, p1.Project.ID); err != nil {
		t.Fatal(err)
	}
	auth, err := a.db.KeyAuthByPrefix(ctx, p2.Project.KeyPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.box.Open(auth.ProviderKeys["openai"], secret.ProviderKeyAD(p2.Project.ID, "openai")); err == nil {
		t.Error("swapped ciphertext opened")
	}

	// Absent leaves a key, null and "" clear it.
	a.mustJSON(alice.call(http.MethodPut, path, `{"anthropic":null}`), 200, &out)
	if out.ProviderKeys["openai"] == nil || out.ProviderKeys["anthropic"] != nil {
		t.Errorf("after clearing anthropic with null: %v", out.ProviderKeys)
	}
	a.mustJSON(alice.call(http.MethodPut, path, `{"openai":"","gemini":"AIzaSyGEMINIsecret55"}`), 200, &out)
	if out.ProviderKeys["openai"] != nil || out.ProviderKeys["gemini"] == nil || *out.ProviderKeys["gemini"] != secret.Mask("AIzaSyGEMINIsecret55") {
		t.Errorf("after clearing openai with \"\": %v", out.ProviderKeys)
	}

	for _, body := range []string{`{"openai":"tg_live_notallowedhere12345"}`, `{"openai":"sk has spaces"}`, `{"mistral":"sk-xxxxxxxxxx"}`, `{"openai":42}`} {
		if r := alice.call(http.MethodPut, path, body); r.status != http.StatusBadRequest {
			t.Errorf("PUT %s: %s, want 400", body, r)
		}
	}
	// The audit event names providers, never keys.
	rows := a.auditRows(alice.ws, "provider_keys_updated")
	if len(rows) != 3 {
		t.Fatalf("provider_keys_updated events = %d, want 3 (set, clear, set+clear)", len(rows))
	}
	for _, r := range rows {
		if strings.Contains(r.Details, "secret") || strings.Contains(r.Details, "SECRET") {
			t.Errorf("audit details hold a key: %s", r.Details)
		}
	}
	var d map[string][]string
	json.Unmarshal([]byte(rows[0].Details), &d)
	if fmt.Sprint(d["set"], d["cleared"]) != "[gemini] [openai]" {
		t.Errorf("latest details = %s", rows[0].Details)
	}
}

// TestUsageList ensures GET /api/usage pages the workspace's rows newest first with a cursor
// and shows only that workspace's rows.
func TestUsageList(t *testing.T) {
	a := newApp(t)
	alice := a.signup("alice@example.com")
	bob := a.signup("bob@example.com")
	p := alice.createProject(alice.ws, "chatbot")
	base := a.clock.Now().Add(-time.Hour).UnixMilli()
	var rows []store.UsageRow
	for i := 0; i < 5; i++ {
		rows = append(rows, store.UsageRow{RequestID: fmt.Sprint("req", i), CreatedAt: base + int64(i), WorkspaceID: alice.ws,
			ProjectID: p.Project.ID, Provider: "openai", OriginalModel: "gpt-4o", FinalModel: "gpt-4o", Status: 200, CostNano: 250_000_000})
	}
	if _, err := a.db.InsertUsage(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	var page struct {
		Data []struct {
			RequestID        string
			EstimatedCostUsd float64
		}
		NextCursor string
	}
	a.mustJSON(alice.call(http.MethodGet, "/api/usage?limit=3", nil), 200, &page)
	if len(page.Data) != 3 || page.Data[0].RequestID != "req4" || page.NextCursor == "" || page.Data[0].EstimatedCostUsd != 0.25 {
		t.Fatalf("page 1 = %+v", page)
	}
	cursor := page.NextCursor
	page.NextCursor = ""
	a.mustJSON(alice.call(http.MethodGet, "/api/usage?limit=3&cursor="+cursor, nil), 200, &page)
	if len(page.Data) != 2 || page.Data[1].RequestID != "req0" || page.NextCursor != "" {
		t.Fatalf("page 2 = %+v", page)
	}
	for _, q := range []string{"limit=0", "limit=1001", "cursor=bogus", "provider=mistral", "from=yesterday"} {
		if r := alice.call(http.MethodGet, "/api/usage?"+q, nil); r.status != http.StatusBadRequest {
			t.Errorf("?%s: %s, want 400", q, r)
		}
	}
	a.mustJSON(bob.call(http.MethodGet, "/api/usage", nil), 200, &page)
	if len(page.Data) != 0 {
		t.Errorf("bob sees alice's usage: %+v", page.Data)
	}
	if r := bob.in(alice.ws, http.MethodGet, "/api/usage", nil); r.status != http.StatusNotFound {
		t.Errorf("bob naming alice's workspace: %s, want 404", r)
	}
}
