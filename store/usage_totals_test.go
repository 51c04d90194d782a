package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"tokenguard/store"
	"tokenguard/store/storetest"
)

// TestUsageRawTotals ensures the totals under a status filter equal the raw rows' sums for
// every combination of filters, and that a range with more rows than the bound is refused rather
// than read.
func TestUsageRawTotals(t *testing.T) {
	db := storetest.Open(t)
	end := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	seedAnalytics(t, db, 3000, end)
	month := store.AnalyticsFilter{WorkspaceID: 1, From: end.Add(-31 * 24 * time.Hour).UnixMilli(), To: end.UnixMilli()}
	for _, tc := range []struct {
		name   string
		f      func(store.AnalyticsFilter) store.AnalyticsFilter
		status int
		where  string
	}{
		{"200", func(f store.AnalyticsFilter) store.AnalyticsFilter { return f }, 200, ""},
		{"429 (blocked)", func(f store.AnalyticsFilter) store.AnalyticsFilter { return f }, 429, ""},
		{"200 anthropic", func(f store.AnalyticsFilter) store.AnalyticsFilter { f.Provider = "anthropic"; return f }, 200, " AND provider = 'anthropic'"},
		{"200 project 12", func(f store.AnalyticsFilter) store.AnalyticsFilter { f.ProjectID = 12; return f }, 200, " AND project_id = 12"},
		{"200 model-1*", func(f store.AnalyticsFilter) store.AnalyticsFilter { f.Model = "MODEL-1"; return f }, 200, " AND final_model LIKE '%model-1%'"},
		{"429 last week", func(f store.AnalyticsFilter) store.AnalyticsFilter {
			f.From = end.Add(-7 * 24 * time.Hour).UnixMilli()
			return f
		}, 429, fmt.Sprintf(" AND created_at >= %d", end.Add(-7*24*time.Hour).UnixMilli())},
		{"503 (none)", func(f store.AnalyticsFilter) store.AnalyticsFilter { return f }, 503, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.UsageRawTotals(context.Background(), tc.f(month), "", tc.status, 3000)
			if err != nil {
				t.Fatal(err)
			}
			var want store.UsageAggregate
			where := tc.where
			if db.Postgres() {
				where = strings.ReplaceAll(where, " LIKE ", " ILIKE ") // as SQLite's LIKE, case-blind
			}
			if err := db.Read.QueryRow(fmt.Sprintf(`SELECT count(*), coalesce(sum(cost_nano), 0), coalesce(sum(input_tokens), 0),
				coalesce(sum(output_tokens), 0), coalesce(sum(total_tokens), 0), coalesce(sum(CASE WHEN error_code = 'BUDGET_EXCEEDED' THEN 1 ELSE 0 END), 0),
				coalesce(sum(latency_ms), 0), coalesce(max(created_at), 0)
				FROM usage_logs WHERE workspace_id = 1 AND created_at < %d AND status = %d%s`, end.UnixMilli(), tc.status, where)).Scan(
				&want.Requests, &want.CostNano, &want.InputTokens, &want.OutputTokens, &want.TotalTokens, &want.Blocked,
				&want.LatencyMs, &want.LastAt); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("totals %+v, want %+v", got, want)
			}
		})
	}
	if _, err := db.UsageRawTotals(context.Background(), month, "", 200, 2999); !errors.Is(err, store.ErrTooManyRows) {
		t.Errorf("3000 rows in the range, bound 2999: %v, want ErrTooManyRows", err)
	}
}

// BenchmarkUsageRawTotals measures the usage log's totals under a status filter at its bound:
// 50,000 rows of a workspace in the range (and as many of another workspace).
func BenchmarkUsageRawTotals(b *testing.B) {
	db := storetest.Open(b)
	end := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	seedAnalytics(b, db, 50_000, end)
	f := store.AnalyticsFilter{WorkspaceID: 1, From: end.Add(-31 * 24 * time.Hour).UnixMilli(), To: end.UnixMilli()}
	for b.Loop() {
		if _, err := db.UsageRawTotals(context.Background(), f, "", 429, 50_000); err != nil {
			b.Fatal(err)
		}
	}
}
