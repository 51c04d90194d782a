package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// EndUserSpend is one end user's summed cost of a project over a range of usage rows.
type EndUserSpend struct {
	ProjectID int64
	EndUser   string
	CostNano  int64
}

// EndUserSpendSince sums, per project and end user, the cost of the usage rows created at or
// after since (unix ms) of the projects that have an end-user daily budget: the counters the
// proxy rebuilds at start. It reads the (project_id, created_at) index of those projects only.
func (db *DB) EndUserSpendSince(ctx context.Context, since int64) ([]EndUserSpend, error) {
	rows, err := db.Read.QueryContext(ctx, `SELECT u.project_id, u.end_user, sum(u.cost_nano)
		FROM projects p JOIN usage_logs u ON u.project_id = p.id AND u.created_at >= ?
		WHERE p.end_user_daily_budget_nano > 0 AND p.deleted_at IS NULL AND u.end_user != ''
		GROUP BY u.project_id, u.end_user HAVING sum(u.cost_nano) > 0`, since)
	if err != nil {
		return nil, fmt.Errorf("read end-user spend: %w", err)
	}
	defer rows.Close()
	var out []EndUserSpend
	for rows.Next() {
		var s EndUserSpend
		if err := rows.Scan(&s.ProjectID, &s.EndUser, &s.CostNano); err != nil {
			return nil, fmt.Errorf("read end-user spend: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read end-user spend: %w", err)
	}
	return out, nil
}

// endUserGroups are AggregateEndUserUsage's key columns and GROUP BY clause per grouping, in
// AggregateUsage's order of key, provider, project.
var endUserGroups = map[UsageGroup][2]string{
	GroupNone:     {`'', '', 0`, ``},
	GroupDay:      {`strftime('%Y-%m-%d', created_at / 86400000 * 86400, 'unixepoch'), '', 0`, ` GROUP BY created_at / 86400000`},
	GroupProvider: {`provider, provider, 0`, ` GROUP BY provider`},
	GroupModel:    {`final_model, provider, 0`, ` GROUP BY provider, final_model`},
	GroupProject:  {`'', '', project_id`, ` GROUP BY project_id`},
}

// AggregateEndUserUsage is AggregateUsage for the rows of one end user: the same filter, the
// same groups in the same order, the same figures. The rollups have no end-user key, so it sums
// the raw rows of the range by the (workspace_id, created_at) index, checking each row's end
// user: its cost grows with the workspace's rows in the range, and rows USAGE_RETENTION has
// pruned are not counted.
func (db *DB) AggregateEndUserUsage(ctx context.Context, f AnalyticsFilter, endUser string, g UsageGroup, limit int) ([]UsageAggregate, error) {
	if f.WorkspaceID <= 0 || f.To <= f.From || endUser == "" {
		return nil, fmt.Errorf("aggregate end-user usage: workspace, end user and a non-empty range are required")
	}
	grp, ok := endUserGroups[g]
	if !ok {
		return nil, fmt.Errorf("aggregate end-user usage: unknown grouping %d", g)
	}
	var q strings.Builder
	q.WriteString(`SELECT ` + grp[0] + `, count(*), coalesce(sum(cost_nano), 0), coalesce(sum(input_tokens), 0),
		coalesce(sum(output_tokens), 0), coalesce(sum(total_tokens), 0), coalesce(sum(latency_ms), 0),
		coalesce(sum(status >= 400 AND error_code <> ?), 0), coalesce(sum(error_code = ?), 0),
		coalesce(max(created_at), 0), coalesce(sum(cache_read_tokens), 0), coalesce(sum(cache_write_tokens), 0),
		coalesce(sum(reasoning_tokens), 0)
		FROM usage_logs WHERE workspace_id = ? AND created_at >= ? AND created_at < ? AND end_user = ?`)
	args := appendConditions(&q, []any{BlockedErrorCode, BlockedErrorCode, f.WorkspaceID, f.From, f.To, endUser},
		f.ProjectID, f.Provider, f.Model)
	q.WriteString(grp[1])
	switch {
	case g == GroupDay:
		q.WriteString(` ORDER BY 1`)
	case g != GroupNone:
		q.WriteString(` ORDER BY 5 DESC, 4 DESC, 1, 2, 3`)
	}
	if limit > 0 && g != GroupNone {
		q.WriteString(` LIMIT ?`)
		args = append(args, limit)
	}
	rows, err := db.Read.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("aggregate end-user usage: %w", err)
	}
	defer rows.Close()
	out, err := scanAggregates(rows)
	if err != nil {
		return nil, fmt.Errorf("aggregate end-user usage: %w", err)
	}
	return out, nil
}

// scanAggregates reads rows of the columns AggregateUsage selects.
func scanAggregates(rows *sql.Rows) ([]UsageAggregate, error) {
	var out []UsageAggregate
	for rows.Next() {
		var a UsageAggregate
		if err := rows.Scan(&a.Key, &a.Provider, &a.ProjectID, &a.Requests, &a.CostNano, &a.InputTokens,
			&a.OutputTokens, &a.TotalTokens, &a.LatencyMs, &a.Errors, &a.Blocked, &a.LastAt, &a.CacheReadTokens,
			&a.CacheWriteTokens, &a.ReasoningTokens); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
