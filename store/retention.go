package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Retained is how far back each kind of usage data is whole. Rows before RawSince may have been
// pruned from usage_logs (an hour start), hourly rollups before HourlySince from usage_hourly (a
// day start); 0 means none ever were. Daily rollups are never pruned.
type Retained struct {
	RawSince    int64
	HourlySince int64
}

// RawPrunedFrom reports whether a range that starts at from (unix ms; 0 for the beginning)
// reaches back before the usage rows retention kept, so that rows it asks for may be gone.
func (r Retained) RawPrunedFrom(from int64) bool {
	return r.RawSince > 0 && from < r.RawSince
}

// The meta keys of Retained. Each is raised in the same transaction as the deletes it covers,
// so a reader that reads it and the data in one snapshot never takes a pruned span for a whole
// one.
const (
	metaRawSince    = "usage_raw_since"
	metaHourlySince = "usage_hourly_since"
)

// queryRower is a *sql.DB or *sql.Tx.
type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Retained returns how far back usage rows and hourly rollups are whole (see Retained).
func (db *DB) Retained(ctx context.Context) (Retained, error) {
	return readRetained(ctx, db.Read, db.pg)
}

// metaNumber is the meta column that holds a number: SQLite's value column takes any type,
// PostgreSQL's is bytea (the sealed key check) beside a bigint num.
func metaNumber(pg bool) string {
	if pg {
		return "num"
	}
	return "value"
}

func readRetained(ctx context.Context, q queryRower, pg bool) (Retained, error) {
	var r Retained
	col := metaNumber(pg)
	err := q.QueryRowContext(ctx, `SELECT
		coalesce((SELECT `+col+` FROM meta WHERE key = ?), 0), coalesce((SELECT `+col+` FROM meta WHERE key = ?), 0)`,
		metaRawSince, metaHourlySince).Scan(&r.RawSince, &r.HourlySince)
	if err != nil {
		return Retained{}, fmt.Errorf("read usage retention: %w", err)
	}
	return r, nil
}

// pruneTarget is a table that PruneUsage and PruneHourly delete from in batches.
type pruneTarget struct {
	table, timeColumn, metaKey string
	// batch deletes the rows of the subquery ($1 workspace, $2 before, $3 limit).
	batch string
}

var (
	pruneRaw = pruneTarget{"usage_logs", "created_at", metaRawSince,
		`DELETE FROM usage_logs WHERE id IN (SELECT id FROM usage_logs
			WHERE workspace_id = ?1 AND created_at < ?2 ORDER BY created_at LIMIT ?3)`}
	pruneHourly = pruneTarget{hourlyTable, "period_start", metaHourlySince,
		`DELETE FROM usage_hourly WHERE (workspace_id, period_start, project_id, provider, final_model, original_model) IN
			(SELECT workspace_id, period_start, project_id, provider, final_model, original_model FROM usage_hourly
			WHERE workspace_id = ?1 AND period_start < ?2 ORDER BY period_start LIMIT ?3)`}
)

// PruneUsage deletes, in one write transaction, at most n usage rows of workspace ws created
// before before (unix ms; it must be an hour start, so the hourly rollups answer what is gone
// exactly), oldest first, and raises Retained.RawSince to before. It returns how many rows it
// deleted: fewer than n means none are left. Callers loop over small n so that the write
// connection, which the usage writer shares, is held a few milliseconds at a time.
func (db *DB) PruneUsage(ctx context.Context, ws, before int64, n int) (int64, error) {
	if floorTo(before, hourMs) != before {
		return 0, fmt.Errorf("prune usage rows before %d: not an hour start", before)
	}
	return db.prune(ctx, pruneRaw, ws, before, n)
}

// PruneHourly is PruneUsage for hourly rollups; before must be a UTC day start, so the daily
// rollups answer what is gone exactly, and it raises Retained.HourlySince.
func (db *DB) PruneHourly(ctx context.Context, ws, before int64, n int) (int64, error) {
	if floorTo(before, dayMs) != before {
		return 0, fmt.Errorf("prune hourly rollups before %d: not a day start", before)
	}
	return db.prune(ctx, pruneHourly, ws, before, n)
}

func (db *DB) prune(ctx context.Context, t pruneTarget, ws, before int64, n int) (int64, error) {
	if ws <= 0 || n <= 0 {
		return 0, errors.New("prune: a workspace and a positive batch size are required")
	}
	var deleted int64
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		col := metaNumber(db.pg)
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, `+col+`) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET `+col+` = `+greatest(db.pg)+`(meta.`+col+`, excluded.`+col+`)`, t.metaKey, before); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, t.batch, ws, before, n)
		if err != nil {
			return err
		}
		deleted, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune %s of workspace %d before %d: %w", t.table, ws, before, err)
	}
	return deleted, nil
}

// UsageWorkspaces returns the ids of the workspaces that have usage rows or hourly rollups, a
// few index seeks per workspace whatever the tables' size. Rows of a deleted workspace stay
// until retention prunes them, so this is not the workspaces table.
func (db *DB) UsageWorkspaces(ctx context.Context) ([]int64, error) {
	var out []int64
	for last := int64(0); ; {
		var next sql.NullInt64
		err := db.Read.QueryRowContext(ctx, `SELECT min(ws) FROM (
			SELECT min(workspace_id) AS ws FROM usage_logs WHERE workspace_id > ?1
			UNION ALL SELECT min(workspace_id) FROM usage_hourly WHERE workspace_id > ?1) AS firsts`, last).Scan(&next)
		if err != nil {
			return nil, fmt.Errorf("list workspaces with usage: %w", err)
		}
		if !next.Valid {
			return out, nil
		}
		out = append(out, next.Int64)
		last = next.Int64
	}
}

// AutoVacuum is the database's auto_vacuum mode: 0 none, 1 full, 2 incremental.
// On PostgreSQL, whose autovacuum makes deleted rows' space reusable, it reports 2.
func (db *DB) AutoVacuum(ctx context.Context) (int, error) {
	if db.pg {
		return 2, nil
	}
	var mode int
	if err := db.Write.QueryRowContext(ctx, `PRAGMA auto_vacuum`).Scan(&mode); err != nil {
		return 0, fmt.Errorf("read auto_vacuum: %w", err)
	}
	return mode, nil
}

// EnableIncrementalVacuum switches the database to auto_vacuum=INCREMENTAL, which on a file
// that has tables takes a full VACUUM: it rewrites the whole file, holds the write connection
// until done (seconds per million usage rows) and needs free disk about the file's size. Run it
// before serving, once; IncrementalVacuum then returns freed pages cheaply.
// On PostgreSQL there is nothing to switch: AutoVacuum reports it done.
func (db *DB) EnableIncrementalVacuum(ctx context.Context) error {
	if db.pg {
		return nil
	}
	if _, err := db.Write.ExecContext(ctx, `PRAGMA auto_vacuum = INCREMENTAL`); err != nil {
		return fmt.Errorf("set auto_vacuum: %w", err)
	}
	if _, err := db.Write.ExecContext(ctx, `VACUUM`); err != nil {
		return fmt.Errorf("vacuum %s (needs free disk about its size): %w", db.path, err)
	}
	return nil
}

// IncrementalVacuum returns at most pages free pages to the filesystem (one statement, which
// holds the write connection for as long as it moves those pages) and reports how many it freed,
// how many are left, and the page size. It frees nothing unless auto_vacuum is INCREMENTAL.
// On PostgreSQL it frees nothing: autovacuum reuses the space.
func (db *DB) IncrementalVacuum(ctx context.Context, pages int) (freed, left, pageSize int64, err error) {
	if db.pg {
		return 0, 0, 0, nil
	}
	const free = `SELECT freelist_count, page_size FROM pragma_freelist_count, pragma_page_size`
	var before int64
	if err := db.Write.QueryRowContext(ctx, free).Scan(&before, &pageSize); err != nil {
		return 0, 0, 0, fmt.Errorf("read free pages: %w", err)
	}
	// N must be positive: incremental_vacuum(0) frees the whole list in one statement.
	if _, err := db.Write.ExecContext(ctx, fmt.Sprintf(`PRAGMA incremental_vacuum(%d)`, max(pages, 1))); err != nil {
		return 0, 0, 0, fmt.Errorf("incremental vacuum: %w", err)
	}
	if err := db.Write.QueryRowContext(ctx, free).Scan(&left, &pageSize); err != nil {
		return 0, 0, 0, fmt.Errorf("read free pages: %w", err)
	}
	return max(before-left, 0), left, pageSize, nil
}
