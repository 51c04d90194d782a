// Package store is TokenGuard's persistence: it opens the database — an embedded SQLite file by
// default, or a PostgreSQL server that several replicas share (postgres.go) — migrates it, and
// holds every SQL statement the program runs, written once for both. It knows nothing of HTTP,
// budgets or pricing; the app packages call it with plain values and get plain records back.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the CGO-free "sqlite" driver
)

// ErrNotFound is returned by lookups that match no row.
var ErrNotFound = errors.New("not found")

// minSQLite is the oldest bundled SQLite we run on: releases before 3.51.3 can corrupt a WAL
// database when a checkpoint races a WAL reset.
var minSQLite = [3]int{3, 51, 3}

// DB is an open TokenGuard database: one connection for writes, so transactions queue in Go
// instead of failing with SQLITE_BUSY, and a pool of read-only connections that WAL lets run
// beside the writer.
type DB struct {
	Write *sql.DB
	Read  *sql.DB
	path  string
	// usageInsert caches InsertUsage's prepared statements (store/usage.go).
	usageInsert insertStmts
	// versions caches the ids of the prices versions usage rows name (store/usage_ids.go).
	versions pricesVersions
	// wal paces forced checkpoints (store/wal.go).
	wal walGuard
	// pg is set on PostgreSQL, where Write and Read are one pool (postgres.go).
	pg bool
}

// Open opens (creating if needed) the database at path — a file path or a "file:" URI, or a
// postgres:// URL — and applies every migration of schema (schema.sql, or schema_postgres.sql for
// a URL) that the database has not seen yet. It refuses a bundled SQLite older than 3.51.3 and a
// PostgreSQL server older than 14.
func Open(ctx context.Context, path, schema string) (*DB, error) {
	if path == "" {
		return nil, errors.New("open database: empty path")
	}
	if IsPostgres(path) {
		return openPostgres(ctx, path, schema)
	}
	if err := createPrivate(path); err != nil {
		return nil, err
	}
	write, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)

	db := &DB{Write: write, path: path}
	if err := db.checkVersion(ctx); err != nil {
		write.Close()
		return nil, err
	}
	if err := db.migrate(ctx, schema); err != nil {
		write.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if err := db.backfillRollups(ctx, slog.Default()); err != nil {
		write.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// A file that opens but cannot be written (read-only file, directory or mount, full disk)
	// would otherwise start a server that can record no usage; refuse it here, by name.
	if err := db.ProbeWrite(ctx); err != nil {
		write.Close()
		return nil, fmt.Errorf("database %s does not take writes (read-only file, directory or mount, or disk full?): %w", path, err)
	}

	read, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open database %s for reading: %w", path, err)
	}
	read.SetMaxOpenConns(8)
	read.SetMaxIdleConns(8)
	db.Read = read
	return db, nil
}

// Close closes both pools.
func (db *DB) Close() error {
	var errs []error
	if db.Read != nil && db.Read != db.Write {
		errs = append(errs, db.Read.Close())
	}
	errs = append(errs, db.Write.Close())
	return errors.Join(errs...)
}

// Path is the database location the DB was opened with (a PostgreSQL URL without its password).
func (db *DB) Path() string { return db.path }

// ProbeWrite commits one small write — the schema version rewritten with its own value, which
// touches no table — so it fails when the database cannot take writes: a read-only file or
// mount, or no space for the write-ahead log to grow. Open runs it; readiness checks may too.
// SQLite recovers from such failures on the same connection (the transaction is rolled back,
// and the next one succeeds once the file is writable again), so nothing needs resetting after
// it fails.
func (db *DB) ProbeWrite(ctx context.Context) error {
	if db.pg {
		return db.WriteTx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE tokenguard_schema SET version = version`)
			return err
		})
	}
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		var v int
		if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, v))
		return err
	})
}

// WriteTx runs fn in one write transaction: it commits when fn returns nil and rolls back
// otherwise. On SQLite (BEGIN IMMEDIATE) write transactions run one at a time; on PostgreSQL
// they are SERIALIZABLE, so the read-then-write steps the store's callers take behave as they
// do on one node however many replicas run them at once. PostgreSQL aborts one side of a
// conflict; fn is then run again, up to pgAttempts times, so it must not keep state from one
// run to the next outside the transaction.
func (db *DB) WriteTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if db.pg {
		return db.pgTx(ctx, sql.LevelSerializable, fn)
	}
	if err := runTx(ctx, db.Write, nil, fn); err != nil {
		return err
	}
	db.boundWAL(ctx)
	return nil
}

// runTx runs fn in a transaction of pool with opts, committing when fn returns nil.
func runTx(ctx context.Context, pool *sql.DB, opts *sql.TxOptions, fn func(tx *sql.Tx) error) error {
	tx, err := pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// createPrivate creates a new database file readable by its owner only: it holds password and
// key hashes, sealed provider keys and every usage record.
func createPrivate(path string) error {
	if strings.HasPrefix(path, "file:") {
		return nil // a URI may name modes or memory databases; leave it to SQLite
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database %s: %w", path, err)
	}
	return f.Close()
}

// busyTimeout is how long a statement waits for a lock another connection holds (a backup's, a
// checkpoint's) before it fails with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// dsn puts every pragma into the connection string, so each pooled connection gets them, not
// just the first one.
func dsn(path string, readOnly bool) string {
	params := url.Values{}
	params.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	params.Add("_pragma", "journal_mode(WAL)")
	params.Add("_pragma", "foreign_keys(1)")
	// NORMAL in WAL mode is durable against application crashes; only an OS crash or power
	// loss can drop the last transactions, never corrupt the file.
	params.Add("_pragma", "synchronous(NORMAL)")
	if readOnly {
		params.Add("_pragma", "query_only(1)")
	} else {
		params.Set("_txlock", "immediate")
		// A usage batch dirties more pages than the default 2 MB cache holds, which then spills
		// them to the log mid-transaction and writes them again at commit; 32 MB holds any batch.
		// Statement journals (a multi-row INSERT keeps one) stay in memory.
		params.Add("_pragma", "cache_size(-32768)")
		params.Add("_pragma", "temp_store(MEMORY)")
	}
	base := path
	if !strings.HasPrefix(base, "file:") {
		base = "file:" + base
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + params.Encode()
}

func (db *DB) checkVersion(ctx context.Context) error {
	var v string
	if err := db.Write.QueryRowContext(ctx, `SELECT sqlite_version()`).Scan(&v); err != nil {
		// The first statement opens the file: a read-only mount or a full disk fails here.
		return fmt.Errorf("open database %s: %w (the file and its directory must be writable, with free space for the -wal and -shm files beside it)", db.path, err)
	}
	if !versionAtLeast(v, minSQLite) {
		return fmt.Errorf("bundled SQLite %s is older than %d.%d.%d, which fixes a WAL corruption bug; rebuild with a newer modernc.org/sqlite", v, minSQLite[0], minSQLite[1], minSQLite[2])
	}
	return nil
}

func versionAtLeast(v string, min [3]int) bool {
	parts := strings.SplitN(v, ".", 3)
	for i := 0; i < 3; i++ {
		n := 0
		if i < len(parts) {
			n, _ = strconv.Atoi(parts[i])
		}
		if n != min[i] {
			return n > min[i]
		}
	}
	return true
}

var migrationMarker = regexp.MustCompile(`(?m)^-- migration: (\d+)\s*$`)

type migration struct {
	version int
	sql     string
}

// migrations splits schema at its "-- migration: N" markers; numbers must rise by one from 1.
func migrations(schema string) ([]migration, error) {
	locs := migrationMarker.FindAllStringSubmatchIndex(schema, -1)
	if len(locs) == 0 {
		return nil, errors.New("schema has no migration markers")
	}
	var out []migration
	for i, loc := range locs {
		n, _ := strconv.Atoi(schema[loc[2]:loc[3]])
		if n != i+1 {
			return nil, fmt.Errorf("schema migration %d out of order (want %d)", n, i+1)
		}
		end := len(schema)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		out = append(out, migration{version: n, sql: schema[loc[1]:end]})
	}
	return out, nil
}

func (db *DB) migrate(ctx context.Context, schema string) error {
	steps, err := migrations(schema)
	if err != nil {
		return err
	}
	var current int
	if err := db.Write.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > len(steps) {
		return fmt.Errorf("database schema version %d is newer than this binary knows (%d); run a newer TokenGuard", current, len(steps))
	}
	for _, step := range steps[current:] {
		err := db.WriteTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, step.sql); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, step.version))
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %d: %w", step.version, err)
		}
	}
	return nil
}
