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

var ctx = context.Background()

func usageRow(reqID string, at time.Time, ws, project int64, cost int64) store.UsageRow {
	return store.UsageRow{
		RequestID: reqID, CreatedAt: at.UnixMilli(), WorkspaceID: ws, ProjectID: project,
		Provider: "openai", OriginalModel: "gpt-4o", FinalModel: "gpt-4o-mini", WasFallback: true,
		Status: 200, InputTokens: 10, OutputTokens: 5, TotalTokens: 15, CostNano: cost, LatencyMs: 42,
		Stream: true, UsageEstimated: true, PricedByDefault: true, ErrorCode: "",
	}
}

func counters(t *testing.T, db *store.DB, periods ...string) map[string]int64 {
	t.Helper()
	cs, err := db.SpendCounters(ctx, periods...)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int64{}
	for _, c := range cs {
		m[fmt.Sprintf("%s/%d/%s", c.Scope, c.ScopeID, c.Period)] = c.SpendNano
	}
	return m
}

// A batch lands in one go with its counters; the same batch again inserts nothing and counts
// nothing, so a retry after an uncertain failure never double-counts.
func TestInsertUsageCountsEachRequestOnce(t *testing.T) {
	db := storetest.Open(t)
	day1 := time.Date(2026, 11, 30, 23, 59, 59, 999e6, time.UTC)
	day2 := day1.Add(time.Millisecond) // next day, next month
	batch := []store.UsageRow{
		usageRow("a", day1, 1, 10, 100),
		usageRow("b", day1, 1, 11, 200),
		usageRow("c", day2, 1, 10, 400),
		usageRow("blocked", day2, 1, 10, 0),
	}
	n, err := db.InsertUsage(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Fatalf("inserted %d, want 4", n)
	}
	want := map[string]int64{
		"project/10/2026-11-30": 100, "project/10/2026-11": 100,
		"project/11/2026-11-30": 200, "project/11/2026-11": 200,
		"workspace/1/2026-11-30": 300, "workspace/1/2026-11": 300,
		"project/10/2026-12-01": 400, "project/10/2026-12": 400,
		"workspace/1/2026-12-01": 400, "workspace/1/2026-12": 400,
	}
	all := []string{"2026-11-30", "2026-11", "2026-12-01", "2026-12"}
	if got := counters(t, db, all...); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("counters = %v\nwant %v", got, want)
	}

	// Retry of the whole batch plus one new row: only the new row counts.
	n, err = db.InsertUsage(ctx, append(batch, usageRow("d", day2, 1, 10, 1000)))
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("retried batch inserted %d, want 1", n)
	}
	want["project/10/2026-12-01"] += 1000
	want["project/10/2026-12"] += 1000
	want["workspace/1/2026-12-01"] += 1000
	want["workspace/1/2026-12"] += 1000
	if got := counters(t, db, all...); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("counters after retry = %v\nwant %v", got, want)
	}

	// Every counter equals the sum of its rows.
	var sum int64
	if err := db.Read.QueryRow(`SELECT SUM(cost_nano) FROM usage_logs WHERE workspace_id = 1`).Scan(&sum); err != nil {
		t.Fatal(err)
	}
	if got := want["workspace/1/2026-11"] + want["workspace/1/2026-12"]; got != sum {
		t.Errorf("workspace counters sum to %d, rows to %d", got, sum)
	}
}

// A batch larger than one INSERT statement still goes in one transaction: a duplicate inside
// it is skipped, everything else is written.
func TestInsertUsageLargeBatch(t *testing.T) {
	db := storetest.Open(t)
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	var rows []store.UsageRow
	for i := range 1234 {
		rows = append(rows, usageRow(fmt.Sprintf("r%05d", i), at.Add(time.Duration(i)*time.Millisecond), 1, 1, 1))
	}
	rows = append(rows, rows[7]) // the same request twice in one batch
	n, err := db.InsertUsage(ctx, rows)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1234 {
		t.Errorf("inserted %d, want 1234", n)
	}
	if got := counters(t, db, "2026-11-26")["project/1/2026-11-26"]; got != 1234 {
		t.Errorf("day counter = %d, want 1234", got)
	}
}

// Batches of every size, whatever statements they are split into, store each new row once
// and skip a row retried from an earlier batch, at the first and last place of a batch.
func TestInsertUsageBatchSizes(t *testing.T) {
	db := storetest.Open(t)
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	var prev store.UsageRow
	total := int64(0)
	for b, size := range []int{1, 2, 3, 7, 255, 256, 257, 499, 500, 501, 1000, 1023} {
		var rows []store.UsageRow
		if b > 0 {
			rows = append(rows, prev)
		}
		for i := range size {
			rows = append(rows, usageRow(fmt.Sprintf("b%02d-%04d", b, i), at, 1, 1, 1))
		}
		if b > 0 {
			rows = append(rows, prev)
		}
		n, err := db.InsertUsage(ctx, rows)
		if err != nil {
			t.Fatalf("batch of %d: %v", size, err)
		}
		if n != size {
			t.Errorf("batch of %d new rows inserted %d", size, n)
		}
		total += int64(size)
		if got := counters(t, db, "2026-11-26")["project/1/2026-11-26"]; got != total {
			t.Fatalf("after the batch of %d: day counter = %d, want %d", size, got, total)
		}
		prev = rows[len(rows)/2]
	}
}

// Paging walks newest first through every matching row exactly once, and the filters select
// what they name within the workspace only.
func TestListUsage(t *testing.T) {
	db := storetest.Open(t)
	base := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	var rows []store.UsageRow
	for i := range 25 {
		r := usageRow(fmt.Sprintf("w1-%02d", i), base.Add(time.Duration(i/2)*time.Minute), 1, int64(10+i%2), int64(i))
		if i%5 == 0 {
			r.Provider, r.OriginalModel, r.FinalModel, r.WasFallback = "anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929", false
		}
		if i%7 == 0 {
			r.Status, r.ErrorCode = 429, "BUDGET_EXCEEDED"
		}
		rows = append(rows, r)
	}
	rows = append(rows, usageRow("other-workspace", base, 2, 99, 5))
	if _, err := db.InsertUsage(ctx, rows); err != nil {
		t.Fatal(err)
	}

	// Page through with limit 3 (so pages end between two rows of the same millisecond):
	// 25 rows → 9 pages, strictly descending, no repeats.
	var seen []store.UsageRow
	cursor, pages := "", 0
	for {
		page, next, err := db.ListUsage(ctx, store.UsageFilter{WorkspaceID: 1, Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		seen = append(seen, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	if got, want := len(seen), 25; got != want {
		t.Fatalf("paged %d rows, want %d", got, want)
	}
	if pages != 9 {
		t.Errorf("pages = %d, want 9", pages)
	}
	ids := map[string]bool{}
	for i, r := range seen {
		if ids[r.RequestID] {
			t.Errorf("row %s served twice", r.RequestID)
		}
		ids[r.RequestID] = true
		if i > 0 {
			p := seen[i-1]
			if r.CreatedAt > p.CreatedAt || r.CreatedAt == p.CreatedAt && r.ID > p.ID {
				t.Errorf("row %d (%d,%d) not older than row %d (%d,%d)", i, r.CreatedAt, r.ID, i-1, p.CreatedAt, p.ID)
			}
		}
	}
	// Round-trip of every field.
	if got, want := seen[len(seen)-1], rows[0]; got.RequestID != want.RequestID || got.Provider != want.Provider ||
		got.WasFallback != want.WasFallback || got.Status != want.Status || got.TotalTokens != want.TotalTokens ||
		got.ErrorCode != want.ErrorCode || !got.Stream || !got.UsageEstimated || !got.PricedByDefault || got.LatencyMs != 42 {
		t.Errorf("oldest row = %+v, want %+v", got, want)
	}

	count := func(f store.UsageFilter) int {
		t.Helper()
		f.WorkspaceID, f.Limit = 1, 1000
		page, next, err := db.ListUsage(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if next != "" {
			t.Errorf("unexpected next page for %+v", f)
		}
		return len(page)
	}
	tests := []struct {
		name string
		f    store.UsageFilter
		want int
	}{
		{"all", store.UsageFilter{}, 25},
		{"project", store.UsageFilter{ProjectID: 10}, 13},
		{"provider", store.UsageFilter{Provider: "anthropic"}, 5},
		{"model partial, either model", store.UsageFilter{Model: "SONNET-4"}, 5},
		{"model partial on final model", store.UsageFilter{Model: "4o-mini"}, 20},
		{"model with LIKE wildcard is literal", store.UsageFilter{Model: "gpt%"}, 0},
		{"status", store.UsageFilter{Status: 429}, 4},
		{"from inclusive", store.UsageFilter{From: base.Add(10 * time.Minute).UnixMilli()}, 5},
		{"to exclusive", store.UsageFilter{To: base.Add(time.Minute).UnixMilli()}, 2},
		{"combined", store.UsageFilter{ProjectID: 10, Provider: "anthropic", Status: 429}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := count(tt.f); got != tt.want {
				t.Errorf("rows = %d, want %d", got, tt.want)
			}
		})
	}

	// Defaults and bounds.
	page, next, err := db.ListUsage(ctx, store.UsageFilter{WorkspaceID: 2})
	if err != nil || len(page) != 1 || next != "" || page[0].RequestID != "other-workspace" {
		t.Errorf("workspace 2: %v %q %v", page, next, err)
	}
	for _, bad := range []string{"junk!", "bm90LWEtY3Vyc29y", "MTIzLjA"} {
		if _, _, err := db.ListUsage(ctx, store.UsageFilter{WorkspaceID: 1, Cursor: bad}); !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("cursor %q: err = %v, want ErrBadCursor", bad, err)
		}
	}
	if _, _, err := db.ListUsage(ctx, store.UsageFilter{}); err == nil {
		t.Error("ListUsage without a workspace succeeded")
	}
}

// The page query reads through the workspace/time index, never a scan with a sort, so a deep
// page costs what the first one does.
func TestListUsageUsesIndex(t *testing.T) {
	storetest.SQLiteOnly(t)
	db := storetest.Open(t)
	rows, err := db.Read.Query(`EXPLAIN QUERY PLAN SELECT * FROM usage_logs WHERE workspace_id = ?
		AND (created_at, id) < (?, ?) ORDER BY created_at DESC, id DESC LIMIT 100`, 1, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan += detail + "\n"
	}
	if want := "INDEX usage_logs_workspace_time"; !strings.Contains(plan, want) || strings.Contains(plan, "TEMP B-TREE") {
		t.Errorf("plan:\n%s\nwant %q and no temp b-tree sort", plan, want)
	}
}

// BenchmarkInsertUsage is the writer's store cost per row, in batches of 2,000 rows (the
// writer's MaxBatch) with request ids in time order as NewRequestID makes them, spread over
// 1, 50 and 500 projects: each project writing at once is one more place in
// usage_logs_project_time that every batch dirties, so throughput falls with their number.
func BenchmarkInsertUsage(b *testing.B) {
	for _, projects := range []int{1, 50, 500} {
		b.Run(fmt.Sprintf("projects=%d", projects), func(b *testing.B) {
			db := storetest.Open(b)
			const batch = 2000
			rows := make([]store.UsageRow, batch)
			seq := 0
			for b.Loop() {
				b.StopTimer()
				at := time.Now()
				for i := range rows {
					seq++
					rows[i] = usageRow(fmt.Sprintf("%012x%020x", at.UnixMilli(), seq), at, 1, int64(1+seq%projects), 1234)
				}
				b.StartTimer()
				if _, err := db.InsertUsage(ctx, rows); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
