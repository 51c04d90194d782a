package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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

// AggregateEndUserUsage is AggregateUsage for the rows of one end user: the same filter, the
// same groups in the same order, the same figures. The rollups have no end-user key, so it sums
// the raw rows of the range by the (workspace_id, created_at) index, checking each row's end
// user: its cost grows with the workspace's rows in the range, and rows USAGE_RETENTION has
// pruned are not counted.
func (db *DB) AggregateEndUserUsage(ctx context.Context, f AnalyticsFilter, endUser string, g UsageGroup, limit int) ([]UsageAggregate, error) {
	if endUser == "" {
		return nil, errors.New("aggregate end-user usage: an end user is required")
	}
	out, err := db.readAggregate(ctx, func(tx *sql.Tx) ([]UsageAggregate, error) {
		return aggregate(ctx, tx, db.pg, f, rawFilter{endUser: endUser}, g, limit)
	})
	if err != nil {
		return nil, fmt.Errorf("aggregate end-user usage: %w", err)
	}
	return out, nil
}
