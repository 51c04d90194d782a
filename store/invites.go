package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Invite is one row of invites, with the names the invitee is shown. TokenHash is the SHA-256 of
// the accept token; the token itself is never stored. Times are unix ms; the pointers are nil
// until the invite is accepted or cancelled.
type Invite struct {
	ID          int64
	WorkspaceID int64
	Email       string
	Role        string
	TokenHash   []byte
	InvitedBy   int64
	CreatedAt   int64
	ExpiresAt   int64
	AcceptedAt  *int64
	AcceptedBy  *int64
	CancelledAt *int64

	// Filled by reads (ignored by InsertInvite): the workspace's name and whether it is
	// soft-deleted, and the inviter's name and email.
	WorkspaceName    string
	WorkspaceDeleted bool
	InviterName      string
	InviterEmail     string
}

// InsertInvite adds inv in tx and returns its id.
func (db *DB) InsertInvite(ctx context.Context, tx *sql.Tx, inv Invite) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `INSERT INTO invites (workspace_id, email, role, token_hash, invited_by, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		inv.WorkspaceID, inv.Email, inv.Role, inv.TokenHash, inv.InvitedBy, inv.CreatedAt, inv.ExpiresAt).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert invite: %w", err)
	}
	return id, nil
}

const inviteQuery = `SELECT i.id, i.workspace_id, i.email, i.role, i.token_hash, i.invited_by, i.created_at,
	i.expires_at, i.accepted_at, i.accepted_by, i.cancelled_at,
	w.name, w.deleted_at IS NOT NULL, COALESCE(u.name, ''), COALESCE(u.email, '')
	FROM invites i JOIN workspaces w ON w.id = i.workspace_id LEFT JOIN users u ON u.id = i.invited_by `

func scanInvite(r interface{ Scan(dest ...any) error }) (Invite, error) {
	var inv Invite
	var acc, accBy, canc sql.NullInt64
	err := r.Scan(&inv.ID, &inv.WorkspaceID, &inv.Email, &inv.Role, &inv.TokenHash, &inv.InvitedBy,
		&inv.CreatedAt, &inv.ExpiresAt, &acc, &accBy, &canc,
		&inv.WorkspaceName, &inv.WorkspaceDeleted, &inv.InviterName, &inv.InviterEmail)
	if err != nil {
		return Invite{}, err
	}
	inv.AcceptedAt, inv.AcceptedBy, inv.CancelledAt = inviteTime(acc), inviteTime(accBy), inviteTime(canc)
	return inv, nil
}

func scanOneInvite(r *sql.Row, what string) (Invite, error) {
	inv, err := scanInvite(r)
	if errors.Is(err, sql.ErrNoRows) {
		return Invite{}, ErrNotFound
	}
	if err != nil {
		return Invite{}, fmt.Errorf("read invite %s: %w", what, err)
	}
	return inv, nil
}

// InviteByTokenHash returns the invite whose token hashes to hash, read in tx when tx is not nil
// (so a check and the change it guards see the same state), or ErrNotFound.
func (db *DB) InviteByTokenHash(ctx context.Context, tx *sql.Tx, hash []byte) (Invite, error) {
	q := inviteQuery + `WHERE i.token_hash = ?`
	if tx != nil {
		return scanOneInvite(tx.QueryRowContext(ctx, q, hash), "by token")
	}
	return scanOneInvite(db.Read.QueryRowContext(ctx, q, hash), "by token")
}

// InviteInWorkspace returns invite id of workspaceID, read in tx; ErrNotFound when it does not
// exist or belongs to another workspace.
func (db *DB) InviteInWorkspace(ctx context.Context, tx *sql.Tx, workspaceID, id int64) (Invite, error) {
	return scanOneInvite(tx.QueryRowContext(ctx, inviteQuery+`WHERE i.workspace_id = ? AND i.id = ?`, workspaceID, id),
		fmt.Sprint(id))
}

// OpenInvites lists workspaceID's invites that are neither accepted nor cancelled (expired ones
// included: they can be resent), newest first.
func (db *DB) OpenInvites(ctx context.Context, workspaceID int64) ([]Invite, error) {
	rows, err := db.Read.QueryContext(ctx, inviteQuery+`WHERE i.workspace_id = ?
		AND i.accepted_at IS NULL AND i.cancelled_at IS NULL ORDER BY i.created_at DESC, i.id DESC`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list invites of workspace %d: %w", workspaceID, err)
	}
	defer rows.Close()
	var out []Invite
	for rows.Next() {
		inv, err := scanInvite(rows)
		if err != nil {
			return nil, fmt.Errorf("list invites of workspace %d: %w", workspaceID, err)
		}
		out = append(out, inv)
	}
	return out, rows.Err()
}

// OpenInviteExists reports, in tx, whether workspaceID has an open (not accepted, not cancelled)
// invite for email (compared case-insensitively), expired or not.
func (db *DB) OpenInviteExists(ctx context.Context, tx *sql.Tx, workspaceID int64, email string) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM invites WHERE workspace_id = ? AND email = ?
		AND accepted_at IS NULL AND cancelled_at IS NULL`, workspaceID, email).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look up invites of workspace %d: %w", workspaceID, err)
	}
	return n > 0, nil
}

// IsMemberByEmail reports, in tx, whether the user registered with email is a member of
// workspaceID.
func (db *DB) IsMemberByEmail(ctx context.Context, tx *sql.Tx, workspaceID int64, email string) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id
		WHERE m.workspace_id = ? AND u.email = ?`, workspaceID, email).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look up members of workspace %d: %w", workspaceID, err)
	}
	return n > 0, nil
}

// RenewInvite gives open invite id of workspaceID a new token hash and expiry, in tx, so the
// old link stops working. It returns ErrNotFound when the invite is not open (accepted,
// cancelled, or not in the workspace).
func (db *DB) RenewInvite(ctx context.Context, tx *sql.Tx, workspaceID, id int64, hash []byte, expiresAt int64) error {
	res, err := tx.ExecContext(ctx, `UPDATE invites SET token_hash = ?, expires_at = ?
		WHERE workspace_id = ? AND id = ? AND accepted_at IS NULL AND cancelled_at IS NULL`,
		hash, expiresAt, workspaceID, id)
	return oneInviteChanged(res, err, "renew", id)
}

// CancelInvite marks open invite id of workspaceID cancelled at the given time, in tx. It
// returns ErrNotFound when the invite is not open.
func (db *DB) CancelInvite(ctx context.Context, tx *sql.Tx, workspaceID, id, at int64) error {
	res, err := tx.ExecContext(ctx, `UPDATE invites SET cancelled_at = ?
		WHERE workspace_id = ? AND id = ? AND accepted_at IS NULL AND cancelled_at IS NULL`, at, workspaceID, id)
	return oneInviteChanged(res, err, "cancel", id)
}

// AcceptInvite marks invite id accepted by userID at now, in tx, but only while it is still
// open and unexpired and its workspace is live: the condition is in the UPDATE itself, so of
// two racing accepts exactly one changes the row. It returns ErrNotFound when the row was not
// changed.
func (db *DB) AcceptInvite(ctx context.Context, tx *sql.Tx, id, userID, now int64) error {
	res, err := tx.ExecContext(ctx, `UPDATE invites SET accepted_at = ?, accepted_by = ?
		WHERE id = ? AND accepted_at IS NULL AND cancelled_at IS NULL AND expires_at > ?
		AND workspace_id IN (SELECT id FROM workspaces WHERE deleted_at IS NULL)`, now, userID, id, now)
	return oneInviteChanged(res, err, "accept", id)
}

func inviteTime(n sql.NullInt64) *int64 {
	if !n.Valid {
		return nil
	}
	return &n.Int64
}

func oneInviteChanged(res sql.Result, err error, verb string, id int64) error {
	if err != nil {
		return fmt.Errorf("%s invite %d: %w", verb, id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s invite %d: %w", verb, id, err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
