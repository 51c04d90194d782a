package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// KeyAuth is what the proxy needs to authenticate a project key and gate its request: the
// project and its workspace, the key's bcrypt hash, every budget that applies, the fallback
// model and the project's sealed provider keys.
type KeyAuth struct {
	ProjectID, WorkspaceID int64
	KeyHash                string
	Active                 bool
	// ProjectDeleted and WorkspaceDeleted are true for soft-deleted rows: their keys are dead.
	ProjectDeleted, WorkspaceDeleted bool
	// Budgets in nano-dollars; nil means no limit.
	ProjectDaily, ProjectMonthly     *int64
	WorkspaceDaily, WorkspaceMonthly *int64
	FallbackModel                    string
	// ProjectStrict and WorkspaceStrict are true when the project's or the workspace's
	// budget_mode is 'strict' (output capped to what the remaining budget affords).
	ProjectStrict, WorkspaceStrict bool
	// ProviderKeys maps a provider name to its sealed key (secret.Box, AD ProviderKeyAD).
	ProviderKeys map[string][]byte
	// Controls are the project's rate limits, allow-list, failover and end-user budget.
	Controls
	// WorkspaceRPM and WorkspaceTPM are the workspace's per-minute limits; 0 is no limit.
	WorkspaceRPM, WorkspaceTPM int64
}

// KeyAuthByPrefix returns the project whose key has the lookup prefix, with its workspace's
// budgets and state and its sealed provider keys. It returns ErrNotFound when no project has
// that prefix. It reads from the read pool: it runs on a key-cache miss, not per request.
func (db *DB) KeyAuthByPrefix(ctx context.Context, prefix string) (KeyAuth, error) {
	var k KeyAuth
	var pd, pm, wd, wm sql.NullInt64
	var models string
	err := db.Read.QueryRowContext(ctx, `
		SELECT p.id, p.workspace_id, p.key_hash, p.active,
		       p.deleted_at IS NOT NULL, w.deleted_at IS NOT NULL,
		       p.daily_budget_nano, p.monthly_budget_nano,
		       w.daily_budget_nano, w.monthly_budget_nano, p.fallback_model,
		       p.budget_mode = 'strict', w.budget_mode = 'strict',
		       p.rpm_limit, p.tpm_limit, p.allowed_models, p.fallback_on_error, p.end_user_daily_budget_nano,
		       w.rpm_limit, w.tpm_limit
		FROM projects p JOIN workspaces w ON w.id = p.workspace_id
		WHERE p.key_prefix = ?`, prefix).Scan(
		&k.ProjectID, &k.WorkspaceID, &k.KeyHash, &k.Active,
		&k.ProjectDeleted, &k.WorkspaceDeleted, &pd, &pm, &wd, &wm, &k.FallbackModel,
		&k.ProjectStrict, &k.WorkspaceStrict,
		&k.RPMLimit, &k.TPMLimit, &models, &k.FallbackOnError, &k.EndUserDailyBudgetNano,
		&k.WorkspaceRPM, &k.WorkspaceTPM)
	if errors.Is(err, sql.ErrNoRows) {
		return KeyAuth{}, ErrNotFound
	}
	if err != nil {
		return KeyAuth{}, fmt.Errorf("look up key prefix: %w", err)
	}
	k.ProjectDaily, k.ProjectMonthly = nullInt(pd), nullInt(pm)
	k.WorkspaceDaily, k.WorkspaceMonthly = nullInt(wd), nullInt(wm)
	if k.AllowedModels, err = parseModels(models); err != nil {
		return KeyAuth{}, err
	}

	rows, err := db.Read.QueryContext(ctx,
		`SELECT provider, ciphertext FROM provider_keys WHERE project_id = ?`, k.ProjectID)
	if err != nil {
		return KeyAuth{}, fmt.Errorf("read provider keys of project %d: %w", k.ProjectID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var ct []byte
		if err := rows.Scan(&name, &ct); err != nil {
			return KeyAuth{}, fmt.Errorf("read provider keys of project %d: %w", k.ProjectID, err)
		}
		if k.ProviderKeys == nil {
			k.ProviderKeys = make(map[string][]byte, 3)
		}
		k.ProviderKeys[name] = ct
	}
	if err := rows.Err(); err != nil {
		return KeyAuth{}, fmt.Errorf("read provider keys of project %d: %w", k.ProjectID, err)
	}
	return k, nil
}

func nullInt(n sql.NullInt64) *int64 {
	if !n.Valid {
		return nil
	}
	v := n.Int64
	return &v
}

// TouchProjects records the last time each project's key was used (unix ms by project id), in
// one transaction. The proxy batches these in memory, so this runs every few seconds, not per
// request. A value never moves last_used_at backwards.
func (db *DB) TouchProjects(ctx context.Context, lastUsed map[int64]int64) error {
	if len(lastUsed) == 0 {
		return nil
	}
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx,
			`UPDATE projects SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`)
		if err != nil {
			return fmt.Errorf("touch projects: %w", err)
		}
		defer stmt.Close()
		for id, at := range lastUsed {
			if _, err := stmt.ExecContext(ctx, at, id, at); err != nil {
				return fmt.Errorf("touch project %d: %w", id, err)
			}
		}
		return nil
	})
}
