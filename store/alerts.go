package store

import (
	"context"
	"fmt"
)

// BudgetAlert is one budget alert mailed (budget_alerts): at most one per scope, subject,
// budget, period and threshold. Scope is "project" or "workspace", Budget "daily" or
// "monthly", Period "2006-01-02" or "2006-01" (UTC), Threshold 80 or 100; money is nano-dollars.
type BudgetAlert struct {
	Scope      string
	SubjectID  int64
	Budget     string
	Period     string
	Threshold  int
	SpendNano  int64
	LimitNano  int64
	Recipients int
	CreatedAt  int64
}

// ClaimBudgetAlert records a and reports whether this call inserted it: true means the caller
// is the one to send the mail, false that the alert was already sent (by an earlier crossing or
// before a restart).
func (db *DB) ClaimBudgetAlert(ctx context.Context, a BudgetAlert) (bool, error) {
	res, err := db.Write.ExecContext(ctx, `INSERT INTO budget_alerts (scope, subject_id, budget, period,
		threshold, spend_nano, limit_nano, recipients, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (scope, subject_id, budget, period, threshold) DO NOTHING`,
		a.Scope, a.SubjectID, a.Budget, a.Period, a.Threshold, a.SpendNano, a.LimitNano, a.Recipients, a.CreatedAt)
	if err != nil {
		return false, fmt.Errorf("claim %s %d %s budget alert %s %d%%: %w", a.Scope, a.SubjectID, a.Budget, a.Period, a.Threshold, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("claim budget alert: %w", err)
	}
	return n == 1, nil
}

// WorkspaceAlertRecipients returns a live workspace's name and its owners' emails (who get its
// budget alerts, since a workspace has no alert email of its own); ErrNotFound when the
// workspace does not exist or is deleted.
func (db *DB) WorkspaceAlertRecipients(ctx context.Context, workspaceID int64) (name string, owners []string, err error) {
	rows, err := db.Read.QueryContext(ctx, `SELECT w.name, u.email FROM workspaces w
		LEFT JOIN memberships m ON m.workspace_id = w.id AND m.role = 'owner'
		LEFT JOIN users u ON u.id = m.user_id
		WHERE w.id = ? AND w.deleted_at IS NULL ORDER BY m.created_at, u.id`, workspaceID)
	if err != nil {
		return "", nil, fmt.Errorf("read owners of workspace %d: %w", workspaceID, err)
	}
	defer rows.Close()
	found := false
	for rows.Next() {
		var email *string
		if err := rows.Scan(&name, &email); err != nil {
			return "", nil, fmt.Errorf("read owners of workspace %d: %w", workspaceID, err)
		}
		found = true
		if email != nil && *email != "" {
			owners = append(owners, *email)
		}
	}
	if err := rows.Err(); err != nil {
		return "", nil, fmt.Errorf("read owners of workspace %d: %w", workspaceID, err)
	}
	if !found {
		return "", nil, ErrNotFound
	}
	return name, owners, nil
}
