// Package storetest opens real, migrated TokenGuard databases: a SQLite file in a test's temp dir,
// or a schema of its own on a throwaway PostgreSQL server (postgres.go).
package storetest

import (
	"context"
	"path/filepath"
	"testing"

	"tokenguard/store"
)

// Schema returns the repository's schema.sql, found relative to this source file so that tests
// in any package can use it.
func Schema(tb testing.TB) string {
	tb.Helper()
	return readRepoFile(tb, "schema.sql")
}

// Open returns a migrated database in a file under tb.TempDir() (in a new schema, when the
// suite runs on PostgreSQL), closed when the test ends.
func Open(tb testing.TB) *store.DB {
	tb.Helper()
	if OnPostgres() {
		return OpenPostgres(tb)
	}
	return OpenAt(tb, filepath.Join(tb.TempDir(), "tokenguard.db"))
}

// OpenAt opens (and migrates) the database at path, closed when the test ends; tests that
// restart use it to reopen the same file.
func OpenAt(tb testing.TB, path string) *store.DB {
	tb.Helper()
	if OnPostgres() {
		return openPostgresAt(tb, path)
	}
	db, err := store.Open(context.Background(), path, Schema(tb))
	if err != nil {
		tb.Fatalf("storetest: open %s: %v", path, err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}
