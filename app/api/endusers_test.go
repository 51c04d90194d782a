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
