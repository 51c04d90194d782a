package store

import "context"

// BackfillStep runs one rollup backfill batch of at most n rows, as Open does until none are
// left, and reports whether any are; upgrade tests use it to stop a backfill part-way.
func (db *DB) BackfillStep(ctx context.Context, n int) (more bool, err error) {
	p, err := db.backfillStep(ctx, n)
	return p.more, err
}
