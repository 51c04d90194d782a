package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ProviderKey is one sealed provider key of a project. Ciphertext is secret.Box output bound to
// (project, provider); Masked is the only form of the key ever shown.
type ProviderKey struct {
	ProjectID  int64
	Provider   string
	Ciphertext []byte
	Masked     string
	UpdatedAt  int64
}

// PutProviderKey sets or replaces a project's key for one provider, in tx.
func (db *DB) PutProviderKey(ctx context.Context, tx *sql.Tx, k ProviderKey) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO provider_keys (project_id, provider, ciphertext, masked, updated_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id, provider) DO UPDATE
		SET ciphertext = excluded.ciphertext, masked = excluded.masked, updated_at = excluded.updated_at`,
		k.ProjectID, k.Provider, k.Ciphertext, k.Masked, k.UpdatedAt)
	if err != nil {
		return fmt.Errorf("store %s key of project %d: %w", k.Provider, k.ProjectID, err)
	}
	return nil
}

// DeleteProviderKey clears a project's key for one provider, in tx; clearing an unset key is
// not an error.
func (db *DB) DeleteProviderKey(ctx context.Context, tx *sql.Tx, projectID int64, provider string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM provider_keys WHERE project_id = ? AND provider = ?`, projectID, provider); err != nil {
		return fmt.Errorf("clear %s key of project %d: %w", provider, projectID, err)
	}
	return nil
}

// ProviderKeyMasks returns the masked provider keys of every live project of workspaceID, by
// project id and provider.
func (db *DB) ProviderKeyMasks(ctx context.Context, workspaceID int64) (map[int64]map[string]string, error) {
	rows, err := db.Read.QueryContext(ctx, `SELECT k.project_id, k.provider, k.masked FROM provider_keys k
		JOIN projects p ON p.id = k.project_id WHERE p.workspace_id = ? AND p.deleted_at IS NULL`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("read provider keys of workspace %d: %w", workspaceID, err)
	}
	defer rows.Close()
	out := make(map[int64]map[string]string)
	for rows.Next() {
		var id int64
		var provider, masked string
		if err := rows.Scan(&id, &provider, &masked); err != nil {
			return nil, fmt.Errorf("read provider keys of workspace %d: %w", workspaceID, err)
		}
		if out[id] == nil {
			out[id] = make(map[string]string, 3)
		}
		out[id][provider] = masked
	}
	return out, rows.Err()
}

// ProviderKeyCiphertext returns the sealed key of one project and provider, or ErrNotFound.
func (db *DB) ProviderKeyCiphertext(ctx context.Context, projectID int64, provider string) ([]byte, error) {
	var ct []byte
	err := db.Read.QueryRowContext(ctx, `SELECT ciphertext FROM provider_keys WHERE project_id = ? AND provider = ?`, projectID, provider).Scan(&ct)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read %s key of project %d: %w", provider, projectID, err)
	}
	return ct, nil
}
