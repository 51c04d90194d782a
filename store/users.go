package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrConflict is returned by inserts that would duplicate a unique value (an email already
// registered, a user already a member).
var ErrConflict = errors.New("conflict")

// User is one row of users. PasswordHash is a bcrypt hash; SessionEpoch is bumped to revoke
// every session issued before.
type User struct {
	ID           int64
	Email        string
	Name         string
	PasswordHash string
	SessionEpoch int64
	CreatedAt    int64
}

// InsertUser adds u in tx and returns its id. It returns ErrConflict when the email (compared
// case-insensitively) is already registered.
func (db *DB) InsertUser(ctx context.Context, tx *sql.Tx, u User) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `INSERT INTO users (email, name, password_hash, session_epoch, created_at)
		VALUES (?, ?, ?, 0, ?) ON CONFLICT (email) DO NOTHING RETURNING id`,
		u.Email, u.Name, u.PasswordHash, u.CreatedAt).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrConflict
	}
	if err != nil {
		return 0, fmt.Errorf("insert user: %w", err)
	}
	return id, nil
}

const userColumns = `id, email, name, password_hash, session_epoch, created_at`

func scanUser(row *sql.Row) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Email, &u.Name, &u.PasswordHash, &u.SessionEpoch, &u.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("read user: %w", err)
	}
	return u, nil
}

// UserByEmail returns the user registered with email (case-insensitive), or ErrNotFound.
func (db *DB) UserByEmail(ctx context.Context, email string) (User, error) {
	return scanUser(db.Read.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE email = ?`, email))
}

// UserByID returns user id, or ErrNotFound.
func (db *DB) UserByID(ctx context.Context, id int64) (User, error) {
	return scanUser(db.Read.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
}

// SetPassword replaces the user's password hash in tx and bumps their session epoch, which
// revokes every session issued before. It returns the new epoch, or ErrNotFound.
func (db *DB) SetPassword(ctx context.Context, tx *sql.Tx, userID int64, hash string) (int64, error) {
	var epoch int64
	err := tx.QueryRowContext(ctx, `UPDATE users SET password_hash = ?, session_epoch = session_epoch + 1
		WHERE id = ? RETURNING session_epoch`, hash, userID).Scan(&epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("set password of user %d: %w", userID, err)
	}
	return epoch, nil
}
