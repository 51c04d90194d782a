package store

// PostgreSQL dialect. The same store code runs on both backends: statements are written once,
// with SQLite's "?" and "?N" placeholders, and this file's connector rewrites them to
// PostgreSQL's "$N" as they reach pgx. Where the two languages differ (a handful of functions,
// RETURNING instead of last_insert_rowid), the statement asks db.pg. The PostgreSQL schema is
// its own file (schema_postgres.sql) with the same tables and columns.
//
// Why a rewriting connector rather than a second copy of every statement: two copies drift, and
// the conformance suite (the store's tests, run once per backend by TestMain) would then test
// two programs. No maintained library rewrites placeholders under database/sql for pgx, and the
// rewrite is a small scanner that skips quoted text and comments.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// IsPostgres reports whether a DATABASE_URL names a PostgreSQL server rather than a SQLite file.
func IsPostgres(location string) bool {
	return strings.HasPrefix(location, "postgres://") || strings.HasPrefix(location, "postgresql://")
}

// minPostgres is the oldest PostgreSQL server TokenGuard runs on (server_version_num): 14 is the
// oldest release still supported upstream, and the schema needs 12's nondeterministic
// collations and 10's identity columns.
const minPostgres = 140000

// PostgresPoolSize is how many connections a replica keeps to PostgreSQL. Admissions, usage
// batches and dashboard reads share it; PostgreSQL's default max_connections (100) fits a few
// replicas.
const PostgresPoolSize = 16

// pgConnectTimeout bounds dialing PostgreSQL, so an unreachable server fails a request (closed,
// on money) in bounded time instead of hanging it.
const pgConnectTimeout = 5 * time.Second

func openPostgres(ctx context.Context, location, schema string) (*DB, error) {
	cfg, err := pgx.ParseConfig(location)
	if err != nil {
		// pgx's message can quote the URL, password included.
		return nil, errors.New("open PostgreSQL: DATABASE_URL is not a valid PostgreSQL connection URL")
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > pgConnectTimeout {
		cfg.ConnectTimeout = pgConnectTimeout
	}
	pool := sql.OpenDB(rebindConnector{Connector: stdlib.GetConnector(*cfg), cache: new(sync.Map)})
	pool.SetMaxOpenConns(PostgresPoolSize)
	pool.SetMaxIdleConns(PostgresPoolSize)
	pool.SetConnMaxIdleTime(5 * time.Minute)
	db := &DB{Write: pool, Read: pool, pg: true, path: redactURL(location)}
	var num int
	if err := pool.QueryRowContext(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&num); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open PostgreSQL %s: %w", db.path, err)
	}
	if num < minPostgres {
		pool.Close()
		return nil, fmt.Errorf("PostgreSQL %d.%d is older than 14, the oldest release TokenGuard supports; upgrade the server", num/10000, num%10000)
	}
	if err := db.migratePostgres(ctx, schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open PostgreSQL %s: %w", db.path, err)
	}
	return db, nil
}

// redactURL is location without its password, for messages and logs.
func redactURL(location string) string {
	cfg, err := pgconn.ParseConfig(location)
	if err != nil {
		return "(unparsable URL)"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// migrationLock is the advisory lock key replicas take while migrating, so that several
// starting at once apply each step once.
const migrationLock = 0x746f6b656e67 // "tokeng"

func (db *DB) migratePostgres(ctx context.Context, schema string) error {
	steps, err := migrations(schema)
	if err != nil {
		return err
	}
	conn, err := db.Write.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(?)`, migrationLock); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(?)`, migrationLock)
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS tokenguard_schema (version BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("create the schema version table: %w", err)
	}
	var current int
	err = conn.QueryRowContext(ctx, `SELECT version FROM tokenguard_schema`).Scan(&current)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := conn.ExecContext(ctx, `INSERT INTO tokenguard_schema (version) VALUES (0)`); err != nil {
			return fmt.Errorf("record the schema version: %w", err)
		}
	case err != nil:
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > len(steps) {
		return fmt.Errorf("database schema version %d is newer than this binary knows (%d); run a newer TokenGuard", current, len(steps))
	}
	for _, step := range steps[current:] {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		// Without arguments pgx sends the step whole over the simple protocol, which takes the
		// many statements a migration holds.
		if _, err := tx.ExecContext(ctx, step.sql); err != nil {
			tx.Rollback()
			return fmt.Errorf("apply migration %d: %w", step.version, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE tokenguard_schema SET version = ?`, step.version); err != nil {
			tx.Rollback()
			return fmt.Errorf("apply migration %d: %w", step.version, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("apply migration %d: %w", step.version, err)
		}
	}
	return nil
}

// Postgres reports whether db runs on PostgreSQL.
func (db *DB) Postgres() bool { return db.pg }

// retryable is a PostgreSQL error a transaction can be run again after: a serialization failure
// or a deadlock, which PostgreSQL resolves by aborting one side.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// rebindConnector hands out pgx connections that take SQLite's placeholders. cache holds the
// rewritten statements, shared by the pool's connections: the store's statements are a few
// hundred constants.
type rebindConnector struct {
	driver.Connector
	cache *sync.Map
}

func (c rebindConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return rebindConn{Conn: conn.(*stdlib.Conn), cache: c.cache}, nil
}

// rebindConn is a pgx connection whose statements are rewritten by rebind, and whose Go bool
// arguments are stored as 0 and 1, as SQLite stores them: the schema keeps integer flags on both
// backends.
type rebindConn struct {
	*stdlib.Conn
	cache *sync.Map
}

func (c rebindConn) rebind(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	if q, ok := c.cache.Load(query); ok {
		return q.(string)
	}
	q := rebind(query)
	c.cache.Store(query, q)
	return q
}

func (c rebindConn) Prepare(query string) (driver.Stmt, error) {
	return c.Conn.Prepare(c.rebind(query))
}

func (c rebindConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, c.rebind(query))
}

// ExecContext leaves a statement without arguments as it is: a migration step, whose function
// bodies ($$…$$) the rewriter does not parse, takes none.
func (c rebindConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if len(args) == 0 {
		return c.Conn.ExecContext(ctx, query, args)
	}
	return c.Conn.ExecContext(ctx, c.rebind(query), args)
}

func (c rebindConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.QueryContext(ctx, c.rebind(query), args)
}

func (c rebindConn) CheckNamedValue(v *driver.NamedValue) error {
	if b, ok := v.Value.(bool); ok {
		v.Value = int64(0)
		if b {
			v.Value = int64(1)
		}
	}
	return c.Conn.CheckNamedValue(v)
}

// rebind rewrites "?" and "?N" placeholders to "$N", leaving quoted strings, quoted identifiers
// and comments alone. A bare "?" takes the next number, as SQLite numbers them.
func rebind(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	next := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(query) && query[j] != c {
				j++
			}
			b.WriteString(query[i:min(j+1, len(query))])
			i = j
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				j = len(query) - i
			}
			b.WriteString(query[i : i+j])
			i += j - 1
		case c == '?':
			j := i + 1
			for j < len(query) && query[j] >= '0' && query[j] <= '9' {
				j++
			}
			n := next + 1
			if j > i+1 {
				n, _ = strconv.Atoi(query[i+1 : j])
			}
			next = max(next, n)
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// pgAttempts is how many times a PostgreSQL transaction runs when PostgreSQL aborts it for a
// conflict with a concurrent one.
const pgAttempts = 8

// pgTx runs fn in a transaction at level, again when PostgreSQL aborts it for a conflict.
func (db *DB) pgTx(ctx context.Context, level sql.IsolationLevel, fn func(tx *sql.Tx) error) error {
	var err error
	for attempt := 0; attempt < pgAttempts; attempt++ {
		if err = runTx(ctx, db.Write, &sql.TxOptions{Isolation: level}, fn); !retryable(err) {
			return err
		}
		// A short, growing pause lets the transaction that won finish.
		select {
		case <-time.After(time.Duration(attempt+1) * time.Millisecond):
		case <-ctx.Done():
			return err
		}
	}
	return err
}

// greatest is the SQL function of the larger of two values: SQLite's max takes several
// arguments, PostgreSQL's is an aggregate only.
func greatest(pg bool) string {
	if pg {
		return "greatest"
	}
	return "max"
}

// usageTx runs a usage batch's transaction. On PostgreSQL it is READ COMMITTED: the batch only
// inserts and adds to counters with single-statement upserts, which are atomic at that level,
// and SERIALIZABLE would abort the batches of replicas adding to the same day's counters.
func (db *DB) usageTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if db.pg {
		return db.pgTx(ctx, sql.LevelReadCommitted, fn)
	}
	return db.WriteTx(ctx, fn)
}
