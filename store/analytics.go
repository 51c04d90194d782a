package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// AnalyticsFilter selects the usage rows an aggregation sums. Zero values mean "any"; From and
// To (unix ms, From inclusive, To exclusive) are required so every query is a range scan of the
// rollups' (workspace_id, period_start) keys.
type AnalyticsFilter struct {
	WorkspaceID int64
	From, To    int64
	ProjectID   int64
	Provider    string
	Model       string // partial match on the original or final model, case-insensitive
}

// UsageGroup is what AggregateUsage groups rows by: one of the Group values, optionally with
// PerHour or PerDay added to split each group by period as well (GroupProvider|PerDay: one row per
// provider and UTC day).
type UsageGroup int

// The groupings of AggregateUsage.
const (
	GroupNone     UsageGroup = iota // one row for the whole range
	GroupDay                        // Key: the UTC day, "2006-01-02"
	GroupProvider                   // Key: the provider
	GroupModel                      // Key: the final model, Provider: its provider
	GroupProject                    // ProjectID

	groupKinds = 8 // the Group values are below it; the periods above
)

// The periods a grouping may be split by; UsageAggregate.Period is then the period's start.
const (
	PerHour UsageGroup = groupKinds << iota
	PerDay
)

// BlockedErrorCode marks a request the budget gate refused (logged with cost 0).
const BlockedErrorCode = "BUDGET_EXCEEDED"

// UsageAggregate is the sum over a group of usage rows. Errors counts failed requests (status
// 400 and above) other than blocked ones, which Blocked counts.
type UsageAggregate struct {
	Key          string
	Provider     string
	ProjectID    int64
	Period       int64 // with PerHour or PerDay: the start of the UTC hour or day (unix ms)
	Requests     int64
	CostNano     int64
	InputTokens  int64
	OutputTokens int64
	TotalTokens  int64
	// Parts of the tokens above, where providers reported them.
	CacheReadTokens, CacheWriteTokens, ReasoningTokens int64
	LatencyMs                                          int64 // the sum; divide by Requests for the mean
	Errors                                             int64
	Blocked                                            int64
	LastAt                                             int64 // unix ms of the newest row
}

// AggregateUsage sums the usage rows f selects, grouped by g, in SQL. Groups come ordered by
// period, then by cost (then requests) descending, days ascending; limit > 0 keeps the first
// limit groups. GroupNone always returns exactly one row.
//
// It reads the rollups, not the rows, and its figures are exactly the sums over the raw rows of
// the range: whole UTC days of the range come from usage_daily (from usage_daily_workspace, the
// same sums over all the workspace's projects, when f has no project and g does not group by
// project), whole hours at either end of it
// from usage_hourly, and only the parts of an hour at its two edges (when From or To is not on
// the hour) from usage_logs, by its (workspace_id, created_at) index. A PerHour grouping reads
// hours where it would read days. The model filter matches the rollups' original and final model
// columns exactly as it matches the rows', so it is exact too. A query therefore reads at most
// one day-row per key and day, 46 hour-rows per key, and two partial hours of raw rows, whatever
// the range.
//
// Past retention (see Retained) the figures are exact to a coarser edge: a part of the range
// older than the raw rows kept is widened to whole hours and read from usage_hourly, a part
// older than the hourly rollups kept to whole UTC days and read from usage_daily (a PerHour
// grouping puts such a day's sums in its first hour). Ranges on day boundaries (months, the
// digest, the dashboard's periods) stay exact whatever is pruned.
func (db *DB) AggregateUsage(ctx context.Context, f AnalyticsFilter, g UsageGroup, limit int) ([]UsageAggregate, error) {
	out, err := db.readAggregate(ctx, func(tx *sql.Tx) ([]UsageAggregate, error) {
		return aggregate(ctx, tx, db.pg, f, rawFilter{}, g, limit)
	})
	if err != nil {
		return nil, fmt.Errorf("aggregate usage: %w", err)
	}
	return out, nil
}

// readAggregate runs fn in one read-only snapshot, so that the retention marks and the data,
// or a bound and the rows it bounds, are read together.
func (db *DB) readAggregate(ctx context.Context, fn func(tx *sql.Tx) ([]UsageAggregate, error)) ([]UsageAggregate, error) {
	tx, err := db.Read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	return fn(tx)
}

// rawFilter selects usage rows by what the rollups do not keep (an end user, a status); with
// either set, aggregate sums the raw rows of the range.
type rawFilter struct {
	endUser string
	status  int
}

// aggregate is AggregateUsage in tx, or with a rawFilter the same sums over the raw rows it
// selects.
func aggregate(ctx context.Context, tx *sql.Tx, pg bool, f AnalyticsFilter, raw rawFilter, g UsageGroup, limit int) ([]UsageAggregate, error) {
	if f.WorkspaceID <= 0 || f.To <= f.From {
		return nil, errors.New("workspace and a non-empty range are required")
	}
	kind, per := g%groupKinds, g-g%groupKinds
	var key, group, order string
	switch kind {
	case GroupNone:
		key, group = `'', '', 0`, ``
	case GroupDay:
		key = `strftime('%Y-%m-%d', day * 86400, 'unixepoch'), '', 0`
		if pg {
			key = `to_char(to_timestamp(day * 86400) AT TIME ZONE 'UTC', 'YYYY-MM-DD'), '', 0`
		}
		group, order = `day`, `day`
	case GroupProvider:
		key, group = `provider, provider, 0`, `provider`
	case GroupModel:
		key, group = `final_model, provider, 0`, `provider, final_model`
	case GroupProject:
		key, group = `'', '', project_id`, `project_id`
	default:
		return nil, fmt.Errorf("unknown grouping %d", g)
	}
	if order == "" && kind != GroupNone {
		order = `6 DESC, 5 DESC, 1, 2, 3`
	}
	// bucket is each source row's period: hours of raw and hourly rows, days of daily rows.
	var periodMs int64
	switch per {
	case 0:
	case PerHour:
		periodMs = hourMs
	case PerDay:
		periodMs = dayMs
	default:
		return nil, fmt.Errorf("unknown grouping %d", g)
	}
	if periodMs > 0 {
		group = strings.TrimPrefix(group+`, bucket`, `, `)
		order = strings.TrimSuffix(`4, `+order, `, `)
	}
	var q strings.Builder
	var args []any
	// Ungrouped by period every bucket is 0, and PostgreSQL takes no bare column beside sums.
	bucketColumn := `0`
	if periodMs > 0 {
		bucketColumn = `coalesce(bucket, 0)`
	}
	q.WriteString(`SELECT ` + key + `, ` + bucketColumn + `, coalesce(sum(requests), 0), coalesce(sum(cost_nano), 0),
		coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), coalesce(sum(total_tokens), 0),
		coalesce(sum(latency_ms), 0), coalesce(sum(errors), 0), coalesce(sum(blocked), 0),
		coalesce(max(last_at), 0), coalesce(sum(cache_read_tokens), 0), coalesce(sum(cache_write_tokens), 0),
		coalesce(sum(reasoning_tokens), 0) FROM (`)
	var spans []span
	if raw != (rawFilter{}) {
		spans = []span{{"", f.From, f.To}}
	} else {
		// Read in the caller's snapshot, so a prune that commits meanwhile cannot make a span
		// look whole that is not.
		kept, err := readRetained(ctx, tx, pg)
		if err != nil {
			return nil, err
		}
		spans = retainedSpans(f.From, f.To, kept, periodMs == hourMs)
	}
	bucket := func(col string) string {
		if periodMs == 0 {
			return `0`
		}
		return fmt.Sprintf(`%s - %s %% %d`, col, col, periodMs)
	}
	for i, sp := range spans {
		if i > 0 {
			q.WriteString(` UNION ALL `)
		}
		if sp.table == "" {
			q.WriteString(`SELECT created_at / 86400000 AS day, ` + bucket("created_at") + ` AS bucket, provider, final_model,
				project_id, 1 AS requests, cost_nano, input_tokens, output_tokens, total_tokens, latency_ms,
				CASE WHEN status >= 400 AND error_code <> ? THEN 1 ELSE 0 END AS errors,
				CASE WHEN error_code = ? THEN 1 ELSE 0 END AS blocked, created_at AS last_at,
				cache_read_tokens, cache_write_tokens, reasoning_tokens
				FROM usage_logs WHERE workspace_id = ? AND created_at >= ? AND created_at < ?`)
			args = append(args, BlockedErrorCode, BlockedErrorCode, f.WorkspaceID, sp.from, sp.to)
			if raw.endUser != "" {
				q.WriteString(` AND end_user = ?`)
				args = append(args, raw.endUser)
			}
			if raw.status != 0 {
				q.WriteString(` AND status = ?`)
				args = append(args, raw.status)
			}
		} else {
			table := sp.table
			if table == dailyTable && f.ProjectID == 0 && kind != GroupProject {
				table = workspaceDailyTable // the same sums without the project, in far fewer rows
			}
			q.WriteString(`SELECT period_start / 86400000 AS day, ` + bucket("period_start") + ` AS bucket, provider,
				final_model, project_id, requests, cost_nano, input_tokens, output_tokens, total_tokens, latency_ms,
				errors, blocked, last_at, cache_read_tokens, cache_write_tokens, reasoning_tokens
				FROM ` + table + ` WHERE workspace_id = ? AND period_start >= ? AND period_start < ?`)
			args = append(args, f.WorkspaceID, sp.from, sp.to)
		}
		args = appendConditions(&q, args, pg, f.ProjectID, f.Provider, f.Model)
	}
	q.WriteString(`) AS spans`)
	if group != "" {
		q.WriteString(` GROUP BY ` + group)
	}
	if order != "" {
		q.WriteString(` ORDER BY ` + order)
	}
	if limit > 0 && g != GroupNone {
		q.WriteString(` LIMIT ?`)
		args = append(args, limit)
	}
	rows, err := tx.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []UsageAggregate
	for rows.Next() {
		var a UsageAggregate
		if err := rows.Scan(&a.Key, &a.Provider, &a.ProjectID, &a.Period, &a.Requests, &a.CostNano, &a.InputTokens,
			&a.OutputTokens, &a.TotalTokens, &a.LatencyMs, &a.Errors, &a.Blocked, &a.LastAt, &a.CacheReadTokens,
			&a.CacheWriteTokens, &a.ReasoningTokens); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// span is a part of a range read from one table: a rollup table, whose rows it selects by
// period_start, or usage_logs ("") by created_at. From inclusive, to exclusive, unix ms.
type span struct {
	table    string
	from, to int64
}

// retainedSpans is rangeSpans for what retention kept: the part of [from, to) before
// kept.HourlySince widened to whole days of usage_daily, the part before kept.RawSince to whole
// hours of the rollups, and the rest as rangeSpans splits it. Both marks are period starts, so
// the pieces meet without overlap.
func retainedSpans(from, to int64, kept Retained, hourly bool) []span {
	var out []span
	if from < kept.HourlySince {
		end := ceilTo(min(to, kept.HourlySince), dayMs)
		out = append(out, span{dailyTable, floorTo(from, dayMs), end})
		if from = end; from >= to {
			return out
		}
	}
	if from < kept.RawSince {
		end := ceilTo(min(to, kept.RawSince), hourMs)
		out = append(out, rangeSpans(floorTo(from, hourMs), end, hourly)...)
		if from = end; from >= to {
			return out
		}
	}
	return append(out, rangeSpans(from, to, hourly)...)
}

// rangeSpans splits [from, to) into the coarsest pieces the tables answer exactly: raw rows for
// the part-hours at the edges, hourly rollups for the part-days, daily rollups for the rest —
// or, when hourly, hourly rollups for everything but the part-hours.
func rangeSpans(from, to int64, hourly bool) []span {
	h0, h1 := ceilTo(from, hourMs), floorTo(to, hourMs)
	if h0 >= h1 {
		return []span{{"", from, to}}
	}
	var out []span
	add := func(table string, a, b int64) {
		if a < b {
			out = append(out, span{table, a, b})
		}
	}
	add("", from, h0)
	if d0, d1 := ceilTo(h0, dayMs), floorTo(h1, dayMs); d0 < d1 && !hourly {
		add(hourlyTable, h0, d0)
		add(dailyTable, d0, d1)
		add(hourlyTable, d1, h1)
	} else {
		add(hourlyTable, h0, h1)
	}
	add("", h1, to)
	return out
}

// ceilTo is the start of the first period of length unit that starts at or after ms.
func ceilTo(ms, unit int64) int64 {
	if f := floorTo(ms, unit); f != ms {
		return f + unit
	}
	return ms
}
