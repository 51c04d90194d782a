package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Workspace is one row of workspaces. Budgets are nano-dollars, nil meaning no limit.
type Workspace struct {
	ID                int64
	Name              string
	DailyBudgetNano   *int64
	MonthlyBudgetNano *int64
	// BudgetMode is "soft" or "strict" (the column's CHECK); InsertWorkspace writes "" as "soft".
	BudgetMode string
	Plan       string
	CreatedAt  int64
	// RPMLimit and TPMLimit are requests and tokens per minute over all the workspace's
	// projects; 0 is no limit.
	RPMLimit, TPMLimit int64
}

// WorkspaceRole is a live workspace seen by one member: the workspace and the member's role.
type WorkspaceRole struct {
	Workspace
	Role     string
	JoinedAt int64
}

// Member is one membership of a workspace with the member's user details.
type Member struct {
	UserID   int64
	Email    string
	Name     string
	Role     string
	JoinedAt int64
}

// InsertWorkspace adds w in tx and returns its id.
func (db *DB) InsertWorkspace(ctx context.Context, tx *sql.Tx, w Workspace) (int64, error) {
	plan := w.Plan
	if plan == "" {
		plan = "free"
	}
	var id int64
	err := tx.QueryRowContext(ctx, `INSERT INTO workspaces (name, daily_budget_nano, monthly_budget_nano, budget_mode, plan, created_at,
		rpm_limit, tpm_limit) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, w.Name, w.DailyBudgetNano, w.MonthlyBudgetNano,
		budgetMode(w.BudgetMode), plan, w.CreatedAt, w.RPMLimit, w.TPMLimit).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert workspace: %w", err)
	}
	return id, nil
}

// InsertMembership makes userID a member of workspaceID with role, in tx. It returns
// ErrConflict when the user is already a member.
func (db *DB) InsertMembership(ctx context.Context, tx *sql.Tx, workspaceID, userID int64, role string, at int64) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO memberships (workspace_id, user_id, role, created_at)
		VALUES (?, ?, ?, ?) ON CONFLICT (workspace_id, user_id) DO NOTHING`, workspaceID, userID, role, at)
	if err != nil {
		return fmt.Errorf("add user %d to workspace %d: %w", userID, workspaceID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrConflict
	}
	return nil
}

const workspaceRoleQuery = `SELECT w.id, w.name, w.daily_budget_nano, w.monthly_budget_nano, w.budget_mode, w.plan, w.created_at,
	w.rpm_limit, w.tpm_limit, m.role, m.created_at
	FROM memberships m JOIN workspaces w ON w.id = m.workspace_id
	WHERE w.deleted_at IS NULL AND m.user_id = ?`

type rowScanner interface{ Scan(dest ...any) error }

func scanWorkspaceRole(r rowScanner) (WorkspaceRole, error) {
	var w WorkspaceRole
	var d, m sql.NullInt64
	if err := r.Scan(&w.ID, &w.Name, &d, &m, &w.BudgetMode, &w.Plan, &w.CreatedAt, &w.RPMLimit, &w.TPMLimit,
		&w.Role, &w.JoinedAt); err != nil {
		return WorkspaceRole{}, err
	}
	w.DailyBudgetNano, w.MonthlyBudgetNano = nullInt(d), nullInt(m)
	return w, nil
}

// WorkspaceOfMember returns the live workspace workspaceID as seen by userID. It returns
// ErrNotFound when the workspace does not exist, is deleted, or userID is not a member: callers
// must not be able to tell those apart.
func (db *DB) WorkspaceOfMember(ctx context.Context, userID, workspaceID int64) (WorkspaceRole, error) {
	w, err := scanWorkspaceRole(db.Read.QueryRowContext(ctx, workspaceRoleQuery+` AND w.id = ?`, userID, workspaceID))
	if errors.Is(err, sql.ErrNoRows) {
		return WorkspaceRole{}, ErrNotFound
	}
	if err != nil {
		return WorkspaceRole{}, fmt.Errorf("read workspace %d of user %d: %w", workspaceID, userID, err)
	}
	return w, nil
}

// WorkspacesOfUser lists userID's live workspaces in the order they joined them (the first is
// their default).
func (db *DB) WorkspacesOfUser(ctx context.Context, userID int64) ([]WorkspaceRole, error) {
	rows, err := db.Read.QueryContext(ctx, workspaceRoleQuery+` ORDER BY m.created_at, w.id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list workspaces of user %d: %w", userID, err)
	}
	defer rows.Close()
	var out []WorkspaceRole
	for rows.Next() {
		w, err := scanWorkspaceRole(rows)
		if err != nil {
			return nil, fmt.Errorf("list workspaces of user %d: %w", userID, err)
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// CountLiveWorkspaces counts userID's memberships of workspaces that are not deleted, in tx.
func (db *DB) CountLiveWorkspaces(ctx context.Context, tx *sql.Tx, userID int64) (int, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM memberships m JOIN workspaces w ON w.id = m.workspace_id
		WHERE m.user_id = ? AND w.deleted_at IS NULL`, userID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count workspaces of user %d: %w", userID, err)
	}
	return n, nil
}

// MemberRole returns userID's role in the live workspace workspaceID, read in tx so that checks
// and the change they guard see the same state. It returns ErrNotFound for a non-member.
func (db *DB) MemberRole(ctx context.Context, tx *sql.Tx, workspaceID, userID int64) (string, error) {
	var role string
	err := tx.QueryRowContext(ctx, `SELECT m.role FROM memberships m JOIN workspaces w ON w.id = m.workspace_id
		WHERE m.workspace_id = ? AND m.user_id = ? AND w.deleted_at IS NULL`, workspaceID, userID).Scan(&role)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("read role of user %d in workspace %d: %w", userID, workspaceID, err)
	}
	return role, nil
}

// CountOwners counts the owners of workspaceID, in tx.
func (db *DB) CountOwners(ctx context.Context, tx *sql.Tx, workspaceID int64) (int, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM memberships WHERE workspace_id = ? AND role = 'owner'`, workspaceID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count owners of workspace %d: %w", workspaceID, err)
	}
	return n, nil
}

// SetMemberRole changes userID's role in workspaceID, in tx; ErrNotFound for a non-member.
func (db *DB) SetMemberRole(ctx context.Context, tx *sql.Tx, workspaceID, userID int64, role string) error {
	res, err := tx.ExecContext(ctx, `UPDATE memberships SET role = ? WHERE workspace_id = ? AND user_id = ?`, role, workspaceID, userID)
	if err != nil {
		return fmt.Errorf("set role of user %d in workspace %d: %w", userID, workspaceID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteMembership removes userID from workspaceID, in tx; ErrNotFound for a non-member.
func (db *DB) DeleteMembership(ctx context.Context, tx *sql.Tx, workspaceID, userID int64) error {
	res, err := tx.ExecContext(ctx, `DELETE FROM memberships WHERE workspace_id = ? AND user_id = ?`, workspaceID, userID)
	if err != nil {
		return fmt.Errorf("remove user %d from workspace %d: %w", userID, workspaceID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// ListMembers lists the members of workspaceID, owners first, then by join time.
func (db *DB) ListMembers(ctx context.Context, workspaceID int64) ([]Member, error) {
	rows, err := db.Read.QueryContext(ctx, `SELECT u.id, u.email, u.name, m.role, m.created_at
		FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.workspace_id = ?
		ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, m.created_at, u.id`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list members of workspace %d: %w", workspaceID, err)
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		var m Member
		if err := rows.Scan(&m.UserID, &m.Email, &m.Name, &m.Role, &m.JoinedAt); err != nil {
			return nil, fmt.Errorf("list members of workspace %d: %w", workspaceID, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// UpdateWorkspace writes w's name, budgets, budget mode ("soft" or "strict"; "" is refused by
// the CHECK) and rate limits (0..1e9, the CHECKs), in tx; ErrNotFound for a missing or deleted
// one.
func (db *DB) UpdateWorkspace(ctx context.Context, tx *sql.Tx, w Workspace) error {
	res, err := tx.ExecContext(ctx, `UPDATE workspaces SET name = ?, daily_budget_nano = ?, monthly_budget_nano = ?,
		budget_mode = ?, rpm_limit = ?, tpm_limit = ? WHERE id = ? AND deleted_at IS NULL`,
		w.Name, w.DailyBudgetNano, w.MonthlyBudgetNano, w.BudgetMode, w.RPMLimit, w.TPMLimit, w.ID)
	return affectedOne(res, err, "update workspace", w.ID)
}

// SetWorkspacePlan sets the billing plan of workspaceID, in tx.
func (db *DB) SetWorkspacePlan(ctx context.Context, tx *sql.Tx, workspaceID int64, plan string) error {
	res, err := tx.ExecContext(ctx, `UPDATE workspaces SET plan = ? WHERE id = ? AND deleted_at IS NULL`, plan, workspaceID)
	return affectedOne(res, err, "set plan of workspace", workspaceID)
}

// SoftDeleteWorkspace marks workspaceID deleted at the given time, in tx: it vanishes from every
// listing and its projects' keys stop working, while its rows stay in the database.
func (db *DB) SoftDeleteWorkspace(ctx context.Context, tx *sql.Tx, workspaceID, at int64) error {
	res, err := tx.ExecContext(ctx, `UPDATE workspaces SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL`, at, workspaceID)
	return affectedOne(res, err, "delete workspace", workspaceID)
}

// budgetMode inserts the zero value as the column's default, so a new row without a mode gets
// today's behaviour. Updates take the value as given: "" there fails the CHECK instead of
// quietly turning a strict budget soft.
func budgetMode(m string) string {
	if m == "" {
		return "soft"
	}
	return m
}

func affectedOne(res sql.Result, err error, what string, id int64) error {
	if err != nil {
		return fmt.Errorf("%s %d: %w", what, id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}
