package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"tokenguard/store"
)

// TestUsageEndUserFilter ensures GET /api/usage?endUser= lists exactly the rows of that end
// user (an exact match, not a prefix), with the end user on each row, and refuses one longer
// than a stored end user can be.
func TestUsageEndUserFilter(t *testing.T) {
	a := newApp(t)
	alice := a.signup("alice@example.com")
	p := alice.createProject(alice.ws, "chatbot")
	base := a.clock.Now().Add(-time.Hour).UnixMilli()
	users := []string{"u-1", "u-10", "", "u 1/ü", "u-1"}
	var rows []store.UsageRow
	for i, u := range users {
		rows = append(rows, store.UsageRow{RequestID: fmt.Sprint("req", i), CreatedAt: base + int64(i), WorkspaceID: alice.ws,
			ProjectID: p.Project.ID, Provider: "openai", OriginalModel: "gpt-4o", FinalModel: "gpt-4o", Status: 200, EndUser: u})
	}
	if _, err := a.db.InsertUsage(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		endUser string
		want    []string
	}{
		{"u-1", []string{"req4", "req0"}},
		{"u 1/ü", []string{"req3"}},
		{"u-", nil},
		{"", []string{"req4", "req3", "req2", "req1", "req0"}},
	}
	for _, tc := range cases {
		var page struct {
			Data []struct {
				RequestID string
				EndUser   string
			}
		}
		a.mustJSON(alice.call(http.MethodGet, "/api/usage?endUser="+url.QueryEscape(tc.endUser), nil), 200, &page)
		var got []string
		for _, r := range page.Data {
			got = append(got, r.RequestID)
			if tc.endUser != "" && r.EndUser != tc.endUser {
				t.Errorf("endUser=%q listed a row of %q", tc.endUser, r.EndUser)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("endUser=%q: rows %v, want %v", tc.endUser, got, tc.want)
		}
	}
	if r := alice.call(http.MethodGet, "/api/usage?endUser="+strings.Repeat("x", store.MaxEndUser+1), nil); r.status != http.StatusBadRequest {
		t.Errorf("a 257-byte endUser: %s, want 400", r)
	}
}

// TestAnalyticsEndUserFilter ensures the analytics endpoints take endUser: every figure is the
// sum of that end user's rows (cost, requests, errors, blocked, per provider and model), other
// end users' rows counted nowhere, and the CSV export lists only their rows.
func TestAnalyticsEndUserFilter(t *testing.T) {
	a := newApp(t)
	alice := a.signup("alice@example.com")
	p := alice.createProject(alice.ws, "chatbot")
	base := a.clock.Now().Add(-2 * time.Hour).UnixMilli()
	type row struct {
		user, provider, model string
		status                int
		code                  string
		cost                  int64
	}
	rs := []row{
		{"u-1", "openai", "gpt-4o", 200, "", 1_000_000_000},
		{"u-1", "anthropic", "claude-sonnet-4-5", 200, "", 2_000_000_000},
		{"u-1", "openai", "gpt-4o", 500, "UPSTREAM_ERROR", 0},
		{"u-1", "openai", "gpt-4o", 429, "BUDGET_EXCEEDED", 0},
		{"u-2", "openai", "gpt-4o", 200, "", 4_000_000_000},
		{"", "gemini", "gemini-2.5-flash", 200, "", 8_000_000_000},
	}
	var rows []store.UsageRow
	for i, r := range rs {
		rows = append(rows, store.UsageRow{RequestID: fmt.Sprint("an", i), CreatedAt: base + int64(i), WorkspaceID: alice.ws,
			ProjectID: p.Project.ID, Provider: r.provider, OriginalModel: r.model, FinalModel: r.model, Status: r.status,
			ErrorCode: r.code, CostNano: r.cost, EndUser: r.user})
	}
	if _, err := a.db.InsertUsage(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	var ov struct {
		SpendUSD                  float64
		Requests, Errors, Blocked int64
		SpendTodayUsd             float64
		TopModel                  struct{ Name string }
	}
	a.mustJSON(alice.call(http.MethodGet, "/api/analytics/overview?endUser=u-1", nil), 200, &ov)
	if ov.SpendUSD != 3 || ov.Requests != 4 || ov.Errors != 1 || ov.Blocked != 1 || ov.TopModel.Name != "claude-sonnet-4-5" {
		t.Errorf("overview for u-1 = %+v, want $3, 4 requests, 1 error, 1 blocked, top model claude-sonnet-4-5", ov)
	}
	var providers struct {
		Data []struct {
			Provider string
			SpendUSD float64
			Requests int64
		}
	}
	a.mustJSON(alice.call(http.MethodGet, "/api/analytics/providers?endUser=u-2", nil), 200, &providers)
	if len(providers.Data) != 1 || providers.Data[0].Provider != "openai" || providers.Data[0].SpendUSD != 4 || providers.Data[0].Requests != 1 {
		t.Errorf("providers for u-2 = %+v, want openai $4 in 1 request", providers.Data)
	}
	a.mustJSON(alice.call(http.MethodGet, "/api/analytics/providers?endUser=nobody", nil), 200, &providers)
	for _, d := range providers.Data {
		if d.Requests != 0 {
			t.Errorf("providers for an unknown end user = %+v, want nothing", providers.Data)
		}
	}
	csv := alice.call(http.MethodGet, "/api/analytics/export.csv?endUser=u-2", nil)
	if lines := strings.Count(strings.TrimSpace(string(csv.body)), "\n"); csv.status != 200 || lines != 1 {
		t.Errorf("export for u-2: %d with %d data lines, want 200 with 1:\n%s", csv.status, lines, csv.body)
	}
	if r := alice.call(http.MethodGet, "/api/analytics/overview?endUser="+strings.Repeat("x", store.MaxEndUser+1), nil); r.status != http.StatusBadRequest {
		t.Errorf("a 257-byte endUser: %s, want 400", r)
	}
}
