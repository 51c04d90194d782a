package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"tokenguard/app/analytics"
	"tokenguard/store"
)

// After retention pruned old usage rows, the usage log and the CSV export say so for a range
// that reaches back before the rows kept — and only for such a range — while analytics still
// count the pruned rows from the rollups.
func TestUsageSaysWhenRowsWerePruned(t *testing.T) {
	a := newApp(t)
	alice := a.signup("alice@example.com")
	p := alice.createProject(alice.ws, "chatbot")
	now := a.clock.Now()
	cutoff := now.Add(-48 * time.Hour).Truncate(time.Hour)
	var rows []store.UsageRow
	for i, at := range []time.Time{cutoff.Add(-72 * time.Hour), cutoff.Add(-time.Hour), cutoff.Add(time.Hour), now.Add(-time.Minute)} {
		rows = append(rows, store.UsageRow{RequestID: fmt.Sprint("req", i), CreatedAt: at.UnixMilli(), WorkspaceID: alice.ws,
			ProjectID: p.Project.ID, Provider: "openai", OriginalModel: "gpt-4o", FinalModel: "gpt-4o", Status: 200, CostNano: 1e9})
	}
	if _, err := a.db.InsertUsage(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	if n, err := a.db.PruneUsage(context.Background(), alice.ws, cutoff.UnixMilli(), 100); err != nil || n != 2 {
		t.Fatalf("pruned %d rows, %v; want 2", n, err)
	}
	since := cutoff.UTC().Format(time.RFC3339)
	q := func(from time.Time) string { return url.QueryEscape(from.UTC().Format(time.RFC3339)) }

	for _, c := range []struct {
		query     string
		rows      int
		rawSince  string
		why       string
		analytics float64
	}{
		{"", 2, since, "no from: the log's beginning is pruned", 0},
		{"?from=" + q(cutoff.Add(-96*time.Hour)), 2, since, "from before the cutoff", 4},
		{"?from=" + q(cutoff), 2, "", "from at the cutoff: every row is kept", 2},
		{"?from=" + q(cutoff.Add(30*time.Minute)), 2, "", "from after the cutoff", 0},
	} {
		var page struct {
			Data         []struct{ RequestID string }
			RawRowsSince string
		}
		a.mustJSON(alice.call(http.MethodGet, "/api/usage"+c.query, nil), 200, &page)
		if len(page.Data) != c.rows || page.RawRowsSince != c.rawSince {
			t.Errorf("%s: %d rows, rawRowsSince %q; want %d, %q", c.why, len(page.Data), page.RawRowsSince, c.rows, c.rawSince)
		}
		if c.query == "" {
			continue
		}
		r := alice.call(http.MethodGet, "/api/analytics/export.csv"+c.query+"&to="+q(now), nil)
		if r.status != 200 || r.header.Get(analytics.RawRowsSinceHeader) != c.rawSince || strings.Count(string(r.body), "\n") != 1+c.rows {
			t.Errorf("%s: export %d, %s %q, %d lines; want 200, %q, %d", c.why, r.status, analytics.RawRowsSinceHeader,
				r.header.Get(analytics.RawRowsSinceHeader), strings.Count(string(r.body), "\n"), c.rawSince, 1+c.rows)
		}
		if c.analytics == 0 {
			continue
		}
		var ov struct{ SpendUsd float64 }
		a.mustJSON(alice.call(http.MethodGet, "/api/analytics/overview"+c.query+"&to="+q(now), nil), 200, &ov)
		if ov.SpendUsd != c.analytics {
			t.Errorf("%s: analytics spend $%v, want $%v (pruned rows stay in the rollups)", c.why, ov.SpendUsd, c.analytics)
		}
	}
}
