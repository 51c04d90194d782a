package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Webhook delivery statuses: a delivery is pending until it is sent (a 2xx answer) or failed
// (its last attempt, a permanent refusal, or its webhook removed).
const (
	WebhookPending = "pending"
	WebhookSent    = "sent"
	WebhookFailed  = "failed"
)

// Webhook is a workspace's webhook (webhooks). URLSealed and SecretSealed are secret.Box output
// bound to the workspace; URLMasked is the only form of the URL ever shown.
type Webhook struct {
	WorkspaceID  int64
	URLSealed    []byte
	URLMasked    string
	SecretSealed []byte
	CreatedAt    int64
	UpdatedAt    int64
}

// PutWebhook sets or replaces workspace w.WorkspaceID's webhook in tx; a replaced row keeps its
// CreatedAt.
func (db *DB) PutWebhook(ctx context.Context, tx *sql.Tx, w Webhook) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO webhooks (workspace_id, url_sealed, url_masked, secret_sealed, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (workspace_id) DO UPDATE
		SET url_sealed = excluded.url_sealed, url_masked = excluded.url_masked,
		    secret_sealed = excluded.secret_sealed, updated_at = excluded.updated_at`,
		w.WorkspaceID, w.URLSealed, w.URLMasked, w.SecretSealed, w.CreatedAt, w.UpdatedAt)
	if err != nil {
		return fmt.Errorf("store webhook of workspace %d: %w", w.WorkspaceID, err)
	}
	return nil
}

// WebhookOf returns workspaceID's webhook, or ErrNotFound when it has none.
func (db *DB) WebhookOf(ctx context.Context, workspaceID int64) (Webhook, error) {
	w := Webhook{WorkspaceID: workspaceID}
	err := db.Read.QueryRowContext(ctx, `SELECT url_sealed, url_masked, secret_sealed, created_at, updated_at
		FROM webhooks WHERE workspace_id = ?`, workspaceID).Scan(&w.URLSealed, &w.URLMasked, &w.SecretSealed, &w.CreatedAt, &w.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Webhook{}, ErrNotFound
	}
	if err != nil {
		return Webhook{}, fmt.Errorf("read webhook of workspace %d: %w", workspaceID, err)
	}
	return w, nil
}

// WebhookSecretTx returns workspaceID's sealed webhook secret read in tx, or ErrNotFound when it
// has no webhook, so a change decides on keeping the secret from what it replaces.
func (db *DB) WebhookSecretTx(ctx context.Context, tx *sql.Tx, workspaceID int64) ([]byte, error) {
	var sealed []byte
	err := tx.QueryRowContext(ctx, `SELECT secret_sealed FROM webhooks WHERE workspace_id = ?`, workspaceID).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read webhook secret of workspace %d: %w", workspaceID, err)
	}
	return sealed, nil
}

// DeleteWebhook removes workspaceID's webhook in tx and fails its pending deliveries with
// reason; it returns ErrNotFound when there was none.
func (db *DB) DeleteWebhook(ctx context.Context, tx *sql.Tx, workspaceID int64, reason string, at int64) error {
	res, err := tx.ExecContext(ctx, `DELETE FROM webhooks WHERE workspace_id = ?`, workspaceID)
	if err != nil {
		return fmt.Errorf("delete webhook of workspace %d: %w", workspaceID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete webhook of workspace %d: %w", workspaceID, err)
	} else if n == 0 {
		return ErrNotFound
	}
	if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET status = 'failed', last_error = ?, updated_at = ?
		WHERE workspace_id = ? AND status = 'pending'`, reason, at, workspaceID); err != nil {
		return fmt.Errorf("fail pending deliveries of workspace %d: %w", workspaceID, err)
	}
	return nil
}

// WebhookDelivery is one row of the webhook outbox (webhook_deliveries). Times are unix ms.
type WebhookDelivery struct {
	ID          int64
	WorkspaceID int64
	Event       string
	// DedupeKey is "" for events that may repeat (tests).
	DedupeKey  string
	Body       string
	Status     string
	Attempts   int
	NextAt     int64
	LastStatus int
	LastError  string
	CreatedAt  int64
	UpdatedAt  int64
}

// EnqueueWebhook adds d (pending, due at d.NextAt) to the outbox unless the workspace already
// has maxPending pending deliveries or, for a d with a DedupeKey, a delivery with that key. It
// returns the new id, or 0 when nothing was added; the check and the insert are one statement,
// so concurrent callers cannot both pass it.
func (db *DB) EnqueueWebhook(ctx context.Context, d WebhookDelivery, maxPending int) (int64, error) {
	var dedupe any
	if d.DedupeKey != "" {
		dedupe = d.DedupeKey
	}
	var id int64
	err := db.Write.QueryRowContext(ctx, `INSERT INTO webhook_deliveries
		(workspace_id, event, dedupe_key, body, status, attempts, next_at, created_at, updated_at)
		SELECT ?, ?, ?, ?, 'pending', 0, ?, ?, ?
		WHERE (SELECT count(*) FROM webhook_deliveries WHERE workspace_id = ? AND status = 'pending') < ?
		ON CONFLICT (workspace_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING RETURNING id`,
		d.WorkspaceID, d.Event, dedupe, d.Body, d.NextAt, d.CreatedAt, d.CreatedAt, d.WorkspaceID, maxPending).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("enqueue %s webhook of workspace %d: %w", d.Event, d.WorkspaceID, err)
	}
	return id, nil
}

// DueWebhooks returns up to limit pending deliveries due at or before now, the earliest first.
func (db *DB) DueWebhooks(ctx context.Context, now int64, limit int) ([]WebhookDelivery, error) {
	return db.listWebhookDeliveries(ctx, `WHERE status = 'pending' AND next_at <= ? ORDER BY next_at, id LIMIT ?`, now, limit)
}

// NextWebhookDue returns when the earliest pending delivery is due, and false when none is
// pending.
func (db *DB) NextWebhookDue(ctx context.Context) (int64, bool, error) {
	var at sql.NullInt64
	if err := db.Read.QueryRowContext(ctx, `SELECT min(next_at) FROM webhook_deliveries WHERE status = 'pending'`).Scan(&at); err != nil {
		return 0, false, fmt.Errorf("read next webhook due: %w", err)
	}
	return at.Int64, at.Valid, nil
}

// RecentWebhooks returns workspaceID's latest limit deliveries, newest first.
func (db *DB) RecentWebhooks(ctx context.Context, workspaceID int64, limit int) ([]WebhookDelivery, error) {
	return db.listWebhookDeliveries(ctx, `WHERE workspace_id = ? ORDER BY id DESC LIMIT ?`, workspaceID, limit)
}

// UpdateWebhookDelivery records an attempt's outcome on a pending delivery: its new status,
// attempt count, next due time, the receiver's HTTP status (0 when none) and the error. A
// delivery no longer pending (its webhook removed meanwhile) is left as it is.
func (db *DB) UpdateWebhookDelivery(ctx context.Context, d WebhookDelivery) error {
	_, err := db.Write.ExecContext(ctx, `UPDATE webhook_deliveries
		SET status = ?, attempts = ?, next_at = ?, last_status = ?, last_error = ?, updated_at = ?
		WHERE id = ? AND status = 'pending'`,
		d.Status, d.Attempts, d.NextAt, d.LastStatus, d.LastError, d.UpdatedAt, d.ID)
	if err != nil {
		return fmt.Errorf("update webhook delivery %d: %w", d.ID, err)
	}
	return nil
}

// PruneWebhooks deletes finished deliveries last updated before before and returns how many.
func (db *DB) PruneWebhooks(ctx context.Context, before int64) (int64, error) {
	res, err := db.Write.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE status != 'pending' AND updated_at < ?`, before)
	if err != nil {
		return 0, fmt.Errorf("prune webhook deliveries: %w", err)
	}
	return res.RowsAffected()
}

func (db *DB) listWebhookDeliveries(ctx context.Context, tail string, args ...any) ([]WebhookDelivery, error) {
	rows, err := db.Read.QueryContext(ctx, `SELECT id, workspace_id, event, coalesce(dedupe_key, ''), body, status,
		attempts, next_at, last_status, last_error, created_at, updated_at FROM webhook_deliveries `+tail, args...)
	if err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", err)
	}
	defer rows.Close()
	var out []WebhookDelivery
	for rows.Next() {
		var d WebhookDelivery
		if err := rows.Scan(&d.ID, &d.WorkspaceID, &d.Event, &d.DedupeKey, &d.Body, &d.Status, &d.Attempts,
			&d.NextAt, &d.LastStatus, &d.LastError, &d.CreatedAt, &d.UpdatedAt); err != nil {
			return nil, fmt.Errorf("list webhook deliveries: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", err)
	}
	return out, nil
}
