package store

import (
	"context"
	"database/sql/driver"
	"fmt"
	"os"
	"sync"
	"time"
)

// WALLimit is the size the write-ahead log is kept under through sustained writes, however
// readers overlap, as long as no single read transaction lasts longer than the writes that fill
// it (a backup's snapshot can: the log then grows until that read ends, and is truncated at the
// next write after it).
const WALLimit = 64 << 20

// SQLite checkpoints the log itself after a commit that leaves it over 1,000 pages, but such a
// checkpoint only copies pages back; it can start the log over only at a moment when no reader
// is using it. Readers that overlap without a gap (a busy dashboard, polling clients) never leave
// that moment, and the log grows without end. So once the log file passes walForceAt, the writer
// runs a TRUNCATE checkpoint, which waits up to walForceWait for the readers that still need the
// log (readers that start meanwhile read the database file instead, so they do not hold it up)
// and then empties the file. A checkpoint that times out is tried again at most every
// walRetryAfter, so a long reader costs the writer a short stall that often, not on every batch.
const (
	walForceAt    = WALLimit / 4
	walForceWait  = 200 * time.Millisecond
	walRetryAfter = time.Second
)

// walGuard remembers when the last forced checkpoint failed.
type walGuard struct {
	mu       sync.Mutex
	failedAt time.Time
}

// boundWAL forces a checkpoint when the log has grown past walForceAt (see above). WriteTx runs
// it after every commit; it costs one stat while the log is small. A checkpoint that cannot
// finish (readers kept it waiting, or an I/O error, which the next write meets too) is tried
// again after walRetryAfter; it never fails the write that committed before it.
func (db *DB) boundWAL(ctx context.Context) {
	fi, err := os.Stat(FilePath(db.path) + "-wal")
	if err != nil || fi.Size() < walForceAt {
		return
	}
	g := &db.wal
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.failedAt.IsZero() && time.Since(g.failedAt) < walRetryAfter {
		return
	}
	if !db.checkpoint(ctx) {
		g.failedAt = time.Now()
		return
	}
	g.failedAt = time.Time{}
}

// checkpoint runs a TRUNCATE checkpoint that waits at most walForceWait for readers, and
// reports whether it emptied the log.
func (db *DB) checkpoint(ctx context.Context) bool {
	conn, err := db.Write.Conn(ctx)
	if err != nil {
		return false
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA busy_timeout = %d`, walForceWait.Milliseconds())); err != nil {
		return false
	}
	var busy, frames, copied int
	err = conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &copied)
	if _, rerr := conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA busy_timeout = %d`, busyTimeout.Milliseconds())); rerr != nil {
		// A connection left with the short timeout would fail writes that wait for a backup's
		// lock; a fresh one gets the DSN's.
		conn.Raw(func(any) error { return driver.ErrBadConn })
		return false
	}
	return err == nil && busy == 0
}
