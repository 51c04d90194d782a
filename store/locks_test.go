package store_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"tokenguard/store"
	"tokenguard/store/storetest"
)

// onPostgresPass skips a test of PostgreSQL sessions in the SQLite pass of the suite: it opens
// its replicas itself, on the PostgreSQL pass's server.
func onPostgresPass(t *testing.T) {
	t.Helper()
	if !storetest.OnPostgres() {
		t.Skip("PostgreSQL only: runs in the suite's PostgreSQL pass")
	}
}

func onSQLitePass(t *testing.T) {
	t.Helper()
	if storetest.OnPostgres() {
		t.Skip("SQLite only: a single node's locks and notifications")
	}
}

func tryLock(t *testing.T, db *store.DB, name string) (func(), bool) {
	t.Helper()
	unlock, ok, err := db.TryLock(ctx, name)
	if err != nil {
		t.Fatalf("TryLock(%q): %v", name, err)
	}
	return unlock, ok
}

func TestTryLockSQLiteAlwaysGranted(t *testing.T) {
	onSQLitePass(t)
	db := storetest.Open(t)
	u1, ok1 := tryLock(t, db, "job")
	u2, ok2 := tryLock(t, db, "job")
	if !ok1 || !ok2 {
		t.Fatalf("SQLite is one node: both locks granted, got %v %v", ok1, ok2)
	}
	u1()
	u2()
}

func TestTryLockExclusiveAcrossReplicas(t *testing.T) {
	onPostgresPass(t)
	_, dbs := storetest.Replicas(t, 2)
	a, b := dbs[0], dbs[1]

	unlockA, ok := tryLock(t, a, "retention")
	if !ok {
		t.Fatal("first lock refused")
	}
	if _, ok := tryLock(t, b, "retention"); ok {
		t.Fatal("second replica got a lock the first holds")
	}
	if _, ok := tryLock(t, a, "retention"); ok {
		t.Fatal("the holder's own pool got the lock again: a job could run twice on one replica")
	}
	unlockB, ok := tryLock(t, b, "webhooks")
	if !ok {
		t.Fatal("another name is another lock, refused")
	}
	unlockB()

	unlockA()
	unlockA() // twice is harmless
	unlockB, ok = tryLock(t, b, "retention")
	if !ok {
		t.Fatal("lock not granted after its holder unlocked")
	}
	defer unlockB()
	if _, ok := tryLock(t, a, "retention"); ok {
		t.Fatal("lock granted to the first replica while the second holds it")
	}
}

// A replica that dies holding a lock must not keep the job locked: the lock ends with its
// session.
func TestTryLockReleasedWhenSessionEnds(t *testing.T) {
	onPostgresPass(t)
	u, dbs := storetest.Replicas(t, 2)
	a, b := dbs[0], dbs[1]
	unlockA, ok := tryLock(t, a, "digest")
	if !ok {
		t.Fatal("lock refused")
	}
	defer unlockA()

	// The session holding the lock, as the server sees it, is ended from outside.
	conn := adminConn(t)
	tag, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND objsubid = 2 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND objid::bigint = (hashtext($1 || '/digest')::bigint & 4294967295)`, searchPath(t, u))
	if err != nil {
		t.Fatal(err)
	}
	if tag.RowsAffected() != 1 {
		t.Fatalf("found %d sessions holding the lock, want 1", tag.RowsAffected())
	}
	unlockB, ok := tryLock(t, b, "digest")
	if !ok {
		t.Fatal("lock still held after its session ended")
	}
	unlockB()
	unlockA() // on a dead session: must not fail or leak
}

// Two TokenGuards in two schemas of one database have locks of their own.
func TestTryLockScopedBySchema(t *testing.T) {
	onPostgresPass(t)
	_, one := storetest.Replicas(t, 1)
	_, other := storetest.Replicas(t, 1)
	u1, ok1 := tryLock(t, one[0], "retention")
	u2, ok2 := tryLock(t, other[0], "retention")
	if !ok1 || !ok2 {
		t.Fatalf("locks of two schemas collide: %v %v", ok1, ok2)
	}
	u1()
	u2()
}

func TestNotifyReachesListenersOfItsSchemaOnly(t *testing.T) {
	onPostgresPass(t)
	u, dbs := storetest.Replicas(t, 1)
	_, other := storetest.Replicas(t, 1)
	l, err := store.Listen(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	if err := other[0].Notify(ctx, "project:1"); err != nil {
		t.Fatal(err)
	}
	if err := dbs[0].Notify(ctx, "project:2"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ev, err := l.Wait(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if ev != "project:2" {
		t.Fatalf("got event %q, want project:2 (project:1 was another schema's)", ev)
	}
}

func TestNotifySQLiteIsANoOp(t *testing.T) {
	onSQLitePass(t)
	if err := storetest.Open(t).Notify(ctx, "project:1"); err != nil {
		t.Fatal(err)
	}
}

func adminConn(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, storetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func searchPath(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Query().Get("search_path")
}
