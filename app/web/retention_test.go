package web_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"tokenguard/app/analytics"
	"tokenguard/store"
)

// After retention pruned old rows, the usage log, the analytics page and the CSV export say that
// the range asked for reaches back before the rows kept — and say nothing for a range that does
// not.
func TestDashboardSaysWhenRowsWerePruned(t *testing.T) {
	app := newApp(t)
	c := app.client(t)
	ws, wsID, projectID := c.signupWithProject()
	now := time.Now().UTC()
	cutoff := now.AddDate(0, 0, -10).Truncate(24 * time.Hour)
	var rows []store.UsageRow
	for i, at := range []time.Time{cutoff.AddDate(0, 0, -5), now.Add(-time.Hour)} {
		rows = append(rows, store.UsageRow{RequestID: fmt.Sprint("req-", i), CreatedAt: at.UnixMilli(), WorkspaceID: wsID,
			ProjectID: projectID, Provider: "openai", OriginalModel: "gpt-4o", FinalModel: "gpt-4o", Status: 200, CostNano: 1e9})
	}
	ctx := context.Background()
	if _, err := app.DB.InsertUsage(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if n, err := app.DB.PruneUsage(ctx, wsID, cutoff.UnixMilli(), 100); err != nil || n != 1 {
		t.Fatalf("pruned %d, %v; want 1", n, err)
	}
	day := func(d time.Time) string { return d.Format(time.DateOnly) }
	notice := `data-testid="raw-rows-since"`
	for _, tc := range []struct {
		page string
		want bool
	}{
		{ws + "/usage", true},
		{ws + "/usage?from=" + day(cutoff.AddDate(0, 0, -20)), true},
		{ws + "/usage?from=" + day(cutoff), false},
		{ws + "/analytics?range=custom&from=" + day(cutoff.AddDate(0, 0, -20)) + "&to=" + day(now), true},
		{ws + "/analytics?range=7d", false},
	} {
		if got := strings.Contains(c.get(tc.page).Body, notice); got != tc.want {
			t.Errorf("%s: pruned-rows notice shown %v, want %v", tc.page, got, tc.want)
		}
	}
	for from, want := range map[string]string{day(cutoff.AddDate(0, 0, -20)): cutoff.Format(time.RFC3339), day(cutoff): ""} {
		r := c.post(ws+"/analytics/export.csv", url.Values{"from": {from}, "to": {day(now)}})
		if got := r.Header.Get(analytics.RawRowsSinceHeader); r.Status != 200 || got != want {
			t.Errorf("export from %s: %d, %s %q; want 200, %q", from, r.Status, analytics.RawRowsSinceHeader, got, want)
		}
	}
}

// An export with bad input answers the analytics page with the problem said once, as a flash,
// and its figures still shown.
func TestExportProblemKeepsFigures(t *testing.T) {
	app := newApp(t)
	c := app.client(t)
	ws, _, _ := c.signupWithProject()
	r := c.post(ws+"/analytics/export.csv", url.Values{"from": {"not-a-day"}})
	if r.Status != 200 || !strings.Contains(r.Body, `data-kpi="spend"`) {
		t.Fatalf("export with a bad date: %d, figures shown %v; want 200 with the figures", r.Status, strings.Contains(r.Body, `data-kpi="spend"`))
	}
	if n := strings.Count(r.Body, `class="flash error"`); n != 1 {
		t.Errorf("the problem is said %d times, want once", n)
	}
}
