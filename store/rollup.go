package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// The rollup periods, in unix ms. A day is always 24 hours: periods are UTC.
const (
	hourMs = int64(time.Hour / time.Millisecond)
	dayMs  = 24 * hourMs
)

// The rollup tables, finest first: hourly and daily of migration 5, and the daily sums of a
// whole workspace (migration 10), whose rows have project 0.
const (
	hourlyTable         = "usage_hourly"
	dailyTable          = "usage_daily"
	workspaceDailyTable = "usage_daily_workspace"
)

// rollupColumns are the usage_logs columns a rollup row is summed from, in scanRollupSource's
// order.
const rollupColumns = `created_at, workspace_id, project_id, provider, final_model, original_model,
	was_fallback, status, input_tokens, output_tokens, total_tokens, cost_nano, latency_ms, error_code,
	stream, usage_estimated, cache_read_tokens, cache_write_tokens, reasoning_tokens`

// scanRollupSource reads one row of rollupColumns, then any columns after them into extra.
func scanRollupSource(rows *sql.Rows, u *UsageRow, extra ...any) error {
	return rows.Scan(append([]any{&u.CreatedAt, &u.WorkspaceID, &u.ProjectID, &u.Provider, &u.FinalModel,
		&u.OriginalModel, &u.WasFallback, &u.Status, &u.InputTokens, &u.OutputTokens, &u.TotalTokens, &u.CostNano,
		&u.LatencyMs, &u.ErrorCode, &u.Stream, &u.UsageEstimated, &u.CacheReadTokens, &u.CacheWriteTokens,
		&u.ReasoningTokens}, extra...)...)
}

// rollupKey is the primary key of a rollup row.
type rollupKey struct {
	workspaceID, periodStart, projectID int64
	provider, finalModel, originalModel string
}

// rollupSums are the counts of a rollup row (see schema.sql, migrations 5 and 7).
type rollupSums struct {
	requests, inputTokens, outputTokens, totalTokens, costNano, latencyMs int64
	errors, blocked, fallbacks, estimated, streams, lastAt                int64
	cacheReadTokens, cacheWriteTokens, reasoningTokens                    int64
}

func (s *rollupSums) merge(o *rollupSums) {
	s.requests += o.requests
	s.inputTokens += o.inputTokens
	s.outputTokens += o.outputTokens
	s.totalTokens += o.totalTokens
	s.costNano += o.costNano
	s.latencyMs += o.latencyMs
	s.errors += o.errors
	s.blocked += o.blocked
	s.fallbacks += o.fallbacks
	s.estimated += o.estimated
	s.streams += o.streams
	s.cacheReadTokens += o.cacheReadTokens
	s.cacheWriteTokens += o.cacheWriteTokens
	s.reasoningTokens += o.reasoningTokens
	s.lastAt = max(s.lastAt, o.lastAt)
}

// rollups holds the hourly sums of a batch of usage rows before they are added to the tables;
// the daily sums are derived from them when written.
type rollups map[rollupKey]*rollupSums

// floorTo is the start of the period of length unit that holds ms.
func floorTo(ms, unit int64) int64 {
	return ms - ((ms%unit)+unit)%unit
}

// add counts one usage row. The errors/blocked split is the one AggregateUsage's raw edges
// apply in SQL: blocked rows are not errors.
func (r rollups) add(u *UsageRow) {
	k := rollupKey{u.WorkspaceID, floorTo(u.CreatedAt, hourMs), u.ProjectID, u.Provider, u.FinalModel, u.OriginalModel}
	s := r[k]
	if s == nil {
		s = &rollupSums{}
		r[k] = s
	}
	one := rollupSums{requests: 1, inputTokens: u.InputTokens, outputTokens: u.OutputTokens, totalTokens: u.TotalTokens,
		costNano: u.CostNano, latencyMs: u.LatencyMs, lastAt: u.CreatedAt, cacheReadTokens: u.CacheReadTokens,
		cacheWriteTokens: u.CacheWriteTokens, reasoningTokens: u.ReasoningTokens}
	switch {
	case u.ErrorCode == BlockedErrorCode:
		one.blocked = 1
	case u.Status >= 400:
		one.errors = 1
	}
	if u.WasFallback {
		one.fallbacks = 1
	}
	if u.UsageEstimated {
		one.estimated = 1
	}
	if u.Stream {
		one.streams = 1
	}
	s.merge(&one)
}

// write adds the sums to usage_hourly, summed by day to usage_daily, and summed by day over the
// workspace's projects to usage_daily_workspace, in tx.
func (r rollups) write(ctx context.Context, tx *sql.Tx, pg bool) error {
	if len(r) == 0 {
		return nil
	}
	daily := r.coarser(func(k *rollupKey) { k.periodStart = floorTo(k.periodStart, dayMs) })
	workspace := daily.coarser(func(k *rollupKey) { k.projectID = 0 })
	for _, t := range []struct {
		table string
		sums  rollups
	}{{hourlyTable, r}, {dailyTable, daily}, {workspaceDailyTable, workspace}} {
		if err := upsertRollups(ctx, tx, pg, t.table, t.sums); err != nil {
			return err
		}
	}
	return nil
}

// keys are r's keys in order, the order its rows are written in.
func (r rollups) keys() []rollupKey {
	out := make([]rollupKey, 0, len(r))
	for k := range r {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b rollupKey) int {
		return cmp.Or(cmp.Compare(a.workspaceID, b.workspaceID), cmp.Compare(a.periodStart, b.periodStart),
			cmp.Compare(a.projectID, b.projectID), cmp.Compare(a.provider, b.provider),
			cmp.Compare(a.finalModel, b.finalModel), cmp.Compare(a.originalModel, b.originalModel))
	})
	return out
}

// coarser sums r by the keys widen makes of its keys.
func (r rollups) coarser(widen func(*rollupKey)) rollups {
	out := make(rollups, len(r)/8+1)
	for k, s := range r {
		widen(&k)
		d := out[k]
		if d == nil {
			d = &rollupSums{}
			out[k] = d
		}
		d.merge(s)
	}
	return out
}

// upsertRollups adds sums to table's rows. The rows are written in key order, so that two
// replicas' batches adding to the same rows on PostgreSQL take their locks in one order and never
// deadlock.
func upsertRollups(ctx context.Context, tx *sql.Tx, pg bool, table string, sums rollups) error {
	values := `VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	if pg {
		// One statement for the table's rows, their columns as arrays (usage_postgres.go).
		values = `SELECT * FROM unnest(?::bigint[], ?::bigint[], ?::bigint[], ?::text[], ?::text[], ?::text[]` +
			strings.Repeat(`, ?::bigint[]`, 15) + `)`
	}
	upsert := `INSERT INTO ` + table + ` (workspace_id, period_start, project_id, provider,
		final_model, original_model, requests, input_tokens, output_tokens, total_tokens, cost_nano, latency_ms,
		errors, blocked, fallbacks, estimated, streams, last_at, cache_read_tokens, cache_write_tokens,
		reasoning_tokens)
		` + values + `
		ON CONFLICT (workspace_id, period_start, project_id, provider, final_model, original_model) DO UPDATE SET
		requests = ` + table + `.requests + excluded.requests, input_tokens = ` + table + `.input_tokens + excluded.input_tokens,
		output_tokens = ` + table + `.output_tokens + excluded.output_tokens, total_tokens = ` + table + `.total_tokens + excluded.total_tokens,
		cost_nano = ` + table + `.cost_nano + excluded.cost_nano, latency_ms = ` + table + `.latency_ms + excluded.latency_ms,
		errors = ` + table + `.errors + excluded.errors, blocked = ` + table + `.blocked + excluded.blocked,
		fallbacks = ` + table + `.fallbacks + excluded.fallbacks, estimated = ` + table + `.estimated + excluded.estimated,
		streams = ` + table + `.streams + excluded.streams, last_at = ` + greatest(pg) + `(` + table + `.last_at, excluded.last_at),
		cache_read_tokens = ` + table + `.cache_read_tokens + excluded.cache_read_tokens, cache_write_tokens = ` + table + `.cache_write_tokens + excluded.cache_write_tokens,
		reasoning_tokens = ` + table + `.reasoning_tokens + excluded.reasoning_tokens`
	keys := sums.keys()
	if pg {
		return upsertRollupColumns(ctx, tx, table, upsert, keys, sums)
	}
	stmt, err := tx.PrepareContext(ctx, upsert)
	if err != nil {
		return fmt.Errorf("prepare %s upsert: %w", table, err)
	}
	defer stmt.Close()
	for _, k := range keys {
		s := sums[k]
		if _, err := stmt.ExecContext(ctx, k.workspaceID, k.periodStart, k.projectID, k.provider, k.finalModel,
			k.originalModel, s.requests, s.inputTokens, s.outputTokens, s.totalTokens, s.costNano, s.latencyMs,
			s.errors, s.blocked, s.fallbacks, s.estimated, s.streams, s.lastAt, s.cacheReadTokens,
			s.cacheWriteTokens, s.reasoningTokens); err != nil {
			return fmt.Errorf("add to %s: %w", table, err)
		}
	}
	return nil
}

// upsertRollupColumns runs upsert with keys' rows as column arrays.
func upsertRollupColumns(ctx context.Context, tx *sql.Tx, table, upsert string, keys []rollupKey, sums rollups) error {
	if len(keys) == 0 {
		return nil
	}
	ids := make([][]int64, 3)
	names := make([][]string, 3)
	counts := make([][]int64, 15)
	for _, k := range keys {
		s := sums[k]
		for i, v := range [...]int64{k.workspaceID, k.periodStart, k.projectID} {
			ids[i] = append(ids[i], v)
		}
		for i, v := range [...]string{k.provider, k.finalModel, k.originalModel} {
			names[i] = append(names[i], v)
		}
		for i, v := range [...]int64{s.requests, s.inputTokens, s.outputTokens, s.totalTokens, s.costNano,
			s.latencyMs, s.errors, s.blocked, s.fallbacks, s.estimated, s.streams, s.lastAt, s.cacheReadTokens,
			s.cacheWriteTokens, s.reasoningTokens} {
			counts[i] = append(counts[i], v)
		}
	}
	args := []any{ids[0], ids[1], ids[2], names[0], names[1], names[2]}
	for _, c := range counts {
		args = append(args, c)
	}
	if _, err := tx.ExecContext(ctx, upsert, args...); err != nil {
		return fmt.Errorf("add to %s: %w", table, err)
	}
	return nil
}

// backfillBatch is how many usage rows one backfill transaction sums: small enough that the
// transaction holds the writer for a fraction of a second, large enough that 10M rows take a
// few hundred transactions.
const backfillBatch = 50_000

// backfillRollups sums the usage rows that predate the rollups (rollup_backfill, migration 5)
// into them, one bounded batch per transaction, so memory stays bounded whatever the table's
// size. Each batch records how far it got in the same transaction, so a start that is
// interrupted resumes without counting a row twice. It logs progress at most every few seconds,
// and once when done.
func (db *DB) backfillRollups(ctx context.Context, log *slog.Logger) error {
	// A PostgreSQL database starts at the current schema: it has no rows from before the
	// rollups.
	if db.pg {
		return nil
	}
	// A schema before migration 5 (tests of upgrades open one) has nothing to backfill.
	var tables int
	if err := db.Write.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'rollup_backfill'`).Scan(&tables); err != nil {
		return fmt.Errorf("build usage rollups: %w", err)
	}
	if tables == 0 {
		return nil
	}
	started, logged := time.Now(), time.Now()
	var summed int64
	for {
		p, err := db.backfillStep(ctx, backfillBatch)
		if err != nil {
			return err
		}
		summed += p.rows
		if !p.more {
			if summed > 0 {
				log.Info("usage rollups built", "rows", summed, "took", time.Since(started).Round(time.Millisecond))
			}
			return nil
		}
		if time.Since(logged) >= 2*time.Second {
			logged = time.Now()
			log.Info("building usage rollups", "doneId", p.doneID, "lastId", p.lastID, "rows", summed)
		}
	}
}

// backfillProgress is where a backfill step left off: rows summed by the step, the last usage
// row id summed so far and the last one to sum, and whether any are left.
type backfillProgress struct {
	rows, doneID, lastID int64
	more                 bool
}

// backfillStep sums the next batch of at most n pre-rollup usage rows in one transaction.
func (db *DB) backfillStep(ctx context.Context, n int) (backfillProgress, error) {
	var p backfillProgress
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT done_id, last_id FROM rollup_backfill WHERE id = 1`).Scan(&p.doneID, &p.lastID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+rollupColumns+`, id FROM usage_logs
			WHERE id > ? AND id <= ? ORDER BY id LIMIT ?`, p.doneID, p.lastID, n)
		if err != nil {
			return err
		}
		defer rows.Close()
		sums := rollups{}
		for rows.Next() {
			var u UsageRow
			if err := scanRollupSource(rows, &u, &p.doneID); err != nil {
				return err
			}
			sums.add(&u)
			p.rows++
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if err := sums.write(ctx, tx, db.pg); err != nil {
			return err
		}
		if p.rows < int64(n) || p.doneID >= p.lastID {
			_, err = tx.ExecContext(ctx, `DELETE FROM rollup_backfill WHERE id = 1`)
			return err
		}
		p.more = true
		_, err = tx.ExecContext(ctx, `UPDATE rollup_backfill SET done_id = ? WHERE id = 1`, p.doneID)
		return err
	})
	if err != nil {
		return backfillProgress{}, fmt.Errorf("build usage rollups (after usage row %d of %d): %w", p.doneID, p.lastID, err)
	}
	return p, nil
}
