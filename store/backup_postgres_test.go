package store_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tokenguard/store"
)

// tokenguard backup on PostgreSQL writes nothing and says what to run instead; no server is
// needed to tell.
func TestBackupOnPostgresSaysPgDump(t *testing.T) {
	out := filepath.Join(t.TempDir(), "copy.db")
	err := store.Backup(ctx, "postgres://tg:s3cret@db.internal:5433/tokenguard?sslmode=disable&search_path=tg_prod", out)
	if err == nil {
		t.Fatal("backup of a PostgreSQL database succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"pg_dump --format=custom --schema='tg_prod' --file=tokenguard.dump 'postgres://tg@db.internal:5433/tokenguard'", "pg_restore", "ENCRYPTION_KEY"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "s3cret") {
		t.Errorf("message shows the password:\n%s", msg)
	}
	if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("backup target written (stat: %v)", err)
	}
}
