package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// AuditEntry is one row of the append-only audit_log. ActorUserID 0 means no user (the system);
// Details is a JSON object that never holds a secret; times are unix ms.
type AuditEntry struct {
	ID          int64
	WorkspaceID int64
	ActorUserID int64
	// ActorEmail is filled by ListAudit from users; InsertAudit ignores it.
	ActorEmail string
	Action     string
	TargetType string
	TargetID   string
	Details    string
	IP         string
	CreatedAt  int64
}

// InsertAudit appends e to the audit log in tx, so the event commits or rolls back with the
// action it records. Nothing in the store updates or deletes audit rows, and triggers in the
// schema refuse it.
func (db *DB) InsertAudit(ctx context.Context, tx *sql.Tx, e AuditEntry) error {
	var actor any
	if e.ActorUserID != 0 {
		actor = e.ActorUserID
	}
	details := e.Details
	if details == "" {
		details = "{}"
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO audit_log (workspace_id, actor_user_id, action, target_type, target_id, details, ip, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, e.WorkspaceID, actor, e.Action, e.TargetType, e.TargetID, details, e.IP, e.CreatedAt)
	if err != nil {
		return fmt.Errorf("append audit %s: %w", e.Action, err)
	}
	return nil
}

// AuditFilter selects audit entries of one workspace. Zero values mean "any".
type AuditFilter struct {
	WorkspaceID int64 // required
	Action      string
	ActorUserID int64
	From, To    int64 // unix ms: From inclusive, To exclusive
	// Before is a paging cursor: only entries with a smaller id (older) are returned.
	Before int64
	Limit  int
}

// Paging limits for ListAudit.
const (
	DefaultAuditLimit = 50
	MaxAuditLimit     = 500
)

// ListAudit returns one page of a workspace's audit entries, newest first, and the id to pass as
// Before for the next page (0 on the last page). A limit outside 1..500 is clamped (0 means 50).
func (db *DB) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, int64, error) {
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = DefaultAuditLimit
	case limit > MaxAuditLimit:
		limit = MaxAuditLimit
	}
	var q strings.Builder
	q.WriteString(`SELECT a.id, a.workspace_id, COALESCE(a.actor_user_id, 0), COALESCE(u.email, ''), a.action,
		a.target_type, a.target_id, a.details, a.ip, a.created_at
		FROM audit_log a LEFT JOIN users u ON u.id = a.actor_user_id WHERE a.workspace_id = ?`)
	args := []any{f.WorkspaceID}
	if f.Action != "" {
		q.WriteString(` AND a.action = ?`)
		args = append(args, f.Action)
	}
	if f.ActorUserID != 0 {
		q.WriteString(` AND a.actor_user_id = ?`)
		args = append(args, f.ActorUserID)
	}
	if f.From != 0 {
		q.WriteString(` AND a.created_at >= ?`)
		args = append(args, f.From)
	}
	if f.To != 0 {
		q.WriteString(` AND a.created_at < ?`)
		args = append(args, f.To)
	}
	if f.Before != 0 {
		q.WriteString(` AND a.id < ?`)
		args = append(args, f.Before)
	}
	q.WriteString(` ORDER BY a.id DESC LIMIT ?`)
	args = append(args, limit+1)
	rows, err := db.Read.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("list audit of workspace %d: %w", f.WorkspaceID, err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		if err := rows.Scan(&e.ID, &e.WorkspaceID, &e.ActorUserID, &e.ActorEmail, &e.Action,
			&e.TargetType, &e.TargetID, &e.Details, &e.IP, &e.CreatedAt); err != nil {
			return nil, 0, fmt.Errorf("list audit of workspace %d: %w", f.WorkspaceID, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list audit of workspace %d: %w", f.WorkspaceID, err)
	}
	var next int64
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	return out, next, nil
}
