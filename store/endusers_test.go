package store_test

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"tokenguard/store"
	"tokenguard/store/storetest"
)

// TestEndUserAggregates ensures the end-user filter of the usage log and of analytics answers
// from the raw rows exactly: in a workspace whose every row is one end user's, each aggregation
// equals AggregateUsage (the rollups) for every range, filter and grouping; in a workspace of
// several end users, each one's totals and log pages equal the rows written for them.
func TestEndUserAggregates(t *testing.T) {
	db := storetest.Open(t)
	rng := rand.New(rand.NewPCG(13, 2026))
	users := []string{"alice", "bob", "", "émile ✓"}
	var rows []store.UsageRow
	for i := range 3000 {
		r := randomUsage(rng, fmt.Sprint("eu-", i))
		r.EndUser = "solo"
		if r.WorkspaceID == 1 {
			r.EndUser = users[rng.IntN(len(users))]
		}
		rows = append(rows, r)
	}
	if _, err := db.InsertUsage(ctx, rows); err != nil {
		t.Fatal(err)
	}
	ranges := testRanges(rng, 25)

	filters := []store.AnalyticsFilter{{}, {ProjectID: 21}, {Provider: "anthropic"}, {Model: "4o"}, {Model: "_mini%"},
		{ProjectID: 22, Provider: "openai", Model: "GPT"}}
	groups := []store.UsageGroup{store.GroupNone, store.GroupDay, store.GroupProvider, store.GroupModel, store.GroupProject}
	for _, r := range ranges {
		for _, f := range filters {
			f.WorkspaceID, f.From, f.To = 2, r[0], r[1]
			for _, g := range groups {
				want, err := db.AggregateUsage(ctx, f, g, 3)
				if err != nil {
					t.Fatal(err)
				}
				got, err := db.AggregateEndUserUsage(ctx, f, "solo", g, 3)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("range %d..%d filter %+v group %d:\n got %+v\nwant %+v", r[0], r[1], f, g, got, want)
				}
			}
		}
	}

	for _, user := range users[:2] {
		for _, r := range ranges {
			var want store.UsageAggregate
			var ids []string
			for _, row := range rows {
				if row.WorkspaceID != 1 || row.EndUser != user || row.CreatedAt < r[0] || row.CreatedAt >= r[1] {
					continue
				}
				want.Requests++
				want.CostNano += row.CostNano
				want.TotalTokens += row.TotalTokens
				want.LastAt = max(want.LastAt, row.CreatedAt)
				if row.ErrorCode == store.BlockedErrorCode {
					want.Blocked++
				} else if row.Status >= 400 {
					want.Errors++
				}
				ids = append(ids, row.RequestID)
			}
			got, err := db.AggregateEndUserUsage(ctx, store.AnalyticsFilter{WorkspaceID: 1, From: r[0], To: r[1]}, user, store.GroupNone, 0)
			if err != nil {
				t.Fatal(err)
			}
			g := got[0]
			if g.Requests != want.Requests || g.CostNano != want.CostNano || g.TotalTokens != want.TotalTokens ||
				g.Errors != want.Errors || g.Blocked != want.Blocked || g.LastAt != want.LastAt {
				t.Fatalf("%s in %d..%d: got %+v, want %+v", user, r[0], r[1], g, want)
			}
			page, _, err := db.ListUsage(ctx, store.UsageFilter{WorkspaceID: 1, From: r[0], To: r[1], EndUser: user, Limit: store.MaxUsageLimit})
			if err != nil {
				t.Fatal(err)
			}
			if len(ids) <= store.MaxUsageLimit && len(page) != len(ids) {
				t.Fatalf("%s in %d..%d: the log lists %d rows, want %d", user, r[0], r[1], len(page), len(ids))
			}
			for _, p := range page {
				if p.EndUser != user {
					t.Fatalf("the %s filter listed a row of %q", user, p.EndUser)
				}
			}
		}
	}
}

// TestEndUserSpendSince ensures the counters rebuilt at start are each end user's spend since
// the day began, for the projects with an end-user budget only.
func TestEndUserSpendSince(t *testing.T) {
	db := storetest.Open(t)
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var ws, capped, open int64
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		if ws, err = db.InsertWorkspace(ctx, tx, store.Workspace{Name: "w", CreatedAt: 1}); err != nil {
			return err
		}
		if capped, err = db.InsertProject(ctx, tx, store.Project{WorkspaceID: ws, Name: "capped", KeyPrefix: "p1", Controls: store.Controls{EndUserDailyBudgetNano: 1e9}, CreatedAt: 1}, "h1"); err != nil {
			return err
		}
		open, err = db.InsertProject(ctx, tx, store.Project{WorkspaceID: ws, Name: "open", KeyPrefix: "p2", CreatedAt: 1}, "h2")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	row := func(id string, at time.Time, project int64, user string, cost int64) store.UsageRow {
		return store.UsageRow{RequestID: id, CreatedAt: at.UnixMilli(), WorkspaceID: ws, ProjectID: project, Provider: "openai",
			OriginalModel: "gpt-4o", FinalModel: "gpt-4o", Status: 200, CostNano: cost, EndUser: user}
	}
	if _, err := db.InsertUsage(ctx, []store.UsageRow{
		row("a", day.Add(-time.Millisecond), capped, "alice", 500), // yesterday
		row("b", day, capped, "alice", 7),
		row("c", day.Add(time.Hour), capped, "alice", 8),
		row("d", day.Add(time.Hour), capped, "bob", 0), // nothing spent: no counter
		row("e", day.Add(time.Hour), capped, "", 100),  // no end user
		row("f", day.Add(time.Hour), open, "alice", 9), // no end-user budget
	}); err != nil {
		t.Fatal(err)
	}
	got, err := db.EndUserSpendSince(ctx, day.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	if want := []store.EndUserSpend{{ProjectID: capped, EndUser: "alice", CostNano: 15}}; !reflect.DeepEqual(got, want) {
		t.Errorf("EndUserSpendSince = %+v, want %+v", got, want)
	}
}

// BenchmarkAggregateEndUserUsage measures an end-user analytics query over 30 days of a
// workspace of 100,000 rows, 1% of them the end user's: the cost of answering from raw rows.
func BenchmarkAggregateEndUserUsage(b *testing.B) {
	db := storetest.Open(b)
	end := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	seedAnalytics(b, db, 100_000, end)
	if _, err := db.Write.Exec(`UPDATE usage_logs SET end_user = 'u-' || (id % 100)`); err != nil {
		b.Fatal(err)
	}
	f := store.AnalyticsFilter{WorkspaceID: 1, From: end.Add(-30 * 24 * time.Hour).UnixMilli(), To: end.UnixMilli()}
	for _, g := range []struct {
		name string
		g    store.UsageGroup
	}{{"total", store.GroupNone}, {"model", store.GroupModel}} {
		b.Run(g.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := db.AggregateEndUserUsage(ctx, f, "u-7", g.g, 20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("today", func(b *testing.B) {
		today := f
		today.From = end.Add(-24 * time.Hour).UnixMilli()
		for b.Loop() {
			if _, err := db.AggregateEndUserUsage(ctx, today, "u-7", store.GroupNone, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}
