package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// UsageRow is one row of usage_logs: one proxied request (or one blocked by a budget).
// Timestamps are unix milliseconds UTC; money is nano-dollars.
type UsageRow struct {
	ID              int64
	RequestID       string
	CreatedAt       int64
	WorkspaceID     int64
	ProjectID       int64
	Provider        string
	OriginalModel   string
	FinalModel      string
	WasFallback     bool
	Status          int
	InputTokens     int64
	OutputTokens    int64
	TotalTokens     int64
	CostNano        int64
	LatencyMs       int64
	ErrorCode       string
	Stream          bool
	UsageEstimated  bool
	PricedByDefault bool
	// PricesVersion names the prices CostNano was computed from (at most 64 bytes).
	PricesVersion string
	// The parts of the tokens above the provider reported separately (0 when it did not):
	// cache reads and writes of the input, reasoning of the output.
	CacheReadTokens  int64
	CacheWriteTokens int64
	ReasoningTokens  int64
	TTFBMs           int64  // time to the first byte of a stream's body (0 when not streamed)
	ErrorMessage     string // the provider's error message, at most MaxErrorMessage bytes
	EndUser          string // who the request was for, at most MaxEndUser bytes

	// Not columns: a request a cluster replica admitted from its headroom slice (app/ledger)
	// names the slice's reservation and the worst case it took from it, so the PostgreSQL batch
	// that stores the row takes that amount off the slice, once. SQLite ignores them.
	SliceID   string
	SliceNano int64
}

// Bounds of a usage row's free-text fields (schema.sql enforces them too).
const (
	MaxErrorMessage = 512
	MaxEndUser      = 256
)

// SpendCounter is one row of spend_counters: the spend of a project or workspace in one UTC day
// ('2006-01-02') or UTC month ('2006-01').
type SpendCounter struct {
	Scope     string // "project" or "workspace"
	ScopeID   int64
	Period    string
	SpendNano int64
}

// insertColumns are the usage_logs columns InsertUsage writes, in insertArgs' order.
const insertColumns = `request_id, created_at, workspace_id, project_id, provider, original_model,
	final_model, was_fallback, status, input_tokens, output_tokens, total_tokens, cost_nano,
	latency_ms, error_code, stream, usage_estimated, priced_by_default, prices_version_id,
	cache_read_tokens, cache_write_tokens, reasoning_tokens, ttfb_ms, error_message, end_user`

const usageColumnCount = 25

// selectColumns read a whole usage row back, in scanUsage's order: the prices version from its
// id, or from the text that rows written before migration 7 carry.
const selectColumns = `id, request_id, created_at, workspace_id, project_id, provider, original_model,
	final_model, was_fallback, status, input_tokens, output_tokens, total_tokens, cost_nano,
	latency_ms, error_code, stream, usage_estimated, priced_by_default,
	coalesce((SELECT version FROM prices_versions WHERE prices_versions.id = prices_version_id), prices_version),
	cache_read_tokens, cache_write_tokens, reasoning_tokens, ttfb_ms, error_message, end_user`

func scanUsage(rows *sql.Rows, r *UsageRow) error {
	return rows.Scan(&r.ID, (*requestIDColumn)(&r.RequestID), &r.CreatedAt, &r.WorkspaceID, &r.ProjectID,
		&r.Provider, &r.OriginalModel, &r.FinalModel, &r.WasFallback, &r.Status,
		&r.InputTokens, &r.OutputTokens, &r.TotalTokens, &r.CostNano, &r.LatencyMs,
		&r.ErrorCode, &r.Stream, &r.UsageEstimated, &r.PricedByDefault, &r.PricesVersion,
		&r.CacheReadTokens, &r.CacheWriteTokens, &r.ReasoningTokens, &r.TTFBMs, &r.ErrorMessage, &r.EndUser)
}

// usageChunk rows go in one INSERT statement: 400 × 25 = 10,000 parameters, well under SQLite's
// limit.
const usageChunk = 400

// chunkSize is how many of the remaining rows the next INSERT takes: a full chunk, else the
// largest power of two that fits. A batch of any size thus runs on statements of at most ten
// sizes (400, 256, 128, …, 1), each prepared once per database and reused, where a statement
// built for the batch's exact size would be parsed and planned again for every batch; a
// remainder takes at most nine statements.
func chunkSize(remaining int) int {
	if remaining >= usageChunk {
		return usageChunk
	}
	return 1 << (bits.Len(uint(remaining)) - 1)
}

// insertStmts holds the usage INSERT statements prepared on the write pool, by row count.
type insertStmts struct {
	mu    sync.Mutex
	stmts map[int]*sql.Stmt
}

// get returns the statement inserting n rows, preparing it on first use. It must not be called
// inside a write transaction, which holds the write pool's one connection.
func (s *insertStmts) get(ctx context.Context, db *sql.DB, n int) (*sql.Stmt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.stmts[n]; st != nil {
		return st, nil
	}
	st, err := db.PrepareContext(ctx, insertUsageQuery(n))
	if err != nil {
		return nil, fmt.Errorf("prepare usage insert of %d rows: %w", n, err)
	}
	if s.stmts == nil {
		s.stmts = make(map[int]*sql.Stmt)
	}
	s.stmts[n] = st
	return st, nil
}

// insertUsageQuery is the INSERT of n usage rows; a row whose request id is stored is skipped.
func insertUsageQuery(n int) string {
	var q strings.Builder
	q.Grow(300 + n*40)
	q.WriteString(`INSERT INTO usage_logs (`)
	q.WriteString(insertColumns)
	q.WriteString(`) VALUES `)
	row := "(?" + strings.Repeat(",?", usageColumnCount-1) + ")"
	for i := range n {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(row)
	}
	q.WriteString(` ON CONFLICT (request_id) DO NOTHING`)
	return q.String()
}

// InsertUsage writes a batch of usage rows in ONE transaction and, in the same transaction, adds
// the cost of every row it actually inserted to the project's and workspace's day and month
// counters, and every such row to the hourly and daily rollups. A row whose request_id is
// already stored is skipped and not counted again, so a batch retried after an uncertain
// failure never double-counts. It returns how many rows were
// inserted.
func (db *DB) InsertUsage(ctx context.Context, rows []UsageRow) (inserted int, err error) {
	if len(rows) == 0 {
		return 0, nil
	}
	versions, err := db.pricesVersionIDs(ctx, rows)
	if err != nil {
		return 0, err
	}
	// Prepared before the transaction, which holds the write pool's only connection; the
	// transaction then runs them on that same connection without preparing again. PostgreSQL
	// takes the batch in one statement (insertUsagePostgres).
	var stmts []*sql.Stmt // one per chunk, in order
	for start, n := 0, 0; !db.pg && start < len(rows); start += n {
		n = chunkSize(len(rows) - start)
		st, err := db.usageInsert.get(ctx, db.Write, n)
		if err != nil {
			return 0, err
		}
		stmts = append(stmts, st)
	}
	err = db.usageTx(ctx, func(tx *sql.Tx) error {
		if db.pg {
			// The batch settles its requests' reservations (store/ledger.go) in the
			// transaction that stores their rows, so spend is never counted without its row.
			// Requests admitted from a headroom slice are taken off it only for the rows this
			// try inserted, so a retried batch never takes them twice.
			n, spend, slices, err := db.insertUsageTx(ctx, tx, rows, versions)
			if err != nil {
				return err
			}
			inserted = n
			return db.settleAndAddSpend(ctx, tx, requestIDs(rows), spend, slices)
		}
		inserted = 0
		deltas := make(map[SpendCounter]int64)
		sums := rollups{}
		count := counting(deltas, sums)
		start := 0
		for _, stmt := range stmts {
			size := chunkSize(len(rows) - start)
			n, err := insertUsageChunk(ctx, tx, tx.StmtContext(ctx, stmt), rows[start:start+size], versions, count)
			if err != nil {
				return err
			}
			inserted += n
			start += size
		}
		if err := sums.write(ctx, tx, false); err != nil {
			return err
		}
		return addSpend(ctx, tx, deltas)
	})
	if err != nil {
		return 0, fmt.Errorf("insert usage batch of %d: %w", len(rows), err)
	}
	return inserted, nil
}

// counting returns the function that adds an inserted row to the batch's counter deltas and
// rollup sums.
func counting(deltas map[SpendCounter]int64, sums rollups) func(*UsageRow) {
	var periods periodCache
	return func(u *UsageRow) {
		sums.add(u)
		if u.CostNano == 0 {
			return
		}
		day, month := periods.keys(u.CreatedAt)
		deltas[SpendCounter{Scope: "project", ScopeID: u.ProjectID, Period: day}] += u.CostNano
		deltas[SpendCounter{Scope: "project", ScopeID: u.ProjectID, Period: month}] += u.CostNano
		deltas[SpendCounter{Scope: "workspace", ScopeID: u.WorkspaceID, Period: day}] += u.CostNano
		deltas[SpendCounter{Scope: "workspace", ScopeID: u.WorkspaceID, Period: month}] += u.CostNano
	}
}

func insertUsageChunk(ctx context.Context, tx *sql.Tx, stmt *sql.Stmt, rows []UsageRow, versions map[string]int64, count func(*UsageRow)) (int, error) {
	defer stmt.Close()
	args := make([]any, 0, len(rows)*usageColumnCount)
	ids := make([]byte, len(rows)*requestIDBytes)
	for i, r := range rows {
		args = append(args, requestIDArg(r.RequestID, ids[i*requestIDBytes:(i+1)*requestIDBytes]),
			r.CreatedAt, r.WorkspaceID, r.ProjectID, r.Provider,
			r.OriginalModel, r.FinalModel, r.WasFallback, r.Status, r.InputTokens, r.OutputTokens,
			r.TotalTokens, r.CostNano, r.LatencyMs, r.ErrorCode, r.Stream, r.UsageEstimated,
			r.PricedByDefault, versions[r.PricesVersion], r.CacheReadTokens, r.CacheWriteTokens,
			r.ReasoningTokens, r.TTFBMs, r.ErrorMessage, r.EndUser)
	}
	res, err := stmt.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	affected, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	n := int(affected)
	if n == len(rows) {
		for i := range rows {
			count(&rows[i])
		}
		return n, nil
	}
	if n == 0 {
		return 0, nil
	}
	// Some request ids were already stored (a batch retried after an uncertain failure), so
	// what counts is what the table holds for the rows just inserted. In this transaction
	// nothing else writes, and each inserted row took the next id after the table's largest,
	// so they are the n ids up to the last one inserted.
	last, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	stored, err := tx.QueryContext(ctx, `SELECT `+rollupColumns+` FROM usage_logs WHERE id > ? AND id <= ?`, last-affected, last)
	if err != nil {
		return 0, err
	}
	defer stored.Close()
	got := 0
	for stored.Next() {
		var u UsageRow
		if err := scanRollupSource(stored, &u); err != nil {
			return 0, err
		}
		got++
		count(&u)
	}
	if err := stored.Err(); err != nil {
		return 0, err
	}
	if got != n {
		return 0, fmt.Errorf("inserted %d usage rows but found %d of them", n, got)
	}
	return n, nil
}

func requestIDs(rows []UsageRow) []string {
	out := make([]string, len(rows))
	for i := range rows {
		out[i] = rows[i].RequestID
	}
	return out
}

// addSpend adds deltas to the counters, in key order: on PostgreSQL two replicas' batches then
// lock the rows they share in one order and never deadlock.
func addSpend(ctx context.Context, tx *sql.Tx, deltas map[SpendCounter]int64) error {
	if len(deltas) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO spend_counters (scope, scope_id, period, spend_nano)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (scope, scope_id, period) DO UPDATE SET spend_nano = spend_counters.spend_nano + excluded.spend_nano`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	keys := make([]SpendCounter, 0, len(deltas))
	for k := range deltas {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b SpendCounter) int {
		return cmp.Or(cmp.Compare(a.Scope, b.Scope), cmp.Compare(a.ScopeID, b.ScopeID), cmp.Compare(a.Period, b.Period))
	})
	for _, k := range keys {
		v := deltas[k]
		if _, err := stmt.ExecContext(ctx, k.Scope, k.ScopeID, k.Period, v); err != nil {
			return fmt.Errorf("add spend to %s %d %s: %w", k.Scope, k.ScopeID, k.Period, err)
		}
	}
	return nil
}

// periodCache formats the UTC day and month keys of a timestamp, reusing the last answer: a
// batch's rows are nearly always from the same day.
type periodCache struct {
	start, end int64
	day, month string
}

func (p *periodCache) keys(ms int64) (day, month string) {
	if p.end != 0 && ms >= p.start && ms < p.end {
		return p.day, p.month
	}
	t := time.UnixMilli(ms).UTC()
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	p.start, p.end = d.UnixMilli(), d.AddDate(0, 0, 1).UnixMilli()
	p.day, p.month = d.Format("2006-01-02"), d.Format("2006-01")
	return p.day, p.month
}

// SpendCounters returns every counter of the given periods (for start-up: today's and this
// month's keys).
func (db *DB) SpendCounters(ctx context.Context, periods ...string) ([]SpendCounter, error) {
	if len(periods) == 0 {
		return nil, nil
	}
	q := `SELECT scope, scope_id, period, spend_nano FROM spend_counters WHERE period IN (?` +
		strings.Repeat(",?", len(periods)-1) + `)`
	args := make([]any, len(periods))
	for i, p := range periods {
		args[i] = p
	}
	rows, err := db.Read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read spend counters: %w", err)
	}
	defer rows.Close()
	var out []SpendCounter
	for rows.Next() {
		var c SpendCounter
		if err := rows.Scan(&c.Scope, &c.ScopeID, &c.Period, &c.SpendNano); err != nil {
			return nil, fmt.Errorf("read spend counters: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read spend counters: %w", err)
	}
	return out, nil
}

// UsageFilter selects usage rows of one workspace. Zero values mean "any".
type UsageFilter struct {
	WorkspaceID int64  // required
	From, To    int64  // unix ms: From inclusive, To exclusive
	ProjectID   int64  //
	Provider    string // exact: openai, anthropic, gemini
	Model       string // partial match on the original or final model, case-insensitive
	Status      int    // exact HTTP status
	EndUser     string // exact end user
	Limit       int    // default 100, at most 1000
	Cursor      string // from a previous page's next cursor
}

// Paging limits for ListUsage.
const (
	DefaultUsageLimit = 100
	MaxUsageLimit     = 1000
)

// ErrBadCursor is returned by ListUsage for a cursor it did not issue.
var ErrBadCursor = errors.New("invalid cursor")

// ListUsage returns one page of a workspace's usage rows, newest first, and the cursor of the
// next page ("" on the last one). Paging walks the (workspace_id, created_at, id) index from the
// cursor's position, so every page costs the same however deep it is. A limit outside 1..1000
// is clamped (0 means 100). It returns ErrBadCursor (wrapped) for a malformed cursor.
func (db *DB) ListUsage(ctx context.Context, f UsageFilter) ([]UsageRow, string, error) {
	if f.WorkspaceID <= 0 {
		return nil, "", errors.New("list usage: workspace is required")
	}
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = DefaultUsageLimit
	case limit > MaxUsageLimit:
		limit = MaxUsageLimit
	}
	var q strings.Builder
	q.WriteString(`SELECT ` + selectColumns + ` FROM usage_logs WHERE workspace_id = ?`)
	args := []any{f.WorkspaceID}
	if f.From != 0 {
		q.WriteString(` AND created_at >= ?`)
		args = append(args, f.From)
	}
	if f.To != 0 {
		q.WriteString(` AND created_at < ?`)
		args = append(args, f.To)
	}
	args = appendConditions(&q, args, db.pg, f.ProjectID, f.Provider, f.Model)
	if f.Status != 0 {
		q.WriteString(` AND status = ?`)
		args = append(args, f.Status)
	}
	if f.EndUser != "" {
		q.WriteString(` AND end_user = ?`)
		args = append(args, f.EndUser)
	}
	if f.Cursor != "" {
		at, id, err := decodeUsageCursor(f.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("list usage: %w", err)
		}
		q.WriteString(` AND (created_at, id) < (?, ?)`)
		args = append(args, at, id)
	}
	q.WriteString(` ORDER BY created_at DESC, id DESC LIMIT ?`)
	args = append(args, limit+1)

	rows, err := db.Read.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, "", fmt.Errorf("list usage: %w", err)
	}
	defer rows.Close()
	out := make([]UsageRow, 0, min(limit+1, 128))
	for rows.Next() {
		var r UsageRow
		if err := scanUsage(rows, &r); err != nil {
			return nil, "", fmt.Errorf("list usage: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list usage: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = encodeUsageCursor(last.CreatedAt, last.ID)
	}
	return out, next, nil
}

// appendConditions appends to q the optional filters that usage rows and rollups share (a
// project, a provider, a partial original or final model), and returns args with their values.
func appendConditions(q *strings.Builder, args []any, pg bool, projectID int64, provider, model string) []any {
	if projectID != 0 {
		q.WriteString(` AND project_id = ?`)
		args = append(args, projectID)
	}
	if provider != "" {
		q.WriteString(` AND provider = ?`)
		args = append(args, provider)
	}
	if model != "" {
		pattern := "%" + escapeLike(model) + "%"
		// SQLite's LIKE ignores ASCII case; PostgreSQL's ILIKE ignores case too.
		like := "LIKE"
		if pg {
			like = "ILIKE"
		}
		q.WriteString(` AND (final_model ` + like + ` ? ESCAPE '\' OR original_model ` + like + ` ? ESCAPE '\')`)
		args = append(args, pattern, pattern)
	}
	return args
}

func escapeLike(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// The cursor is the (created_at, id) of the last row served, opaque to clients.
func encodeUsageCursor(createdAt, id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(createdAt, 10) + "." + strconv.FormatInt(id, 10)))
}

func decodeUsageCursor(c string) (createdAt, id int64, err error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, 0, ErrBadCursor
	}
	at, idStr, ok := strings.Cut(string(b), ".")
	if !ok {
		return 0, 0, ErrBadCursor
	}
	createdAt, err1 := strconv.ParseInt(at, 10, 64)
	id, err2 := strconv.ParseInt(idStr, 10, 64)
	if err1 != nil || err2 != nil || id <= 0 {
		return 0, 0, ErrBadCursor
	}
	return createdAt, id, nil
}
