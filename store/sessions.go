package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// revokedPruneBatch bounds how many expired denylist rows one RevokeSession deletes, so a
// sign-out never waits on a large cleanup; each sign-out removes up to this many.
const revokedPruneBatch = 100

// RevokeSession puts the dashboard session id sid on the denylist until expiresAt (when every
// cookie carrying that id has expired anyway), and prunes a bounded batch of entries that have
// expired by now. Revoking an id twice keeps the later expiry.
func (db *DB) RevokeSession(ctx context.Context, sid []byte, expiresAt, now time.Time) error {
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO revoked_sessions (sid, expires_at) VALUES (?, ?)
			ON CONFLICT (sid) DO UPDATE SET expires_at = `+greatest(db.pg)+`(revoked_sessions.expires_at, excluded.expires_at)`,
			sid, expiresAt.UnixMilli()); err != nil {
			return fmt.Errorf("revoke session: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM revoked_sessions WHERE sid IN
			(SELECT sid FROM revoked_sessions WHERE expires_at < ? LIMIT ?)`, now.UnixMilli(), revokedPruneBatch); err != nil {
			return fmt.Errorf("prune revoked sessions: %w", err)
		}
		return nil
	})
}

// SessionRevoked reports whether the dashboard session id sid was revoked (signed out).
func (db *DB) SessionRevoked(ctx context.Context, sid []byte) (bool, error) {
	var one int
	err := db.Read.QueryRowContext(ctx, `SELECT 1 FROM revoked_sessions WHERE sid = ?`, sid).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read revoked sessions: %w", err)
	}
	return true, nil
}
