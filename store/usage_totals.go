package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrTooManyRows is returned by UsageRawTotals when the range holds more rows than it may
// read.
var ErrTooManyRows = errors.New("too many rows to sum")

// UsageRawTotals sums the usage rows of f's range (and f's project, provider and model) with
// HTTP status status and end user endUser (0 and "": any), for the usage log's totals under a
// filter the rollups do not keep, so it reads the rows themselves. It first counts, by the
// (workspace_id, created_at) index, at most maxRows+1 rows of the range, and returns
// ErrTooManyRows when there are more, so it never reads more than about 2×maxRows rows.
func (db *DB) UsageRawTotals(ctx context.Context, f AnalyticsFilter, endUser string, status, maxRows int) (UsageAggregate, error) {
	if f.WorkspaceID <= 0 || f.To <= f.From || maxRows <= 0 {
		return UsageAggregate{}, errors.New("usage raw totals: workspace, a non-empty range and a row bound are required")
	}
	// Both statements read one snapshot, so the count bounds the rows the sum reads.
	tx, err := db.Read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return UsageAggregate{}, fmt.Errorf("usage raw totals: %w", err)
	}
	defer tx.Rollback()
	var inRange int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM usage_logs
		WHERE workspace_id = ? AND created_at >= ? AND created_at < ? LIMIT ?) AS bounded`,
		f.WorkspaceID, f.From, f.To, maxRows+1).Scan(&inRange); err != nil {
		return UsageAggregate{}, fmt.Errorf("usage raw totals: %w", err)
	}
	if inRange > maxRows {
		return UsageAggregate{}, fmt.Errorf("usage raw totals: more than %d rows in the range: %w", maxRows, ErrTooManyRows)
	}
	rows, err := aggregate(ctx, tx, db.pg, f, rawFilter{endUser: endUser, status: status}, GroupNone, 0)
	if err != nil {
		return UsageAggregate{}, fmt.Errorf("usage raw totals: %w", err)
	}
	return rows[0], nil
}
