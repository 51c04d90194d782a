package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"tokenguard/store"
	"tokenguard/store/storetest"
)

// seedAnalytics writes n usage rows of workspace 1 spread over the 30 days before end (and the
// same number in workspace 2, which the queries must skip over by index).
func seedAnalytics(tb testing.TB, db *store.DB, n int, end time.Time) {
	tb.Helper()
	providers := []string{"openai", "anthropic", "gemini"}
	span := int64(30 * 24 * time.Hour / time.Millisecond)
	rows := make([]store.UsageRow, 0, 5000)
	for ws := int64(1); ws <= 2; ws++ {
		for i := 0; i < n; i++ {
			r := store.UsageRow{RequestID: fmt.Sprintf("%d-%d", ws, i), CreatedAt: end.UnixMilli() - span + int64(i)*span/int64(n),
				WorkspaceID: ws, ProjectID: ws*10 + int64(i%5), Provider: providers[i%3], OriginalModel: fmt.Sprintf("model-%d", i%40),
				FinalModel: fmt.Sprintf("model-%d", i%40), Status: 200, InputTokens: 100, OutputTokens: 50, TotalTokens: 150,
				CostNano: int64(1000 + i%7), LatencyMs: int64(100 + i%300)}
			if i%50 == 0 {
				r.Status, r.ErrorCode, r.CostNano = 429, store.BlockedErrorCode, 0
			}
			rows = append(rows, r)
			if len(rows) == cap(rows) {
				if _, err := db.InsertUsage(context.Background(), rows); err != nil {
					tb.Fatal(err)
				}
				rows = rows[:0]
			}
		}
	}
	if _, err := db.InsertUsage(context.Background(), rows); err != nil {
		tb.Fatal(err)
	}
}

func TestAggregateUsageGroups(t *testing.T) {
	db := storetest.Open(t)
	end := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	seedAnalytics(t, db, 3000, end)
	f := store.AnalyticsFilter{WorkspaceID: 1, From: end.Add(-31 * 24 * time.Hour).UnixMilli(), To: end.UnixMilli()}
	total, err := db.AggregateUsage(context.Background(), f, store.GroupNone, 0)
	if err != nil || len(total) != 1 {
		t.Fatal(total, err)
	}
	// Every group's sums add up to the total, whatever the grouping.
	for _, g := range []store.UsageGroup{store.GroupDay, store.GroupProvider, store.GroupModel, store.GroupProject} {
		groups, err := db.AggregateUsage(context.Background(), f, g, 0)
		if err != nil {
			t.Fatal(err)
		}
		var sum store.UsageAggregate
		for _, r := range groups {
			sum.Requests += r.Requests
			sum.CostNano += r.CostNano
			sum.Blocked += r.Blocked
			sum.TotalTokens += r.TotalTokens
		}
		if sum.Requests != 3000 || sum.CostNano != total[0].CostNano || sum.Blocked != 60 || sum.TotalTokens != total[0].TotalTokens {
			t.Errorf("group %d sums to %+v, total %+v", g, sum, total[0])
		}
	}
	top, err := db.AggregateUsage(context.Background(), f, store.GroupModel, 20)
	if err != nil || len(top) != 20 {
		t.Fatalf("%d models, %v", len(top), err)
	}
	for i := 1; i < len(top); i++ {
		if top[i].CostNano > top[i-1].CostNano {
			t.Errorf("models not by spend: %d after %d", top[i].CostNano, top[i-1].CostNano)
		}
	}
}

// BenchmarkAggregateUsage measures the analytics queries over 100,000 rows of a workspace in
// 30 days (plus 100,000 of another workspace).
func BenchmarkAggregateUsage(b *testing.B) {
	db := storetest.Open(b)
	end := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	seedAnalytics(b, db, 100_000, end)
	f := store.AnalyticsFilter{WorkspaceID: 1, From: end.Add(-30 * 24 * time.Hour).UnixMilli(), To: end.UnixMilli()}
	for _, g := range []struct {
		name string
		g    store.UsageGroup
	}{{"total", store.GroupNone}, {"day", store.GroupDay}, {"provider", store.GroupProvider}, {"model", store.GroupModel}, {"project", store.GroupProject}} {
		b.Run(g.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := db.AggregateUsage(context.Background(), f, g.g, 20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("today", func(b *testing.B) {
		today := f
		today.From = end.Add(-24 * time.Hour).UnixMilli()
		for b.Loop() {
			if _, err := db.AggregateUsage(context.Background(), today, store.GroupNone, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}
