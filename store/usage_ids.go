package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"sync"
)

// requestIDBytes is the size of a request id (usage.NewRequestID) stored as a blob: its 32 hex
// digits take 16 bytes, where as text they took 33 in the row and again in the unique index.
const requestIDBytes = 16

// requestIDArg is the value stored for a request id: its 16 bytes, decoded into buf, when it is
// 32 lower-case hex digits (every id the proxy makes), else the text as given, which rows
// written before migration 7 hold too. Either form reads back as the same text (requestIDColumn).
func requestIDArg(id string, buf []byte) any {
	if len(id) != 2*requestIDBytes || !isLowerHex(id) {
		return id
	}
	if _, err := hex.Decode(buf, []byte(id)); err != nil {
		return id
	}
	return buf
}

func isLowerHex(s string) bool {
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// requestIDColumn scans a request_id, blob or text, into its text form.
type requestIDColumn string

func (c *requestIDColumn) Scan(v any) error {
	switch v := v.(type) {
	case []byte:
		*c = requestIDColumn(hex.EncodeToString(v))
	case string:
		*c = requestIDColumn(v)
	default:
		return fmt.Errorf("request_id: unexpected %T", v)
	}
	return nil
}

var _ sql.Scanner = (*requestIDColumn)(nil)

// pricesVersions caches the ids of prices_versions rows (migration 7), so that a usage row names
// its prices with a small integer. Versions change only when prices are refreshed, so the cache
// stays a few entries long.
type pricesVersions struct {
	mu  sync.Mutex
	ids map[string]int64
}

// pricesVersionIDs returns the id of every prices version the rows name ("" has id 0), adding
// the versions not yet stored in their own transaction before the batch's: an id is never
// cached unless its row is committed, so no usage row can name a version that is not there.
func (db *DB) pricesVersionIDs(ctx context.Context, rows []UsageRow) (map[string]int64, error) {
	pv := &db.versions
	pv.mu.Lock()
	defer pv.mu.Unlock()
	if pv.ids == nil {
		pv.ids = map[string]int64{"": 0}
	}
	out := make(map[string]int64, 2)
	for i := range rows {
		v := rows[i].PricesVersion
		if _, ok := out[v]; ok {
			continue
		}
		id, ok := pv.ids[v]
		if !ok {
			err := db.WriteTx(ctx, func(tx *sql.Tx) error {
				return tx.QueryRowContext(ctx, `INSERT INTO prices_versions (version) VALUES (?)
					ON CONFLICT (version) DO UPDATE SET version = excluded.version RETURNING id`, v).Scan(&id)
			})
			if err != nil {
				return nil, fmt.Errorf("store prices version %q: %w", v, err)
			}
			pv.ids[v] = id
		}
		out[v] = id
	}
	return out, nil
}

// UsageByRequestID returns the usage row of a workspace with the given request id, and false
// when that workspace has none (another workspace's id is not found either). It reads the
// unique request_id index, for either stored form of the id.
func (db *DB) UsageByRequestID(ctx context.Context, workspaceID int64, requestID string) (UsageRow, bool, error) {
	var buf [requestIDBytes]byte
	stored := requestIDArg(requestID, buf[:])
	if db.pg {
		stored = requestID // PostgreSQL's request_id is text only
	}
	rows, err := db.Read.QueryContext(ctx, `SELECT `+selectColumns+` FROM usage_logs
		WHERE request_id IN (?, ?) AND workspace_id = ?`, stored, requestID, workspaceID)
	if err != nil {
		return UsageRow{}, false, fmt.Errorf("usage of request %q: %w", requestID, err)
	}
	defer rows.Close()
	var r UsageRow
	if !rows.Next() {
		return UsageRow{}, false, rows.Err()
	}
	if err := scanUsage(rows, &r); err != nil {
		return UsageRow{}, false, fmt.Errorf("usage of request %q: %w", requestID, err)
	}
	return r, true, nil
}
