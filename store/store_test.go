package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"tokenguard/store"
	"tokenguard/store/storetest"
)

// TestOpenMigratesOnce ensures the schema is applied on first open and reopening is a no-op that
// keeps the data.
func TestOpenMigratesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tg.db")
	db := storetest.OpenAt(t, path)
	ctx := context.Background()
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO meta (key, value) VALUES ('k', 'v')`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = storetest.OpenAt(t, path)
	var v string
	if err := db.Read.QueryRow(`SELECT value FROM meta WHERE key = 'k'`).Scan(&v); err != nil || v != "v" {
		t.Fatalf("after reopen: %q, %v", v, err)
	}
	if db.Postgres() {
		return // the rest are SQLite's settings
	}
	var version int
	db.Read.QueryRow(`PRAGMA user_version`).Scan(&version)
	if version < 1 {
		t.Errorf("user_version = %d, want >= 1", version)
	}
	var mode string
	db.Read.QueryRow(`PRAGMA journal_mode`).Scan(&mode)
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	var fk int
	db.Read.QueryRow(`PRAGMA foreign_keys`).Scan(&fk)
	if fk != 1 {
		t.Errorf("foreign_keys = %d on a read connection, want 1", fk)
	}
}

// TestOpenRejectsBadSchemas ensures a broken migration fails clearly and leaves nothing half done.
func TestOpenRejectsBadSchemas(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := store.Open(ctx, filepath.Join(dir, "a.db"), "CREATE TABLE x (a);"); err == nil {
		t.Error("schema without markers accepted")
	}
	bad := "-- migration: 1\nCREATE TABLE x (a);\n-- migration: 2\nCREATE TABLE x (a);\n"
	if _, err := store.Open(ctx, filepath.Join(dir, "b.db"), bad); err == nil || !strings.Contains(err.Error(), "migration 2") {
		t.Errorf("err = %v, want migration 2 failure", err)
	}
	db, err := store.Open(ctx, filepath.Join(dir, "b.db"), "-- migration: 1\nCREATE TABLE x (a);\n")
	if err != nil {
		t.Fatalf("migration 1 should have committed: %v", err)
	}
	db.Close()
}

// TestWriteTxRollsBack ensures a failing unit of work leaves no trace.
func TestWriteTxRollsBack(t *testing.T) {
	db := storetest.Open(t)
	err := db.WriteTx(context.Background(), func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO meta (key, value) VALUES ('a', 'b')`); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO meta (key, value) VALUES ('a', 'again')`)
		return err
	})
	if err == nil {
		t.Fatal("duplicate key committed")
	}
	var n int
	db.Read.QueryRow(`SELECT count(*) FROM meta`).Scan(&n)
	if n != 0 {
		t.Errorf("rows after rollback = %d, want 0", n)
	}
}

// TestBackupWhileWriting ensures a backup taken under concurrent writes is a complete, consistent
// database, and that an existing target is never overwritten.
func TestBackupWhileWriting(t *testing.T) {
	storetest.SQLiteOnly(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "tg.db")
	db := storetest.OpenAt(t, path)
	ctx := context.Background()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			db.WriteTx(ctx, func(tx *sql.Tx) error {
				_, err := tx.Exec(`INSERT INTO meta (key, value) VALUES (?, 'x')`, fmt.Sprintf("k%d", i))
				return err
			})
		}
	}()
	out := filepath.Join(dir, "backup.db")
	err := store.Backup(ctx, path, out)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	copy := storetest.OpenAt(t, out)
	if err := copy.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	if err := store.Backup(ctx, path, out); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second backup to the same target: err = %v, want refusal", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".backup.db.partial")); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}

	// DATABASE_URL may be a file: URI, as serve accepts it.
	uriOut := filepath.Join(dir, "from-uri.db")
	if err := store.Backup(ctx, "file:"+path+"?mode=rw", uriOut); err != nil {
		t.Fatalf("backup from a file: URI: %v", err)
	}
	if err := storetest.OpenAt(t, uriOut).IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
}
