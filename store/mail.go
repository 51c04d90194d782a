package store

import (
	"context"
	"fmt"
)

// Mail log statuses: a message is recorded pending when queued and ends sent, failed (after its
// last attempt) or skipped (no SMTP server configured).
const (
	MailPending = "pending"
	MailSent    = "sent"
	MailFailed  = "failed"
	MailSkipped = "skipped"
)

// MailLog is one row of mail_log: the outcome of one outgoing message. The body is never stored,
// since invite mails carry accept tokens.
type MailLog struct {
	ID        int64
	Kind      string
	To        string
	Subject   string
	Status    string
	Attempts  int
	LastError string
	CreatedAt int64
	UpdatedAt int64
}

// InsertMailLog records a new message (ID, Attempts and LastError of m are ignored) and returns
// its id.
func (db *DB) InsertMailLog(ctx context.Context, m MailLog) (int64, error) {
	var id int64
	err := db.Write.QueryRowContext(ctx, `
		INSERT INTO mail_log (kind, to_addr, subject, status, attempts, last_error, created_at, updated_at)
		VALUES (?, ?, ?, ?, 0, '', ?, ?) RETURNING id`,
		m.Kind, m.To, m.Subject, m.Status, m.CreatedAt, m.CreatedAt).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert mail log: %w", err)
	}
	return id, nil
}

// UpdateMailLog sets the status, attempt count and last error of message id. It returns
// ErrNotFound when no such message is recorded.
func (db *DB) UpdateMailLog(ctx context.Context, id int64, status string, attempts int, lastError string, updatedAt int64) error {
	res, err := db.Write.ExecContext(ctx, `
		UPDATE mail_log SET status = ?, attempts = ?, last_error = ?, updated_at = ? WHERE id = ?`,
		status, attempts, lastError, updatedAt, id)
	if err != nil {
		return fmt.Errorf("update mail log %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update mail log %d: %w", id, err)
	} else if n == 0 {
		return ErrNotFound
	}
	return nil
}

// MailLogByID returns message id, or ErrNotFound.
func (db *DB) MailLogByID(ctx context.Context, id int64) (MailLog, error) {
	rows, err := db.listMailLog(ctx, `WHERE id = ?`, id)
	if err != nil {
		return MailLog{}, err
	}
	if len(rows) == 0 {
		return MailLog{}, ErrNotFound
	}
	return rows[0], nil
}

// RecentMailLog returns up to limit messages, newest first.
func (db *DB) RecentMailLog(ctx context.Context, limit int) ([]MailLog, error) {
	return db.listMailLog(ctx, `ORDER BY id DESC LIMIT ?`, limit)
}

func (db *DB) listMailLog(ctx context.Context, tail string, args ...any) ([]MailLog, error) {
	rows, err := db.Read.QueryContext(ctx, `
		SELECT id, kind, to_addr, subject, status, attempts, last_error, created_at, updated_at
		FROM mail_log `+tail, args...)
	if err != nil {
		return nil, fmt.Errorf("list mail log: %w", err)
	}
	defer rows.Close()
	var out []MailLog
	for rows.Next() {
		var m MailLog
		if err := rows.Scan(&m.ID, &m.Kind, &m.To, &m.Subject, &m.Status, &m.Attempts, &m.LastError, &m.CreatedAt, &m.UpdatedAt); err != nil {
			return nil, fmt.Errorf("list mail log: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list mail log: %w", err)
	}
	return out, nil
}
