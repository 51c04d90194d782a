package store

// Cluster coordination on PostgreSQL, for N replicas sharing one database: advisory locks, so a
// background job runs on one replica at a time, and change notifications (NOTIFY), so a change
// made through one replica reaches the caches of the others. On SQLite there is one node: every
// lock is granted at once and there is nobody to notify.
//
// Advisory locks and notification channels belong to the whole PostgreSQL database, not to a
// schema, while one TokenGuard is one schema (its search_path). Both are therefore scoped by
// current_schema(), so two TokenGuards sharing a database — or the tests, which give each case
// its own schema — never take each other's locks or read each other's changes.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// ChangeChannel is the PostgreSQL notification channel change events are published on. A
// notification's payload is the publisher's schema, a space, and the event (e.g.
// "public project:12").
const ChangeChannel = "tokenguard_changes"

// lockKey is the two-key advisory lock of the name given as the statement's argument: the first
// key is TokenGuard's, so they cannot meet the one-key (bigint) locks another application on the
// same database takes (the migration lock among them), the second the schema and the name.
const lockKey = `hashtext('tokenguard'), hashtext(current_schema() || '/' || ?)`

// TryLock takes the cluster-wide lock name without waiting: ok is false when another replica
// holds it. The lock lives on one database session pinned for it, so it is released by unlock
// and also when that session ends (the replica died or lost its connection): a crashed replica
// never leaves a job locked. unlock is safe to call more than once. On SQLite the lock is
// always granted and unlock does nothing.
func (db *DB) TryLock(ctx context.Context, name string) (unlock func(), ok bool, err error) {
	if !db.Postgres() {
		return func() {}, true, nil
	}
	conn, err := db.Write.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("lock %s: pin a connection: %w", name, err)
	}
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(`+lockKey+`)`, name).Scan(&ok); err != nil {
		discard(conn)
		return nil, false, fmt.Errorf("lock %s: %w", name, err)
	}
	if !ok {
		conn.Close()
		return nil, false, nil
	}
	var once sync.Once
	return func() { once.Do(func() { release(ctx, conn, name) }) }, true, nil
}

// release ends the lock name held on conn and gives conn back to the pool, or throws the
// session away when the lock cannot be released on it.
func release(ctx context.Context, conn *sql.Conn, name string) {
	// Detached from ctx: the job's context is often cancelled by the time it unlocks
	// (shutdown), and the lock must be released all the same.
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockReleaseTimeout)
	defer cancel()
	var freed bool
	err := conn.QueryRowContext(uctx, `SELECT pg_advisory_unlock(`+lockKey+`)`, name).Scan(&freed)
	if err != nil || !freed {
		// Back in the pool the session would keep holding the lock: end it instead.
		discard(conn)
		return
	}
	conn.Close()
}

// lockReleaseTimeout bounds the unlock statement; past it the session is dropped, which
// releases the lock too.
const lockReleaseTimeout = 5 * time.Second

// discard closes conn and keeps database/sql from reusing its session (driver.ErrBadConn from
// Raw makes the pool throw the connection away).
func discard(conn *sql.Conn) {
	conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
}

// Notify publishes event on ChangeChannel to every replica listening (Listen), this one
// included. PostgreSQL delivers it once the statement commits, to the sessions listening at
// that moment. On SQLite it does nothing.
func (db *DB) Notify(ctx context.Context, event string) error {
	if !db.Postgres() {
		return nil
	}
	if _, err := db.Write.ExecContext(ctx, `SELECT pg_notify(?, current_schema() || ' ' || ?)`, ChangeChannel, event); err != nil {
		return fmt.Errorf("notify %s: %w", event, err)
	}
	return nil
}

// Listener is one dedicated PostgreSQL session listening on ChangeChannel. It is not safe for
// concurrent use: one goroutine waits on it.
type Listener struct {
	conn   *pgx.Conn
	schema string
}

// ListenerAppName is the application_name of listener sessions, so they are easy to tell apart
// in pg_stat_activity.
const ListenerAppName = "tokenguard-listener"

// Listen opens a session of its own on the PostgreSQL database at url (the DATABASE_URL the
// store was opened with; its search_path picks the schema) and listens on ChangeChannel. It
// reports only the events published from the same schema.
func Listen(ctx context.Context, url string) (*Listener, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("listen: parse database URL: %w", err)
	}
	cfg.RuntimeParams["application_name"] = ListenerAppName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("listen: connect: %w", err)
	}
	l := &Listener{conn: conn}
	if _, err := conn.Exec(ctx, `LISTEN `+ChangeChannel); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("listen: %w", err)
	}
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&l.schema); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("listen: read schema: %w", err)
	}
	return l, nil
}

// Wait blocks until the next event of this schema arrives and returns it, or returns an error
// when ctx ends (the session stays usable) or the session is lost (it does not: Close it and
// Listen again).
func (l *Listener) Wait(ctx context.Context) (string, error) {
	for {
		n, err := l.conn.WaitForNotification(ctx)
		if err != nil {
			return "", err
		}
		schema, event, ok := strings.Cut(n.Payload, " ")
		if ok && schema == l.schema {
			return event, nil
		}
	}
}

// Ping checks the session is still alive; Wait alone would not notice a connection that went
// silent.
func (l *Listener) Ping(ctx context.Context) error { return l.conn.Ping(ctx) }

// PID is the listener session's backend process id (pg_stat_activity.pid).
func (l *Listener) PID() uint32 { return l.conn.PgConn().PID() }

// Close ends the session.
func (l *Listener) Close(ctx context.Context) error { return l.conn.Close(ctx) }

// IsClosed reports whether the session is lost.
func (l *Listener) IsClosed() bool { return l.conn.IsClosed() }
