package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// Project is one live row of projects, without its key hash (which only key auth reads).
// Budgets are nano-dollars, nil meaning no limit; times are unix ms.
type Project struct {
	ID                int64
	WorkspaceID       int64
	Name              string
	DailyBudgetNano   *int64
	MonthlyBudgetNano *int64
	// BudgetMode is "soft" or "strict" (the column's CHECK); InsertProject writes "" as "soft".
	BudgetMode    string
	FallbackModel string
	AlertEmail    string
	KeyPrefix     string
	Active        bool
	LastUsedAt    *int64
	CreatedAt     int64
	UpdatedAt     int64
	Controls
}

// Controls are a project's production controls (schema.sql, rpm_limit and on): rate limits, the model
// allow-list, failover and the per-end-user budget. Zero values mean no limit, any model, no
// failover.
type Controls struct {
	// RPMLimit and TPMLimit are requests and tokens per minute; 0 is no limit.
	RPMLimit, TPMLimit int64
	// AllowedModels are exact model names or "prefix*" patterns; empty allows every model.
	AllowedModels []string
	// FallbackOnError serves the fallback model when the requested one fails upstream.
	FallbackOnError bool
	// EndUserDailyBudgetNano is the daily spend of any one end user; 0 is no limit.
	EndUserDailyBudgetNano int64
}

// InsertProject adds p with the bcrypt hash of its key, in tx, and returns its id.
func (db *DB) InsertProject(ctx context.Context, tx *sql.Tx, p Project, keyHash string) (int64, error) {
	var id int64
	models, err := modelsJSON(p.AllowedModels)
	if err != nil {
		return 0, err
	}
	err = tx.QueryRowContext(ctx, `INSERT INTO projects (workspace_id, name, daily_budget_nano, monthly_budget_nano,
		budget_mode, fallback_model, alert_email, key_prefix, key_hash, active, created_at, updated_at,
		rpm_limit, tpm_limit, allowed_models, fallback_on_error, end_user_daily_budget_nano)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		p.WorkspaceID, p.Name, p.DailyBudgetNano, p.MonthlyBudgetNano, budgetMode(p.BudgetMode), p.FallbackModel,
		p.AlertEmail, p.KeyPrefix, keyHash, p.CreatedAt, p.UpdatedAt,
		p.RPMLimit, p.TPMLimit, models, p.FallbackOnError, p.EndUserDailyBudgetNano).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert project: %w", err)
	}
	return id, nil
}

const projectQuery = `SELECT p.id, p.workspace_id, p.name, p.daily_budget_nano, p.monthly_budget_nano,
	p.budget_mode, p.fallback_model, p.alert_email, p.key_prefix, p.active, p.last_used_at, p.created_at, p.updated_at,
	p.rpm_limit, p.tpm_limit, p.allowed_models, p.fallback_on_error, p.end_user_daily_budget_nano
	FROM projects p JOIN workspaces w ON w.id = p.workspace_id
	WHERE p.deleted_at IS NULL AND w.deleted_at IS NULL`

func scanProject(r rowScanner) (Project, error) {
	var p Project
	var d, m, used sql.NullInt64
	var models string
	if err := r.Scan(&p.ID, &p.WorkspaceID, &p.Name, &d, &m, &p.BudgetMode, &p.FallbackModel, &p.AlertEmail,
		&p.KeyPrefix, &p.Active, &used, &p.CreatedAt, &p.UpdatedAt,
		&p.RPMLimit, &p.TPMLimit, &models, &p.FallbackOnError, &p.EndUserDailyBudgetNano); err != nil {
		return Project{}, err
	}
	p.DailyBudgetNano, p.MonthlyBudgetNano, p.LastUsedAt = nullInt(d), nullInt(m), nullInt(used)
	var err error
	p.AllowedModels, err = parseModels(models)
	return p, err
}

// ProjectByID returns project id, or ErrNotFound when it does not exist or it or its workspace
// is deleted.
func (db *DB) ProjectByID(ctx context.Context, id int64) (Project, error) {
	p, err := scanProject(db.Read.QueryRowContext(ctx, projectQuery+` AND p.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Project{}, ErrNotFound
	}
	if err != nil {
		return Project{}, fmt.Errorf("read project %d: %w", id, err)
	}
	return p, nil
}

// ListProjects lists the live projects of workspaceID, oldest first.
func (db *DB) ListProjects(ctx context.Context, workspaceID int64) ([]Project, error) {
	rows, err := db.Read.QueryContext(ctx, projectQuery+` AND p.workspace_id = ? ORDER BY p.id`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list projects of workspace %d: %w", workspaceID, err)
	}
	defer rows.Close()
	var out []Project
	for rows.Next() {
		p, err := scanProject(rows)
		if err != nil {
			return nil, fmt.Errorf("list projects of workspace %d: %w", workspaceID, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// UpdateProject writes p's name, budgets, budget mode ("soft" or "strict"; "" is refused by the
// CHECK), fallback model, alert email, controls and updated time, in tx; ErrNotFound for a
// missing or deleted project. Limits outside 0..1e9 are refused by the columns' CHECKs.
func (db *DB) UpdateProject(ctx context.Context, tx *sql.Tx, p Project) error {
	models, err := modelsJSON(p.AllowedModels)
	if err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `UPDATE projects SET name = ?, daily_budget_nano = ?, monthly_budget_nano = ?,
		budget_mode = ?, fallback_model = ?, alert_email = ?, updated_at = ?,
		rpm_limit = ?, tpm_limit = ?, allowed_models = ?, fallback_on_error = ?, end_user_daily_budget_nano = ?
		WHERE id = ? AND deleted_at IS NULL`,
		p.Name, p.DailyBudgetNano, p.MonthlyBudgetNano, p.BudgetMode, p.FallbackModel, p.AlertEmail, p.UpdatedAt,
		p.RPMLimit, p.TPMLimit, models, p.FallbackOnError, p.EndUserDailyBudgetNano, p.ID)
	return affectedOne(res, err, "update project", p.ID)
}

// modelsJSON encodes an allow-list as the allowed_models column holds it: a JSON array, "[]"
// for none.
func modelsJSON(models []string) (string, error) {
	if len(models) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(models)
	if err != nil {
		return "", fmt.Errorf("encode allowed models: %w", err)
	}
	return string(b), nil
}

// parseModels decodes the allowed_models column; "[]" is nil.
func parseModels(s string) ([]string, error) {
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, fmt.Errorf("decode allowed models: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// SetProjectKey replaces the key of project id (lookup prefix and bcrypt hash), in tx. The old
// key no longer matches any row once this commits.
func (db *DB) SetProjectKey(ctx context.Context, tx *sql.Tx, id int64, prefix, hash string, at int64) error {
	res, err := tx.ExecContext(ctx, `UPDATE projects SET key_prefix = ?, key_hash = ?, updated_at = ?
		WHERE id = ? AND deleted_at IS NULL`, prefix, hash, at, id)
	return affectedOne(res, err, "replace key of project", id)
}

// SetProjectActive activates or deactivates project id, in tx.
func (db *DB) SetProjectActive(ctx context.Context, tx *sql.Tx, id int64, active bool, at int64) error {
	res, err := tx.ExecContext(ctx, `UPDATE projects SET active = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL`, active, at, id)
	return affectedOne(res, err, "set active of project", id)
}

// SoftDeleteProject marks project id deleted, in tx: its key stops working and it leaves every
// listing, while its usage rows keep pointing at it.
func (db *DB) SoftDeleteProject(ctx context.Context, tx *sql.Tx, id, at int64) error {
	res, err := tx.ExecContext(ctx, `UPDATE projects SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL`, at, at, id)
	return affectedOne(res, err, "delete project", id)
}
