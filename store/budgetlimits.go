package store

import (
	"context"
	"database/sql"
	"fmt"
)

// BudgetLimits are the budgets set on one project or workspace, in nano-dollars (nil: none).
// WorkspaceID is the project's workspace, or the workspace itself.
type BudgetLimits struct {
	ID, WorkspaceID int64
	Daily, Monthly  *int64
}

// ListBudgetLimits returns every active, undeleted project and every undeleted workspace that
// has a daily or a monthly budget, for the metrics' budget-utilisation gauges. It reads from
// the read pool: it runs once per /metrics scrape.
func (db *DB) ListBudgetLimits(ctx context.Context) (projects, workspaces []BudgetLimits, err error) {
	projects, err = db.listBudgetLimits(ctx, `SELECT p.id, p.workspace_id, p.daily_budget_nano, p.monthly_budget_nano
		FROM projects p JOIN workspaces w ON w.id = p.workspace_id
		WHERE p.deleted_at IS NULL AND w.deleted_at IS NULL AND p.active = 1
		  AND (p.daily_budget_nano IS NOT NULL OR p.monthly_budget_nano IS NOT NULL)`)
	if err != nil {
		return nil, nil, err
	}
	workspaces, err = db.listBudgetLimits(ctx, `SELECT id, id, daily_budget_nano, monthly_budget_nano FROM workspaces
		WHERE deleted_at IS NULL AND (daily_budget_nano IS NOT NULL OR monthly_budget_nano IS NOT NULL)`)
	if err != nil {
		return nil, nil, err
	}
	return projects, workspaces, nil
}

func (db *DB) listBudgetLimits(ctx context.Context, query string) ([]BudgetLimits, error) {
	rows, err := db.Read.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("list budget limits: %w", err)
	}
	defer rows.Close()
	var out []BudgetLimits
	for rows.Next() {
		var l BudgetLimits
		var d, m sql.NullInt64
		if err := rows.Scan(&l.ID, &l.WorkspaceID, &d, &m); err != nil {
			return nil, fmt.Errorf("list budget limits: %w", err)
		}
		l.Daily, l.Monthly = nullInt(d), nullInt(m)
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list budget limits: %w", err)
	}
	return out, nil
}
