package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Sealer is the part of secret.Box the key check needs.
type Sealer interface {
	Seal(plaintext []byte, ad string) []byte
	Open(sealed []byte, ad string) ([]byte, error)
}

const encryptionCheck = "encryption_check"

// CheckEncryptionKey makes sure the configured ENCRYPTION_KEY is the one this database's provider
// keys were sealed with. The first start stores a sealed marker; later starts must open it, so a
// wrong key stops the server with a clear message instead of breaking every request that needs a
// stored provider key.
func (db *DB) CheckEncryptionKey(ctx context.Context, box Sealer) error {
	var sealed []byte
	err := db.Write.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, encryptionCheck).Scan(&sealed)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_, err = db.Write.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)`, encryptionCheck, box.Seal([]byte(encryptionCheck), encryptionCheck))
		if err != nil {
			return fmt.Errorf("store encryption key check: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("read encryption key check: %w", err)
	}
	if _, err := box.Open(sealed, encryptionCheck); err != nil {
		return errors.New("ENCRYPTION_KEY does not match the key this database was created with: stored provider keys cannot be decrypted; restore the original ENCRYPTION_KEY (see tokenguard.secrets beside the database)")
	}
	return nil
}
