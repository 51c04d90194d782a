package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// PostgreSQL takes a usage batch, and each rollup table's additions, in one statement whose
// parameters are whole columns (unnest of arrays): 25 parameters for any batch, where the
// multi-row VALUES SQLite is given would make PostgreSQL parse and plan 25 per row. The rows of
// each come in key order, so that replicas' batches lock shared rollup rows in one order.

// usageArrayTypes are insertColumns' types, in order, for unnest.
var usageArrayTypes = [usageColumnCount]string{"text", "bigint", "bigint", "bigint", "text", "text",
	"text", "bigint", "bigint", "bigint", "bigint", "bigint", "bigint",
	"bigint", "text", "bigint", "bigint", "bigint", "bigint",
	"bigint", "bigint", "bigint", "bigint", "text", "text"}

// insertUsagePostgresQuery inserts the rows of usageColumnCount arrays, skipping stored request
// ids, and returns the inserted rows' rollup columns and request ids: replicas insert at once,
// so a batch's ids need not be consecutive, and what counts is what this statement inserted.
var insertUsagePostgresQuery = func() string {
	var q strings.Builder
	q.WriteString(`INSERT INTO usage_logs (` + insertColumns + `) SELECT * FROM unnest(`)
	for i, t := range usageArrayTypes {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("?::" + t + "[]")
	}
	q.WriteString(`) ON CONFLICT (request_id) DO NOTHING RETURNING ` + rollupColumns + `, request_id`)
	return q.String()
}()

// insertUsagePostgres inserts rows in tx and counts each row it inserted (RequestID set).
func insertUsagePostgres(ctx context.Context, tx *sql.Tx, rows []UsageRow, versions map[string]int64, count func(*UsageRow)) (int, error) {
	// cols[j] is insertColumns' column j, for every row.
	var cols [usageColumnCount]any
	text := func(j int, get func(*UsageRow) string) {
		c := make([]string, len(rows))
		for i := range rows {
			c[i] = get(&rows[i])
		}
		cols[j] = c
	}
	num := func(j int, get func(*UsageRow) int64) {
		c := make([]int64, len(rows))
		for i := range rows {
			c[i] = get(&rows[i])
		}
		cols[j] = c
	}
	flag := func(j int, get func(*UsageRow) bool) {
		num(j, func(r *UsageRow) int64 {
			if get(r) {
				return 1
			}
			return 0
		})
	}
	text(0, func(r *UsageRow) string { return r.RequestID })
	num(1, func(r *UsageRow) int64 { return r.CreatedAt })
	num(2, func(r *UsageRow) int64 { return r.WorkspaceID })
	num(3, func(r *UsageRow) int64 { return r.ProjectID })
	text(4, func(r *UsageRow) string { return r.Provider })
	text(5, func(r *UsageRow) string { return r.OriginalModel })
	text(6, func(r *UsageRow) string { return r.FinalModel })
	flag(7, func(r *UsageRow) bool { return r.WasFallback })
	num(8, func(r *UsageRow) int64 { return int64(r.Status) })
	num(9, func(r *UsageRow) int64 { return r.InputTokens })
	num(10, func(r *UsageRow) int64 { return r.OutputTokens })
	num(11, func(r *UsageRow) int64 { return r.TotalTokens })
	num(12, func(r *UsageRow) int64 { return r.CostNano })
	num(13, func(r *UsageRow) int64 { return r.LatencyMs })
	text(14, func(r *UsageRow) string { return r.ErrorCode })
	flag(15, func(r *UsageRow) bool { return r.Stream })
	flag(16, func(r *UsageRow) bool { return r.UsageEstimated })
	flag(17, func(r *UsageRow) bool { return r.PricedByDefault })
	num(18, func(r *UsageRow) int64 { return versions[r.PricesVersion] })
	num(19, func(r *UsageRow) int64 { return r.CacheReadTokens })
	num(20, func(r *UsageRow) int64 { return r.CacheWriteTokens })
	num(21, func(r *UsageRow) int64 { return r.ReasoningTokens })
	num(22, func(r *UsageRow) int64 { return r.TTFBMs })
	text(23, func(r *UsageRow) string { return r.ErrorMessage })
	text(24, func(r *UsageRow) string { return r.EndUser })
	stored, err := tx.QueryContext(ctx, insertUsagePostgresQuery, cols[:]...)
	if err != nil {
		return 0, err
	}
	defer stored.Close()
	inserted := 0
	for stored.Next() {
		var u UsageRow
		if err := scanRollupSource(stored, &u, &u.RequestID); err != nil {
			return 0, err
		}
		inserted++
		count(&u)
	}
	if err := stored.Err(); err != nil {
		return 0, fmt.Errorf("insert %d usage rows: %w", len(rows), err)
	}
	return inserted, nil
}

// insertUsageTx inserts usage rows in tx on PostgreSQL, skipping request ids already stored, and
// adds the rows it inserted to the rollups; it returns how many it inserted, the spend to add
// to the counters, and what to take off each headroom slice (the SliceNano of the inserted rows
// naming it), which it leaves to the caller (with the reservations to settle:
// settleAndAddSpend). versions has the id of every prices version the rows name.
func (db *DB) insertUsageTx(ctx context.Context, tx *sql.Tx, rows []UsageRow, versions map[string]int64) (int, map[SpendCounter]int64, map[string]int64, error) {
	deltas := make(map[SpendCounter]int64)
	sums := rollups{}
	var claims map[string]*UsageRow // request id → row, for the rows taken from a slice
	for i := range rows {
		if rows[i].SliceID != "" && rows[i].SliceNano > 0 {
			if claims == nil {
				claims = make(map[string]*UsageRow)
			}
			claims[rows[i].RequestID] = &rows[i]
		}
	}
	var slices map[string]int64
	count := counting(deltas, sums)
	n, err := insertUsagePostgres(ctx, tx, rows, versions, func(u *UsageRow) {
		count(u)
		if r := claims[u.RequestID]; r != nil {
			if slices == nil {
				slices = make(map[string]int64)
			}
			slices[r.SliceID] += r.SliceNano
			delete(claims, u.RequestID) // a batch naming a request twice inserts it once
		}
	})
	if err != nil {
		return 0, nil, nil, err
	}
	if err := sums.write(ctx, tx, true); err != nil {
		return 0, nil, nil, err
	}
	return n, deltas, slices, nil
}
