package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// AnalyticsFilter selects the usage rows an aggregation reads. Zero values mean "any"; From and
// To (unix ms, From inclusive, To exclusive) are required so every query is a range scan of the
// (workspace_id, created_at, id) index.
type AnalyticsFilter struct {
	WorkspaceID int64
	From, To    int64
	ProjectID   int64
	Provider    string
	Model       string // partial match on the original or final model, case-insensitive
}

// UsageGroup is what AggregateUsage groups rows by.
type UsageGroup int

// The groupings of AggregateUsage.
const (
	GroupNone     UsageGroup = iota // one row for the whole range
	GroupDay                        // Key: the UTC day, "2006-01-02"
	GroupProvider                   // Key: the provider
	GroupModel                      // Key: the final model, Provider: its provider
	GroupProject                    // ProjectID
)

// BlockedErrorCode marks a request the budget gate refused (logged with cost 0).
const BlockedErrorCode = "BUDGET_EXCEEDED"

// UsageAggregate is the sum over a group of usage rows. Errors counts failed requests (status
// 400 and above) other than blocked ones, which Blocked counts.
type UsageAggregate struct {
	Key          string
	Provider     string
	ProjectID    int64
	Requests     int64
	CostNano     int64
	InputTokens  int64
	OutputTokens int64
	TotalTokens  int64
	LatencyMs    int64 // the sum; divide by Requests for the mean
	Errors       int64
	Blocked      int64
	LastAt       int64 // unix ms of the newest row
}

// AggregateUsage sums the usage rows f selects, grouped by g, in SQL. Groups come ordered by
// cost (then requests) descending, days ascending; limit > 0 keeps the first limit groups.
// GroupNone always returns exactly one row.
func (db *DB) AggregateUsage(ctx context.Context, f AnalyticsFilter, g UsageGroup, limit int) ([]UsageAggregate, error) {
	if f.WorkspaceID <= 0 || f.To <= f.From {
		return nil, errors.New("aggregate usage: workspace and a non-empty range are required")
	}
	var key, group, order string
	switch g {
	case GroupNone:
		key, group, order = `'', '', 0`, ``, ``
	case GroupDay:
		key = `strftime('%Y-%m-%d', created_at / 1000, 'unixepoch'), '', 0`
		group, order = ` GROUP BY created_at / 86400000`, ` ORDER BY 1`
	case GroupProvider:
		key, group = `provider, provider, 0`, ` GROUP BY provider`
	case GroupModel:
		key, group = `final_model, provider, 0`, ` GROUP BY provider, final_model`
	case GroupProject:
		key, group = `'', '', project_id`, ` GROUP BY project_id`
	default:
		return nil, fmt.Errorf("aggregate usage: unknown grouping %d", g)
	}
	if order == "" && g != GroupNone {
		order = ` ORDER BY 5 DESC, 4 DESC, 1, 2, 3`
	}
	var q strings.Builder
	q.WriteString(`SELECT ` + key + `, count(*), coalesce(sum(cost_nano), 0), coalesce(sum(input_tokens), 0),
		coalesce(sum(output_tokens), 0), coalesce(sum(total_tokens), 0), coalesce(sum(latency_ms), 0),
		coalesce(sum(status >= 400 AND error_code <> ?), 0), coalesce(sum(error_code = ?), 0),
		coalesce(max(created_at), 0)
		FROM usage_logs WHERE workspace_id = ? AND created_at >= ? AND created_at < ?`)
	args := []any{BlockedErrorCode, BlockedErrorCode, f.WorkspaceID, f.From, f.To}
	if f.ProjectID != 0 {
		q.WriteString(` AND project_id = ?`)
		args = append(args, f.ProjectID)
	}
	if f.Provider != "" {
		q.WriteString(` AND provider = ?`)
		args = append(args, f.Provider)
	}
	if f.Model != "" {
		pattern := "%" + escapeLike(f.Model) + "%"
		q.WriteString(` AND (final_model LIKE ? ESCAPE '\' OR original_model LIKE ? ESCAPE '\')`)
		args = append(args, pattern, pattern)
	}
	q.WriteString(group + order)
	if limit > 0 && g != GroupNone {
		q.WriteString(` LIMIT ?`)
		args = append(args, limit)
	}
	rows, err := db.Read.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("aggregate usage: %w", err)
	}
	defer rows.Close()
	var out []UsageAggregate
	for rows.Next() {
		var a UsageAggregate
		if err := rows.Scan(&a.Key, &a.Provider, &a.ProjectID, &a.Requests, &a.CostNano, &a.InputTokens,
			&a.OutputTokens, &a.TotalTokens, &a.LatencyMs, &a.Errors, &a.Blocked, &a.LastAt); err != nil {
			return nil, fmt.Errorf("aggregate usage: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("aggregate usage: %w", err)
	}
	return out, nil
}
