// Package storetest opens real, migrated TokenGuard databases in a test's temp dir.
package storetest

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"tokenguard/store"
)

// Schema returns the repository's schema.sql, found relative to this source file so that tests
// in any package can use it.
func Schema(tb testing.TB) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("storetest: cannot locate source file")
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "schema.sql"))
	if err != nil {
		tb.Fatalf("storetest: read schema: %v", err)
	}
	return string(b)
}

// Open returns a migrated database in a file under tb.TempDir(), closed when the test ends.
func Open(tb testing.TB) *store.DB {
	tb.Helper()
	return OpenAt(tb, filepath.Join(tb.TempDir(), "tokenguard.db"))
}

// OpenAt opens (and migrates) the database at path, closed when the test ends; tests that
// restart use it to reopen the same file.
func OpenAt(tb testing.TB, path string) *store.DB {
	tb.Helper()
	db, err := store.Open(context.Background(), path, Schema(tb))
	if err != nil {
		tb.Fatalf("storetest: open %s: %v", path, err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}
