package store

// The shared budget ledger's SQL (PostgreSQL only; app/ledger says how it is used). Budgets are
// held in spend_counters: spend_nano is committed spend (added by the usage writer's batch with
// the rows it sums) and reserved_nano what in-flight requests on every replica hold. A request's
// reservation is a budget_reservations row naming its four counters, so it can be released
// exactly — by the batch that stores its usage row, or by a sweep when its replica died.
//
// Lock order. Every statement here that writes several counters takes them in one global order,
// (scope, scope_id, period) — a project's month ('2006-01') before its day ('2006-01-02'), then
// the workspace's — the order addSpend writes in, so no two transactions wait on each other in a
// cycle. Reservation rows are taken with SKIP LOCKED (renewal, sweep), and the sweep gives up a
// row after lockTimeout rather than wait on a usage batch storing the same request.

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// errNotShared is returned by the ledger's statements on SQLite, where one process's memory
// holds the budgets (app/budget) and there is nothing to share.
var errNotShared = errors.New("shared budgets need PostgreSQL")

// Reservation is one row of budget_reservations: a request in flight holding AmountNano of its
// project's and workspace's Day ('2006-01-02') and Month ('2006-01') counters. Owner is the
// replica that admitted it, which renews ExpiresAt (unix ms) while the request runs and its
// usage row waits to be written.
//
// Expiries are read on the database's clock, not the replicas': Reserve and RenewReservations
// set them LeaseMs past PostgreSQL's time, and the sweep compares them with it, so a replica
// whose clock is off can neither sweep another's live reservations early nor keep its own past
// the lease.
type Reservation struct {
	RequestID              string
	Owner                  string
	ProjectID, WorkspaceID int64
	Day, Month             string
	AmountNano             int64
	// CreatedAt is the admission on the replica's clock, the swept usage row's createdAt (in
	// Day and Month).
	CreatedAt int64
	// LeaseMs is how long Reserve makes the reservation last; ExpiresAt is read back.
	LeaseMs, ExpiresAt int64
}

// dbNowMs is PostgreSQL's time in unix milliseconds.
const dbNowMs = `(extract(epoch FROM statement_timestamp()) * 1000)::bigint`

// LedgerCounter is one counter's committed spend and in-flight reservations.
type LedgerCounter struct {
	SpendNano, ReservedNano int64
}

// LedgerBound is the condition on one counter a reservation is taken under: when Check is set,
// the counter is taken only while spend plus reservations is at most Max (budget.Account.Bound).
type LedgerBound struct {
	Check bool
	Max   int64
}

// The ledger's four counters of a request, in the order ReadLedger returns them, Reserve takes
// their bounds and budget.Budget numbers them (Budget-1).
const (
	LedgerProjectDay = iota
	LedgerProjectMonth
	LedgerWorkspaceDay
	LedgerWorkspaceMonth
)

// ReadLedger reads, in one statement, the spend and reservations of a project's and its
// workspace's day and month counters (indexed LedgerProjectDay…; a counter not yet written is
// zero). Reservations are summed exactly in numeric and read saturated to int64.
func (db *DB) ReadLedger(ctx context.Context, projectID, workspaceID int64, day, month string) ([4]LedgerCounter, error) {
	var out [4]LedgerCounter
	if !db.pg {
		return out, errNotShared
	}
	rows, err := db.Write.QueryContext(ctx, `SELECT scope, period, spend_nano,
		GREATEST(LEAST(reserved_nano, 9223372036854775807), 0)::bigint
		FROM spend_counters
		WHERE (scope = 'project' AND scope_id = ? OR scope = 'workspace' AND scope_id = ?) AND period IN (?, ?)`,
		projectID, workspaceID, day, month)
	if err != nil {
		return out, fmt.Errorf("read budget ledger of project %d: %w", projectID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var scope, period string
		var c LedgerCounter
		if err := rows.Scan(&scope, &period, &c.SpendNano, &c.ReservedNano); err != nil {
			return out, fmt.Errorf("read budget ledger of project %d: %w", projectID, err)
		}
		i := LedgerProjectDay
		if scope == "workspace" {
			i = LedgerWorkspaceDay
		}
		if period == month {
			i++
		}
		out[i] = c
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("read budget ledger of project %d: %w", projectID, err)
	}
	return out, nil
}

// reserveQuery stores a reservation and adds it to its four counters, in one statement (one
// round trip, no explicit transaction): the reservation row first (the counters' rows are drawn
// from its RETURNING, so it is written, and locked, before them — the order a usage batch takes
// them in), then the counters in lock order (project month, project day, workspace month,
// workspace day), each under its bound (NULL: none), which PostgreSQL checks on the row's latest
// version once it holds the row's lock. A counter not yet written is inserted unconditionally:
// the caller decided on it reading zero. When fewer than four counters were taken — another
// replica took the room since the caller read them — the final cast fails (errBudgetFull's
// text, SQLSTATE 22P02) and the failed statement undoes everything it wrote, the reservation row
// included. The cast depends on the count, so it cannot be folded and raised at planning time.
var reserveQuery = ledgerTakeQuery(``)

// topUpQuery is reserveQuery for a replica's headroom slice: the slice row's amount grows when
// it exists (and is this owner's), its lease renewed, and is inserted otherwise.
var topUpQuery = ledgerTakeQuery(` ON CONFLICT (request_id) DO UPDATE SET
		amount_nano = r.amount_nano + excluded.amount_nano, expires_at = excluded.expires_at
		WHERE r.owner = excluded.owner`)

// ledgerTakeQuery is the statement of reserveQuery, with onConflict after the reservation's
// insert.
func ledgerTakeQuery(onConflict string) string {
	return ledgerTake(`INSERT INTO budget_reservations AS r (request_id, owner, project_id, workspace_id, day, month, amount_nano,
		created_at, expires_at) VALUES (?1, ?2, ?3::bigint, ?4::bigint, ?5::text, ?6::text, ?7::bigint, ?8, `+dbNowMs+` + ?9::bigint)`+
		onConflict, ``)
}

// topUpStoredQuery adds to a slice row this replica has already written: an UPDATE only, so that
// a row swept meanwhile is never written again under its id (the sweep's usage row holds that
// id, and a second sweep of it would bill nothing). When the row is gone the statement fails
// with sliceGone's text, and nothing is written. (Its cast, like the count's, depends on a
// value of the statement's own run, so it is not folded and raised at planning time.)
var topUpStoredQuery = ledgerTake(`UPDATE budget_reservations AS r SET amount_nano = r.amount_nano + ?7::bigint,
		expires_at = `+dbNowMs+` + ?9::bigint
		WHERE r.request_id = ?1 AND r.owner = ?2 AND r.project_id = ?3::bigint AND r.workspace_id = ?4::bigint
		AND r.day = ?5::text AND r.month = ?6::text AND ?8::bigint IS NOT NULL`,
	`WHEN NOT EXISTS (SELECT 1 FROM reservation) THEN ('`+sliceGone+` ' || count(*))::bigint `)

// sliceGone is the error topUpStoredQuery fails with when the slice row is not there.
const sliceGone = "slice gone"

// ErrSliceGone is TopUpSlice's answer for a slice row that is no longer there (swept, or
// returned): the slice must be forgotten, and a new one opened under a new id.
var ErrSliceGone = errors.New("headroom slice no longer stored")

// ledgerTake is the statement that runs reservation (a data-modifying statement returning 1 for
// the reservation row it wrote) and takes the amount on the four counters under their bounds;
// first, when set, is a CASE branch checked before the count.
func ledgerTake(reservation, first string) string {
	return `WITH reservation AS (
	` + reservation + `
	RETURNING 1),
taken AS (
	INSERT INTO spend_counters AS c (scope, scope_id, period, spend_nano, reserved_nano)
	SELECT v.* FROM reservation CROSS JOIN (VALUES
		('project', ?3::bigint, ?6::text, 0::bigint, ?7::bigint), ('project', ?3::bigint, ?5::text, 0::bigint, ?7::bigint),
		('workspace', ?4::bigint, ?6::text, 0::bigint, ?7::bigint), ('workspace', ?4::bigint, ?5::text, 0::bigint, ?7::bigint)) AS v
	ON CONFLICT (scope, scope_id, period) DO UPDATE SET reserved_nano = c.reserved_nano + excluded.reserved_nano
	WHERE coalesce(c.spend_nano::numeric + c.reserved_nano <= CASE
		WHEN excluded.scope = 'project' AND excluded.period = ?5::text THEN ?10::numeric
		WHEN excluded.scope = 'project' THEN ?11::numeric
		WHEN excluded.period = ?5::text THEN ?12::numeric
		ELSE ?13::numeric END, true)
	RETURNING 1)
SELECT CASE ` + first + `WHEN count(*) = 4 THEN count(*) ELSE ('` + budgetFull + `' || count(*))::bigint END FROM taken`
}

// budgetFull starts the error reserveQuery fails with when a bound refused a counter.
const budgetFull = "budget full, counters taken: "

// Reserve takes r.AmountNano on r's four counters, each under its bound (indexed
// LedgerProjectDay…), and stores r, atomically, in one round trip. ok is false when a bound
// failed — another replica reserved or spent the room since the caller read the counters — and
// then nothing is written.
func (db *DB) Reserve(ctx context.Context, r Reservation, bounds [4]LedgerBound) (ok bool, err error) {
	return db.take(ctx, reserveQuery, r, bounds)
}

// TopUpSlice adds r.AmountNano to the headroom slice r (a reservation this replica holds for
// requests it admits without a round trip, app/ledger) and to its four counters, each under its
// bound, inserting the slice row when it is not there yet and renewing its lease, atomically, in
// one round trip. ok is false, and nothing is written, when a bound failed or r.RequestID is
// another owner's.
// stored says the slice row was written before: it is then only updated, and ErrSliceGone is
// returned when it is not there.
func (db *DB) TopUpSlice(ctx context.Context, r Reservation, bounds [4]LedgerBound, stored bool) (ok bool, err error) {
	if stored {
		return db.take(ctx, topUpStoredQuery, r, bounds)
	}
	return db.take(ctx, topUpQuery, r, bounds)
}

func (db *DB) take(ctx context.Context, query string, r Reservation, bounds [4]LedgerBound) (ok bool, err error) {
	if !db.pg {
		return false, errNotShared
	}
	var bound [4]any
	for i, b := range bounds {
		if b.Check {
			bound[i] = b.Max
		}
	}
	var taken int64
	err = db.Write.QueryRowContext(ctx, query, r.RequestID, r.Owner, r.ProjectID, r.WorkspaceID,
		r.Day, r.Month, r.AmountNano, r.CreatedAt, r.LeaseMs, bound[0], bound[1], bound[2], bound[3]).Scan(&taken)
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "22P02" && strings.Contains(pe.Message, budgetFull):
		return false, nil
	case errors.As(err, &pe) && pe.Code == "22P02" && strings.Contains(pe.Message, sliceGone):
		return false, ErrSliceGone
	case err != nil:
		return false, fmt.Errorf("reserve %d for %s: %w", r.AmountNano, r.RequestID, err)
	}
	return true, nil
}

// ReturnSlice gives up to amount of owner's headroom slice id back — off the slice row and its
// four counters' reservations, in one transaction, the slice row locked before the counters (the
// usage batch's order) — and deletes the slice row once nothing is left in it. It returns what
// the slice still holds (the worst cases of requests admitted from it whose rows are not stored
// yet) and whether the slice was found; a slice swept meanwhile is not.
func (db *DB) ReturnSlice(ctx context.Context, owner, id string, amount int64) (left int64, found bool, err error) {
	if !db.pg {
		return 0, false, errNotShared
	}
	err = db.pgTx(ctx, sql.LevelReadCommitted, func(tx *sql.Tx) error {
		var r Reservation
		err := tx.QueryRowContext(ctx, `SELECT project_id, workspace_id, day, month, amount_nano FROM budget_reservations
			WHERE request_id = ? AND owner = ? FOR UPDATE`, id, owner).Scan(&r.ProjectID, &r.WorkspaceID, &r.Day, &r.Month, &r.AmountNano)
		if errors.Is(err, sql.ErrNoRows) {
			found, left = false, 0
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		give := min(max(amount, 0), r.AmountNano)
		left = r.AmountNano - give
		if left == 0 {
			_, err = tx.ExecContext(ctx, `DELETE FROM budget_reservations WHERE request_id = ?`, id)
		} else if give > 0 {
			_, err = tx.ExecContext(ctx, `UPDATE budget_reservations SET amount_nano = ? WHERE request_id = ?`, left, id)
		}
		if err != nil || give == 0 {
			return err
		}
		return addCounters(ctx, tx, releaseOf(r, give, nil))
	})
	if err != nil {
		return 0, false, fmt.Errorf("return %d of headroom slice %s: %w", amount, id, err)
	}
	return left, found, nil
}

// releaseOf adds to deltas (a new map when nil) the release of amount from r's four counters.
func releaseOf(r Reservation, amount int64, deltas map[SpendCounter]counterDelta) map[SpendCounter]counterDelta {
	if deltas == nil {
		deltas = make(map[SpendCounter]counterDelta, 4)
	}
	for _, k := range [...]SpendCounter{{"project", r.ProjectID, r.Day, 0}, {"project", r.ProjectID, r.Month, 0},
		{"workspace", r.WorkspaceID, r.Day, 0}, {"workspace", r.WorkspaceID, r.Month, 0}} {
		d := deltas[k]
		d.reserved -= amount
		deltas[k] = d
	}
	return deltas
}

// RenewSlices is RenewReservations for owner's headroom slices, waiting for a slice row locked
// by a usage batch or a return rather than skipping it: a slice is long-lived, so a slice it
// does not find is gone (swept), not busy.
func (db *DB) RenewSlices(ctx context.Context, owner string, ids []string, leaseMs int64) ([]string, error) {
	return db.renew(ctx, "FOR UPDATE", owner, ids, leaseMs)
}

// LedgerRow is one counter as ReadLedgerAll reads it.
type LedgerRow struct {
	Scope   string
	ScopeID int64
	Period  string
	LedgerCounter
}

// ReadLedgerAll reads every counter of the given day and month, with its reservations
// (saturated to int64), in one statement: the ledger's periodic refresh.
func (db *DB) ReadLedgerAll(ctx context.Context, day, month string) ([]LedgerRow, error) {
	if !db.pg {
		return nil, errNotShared
	}
	rows, err := db.Write.QueryContext(ctx, `SELECT scope, scope_id, period, spend_nano,
		GREATEST(LEAST(reserved_nano, 9223372036854775807), 0)::bigint
		FROM spend_counters WHERE period IN (?, ?)`, day, month)
	if err != nil {
		return nil, fmt.Errorf("read budget ledger: %w", err)
	}
	defer rows.Close()
	var out []LedgerRow
	for rows.Next() {
		var c LedgerRow
		if err := rows.Scan(&c.Scope, &c.ScopeID, &c.Period, &c.SpendNano, &c.ReservedNano); err != nil {
			return nil, fmt.Errorf("read budget ledger: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read budget ledger: %w", err)
	}
	return out, nil
}

// RenewReservations moves the expiry of owner's reservations named in requestIDs to leaseMs past
// the database's time, in one statement, and returns the ids it renewed. A reservation locked at that
// moment — being settled by a usage batch, or swept — is skipped rather than waited for: it is
// about to be gone.
func (db *DB) RenewReservations(ctx context.Context, owner string, requestIDs []string, leaseMs int64) ([]string, error) {
	return db.renew(ctx, "FOR UPDATE SKIP LOCKED", owner, requestIDs, leaseMs)
}

func (db *DB) renew(ctx context.Context, lock, owner string, requestIDs []string, leaseMs int64) ([]string, error) {
	if !db.pg {
		return nil, errNotShared
	}
	if len(requestIDs) == 0 {
		return nil, nil
	}
	rows, err := db.Write.QueryContext(ctx, `UPDATE budget_reservations SET expires_at = `+dbNowMs+` + ?::bigint
		WHERE request_id IN (SELECT request_id FROM budget_reservations
			WHERE owner = ? AND request_id = ANY(?) ORDER BY request_id `+lock+`)
		RETURNING request_id`,
		leaseMs, owner, requestIDs)
	if err != nil {
		return nil, fmt.Errorf("renew %d reservations of %s: %w", len(requestIDs), owner, err)
	}
	defer rows.Close()
	renewed := make([]string, 0, len(requestIDs))
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("renew reservations of %s: %w", owner, err)
		}
		renewed = append(renewed, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("renew reservations of %s: %w", owner, err)
	}
	return renewed, nil
}

// Swept reservations become usage rows with this status and error code: their replica stopped
// renewing them (it died, or lost PostgreSQL for longer than a lease) before their request's
// row was written, so what the request did is unknown and the provider may have billed it.
const (
	SweptStatus    = 502
	SweptErrorCode = "RESERVATION_EXPIRED"
)

// lockTimeout bounds the sweep's waits: a usage batch storing a request the sweep has locked
// waits on the sweep, and the sweep's insert of that request's row waits on the batch — the
// sweep gives up (this round) rather than wait for PostgreSQL's deadlock detection.
const lockTimeout = "250ms"

// SweepReservations settles, at their reserved cost, up to limit reservations that have expired
// (on the database's clock), in one transaction: each becomes a usage row (its request id, created
// at its admission, cost its amount, status SweptStatus, error SweptErrorCode, usage estimated)
// inserted through the usage writer's own path — so the rollups and spend counters count it as
// they count every row — and its counters' reservations are released. Reservations another
// replica is sweeping or settling are skipped (SKIP LOCKED): whoever sweeps first wins. A
// request whose row reaches the writer after its reservation was swept keeps the swept row (its
// insert is skipped by request id), so counters always equal the rows.
func (db *DB) SweepReservations(ctx context.Context, limit int) ([]Reservation, error) {
	if !db.pg {
		return nil, errNotShared
	}
	var swept []Reservation
	err := db.pgTx(ctx, sql.LevelReadCommitted, func(tx *sql.Tx) error {
		swept = swept[:0]
		if _, err := tx.ExecContext(ctx, `SET LOCAL lock_timeout = '`+lockTimeout+`'`); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT request_id, owner, project_id, workspace_id, day, month,
			amount_nano, created_at, expires_at FROM budget_reservations
			WHERE expires_at < `+dbNowMs+` ORDER BY expires_at LIMIT ? FOR UPDATE SKIP LOCKED`, limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			var r Reservation
			if err := rows.Scan(&r.RequestID, &r.Owner, &r.ProjectID, &r.WorkspaceID, &r.Day, &r.Month,
				&r.AmountNano, &r.CreatedAt, &r.ExpiresAt); err != nil {
				rows.Close()
				return err
			}
			swept = append(swept, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(swept) == 0 {
			return nil
		}
		usage := make([]UsageRow, len(swept))
		ids := make([]string, len(swept))
		for i, r := range swept {
			usage[i] = UsageRow{RequestID: r.RequestID, CreatedAt: r.CreatedAt, WorkspaceID: r.WorkspaceID,
				ProjectID: r.ProjectID, Status: SweptStatus, CostNano: r.AmountNano, ErrorCode: SweptErrorCode,
				UsageEstimated: true}
			ids[i] = r.RequestID
		}
		_, spend, _, err := db.insertUsageTx(ctx, tx, usage, map[string]int64{"": 0})
		if err != nil {
			return err
		}
		return db.settleAndAddSpend(ctx, tx, ids, spend, nil)
	})
	if isLockTimeout(err) {
		return nil, nil // a usage batch is settling one of them: the next sweep will see
	}
	if err != nil {
		return nil, fmt.Errorf("sweep expired reservations: %w", err)
	}
	return swept, nil
}

func isLockTimeout(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "55P03"
}

// settleReservations releases the reservations of requestIDs, in tx: it deletes their rows and
// takes their amounts off the reserved_nano of the four counters each names, in lock order. It
// is idempotent by request id: an id with no reservation (never reserved, already settled by an
// earlier try of the batch, or swept) changes nothing. The usage writer's batch calls it on
// PostgreSQL in the transaction that stores those requests' rows; settleAndAddSpend does both
// in one pass over the counters.
func (db *DB) settleReservations(ctx context.Context, tx *sql.Tx, requestIDs []string) error {
	return db.settleAndAddSpend(ctx, tx, requestIDs, nil, nil)
}

// counterDelta is what one statement adds to a counter.
type counterDelta struct{ spend, reserved int64 }

// settleAndAddSpend releases the reservations of requestIDs (as settleReservations), takes
// slices' amounts (slice id → the worst cases of its requests this batch stored) off those
// headroom slices and their counters, and adds spend to the counters (as addSpend), taking
// every counter in lock order first: a batch that added its spend and then released its
// reservations in two passes could take a counter of the second pass after a later one of the
// first, out of order, and deadlock against an admission. Reservation and slice rows are
// locked before any counter, as every statement of the ledger takes them. A slice that is gone
// (swept: its amount was billed whole) matches nothing.
func (db *DB) settleAndAddSpend(ctx context.Context, tx *sql.Tx, requestIDs []string, spend map[SpendCounter]int64, fromSlices map[string]int64) error {
	deltas := make(map[SpendCounter]counterDelta, len(spend)+4)
	for k, v := range spend {
		deltas[k] = counterDelta{spend: v}
	}
	release := func(rows *sql.Rows, err error, what string) error {
		if err != nil {
			return fmt.Errorf("settle %s: %w", what, err)
		}
		defer rows.Close()
		for rows.Next() {
			var r Reservation
			if err := rows.Scan(&r.ProjectID, &r.WorkspaceID, &r.Day, &r.Month, &r.AmountNano); err != nil {
				return fmt.Errorf("settle %s: %w", what, err)
			}
			releaseOf(r, r.AmountNano, deltas)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("settle %s: %w", what, err)
		}
		return nil
	}
	if len(requestIDs) > 0 {
		rows, err := tx.QueryContext(ctx, `DELETE FROM budget_reservations WHERE request_id = ANY(?)
			RETURNING project_id, workspace_id, day, month, amount_nano`, requestIDs)
		if err := release(rows, err, fmt.Sprintf("%d reservations", len(requestIDs))); err != nil {
			return err
		}
	}
	if len(fromSlices) > 0 {
		ids := make([]string, 0, len(fromSlices))
		for id := range fromSlices {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		amounts := make([]int64, len(ids))
		for i, id := range ids {
			amounts[i] = fromSlices[id]
		}
		// Locked in id order, and never taken below zero: what is taken off the counters is
		// what the slice gave.
		rows, err := tx.QueryContext(ctx, `WITH d AS (
				SELECT r.request_id, LEAST(r.amount_nano, d.amount) AS take
				FROM budget_reservations r JOIN unnest(?::text[], ?::bigint[]) AS d (id, amount) ON r.request_id = d.id
				ORDER BY r.request_id FOR UPDATE OF r)
			UPDATE budget_reservations r SET amount_nano = r.amount_nano - d.take FROM d
			WHERE r.request_id = d.request_id
			RETURNING r.project_id, r.workspace_id, r.day, r.month, d.take`, ids, amounts)
		if err := release(rows, err, fmt.Sprintf("requests of %d headroom slices", len(ids))); err != nil {
			return err
		}
	}
	return addCounters(ctx, tx, deltas)
}

// addCounters adds deltas to spend_counters, every counter taken in lock order: one statement
// locks the existing ones sorted, then one adds the spend (inserting counters not yet written)
// and one takes the released reservations off reserved_nano. The release cannot ride on the
// spend's upsert: its negative amount would fail the column's CHECK on the row proposed for
// insertion, before the conflict makes it an update. A release larger than what the counter
// holds (which only a bug could cause) leaves it at zero rather than failing every batch after.
func addCounters(ctx context.Context, tx *sql.Tx, deltas map[SpendCounter]counterDelta) error {
	keys := make([]SpendCounter, 0, len(deltas))
	for k, d := range deltas {
		if d != (counterDelta{}) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.SortFunc(keys, func(a, b SpendCounter) int {
		return cmp.Or(cmp.Compare(a.Scope, b.Scope), cmp.Compare(a.ScopeID, b.ScopeID), cmp.Compare(a.Period, b.Period))
	})
	var scopes, periods, spendScopes, spendPeriods, releaseScopes, releasePeriods []string
	var ids, spendIDs, spends, releaseIDs, releases []int64
	for _, k := range keys {
		d := deltas[k]
		scopes, ids, periods = append(scopes, k.Scope), append(ids, k.ScopeID), append(periods, k.Period)
		if d.spend != 0 {
			spendScopes, spendIDs, spendPeriods = append(spendScopes, k.Scope), append(spendIDs, k.ScopeID), append(spendPeriods, k.Period)
			spends = append(spends, d.spend)
		}
		if d.reserved != 0 {
			releaseScopes, releaseIDs, releasePeriods = append(releaseScopes, k.Scope), append(releaseIDs, k.ScopeID), append(releasePeriods, k.Period)
			releases = append(releases, -d.reserved)
		}
	}
	// ORDER BY sorts before FOR UPDATE locks, so the rows are locked in key order.
	if _, err := tx.ExecContext(ctx, `SELECT 1 FROM spend_counters
		WHERE (scope, scope_id, period) IN (SELECT * FROM unnest(?::text[], ?::bigint[], ?::text[]))
		ORDER BY scope, scope_id, period FOR UPDATE`, scopes, ids, periods); err != nil {
		return fmt.Errorf("lock %d spend counters: %w", len(keys), err)
	}
	if len(spends) > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO spend_counters AS c (scope, scope_id, period, spend_nano)
			SELECT * FROM unnest(?::text[], ?::bigint[], ?::text[], ?::bigint[])
			ON CONFLICT (scope, scope_id, period) DO UPDATE SET spend_nano = c.spend_nano + excluded.spend_nano`,
			spendScopes, spendIDs, spendPeriods, spends); err != nil {
			return fmt.Errorf("add spend to %d counters: %w", len(spends), err)
		}
	}
	if len(releases) > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE spend_counters AS c SET reserved_nano = GREATEST(c.reserved_nano - d.amount, 0)
			FROM unnest(?::text[], ?::bigint[], ?::text[], ?::bigint[]) AS d (scope, scope_id, period, amount)
			WHERE c.scope = d.scope AND c.scope_id = d.scope_id AND c.period = d.period`,
			releaseScopes, releaseIDs, releasePeriods, releases); err != nil {
			return fmt.Errorf("release reservations of %d counters: %w", len(releases), err)
		}
	}
	return nil
}

// ReservedCounter is one counter's in-flight reservations, as ReservedCounters reads them.
type ReservedCounter struct {
	Scope        string
	ScopeID      int64
	Period       string
	ReservedNano int64
}

// ReservedCounters returns the counters of the given periods that hold reservations (for the
// ledger's tests and diagnostics: the dashboard shows committed spend).
func (db *DB) ReservedCounters(ctx context.Context, periods ...string) ([]ReservedCounter, error) {
	if !db.pg {
		return nil, errNotShared
	}
	if len(periods) == 0 {
		return nil, nil
	}
	rows, err := db.Read.QueryContext(ctx, `SELECT scope, scope_id, period,
		LEAST(reserved_nano, 9223372036854775807)::bigint FROM spend_counters
		WHERE reserved_nano <> 0 AND period IN (?`+strings.Repeat(",?", len(periods)-1)+`)
		ORDER BY scope, scope_id, period`, anySlice(periods)...)
	if err != nil {
		return nil, fmt.Errorf("read reserved counters: %w", err)
	}
	defer rows.Close()
	var out []ReservedCounter
	for rows.Next() {
		var c ReservedCounter
		if err := rows.Scan(&c.Scope, &c.ScopeID, &c.Period, &c.ReservedNano); err != nil {
			return nil, fmt.Errorf("read reserved counters: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read reserved counters: %w", err)
	}
	return out, nil
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
