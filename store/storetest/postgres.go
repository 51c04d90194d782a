package storetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/jackc/pgx/v5"

	"tokenguard/store"
)

// PostgresEnv names the throwaway PostgreSQL server the tests use (scripts/pgtest.sh starts one
// and prints it); BackendEnv=postgres makes Open and OpenAt open PostgreSQL instead of SQLite,
// which is how the store's TestMain runs its tests a second time, as the conformance suite of
// the second backend.
const (
	PostgresEnv = "TG_TEST_POSTGRES_URL"
	BackendEnv  = "TG_STORE_BACKEND"
)

// OnPostgres reports whether Open and OpenAt open PostgreSQL in this test binary.
func OnPostgres() bool { return os.Getenv(BackendEnv) == "postgres" }

// SQLiteOnly skips a test of something only the SQLite store has (its file, its write-ahead
// log, its older releases' schemas) when the suite runs on PostgreSQL.
func SQLiteOnly(tb testing.TB) {
	tb.Helper()
	if OnPostgres() {
		tb.Skip("SQLite only: this checks the embedded database's file")
	}
}

// PostgresSchema returns the repository's schema_postgres.sql.
func PostgresSchema(tb testing.TB) string {
	tb.Helper()
	return readRepoFile(tb, "schema_postgres.sql")
}

func readRepoFile(tb testing.TB, name string) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("storetest: cannot locate source file")
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", name))
	if err != nil {
		tb.Fatalf("storetest: read %s: %v", name, err)
	}
	return string(b)
}

// PostgresURL returns a URL of the test server whose search_path is a new, empty schema,
// dropped when the test ends: several store.Open calls on it (several replicas in one test)
// share one database. Without TG_TEST_POSTGRES_URL it skips the test, except in CI (CI set),
// where it fails it.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	var b [8]byte
	rand.Read(b[:])
	return postgresSchemaURL(tb, "t_"+hex.EncodeToString(b[:]))
}

// postgresSchemaURL creates schema (if it does not exist) and returns the URL naming it.
func postgresSchemaURL(tb testing.TB, schema string) string {
	tb.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		if os.Getenv("CI") != "" {
			tb.Fatalf("%s is not set: CI must run the PostgreSQL tests (see scripts/pgtest.sh)", PostgresEnv)
		}
		tb.Skipf("PostgreSQL tests skipped: %s is not set (`source scripts/pgtest.sh` starts a throwaway server)", PostgresEnv)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("storetest: connect to %s: %v", PostgresEnv, err)
	}
	defer conn.Close(ctx)
	tag, err := conn.Exec(ctx, `SELECT 1 FROM pg_namespace WHERE nspname = $1`, schema)
	if err != nil {
		tb.Fatal(err)
	}
	if tag.RowsAffected() == 0 {
		if _, err := conn.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()); err != nil {
			tb.Fatalf("storetest: create schema: %v", err)
		}
		tb.Cleanup(func() {
			conn, err := pgx.Connect(ctx, base)
			if err != nil {
				return
			}
			defer conn.Close(ctx)
			conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
		})
	}
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("storetest: %s: %v", PostgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// OpenPostgres returns a migrated PostgreSQL store in a new schema, closed when the test ends.
func OpenPostgres(tb testing.TB) *store.DB {
	tb.Helper()
	return OpenPostgresURL(tb, PostgresURL(tb))
}

// Replicas opens n stores on one new schema, as n replicas of one cluster would, closed when the
// test ends; it returns the schema's URL too.
func Replicas(tb testing.TB, n int) (string, []*store.DB) {
	tb.Helper()
	u := PostgresURL(tb)
	dbs := make([]*store.DB, n)
	for i := range dbs {
		dbs[i] = OpenPostgresURL(tb, u)
	}
	return u, dbs
}

// OpenPostgresURL opens (and migrates) the PostgreSQL store at u, a URL from PostgresURL, closed
// when the test ends: one more replica on that schema.
func OpenPostgresURL(tb testing.TB, u string) *store.DB {
	tb.Helper()
	db, err := store.Open(context.Background(), u, PostgresSchema(tb))
	if err != nil {
		tb.Fatalf("storetest: open PostgreSQL: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// openPostgresAt opens the schema that stands for the SQLite file path: the same path reopens
// the same schema, so restart tests run unchanged on PostgreSQL.
func openPostgresAt(tb testing.TB, path string) *store.DB {
	tb.Helper()
	sum := sha256.Sum256([]byte(path))
	return OpenPostgresURL(tb, postgresSchemaURL(tb, "f_"+hex.EncodeToString(sum[:8])))
}

// RunBackends runs a package's tests (m.Run) on SQLite and then, in a second run of the same
// test binary with BackendEnv=postgres, on PostgreSQL; it returns the exit code. Without a
// test server the second run is skipped with a message, except in CI, where that fails.
func RunBackends(m interface{ Run() int }) int {
	code := m.Run()
	if OnPostgres() || code != 0 {
		return code
	}
	if os.Getenv(PostgresEnv) == "" {
		if os.Getenv("CI") != "" {
			fmt.Fprintf(os.Stderr, "%s is not set: CI must run the store's tests on PostgreSQL too (see scripts/pgtest.sh)\n", PostgresEnv)
			return 1
		}
		fmt.Fprintf(os.Stderr, "store tests on PostgreSQL skipped: %s is not set (`source scripts/pgtest.sh` starts a throwaway server)\n", PostgresEnv)
		return code
	}
	fmt.Println("--- the same tests on PostgreSQL")
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), BackendEnv+"=postgres")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "store tests on PostgreSQL: %v\n", err)
		return 1
	}
	return 0
}
