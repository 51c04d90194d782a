package store_test

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"tokenguard/store"
	"tokenguard/store/storetest"
)

// rollupEpoch is the start of the random rows' 70 days; the month edge of November is inside.
var rollupEpoch = time.Date(2026, 9, 28, 0, 0, 0, 0, time.UTC)

// randomUsage is a row of one of two workspaces at a random time, or on an hour, day or month
// edge (either side of it by a millisecond), with a mix of fallbacks, errors and blocked rows.
func randomUsage(rng *rand.Rand, id string) store.UsageRow {
	edges := []time.Time{time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 15, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC), rollupEpoch}
	var at int64
	switch rng.IntN(3) {
	case 0:
		at = edges[rng.IntN(len(edges))].UnixMilli() + int64(rng.IntN(3)-1)
	default:
		at = rollupEpoch.UnixMilli() + rng.Int64N(int64(70*24*time.Hour/time.Millisecond))
	}
	providers := []string{"openai", "anthropic", "gemini"}
	models := []string{"gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash", "o3_mini%"}
	ws := int64(1 + rng.IntN(2))
	r := store.UsageRow{RequestID: id, CreatedAt: at, WorkspaceID: ws, ProjectID: ws*10 + int64(rng.IntN(4)),
		Provider: providers[rng.IntN(3)], OriginalModel: models[rng.IntN(len(models))], Status: 200,
		InputTokens: rng.Int64N(5000), OutputTokens: rng.Int64N(2000), CostNano: rng.Int64N(50_000_000),
		LatencyMs: rng.Int64N(30_000), Stream: rng.IntN(2) == 0, UsageEstimated: rng.IntN(5) == 0}
	r.TotalTokens = r.InputTokens + r.OutputTokens + rng.Int64N(100)
	if rng.IntN(3) == 0 {
		r.CacheReadTokens, r.CacheWriteTokens = rng.Int64N(r.InputTokens+1), rng.Int64N(100)
	}
	if rng.IntN(3) == 0 {
		r.ReasoningTokens = rng.Int64N(r.OutputTokens + 1)
	}
	r.FinalModel = r.OriginalModel
	if rng.IntN(6) == 0 {
		r.FinalModel, r.WasFallback = "gpt-4o-mini", true
	}
	switch rng.IntN(8) {
	case 0:
		r.Status, r.ErrorCode, r.CostNano, r.OutputTokens = 429, store.BlockedErrorCode, 0, 0
	case 1:
		r.Status, r.ErrorCode = 500, "UPSTREAM_ERROR"
	case 2:
		r.Status, r.ErrorCode = 400, ""
	}
	return r
}

// rawAggregate is AggregateUsage computed by scanning usage_logs, as it was before rollups.
func rawAggregate(t *testing.T, db *store.DB, f store.AnalyticsFilter, g store.UsageGroup) []store.UsageAggregate {
	t.Helper()
	kind, per := g&^(store.PerHour|store.PerDay), g&(store.PerHour|store.PerDay)
	parts := map[store.UsageGroup][3]string{
		store.GroupNone:     {`'', '', 0`, ``, ``},
		store.GroupDay:      {`strftime('%Y-%m-%d', created_at / 1000, 'unixepoch'), '', 0`, `created_at / 86400000`, `1`},
		store.GroupProvider: {`provider, provider, 0`, `provider`, `6 DESC, 5 DESC, 1, 2, 3`},
		store.GroupModel:    {`final_model, provider, 0`, `provider, final_model`, `6 DESC, 5 DESC, 1, 2, 3`},
		store.GroupProject:  {`'', '', project_id`, `project_id`, `6 DESC, 5 DESC, 1, 2, 3`},
	}[kind]
	key, group, order := parts[0], parts[1], parts[2]
	if kind == store.GroupDay && db.Postgres() {
		key = `to_char(to_timestamp(created_at / 86400000 * 86400) AT TIME ZONE 'UTC', 'YYYY-MM-DD'), '', 0`
	}
	bucket := `0`
	if per != 0 {
		unit := map[store.UsageGroup]int64{store.PerHour: 3_600_000, store.PerDay: 86_400_000}[per]
		bucket = fmt.Sprintf(`created_at - created_at %% %d`, unit)
		group = strings.TrimPrefix(group+", 4", ", ")
		order = strings.TrimSuffix("4, "+order, ", ")
	}
	if group != "" {
		group = " GROUP BY " + group
	}
	if order != "" {
		order = " ORDER BY " + order
	}
	q := `SELECT ` + key + `, ` + bucket + `, count(*), coalesce(sum(cost_nano), 0), coalesce(sum(input_tokens), 0),
		coalesce(sum(output_tokens), 0), coalesce(sum(total_tokens), 0), coalesce(sum(latency_ms), 0),
		coalesce(sum(CASE WHEN status >= 400 AND error_code <> 'BUDGET_EXCEEDED' THEN 1 ELSE 0 END), 0), coalesce(sum(CASE WHEN error_code = 'BUDGET_EXCEEDED' THEN 1 ELSE 0 END), 0),
		coalesce(max(created_at), 0), coalesce(sum(cache_read_tokens), 0), coalesce(sum(cache_write_tokens), 0),
		coalesce(sum(reasoning_tokens), 0)
		FROM usage_logs WHERE workspace_id = ? AND created_at >= ? AND created_at < ?`
	args := []any{f.WorkspaceID, f.From, f.To}
	if f.ProjectID != 0 {
		q += ` AND project_id = ?`
		args = append(args, f.ProjectID)
	}
	if f.Provider != "" {
		q += ` AND provider = ?`
		args = append(args, f.Provider)
	}
	if f.Model != "" {
		pattern := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(f.Model) + "%"
		like := "LIKE" // SQLite's ignores ASCII case, as PostgreSQL's ILIKE ignores case
		if db.Postgres() {
			like = "ILIKE"
		}
		q += ` AND (final_model ` + like + ` ? ESCAPE '\' OR original_model ` + like + ` ? ESCAPE '\')`
		args = append(args, pattern, pattern)
	}
	rows, err := db.Read.Query(q+group+order, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []store.UsageAggregate
	for rows.Next() {
		var a store.UsageAggregate
		if err := rows.Scan(&a.Key, &a.Provider, &a.ProjectID, &a.Period, &a.Requests, &a.CostNano, &a.InputTokens,
			&a.OutputTokens, &a.TotalTokens, &a.LatencyMs, &a.Errors, &a.Blocked, &a.LastAt, &a.CacheReadTokens,
			&a.CacheWriteTokens, &a.ReasoningTokens); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// rollupTableMatchesRaw checks every row of a rollup table against usage_logs grouped by the
// same key and period, both ways (no row missing, none extra).
func rollupTableMatchesRaw(t *testing.T, db *store.DB, table string, periodMs int64) {
	t.Helper()
	const cols = `workspace_id, period_start, project_id, provider, final_model, original_model, requests,
		input_tokens, output_tokens, total_tokens, cost_nano, latency_ms, errors, blocked, fallbacks, estimated,
		streams, last_at, cache_read_tokens, cache_write_tokens, reasoning_tokens`
	read := func(q string, args ...any) []string {
		rows, err := db.Read.Query(q, args...)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			v := make([]any, 21)
			for i := range v {
				v[i] = new(any)
			}
			if err := rows.Scan(v...); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, x := range v {
				fmt.Fprint(&b, *(x.(*any)), "|")
			}
			out = append(out, b.String())
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	got := read(`SELECT ` + cols + ` FROM ` + table + ` ORDER BY 1, 2, 3, 4, 5, 6`)
	// The workspace's daily sums hold every project's rows under project 0.
	project := "project_id"
	if table == "usage_daily_workspace" {
		project = "0"
	}
	want := read(`SELECT workspace_id, created_at - created_at % ?, `+project+`, provider, final_model,
		original_model, count(*), sum(input_tokens), sum(output_tokens), sum(total_tokens), sum(cost_nano),
		sum(latency_ms), sum(CASE WHEN status >= 400 AND error_code <> 'BUDGET_EXCEEDED' THEN 1 ELSE 0 END), sum(CASE WHEN error_code = 'BUDGET_EXCEEDED' THEN 1 ELSE 0 END),
		sum(was_fallback), sum(usage_estimated), sum(stream), max(created_at), sum(cache_read_tokens),
		sum(cache_write_tokens), sum(reasoning_tokens)
		FROM usage_logs GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6`, periodMs)
	if len(want) == 0 {
		t.Fatal("no usage rows")
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: %d rows, raw aggregate %d rows", table, len(got), len(want))
		for i := 0; i < min(len(got), len(want)); i++ {
			if got[i] != want[i] {
				t.Errorf("%s row %d = %s, raw %s", table, i, got[i], want[i])
				break
			}
		}
	}
}

// testRanges are random ranges (edges at any millisecond, minute, hour or day) and ranges that
// start or end a millisecond either side of each edge the rows cluster on.
func testRanges(rng *rand.Rand, n int) [][2]int64 {
	span := int64(72 * 24 * time.Hour / time.Millisecond)
	snap := []int64{1, 60_000, int64(time.Hour / time.Millisecond), int64(24 * time.Hour / time.Millisecond)}
	base := rollupEpoch.UnixMilli() - int64(24*time.Hour/time.Millisecond)
	var out [][2]int64
	for i := 0; i < n; i++ {
		a, b := base+rng.Int64N(span), base+rng.Int64N(span)
		unit := snap[rng.IntN(len(snap))]
		a, b = a-a%unit, b-b%unit
		out = append(out, [2]int64{min(a, b), max(a, b) + 1})
	}
	for _, e := range []time.Time{time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)} {
		for d := int64(-1); d <= 1; d++ {
			for _, l := range []time.Duration{time.Millisecond, 30 * time.Minute, 61 * time.Minute, 25 * time.Hour, 33 * 24 * time.Hour} {
				at, ms := e.UnixMilli()+d, int64(l/time.Millisecond)
				out = append(out, [2]int64{at, at + ms}, [2]int64{at - ms, at})
			}
		}
	}
	return out
}

// analyticsMatchRaw checks AggregateUsage against the raw scan for every range, grouping and
// filter.
func analyticsMatchRaw(t *testing.T, db *store.DB, ranges [][2]int64) {
	t.Helper()
	filters := []store.AnalyticsFilter{{}, {ProjectID: 11}, {Provider: "anthropic"}, {Model: "4o"}, {Model: "_mini%"},
		{ProjectID: 12, Provider: "openai", Model: "GPT"}}
	groups := []store.UsageGroup{store.GroupNone, store.GroupDay, store.GroupProvider, store.GroupModel, store.GroupProject,
		store.GroupNone | store.PerHour, store.GroupProvider | store.PerDay, store.GroupModel | store.PerHour,
		store.GroupProject | store.PerDay}
	for _, r := range ranges {
		for _, f := range filters {
			f.WorkspaceID, f.From, f.To = 1, r[0], r[1]
			for _, g := range groups {
				got, err := db.AggregateUsage(ctx, f, g, 0)
				if err != nil {
					t.Fatal(err)
				}
				if want := rawAggregate(t, db, f, g); !reflect.DeepEqual(got, want) {
					t.Fatalf("range %s..%s filter %+v group %d:\n got %+v\nwant %+v",
						time.UnixMilli(r[0]).UTC(), time.UnixMilli(r[1]).UTC(), f, g, got, want)
				}
			}
		}
	}
}

// TestRollupsReconcile writes random batches (retried request ids with different figures,
// blocked rows, errors, rows on hour, day and month edges, a restart between batches) and then
// checks that every rollup row equals the raw aggregate of its key and period, and every
// analytics answer equals the raw scan of its range, to the nano-dollar.
func TestRollupsReconcile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokenguard.db")
	db := storetest.OpenAt(t, path)
	rng := rand.New(rand.NewPCG(9, 2026))
	next := 0
	for batch := 0; batch < 40; batch++ {
		if batch == 20 {
			db.Close()
			db = storetest.OpenAt(t, path)
		}
		var rows []store.UsageRow
		for i := rng.IntN(400); i >= 0; i-- {
			id := next
			if next > 0 && rng.IntN(5) == 0 {
				id = rng.IntN(next) // a retry: the stored row wins, whatever this one says
			} else {
				next++
			}
			// Half the ids are the proxy's 32 hex digits, stored as 16-byte blobs; a retry
			// must collide with its blob as the others do with their text.
			rid := fmt.Sprint("req-", id)
			if id%2 == 0 {
				rid = fmt.Sprintf("%032x", id)
			}
			rows = append(rows, randomUsage(rng, rid))
		}
		if _, err := db.InsertUsage(ctx, rows); err != nil {
			t.Fatal(err)
		}
	}
	rollupTableMatchesRaw(t, db, "usage_hourly", int64(time.Hour/time.Millisecond))
	rollupTableMatchesRaw(t, db, "usage_daily", int64(24*time.Hour/time.Millisecond))
	rollupTableMatchesRaw(t, db, "usage_daily_workspace", int64(24*time.Hour/time.Millisecond))
	analyticsMatchRaw(t, db, testRanges(rng, 40))
}

// insertAsOldRelease writes n random usage rows with the columns every release since migration
// 4 has, as the release before the one under test wrote them.
func insertAsOldRelease(tx *sql.Tx, rng *rand.Rand, n int) error {
	for i := range n {
		r := randomUsage(rng, fmt.Sprint("old-", i))
		if _, err := tx.Exec(`INSERT INTO usage_logs (request_id, created_at, workspace_id, project_id, provider,
			original_model, final_model, was_fallback, status, input_tokens, output_tokens, total_tokens, cost_nano,
			latency_ms, error_code, stream, usage_estimated, priced_by_default, prices_version)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, '')`, r.RequestID, r.CreatedAt, r.WorkspaceID,
			r.ProjectID, r.Provider, r.OriginalModel, r.FinalModel, r.WasFallback, r.Status, r.InputTokens, r.OutputTokens,
			r.TotalTokens, r.CostNano, r.LatencyMs, r.ErrorCode, r.Stream, r.UsageEstimated); err != nil {
			return err
		}
	}
	return nil
}

// TestRollupsBuiltOnUpgrade upgrades a database of the previous release (migration 4) holding
// usage rows: the backfill is interrupted after two batches and resumed by the next open, and
// then every rollup row reconciles with the raw rows and every analytics answer is the one the
// previous release computed from them.
func TestRollupsBuiltOnUpgrade(t *testing.T) {
	storetest.SQLiteOnly(t)
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := store.Open(ctx, path, schemaBefore(t, "5"))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(4, 5))
	err = old.WriteTx(ctx, func(tx *sql.Tx) error { return insertAsOldRelease(tx, rng, 3000) })
	if err != nil {
		t.Fatal(err)
	}
	// Migration 5 and those after it as Open applies them, then two backfill batches, and the
	// process stops.
	full := storetest.Schema(t)
	step := full[strings.Index(full, "\n-- migration: 5\n"):]
	if _, err := old.Write.Exec(step + fmt.Sprintf("\nPRAGMA user_version = %d;", strings.Count(full, "\n-- migration: "))); err != nil {
		t.Fatal(err)
	}
	// The previous release's answers: scans of the rows, which the migrations leave as they are.
	ranges := testRanges(rng, 10)
	groups := []store.UsageGroup{store.GroupNone, store.GroupDay, store.GroupProvider, store.GroupModel, store.GroupProject}
	before := map[string][]store.UsageAggregate{}
	for _, r := range ranges {
		for _, g := range groups {
			f := store.AnalyticsFilter{WorkspaceID: 1, From: r[0], To: r[1]}
			before[fmt.Sprint(r, g)] = rawAggregate(t, old, f, g)
		}
	}
	for i := 0; i < 2; i++ {
		if more, err := old.BackfillStep(ctx, 500); err != nil || !more {
			t.Fatalf("backfill step %d: more %v, %v", i, more, err)
		}
	}
	old.Close()

	db := storetest.OpenAt(t, path)
	var left int
	if err := db.Read.QueryRow(`SELECT count(*) FROM rollup_backfill`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("backfill rows left: %d, %v", left, err)
	}
	rollupTableMatchesRaw(t, db, "usage_hourly", int64(time.Hour/time.Millisecond))
	rollupTableMatchesRaw(t, db, "usage_daily", int64(24*time.Hour/time.Millisecond))
	rollupTableMatchesRaw(t, db, "usage_daily_workspace", int64(24*time.Hour/time.Millisecond))
	for _, r := range ranges {
		for _, g := range groups {
			got, err := db.AggregateUsage(ctx, store.AnalyticsFilter{WorkspaceID: 1, From: r[0], To: r[1]}, g, 0)
			if err != nil {
				t.Fatal(err)
			}
			if want := before[fmt.Sprint(r, g)]; !reflect.DeepEqual(got, want) {
				t.Fatalf("range %v group %d after upgrade:\n got %+v\nwant %+v", r, g, got, want)
			}
		}
	}
	// Rows written after the upgrade are added once, beside the backfilled ones.
	if _, err := db.InsertUsage(ctx, []store.UsageRow{randomUsage(rng, "new-1"), randomUsage(rng, "old-7")}); err != nil {
		t.Fatal(err)
	}
	rollupTableMatchesRaw(t, db, "usage_hourly", int64(time.Hour/time.Millisecond))
	rollupTableMatchesRaw(t, db, "usage_daily_workspace", int64(24*time.Hour/time.Millisecond))
}

// TestWorkspaceDailyBuiltOnUpgrade opens a database of the release before migration 10, its
// rollups holding every row as that release left them, and finds the workspace's daily sums
// built from them: they reconcile with the raw rows, and the analytics answers that now read
// them are the raw scans' to the nano-dollar.
func TestWorkspaceDailyBuiltOnUpgrade(t *testing.T) {
	storetest.SQLiteOnly(t)
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := store.Open(ctx, path, schemaBefore(t, "10"))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(10, 10))
	err = old.WriteTx(ctx, func(tx *sql.Tx) error {
		if err := insertAsOldRelease(tx, rng, 2000); err != nil {
			return err
		}
		// The rollups that release kept exact (its own reconcile test), summed here from the rows.
		for _, t := range []struct {
			table    string
			periodMs int64
		}{{"usage_hourly", int64(time.Hour / time.Millisecond)}, {"usage_daily", int64(24 * time.Hour / time.Millisecond)}} {
			if _, err := tx.Exec(`INSERT INTO `+t.table+` (workspace_id, period_start, project_id, provider, final_model,
				original_model, requests, input_tokens, output_tokens, total_tokens, cost_nano, latency_ms, errors, blocked,
				fallbacks, estimated, streams, last_at, cache_read_tokens, cache_write_tokens, reasoning_tokens)
				SELECT workspace_id, created_at - created_at % ?, project_id, provider, final_model, original_model,
				count(*), sum(input_tokens), sum(output_tokens), sum(total_tokens), sum(cost_nano), sum(latency_ms),
				sum(CASE WHEN status >= 400 AND error_code <> 'BUDGET_EXCEEDED' THEN 1 ELSE 0 END), sum(CASE WHEN error_code = 'BUDGET_EXCEEDED' THEN 1 ELSE 0 END),
				sum(was_fallback), sum(usage_estimated), sum(stream), max(created_at), sum(cache_read_tokens),
				sum(cache_write_tokens), sum(reasoning_tokens)
				FROM usage_logs GROUP BY 1, 2, 3, 4, 5, 6`, t.periodMs); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	old.Close()

	db := storetest.OpenAt(t, path)
	rollupTableMatchesRaw(t, db, "usage_daily_workspace", int64(24*time.Hour/time.Millisecond))
	analyticsMatchRaw(t, db, testRanges(rng, 20))
	// Rows written after the upgrade reach it too.
	if _, err := db.InsertUsage(ctx, []store.UsageRow{randomUsage(rng, "new-1"), randomUsage(rng, "old-7")}); err != nil {
		t.Fatal(err)
	}
	rollupTableMatchesRaw(t, db, "usage_daily_workspace", int64(24*time.Hour/time.Millisecond))
}
