package store

import (
	"context"
	"database/sql"
	"fmt"
)

// OldestUsage returns the created_at (unix ms) of a workspace's oldest usage row, and false when
// it has none. It reads one entry of the (workspace_id, created_at, id) index. The dashboard uses
// it to know where a windowed search of the usage log can stop.
func (db *DB) OldestUsage(ctx context.Context, workspaceID int64) (int64, bool, error) {
	var at sql.NullInt64
	err := db.Read.QueryRowContext(ctx, `SELECT min(created_at) FROM usage_logs WHERE workspace_id = ?`, workspaceID).Scan(&at)
	if err != nil {
		return 0, false, fmt.Errorf("oldest usage of workspace %d: %w", workspaceID, err)
	}
	return at.Int64, at.Valid, nil
}
