package ledger_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tokenguard/app/apperr"
	"tokenguard/app/budget"
	"tokenguard/app/ledger"
	"tokenguard/app/pricing"
	"tokenguard/app/usage"
	"tokenguard/store"
	"tokenguard/store/storetest"
)

// replica opens its own store on url (one "replica" of a cluster: its own pool) and a ledger
// over it, closed when the test ends.
func replica(t testing.TB, url string, opt ledger.Options) (*store.DB, *ledger.Ledger, *budget.Engine) {
	t.Helper()
	db, err := store.Open(context.Background(), url, storetest.PostgresSchema(t))
	if err != nil {
		t.Fatalf("open replica: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	if opt.Timeout == 0 {
		// The timeout bounds a hung database (TestUnreachable sets its own); these tests share
		// two cores with the rest of go test ./..., and what they check is not speed.
		opt.Timeout = 15 * time.Second
	}
	e := budget.New(now)
	l, err := ledger.New(db, e, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return db, l, e
}

// fixed is a request's cost that is always worst (output cannot be capped).
func fixed(worst pricing.NanoUSD) budget.Cost {
	return budget.Cost{WorstCase: func(bool, int64) pricing.NanoUSD { return worst }}
}

// linear is a request's cost as the proxy builds it: input plus perToken per output token, the
// output capped to max per choice.
func linear(input, perToken pricing.NanoUSD, maxOut, minOut int64) budget.Cost {
	return budget.Cost{
		WorstCase: func(_ bool, cap int64) pricing.NanoUSD {
			if cap <= 0 || cap > maxOut {
				cap = maxOut
			}
			return input + pricing.NanoUSD(cap)*perToken
		},
		MaxOutput: func(bool) int64 { return maxOut },
		MinOutput: minOut,
	}
}

func nano(v int64) *pricing.NanoUSD { n := pricing.NanoUSD(v); return &n }

// row is the usage row of a settled request of s.
func row(id string, s budget.Subject, at time.Time, cost pricing.NanoUSD) store.UsageRow {
	return store.UsageRow{RequestID: id, CreatedAt: at.UnixMilli(), WorkspaceID: s.WorkspaceID, ProjectID: s.ProjectID,
		Provider: "openai", OriginalModel: "gpt-4o-mini", FinalModel: "gpt-4o-mini", Status: 200, CostNano: int64(cost)}
}

// tagged is row with the headroom slice st was admitted from, as the proxy's record path
// names it (store.UsageRow.SliceID, SliceNano).
func tagged(st budget.Settler, r store.UsageRow) store.UsageRow {
	if h, ok := st.(interface{ Slice() (string, int64) }); ok {
		r.SliceID, r.SliceNano = h.Slice()
	}
	return r
}

// settle ends an admitted request as the proxy and its usage writer do: Settle, then the
// request's row stored in a batch (which settles the reservation in PostgreSQL).
func settle(t testing.TB, db *store.DB, st budget.Settler, id string, s budget.Subject, at time.Time, cost pricing.NanoUSD) {
	t.Helper()
	st.Settle(at, cost)
	if _, err := db.InsertUsage(context.Background(), []store.UsageRow{tagged(st, row(id, s, at, cost))}); err != nil {
		t.Fatalf("store usage row of %s: %v", id, err)
	}
}

// pgQuery reads one int64 from PostgreSQL.
func pgInt(t testing.TB, db *store.DB, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.Write.QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// checkCountersEqualRows checks that every spend counter equals the sum of its usage rows, that
// no rows are uncounted, and that no reservation is left (in rows or in the counters).
func checkCountersEqualRows(t testing.TB, db *store.DB) {
	t.Helper()
	for _, scope := range []struct{ name, column string }{{"project", "project_id"}, {"workspace", "workspace_id"}} {
		for _, period := range []struct{ layout, length string }{{"YYYY-MM-DD", "10"}, {"YYYY-MM", "7"}} {
			bad := pgInt(t, db, `SELECT count(*) FROM (
				SELECT c.scope_id, c.period, c.spend_nano, coalesce(u.spend, 0) AS rows_spend
				FROM (SELECT * FROM spend_counters WHERE scope = '`+scope.name+`' AND length(period) = `+period.length+`) c
				FULL JOIN (SELECT `+scope.column+` AS id, to_char(to_timestamp(created_at / 1000.0) AT TIME ZONE 'UTC', '`+period.layout+`') AS period,
					sum(cost_nano) AS spend FROM usage_logs GROUP BY 1, 2) u ON u.id = c.scope_id AND u.period = c.period
				WHERE coalesce(c.spend_nano, 0) <> coalesce(u.spend, 0)) d`)
			if bad != 0 {
				t.Errorf("%d %s counters (%s) differ from the sum of their usage rows", bad, scope.name, period.layout)
			}
		}
	}
	if n := pgInt(t, db, `SELECT count(*) FROM budget_reservations`); n != 0 {
		t.Errorf("%d reservations left", n)
	}
	if n := pgInt(t, db, `SELECT count(*) FROM spend_counters WHERE reserved_nano <> 0`); n != 0 {
		t.Errorf("%d counters still hold reservations", n)
	}
}

// checkReservedMatches checks, in one snapshot, that every counter holds reserved exactly what
// the reservations (requests' own and headroom slices) naming it hold. It reports with Errorf
// only, so that a goroutine beside the test may run it.
func checkReservedMatches(t testing.TB, db *store.DB) {
	t.Helper()
	var bad int64
	err := db.Write.QueryRowContext(context.Background(), `SELECT count(*) FROM spend_counters c FULL JOIN (
		SELECT scope, id, period, sum(amount) AS held FROM (
			SELECT 'project' AS scope, project_id AS id, day AS period, amount_nano AS amount FROM budget_reservations
			UNION ALL SELECT 'project', project_id, month, amount_nano FROM budget_reservations
			UNION ALL SELECT 'workspace', workspace_id, day, amount_nano FROM budget_reservations
			UNION ALL SELECT 'workspace', workspace_id, month, amount_nano FROM budget_reservations) each
		GROUP BY 1, 2, 3) r ON r.scope = c.scope AND r.id = c.scope_id AND r.period = c.period
		WHERE coalesce(c.reserved_nano, 0) <> coalesce(r.held, 0)`).Scan(&bad)
	if err != nil {
		t.Errorf("compare reservations with the counters: %v", err)
	}
	if bad != 0 {
		t.Errorf("%d counters hold reserved other than their reservations", bad)
	}
}

// TestLedgerDecidesAsEngine runs the same history through the ledger (PostgreSQL) and the
// single node's engine and checks that they decide alike — admissions, fallbacks, refusals by
// spend and by reservations, strict caps — and that the ledger holds the reservation in the
// four counters: the request's own on the exact path, a headroom slice's where the budgets
// leave room for one (32 worst cases, at most an eighth of the room), none without a budget.
func TestLedgerDecidesAsEngine(t *testing.T) {
	now := time.Now().UTC()
	clock := func() time.Time { return now }
	const worst = 100
	tests := []decideCase{{name: "under the budget",
		subject: budget.Subject{Project: budget.Limits{Daily: nano(1000)}},
		cost:    fixed(worst), wantSaved: worst},
		{name: "fallback from 80%",
			subject: budget.Subject{Project: budget.Limits{Daily: nano(1000)}, HasFallback: true},
			spent:   800, cost: fixed(worst), want: budget.Decision{Fallback: true}, wantSaved: worst},
		{name: "spent: refused until midnight",
			subject: budget.Subject{Project: budget.Limits{Daily: nano(1000)}},
			spent:   1000, cost: fixed(worst), want: budget.Decision{Blocked: true, Budget: budget.ProjectDaily}},
		{name: "reserved by requests in flight",
			subject: budget.Subject{Project: budget.Limits{Daily: nano(1000)}},
			spent:   500, inFlight: 5, cost: fixed(worst), want: budget.Decision{Blocked: true, Budget: budget.ProjectDaily, Reserved: true}},
		{name: "soft: the last request may pass the limit by its worst case",
			subject: budget.Subject{Project: budget.Limits{Daily: nano(1000)}},
			spent:   950, cost: fixed(worst), wantSaved: worst},
		{name: "workspace monthly spent",
			subject: budget.Subject{Workspace: budget.Limits{Monthly: nano(300)}},
			spent:   300, cost: fixed(worst), want: budget.Decision{Blocked: true, Budget: budget.WorkspaceMonthly}},
		{name: "strict caps the output to what is left",
			subject: budget.Subject{Project: budget.Limits{Daily: nano(1000), Strict: true}},
			spent:   850, inFlight: 1, cost: linear(10, 1, 200, 16), want: budget.Decision{OutputCap: 40}, wantSaved: 50},
		{name: "strict refuses below the useful minimum",
			subject: budget.Subject{Project: budget.Limits{Daily: nano(1000), Strict: true}},
			spent:   980, cost: linear(10, 1, 200, 16), want: budget.Decision{Blocked: true, Budget: budget.ProjectDaily}},
		{name: "no budget: admitted, reserved only on the exact path",
			cost: fixed(worst), wantSaved: worst, sliceSaved: -1},
		{name: "room for a slice: 32 worst cases reserved",
			subject: budget.Subject{Project: budget.Limits{Daily: nano(1_000_000)}, Workspace: budget.Limits{Monthly: nano(10_000_000)}},
			spent:   1000, cost: fixed(worst), wantSaved: worst, sliceSaved: 32 * worst},
		{name: "taken from the slice the requests before it topped up: nothing more reserved",
			subject: budget.Subject{Project: budget.Limits{Daily: nano(1_000_000)}, Workspace: budget.Limits{Monthly: nano(10_000_000)}},
			spent:   1000, inFlight: 2, cost: fixed(worst), wantSaved: worst, sliceSaved: -1},
		{name: "strict, room for a slice of an eighth of it",
			subject: budget.Subject{Project: budget.Limits{Daily: nano(20_000), Strict: true}},
			spent:   4000, cost: fixed(worst), wantSaved: worst, sliceSaved: 2000},
	}
	url := storetest.PostgresURL(t)
	for _, mode := range []string{"exact", "slices"} {
		opt := ledger.Options{Now: clock, DisableSlices: mode == "exact"}
		for i, tt := range tests {
			saved := tt.wantSaved
			switch {
			case mode == "exact":
			case tt.sliceSaved < 0:
				saved = 0
			case tt.sliceSaved > 0:
				saved = tt.sliceSaved
			}
			t.Run(mode+"/"+tt.name, func(t *testing.T) {
				if mode == "slices" {
					i += 1000 // other counters
				}
				decideAsEngine(t, url, opt, now, i, tt, saved)
			})
		}
	}
}

// decideCase is one history of TestLedgerDecidesAsEngine.
type decideCase struct {
	name      string
	subject   budget.Subject
	spent     pricing.NanoUSD // committed before the request (rows stored)
	inFlight  int             // requests of cost worst admitted and not settled before it
	cost      budget.Cost
	want      budget.Decision // the fields checked below
	wantSaved pricing.NanoUSD // what the request reserves
	// sliceSaved is what it reserves with headroom slices (-1: nothing; 0: as wantSaved).
	sliceSaved pricing.NanoUSD
}

// decideAsEngine runs tt on a ledger with opt and on an engine, checking that they decide alike
// and that the ledger's request reserved wantSaved on each of its four counters.
func decideAsEngine(t *testing.T, url string, opt ledger.Options, now time.Time, i int, tt decideCase, wantSaved pricing.NanoUSD) {
	const worst = 100
	clock := opt.Now
	tt.wantSaved = wantSaved
	db, l, _ := replica(t, url, opt)
	engine := budget.New(clock)
	s := tt.subject
	s.ProjectID, s.WorkspaceID = int64(100+i), int64(200+i)
	ctx := context.Background()
	if tt.spent > 0 {
		if _, err := db.InsertUsage(ctx, []store.UsageRow{row(usage.NewRequestID(now), s, now, tt.spent)}); err != nil {
			t.Fatal(err)
		}
		var counters []budget.Counter
		for _, scope := range []budget.Scope{budget.ProjectScope, budget.WorkspaceScope} {
			id := s.ProjectID
			if scope == budget.WorkspaceScope {
				id = s.WorkspaceID
			}
			for _, period := range []string{budget.DayKey(now), budget.MonthKey(now)} {
				counters = append(counters, budget.Counter{Scope: scope, ID: id, Period: period, Spend: tt.spent})
			}
		}
		if err := engine.Load(counters); err != nil {
			t.Fatal(err)
		}
	}
	for range tt.inFlight {
		if _, d, err := l.Admit(ctx, s, usage.NewRequestID(now), fixed(worst)); err != nil || d.Blocked {
			t.Fatalf("in-flight request: %+v, %v", d, err)
		}
		engine.AdmitCost(s, fixed(worst))
	}
	before := pgInt(t, db, `SELECT coalesce(max(reserved_nano), 0)::bigint FROM spend_counters WHERE scope = 'project' AND scope_id = ?`, s.ProjectID)

	st, got, err := l.Admit(ctx, s, usage.NewRequestID(now), tt.cost)
	if err != nil {
		t.Fatal(err)
	}
	_, want := engine.AdmitCost(s, tt.cost)
	if got != want {
		t.Fatalf("ledger decided %+v, the engine %+v", got, want)
	}
	if got.Blocked != tt.want.Blocked || got.Fallback != tt.want.Fallback || got.Reserved != tt.want.Reserved ||
		got.OutputCap != tt.want.OutputCap || (tt.want.Blocked && got.Budget != tt.want.Budget) {
		t.Fatalf("decision %+v, want %+v", got, tt.want)
	}
	if got.Blocked != (st == nil) {
		t.Fatalf("blocked %v with settler %v", got.Blocked, st)
	}
	after := pgInt(t, db, `SELECT coalesce(max(reserved_nano), 0)::bigint FROM spend_counters WHERE scope = 'project' AND scope_id = ?`, s.ProjectID)
	if n := pgInt(t, db, `SELECT count(*) FROM spend_counters WHERE scope_id IN (?, ?) AND reserved_nano = ?`,
		s.ProjectID, s.WorkspaceID, after); tt.wantSaved > 0 && n != 4 {
		t.Errorf("%d of the four counters hold the reservation", n)
	}
	if pricing.NanoUSD(after-before) != tt.wantSaved {
		t.Fatalf("reserved %d, want %d", after-before, tt.wantSaved)
	}
}

// TestReplicasHoldOneBudget is the adversarial test of the shared budget: five replicas (each
// its own pool) admit 150 concurrent requests against one soft project budget inside one soft
// workspace budget, and one strict project budget, each request settling at or under its
// reservation through the usage batch. Committed spend passes a soft budget by at most one
// request's worst case (the single-node bound), never passes the strict one, and the counters
// equal the rows with no reservation left. A budget enforced per replica would spend about five
// times its limit here.
func TestReplicasHoldOneBudget(t *testing.T) {
	url := storetest.PostgresURL(t)
	const replicas = 5
	type rep struct {
		db *store.DB
		l  *ledger.Ledger
	}
	var reps []rep
	for range replicas {
		// Refreshed often, so that idle headroom slices are given back while clients retry.
		db, l, _ := replica(t, url, ledger.Options{RefreshInterval: 100 * time.Millisecond})
		if err := l.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		reps = append(reps, rep{db, l})
	}
	const worst = pricing.NanoUSD(1_000_000) // $0.001
	projectA := budget.Subject{ProjectID: 1, WorkspaceID: 10, Project: budget.Limits{Daily: nano(20 * int64(worst))},
		Workspace: budget.Limits{Monthly: nano(30 * int64(worst))}}
	projectB := budget.Subject{ProjectID: 2, WorkspaceID: 10, Workspace: projectA.Workspace}
	strict := budget.Subject{ProjectID: 3, WorkspaceID: 11, Project: budget.Limits{Daily: nano(15*int64(worst) + 12345), Strict: true}}
	subjects := []budget.Subject{projectA, projectA, projectA, projectB, projectB, strict, strict, strict}

	var admitted, refused, reservedRefusals atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, 150)
	// Throughout the burst, every committed state holds as much reserved in each counter as
	// the reservations naming it (a release twice, hidden by the clamp at zero, breaks it).
	watching := make(chan struct{})
	watched := make(chan int)
	go func() {
		checks := 0
		for {
			select {
			case <-watching:
				watched <- checks
				return
			default:
			}
			checkReservedMatches(t, reps[0].db)
			checks++
			time.Sleep(5 * time.Millisecond) // a snapshot every few admissions, not a load of its own
		}
	}()
	for i := range 150 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := reps[i%replicas]
			s := subjects[i%len(subjects)]
			cost := fixed(worst)
			if s.Project.Strict {
				cost = linear(worst/10, 900, 1000, 100) // worst: 100,000 + 900,000
			}
			<-start
			// A refusal by reservations in flight says to retry (Retry-After): this client
			// does, quickly, until it is served or the budget is spent.
			for try := 0; ; try++ {
				now := time.Now()
				id := usage.NewRequestID(now)
				st, d, err := r.l.Admit(context.Background(), s, id, cost)
				if err != nil {
					errs <- err
					return
				}
				if d.Blocked {
					if d.Reserved && try < 100 {
						reservedRefusals.Add(1)
						time.Sleep(time.Duration(5+rand.IntN(10)) * time.Millisecond)
						continue
					}
					refused.Add(1)
					return
				}
				admitted.Add(1)
				time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond) // upstream
				// The provider bills at most what was reserved: half the time all of it, else
				// from half of it up.
				amount := cost.WorstCase(d.Fallback, d.OutputCap)
				actual := amount
				if rand.IntN(2) == 0 {
					actual = amount/2 + pricing.NanoUSD(rand.Int64N(int64(amount/2)+1))
				}
				st.Settle(now, actual)
				if _, err := r.db.InsertUsage(context.Background(), []store.UsageRow{tagged(st, row(id, s, now, actual))}); err != nil {
					errs <- err
				}
				return
			}
		}()
	}
	close(start)
	wg.Wait()
	close(watching)
	t.Logf("reservations matched the counters in %d snapshots during the burst", <-watched)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	db := reps[0].db
	spend := func(column string, id int64) pricing.NanoUSD {
		return pricing.NanoUSD(pgInt(t, db, `SELECT coalesce(sum(cost_nano), 0)::bigint FROM usage_logs WHERE `+column+` = ?`, id))
	}
	a, w, s := spend("project_id", 1), spend("workspace_id", 10), spend("project_id", 3)
	t.Logf("%d admitted, %d refused, %d retried after a refusal by reservations in flight; project A spent %d of %d, workspace %d of %d, strict project %d of %d",
		admitted.Load(), refused.Load(), reservedRefusals.Load(), a, *projectA.Project.Daily, w, *projectA.Workspace.Monthly, s, *strict.Project.Daily)
	if a > *projectA.Project.Daily+worst {
		t.Errorf("project A spent %d: over its soft budget %d by more than one worst case %d", a, *projectA.Project.Daily, worst)
	}
	if w > *projectA.Workspace.Monthly+worst {
		t.Errorf("workspace spent %d: over its soft budget %d by more than one worst case %d", w, *projectA.Workspace.Monthly, worst)
	}
	if s > *strict.Project.Daily {
		t.Errorf("strict project spent %d: over its strict budget %d", s, *strict.Project.Daily)
	}
	// The burst must have met the budgets, or the test shows nothing: spent, or parked in the
	// replicas' headroom slices (which refuse requests early until they are given back).
	parked := func(column string, id int64) pricing.NanoUSD {
		return pricing.NanoUSD(pgInt(t, db, `SELECT coalesce(sum(amount_nano), 0)::bigint FROM budget_reservations WHERE `+column+` = ?`, id))
	}
	pa, pw, ps := parked("project_id", 1), parked("workspace_id", 10), parked("project_id", 3)
	var counts ledger.Counts
	for _, r := range reps {
		c := r.l.Counts()
		counts.FromSlice, counts.TopUps, counts.Exact = counts.FromSlice+c.FromSlice, counts.TopUps+c.TopUps, counts.Exact+c.Exact
	}
	t.Logf("admissions: %+v; parked in slices at the end: project A %d, workspace %d, strict %d", counts, pa, pw, ps)
	if refused.Load() == 0 || a+pa < *projectA.Project.Daily-worst && w+pw < *projectA.Workspace.Monthly-worst || s+ps < *strict.Project.Daily-2*worst {
		t.Fatalf("the burst did not press the budgets: %d refused, project A %d (+%d parked), strict %d (+%d)", refused.Load(), a, pa, s, ps)
	}
	if counts.FromSlice+counts.TopUps == 0 {
		t.Fatal("no admission used a headroom slice: the test does not test them")
	}
	for _, r := range reps {
		if err := r.l.Close(); err != nil { // gives the slices back
			t.Fatal(err)
		}
	}
	checkCountersEqualRows(t, db)
}

// TestDeadReplicaSwept checks the leases: a replica that stops renewing (closed without
// settling, as if killed) has its reservations settled at their reserved cost by another
// replica's sweep within one lease, as usage rows the counters equal; a late row of a swept
// request is skipped; a replica that keeps renewing keeps its long request's reservation over
// several leases.
func TestDeadReplicaSwept(t *testing.T) {
	url := storetest.PostgresURL(t)
	const lease = 800 * time.Millisecond
	// The exact path's reservations (TestSliceOfDeadReplicaSwept: a slice's).
	deadDB, dead, _ := replica(t, url, ledger.Options{Lease: lease, DisableSlices: true})
	db, live, _ := replica(t, url, ledger.Options{Lease: lease, DisableSlices: true})
	if err := live.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := budget.Subject{ProjectID: 7, WorkspaceID: 70, Project: budget.Limits{Daily: nano(1_000_000)}}
	ctx := context.Background()

	// The live replica's long request, renewed while the dead one's expire.
	longID := usage.NewRequestID(time.Now())
	long, _, err := live.Admit(ctx, s, longID, fixed(1000))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	admittedAt := time.Now()
	for i := range 10 {
		id := usage.NewRequestID(time.Now())
		if _, d, err := dead.Admit(ctx, s, id, fixed(pricing.NanoUSD(100+i))); err != nil || d.Blocked {
			t.Fatalf("admit: %+v %v", d, err)
		}
		ids = append(ids, id)
	}
	dead.Close() // no more renewals, nothing settled: as if killed

	for pgInt(t, db, `SELECT count(*) FROM budget_reservations WHERE owner = ?`, dead.Owner()) > 0 {
		if time.Since(admittedAt) > lease+200*time.Millisecond {
			t.Fatalf("the dead replica's reservations are still there %v after it stopped (lease %v)", time.Since(admittedAt), lease)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("swept %v after the dead replica's admissions (lease %v)", time.Since(admittedAt).Round(time.Millisecond), lease)
	if n := pgInt(t, db, `SELECT count(*) FROM usage_logs WHERE error_code = ? AND status = ? AND usage_estimated = 1`,
		store.SweptErrorCode, store.SweptStatus); n != 10 {
		t.Fatalf("%d swept usage rows, want 10", n)
	}
	if got := pgInt(t, db, `SELECT sum(cost_nano)::bigint FROM usage_logs WHERE error_code = ?`, store.SweptErrorCode); got != 10*100+45 {
		t.Fatalf("swept rows cost %d, want their reservations' 1045", got)
	}
	// The late row of a swept request (its replica lost the database, not its life) is
	// skipped: the swept row stands and nothing is counted twice.
	n, err := deadDB.InsertUsage(ctx, []store.UsageRow{row(ids[0], s, admittedAt, 50)})
	if err != nil || n != 0 {
		t.Fatalf("late row of a swept request: inserted %d, %v; want skipped", n, err)
	}

	// Three more leases: the long request's reservation is renewed throughout.
	time.Sleep(3 * lease)
	if n := pgInt(t, db, `SELECT count(*) FROM budget_reservations WHERE request_id = ?`, longID); n != 1 {
		t.Fatalf("the live replica's long request lost its reservation")
	}
	settle(t, db, long, longID, s, time.Now(), 900)
	checkCountersEqualRows(t, db)
	if got := pgInt(t, db, `SELECT spend_nano FROM spend_counters WHERE scope = 'project' AND scope_id = ? AND period = ?`,
		s.ProjectID, budget.DayKey(time.Now())); got != 1045+900 {
		t.Fatalf("project spend %d, want 1945 (swept 1045 + settled 900)", got)
	}
}

// TestSettleIdempotent checks that a usage batch retried, or naming a request with no
// reservation, settles nothing twice.
func TestSettleIdempotent(t *testing.T) {
	url := storetest.PostgresURL(t)
	db, l, _ := replica(t, url, ledger.Options{DisableSlices: true}) // TestSliceSettledOnce: a slice's
	ctx := context.Background()
	s := budget.Subject{ProjectID: 5, WorkspaceID: 50, Workspace: budget.Limits{Daily: nano(1_000_000)}}
	now := time.Now()
	id := usage.NewRequestID(now)
	st, _, err := l.Admit(ctx, s, id, fixed(500))
	if err != nil {
		t.Fatal(err)
	}
	other := usage.NewRequestID(now)
	if _, _, err := l.Admit(ctx, s, other, fixed(300)); err != nil {
		t.Fatal(err)
	}
	st.Settle(now, 400)
	st.Settle(now, 400)                                                                      // a second Settle is a no-op
	batch := []store.UsageRow{row(id, s, now, 400), row(usage.NewRequestID(now), s, now, 7)} // the second never reserved
	for try := range 3 {
		if _, err := db.InsertUsage(ctx, batch); err != nil {
			t.Fatalf("try %d: %v", try, err)
		}
		reserved := pgInt(t, db, `SELECT reserved_nano::bigint FROM spend_counters WHERE scope = 'workspace' AND scope_id = ? AND period = ?`,
			s.WorkspaceID, budget.DayKey(now))
		spent := pgInt(t, db, `SELECT spend_nano FROM spend_counters WHERE scope = 'workspace' AND scope_id = ? AND period = ?`,
			s.WorkspaceID, budget.DayKey(now))
		if reserved != 300 || spent != 407 {
			t.Fatalf("try %d: reserved %d, spent %d; want 300 (the other request's) and 407", try, reserved, spent)
		}
	}
	if got := l.Owner(); pgInt(t, db, `SELECT count(*) FROM budget_reservations WHERE owner = ?`, got) != 1 {
		t.Fatal("want only the other request's reservation left")
	}
}

// TestRefusedWhenAnotherReplicaTakesTheRoom checks the conditional reservation: a replica
// that read the counters before another replica took the last of the budget does not reserve
// past it. The refusal is by reservations in flight (Retry-After 2 s).
func TestRefusedWhenAnotherReplicaTakesTheRoom(t *testing.T) {
	url := storetest.PostgresURL(t)
	_, l1, _ := replica(t, url, ledger.Options{})
	_, l2, _ := replica(t, url, ledger.Options{})
	ctx := context.Background()
	s := budget.Subject{ProjectID: 9, WorkspaceID: 90, Project: budget.Limits{Monthly: nano(1000)}}
	// l1 takes the whole budget; l2 then finds no room.
	if _, d, err := l1.Admit(ctx, s, usage.NewRequestID(time.Now()), fixed(1000)); err != nil || d.Blocked {
		t.Fatalf("first: %+v %v", d, err)
	}
	_, d, err := l2.Admit(ctx, s, usage.NewRequestID(time.Now()), fixed(10))
	if err != nil || !d.Blocked || !d.Reserved || d.RetryAfter != budget.ReservedRetryAfter || d.Budget != budget.ProjectMonthly {
		t.Fatalf("second = %+v, %v; want a refusal by reservations of the monthly budget", d, err)
	}
}

// TestUnreachable checks that a metered request — of a project with a budget or without one — is
// refused with 503 STORAGE_UNAVAILABLE within the timeout when PostgreSQL stops answering
// (connections hang) or goes away (refused), and never admitted.
func TestUnreachable(t *testing.T) {
	base := storetest.PostgresURL(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	p := newTCPProxy(t, u.Host)
	u.Host = p.addr
	const timeout = 300 * time.Millisecond
	const refresh = 100 * time.Millisecond
	_, l, _ := replica(t, u.String(), ledger.Options{Timeout: timeout, RefreshInterval: refresh})
	ctx := context.Background()
	s := budget.Subject{ProjectID: 3, WorkspaceID: 30, Project: budget.Limits{Daily: nano(1000)}}
	if _, d, err := l.Admit(ctx, s, usage.NewRequestID(time.Now()), fixed(10)); err != nil || d.Blocked {
		t.Fatalf("while reachable: %+v %v", d, err)
	}
	// That admission left a headroom slice, which admits without a round trip only while the
	// counters it decides on are fresh (a refresh and a quarter): once they are not, the
	// database must answer.
	if c := l.Counts(); c.TopUps != 1 {
		t.Fatalf("admissions %+v: want one top-up of a slice", c)
	}
	time.Sleep(refresh * 3 / 2)
	for _, mode := range []string{"hang", "down"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "hang" {
				p.freeze()
			} else {
				p.down()
			}
			began := time.Now()
			st, d, err := l.Admit(ctx, s, usage.NewRequestID(time.Now()), fixed(10))
			took := time.Since(began)
			var ae *apperr.Error
			if !errors.As(err, &ae) || ae.Code != apperr.StorageUnavailable || apperr.Status(err) != 503 || st != nil || d.Blocked {
				t.Fatalf("Admit = %v, %+v, %v; want 503 STORAGE_UNAVAILABLE", st, d, err)
			}
			if took > timeout+200*time.Millisecond {
				t.Fatalf("refused after %v, want within the timeout %v", took, timeout)
			}
			t.Logf("%s: refused after %v: %s", mode, took.Round(time.Millisecond), ae.Message)
			// A project with no budget reserves nothing, but its rows could not be stored
			// either: past a fresh refresh it is refused the same way.
			unbudgeted := budget.Subject{ProjectID: 4, WorkspaceID: 40}
			st, d, err = l.Admit(ctx, unbudgeted, usage.NewRequestID(time.Now()), fixed(10))
			if !errors.As(err, &ae) || ae.Code != apperr.StorageUnavailable || st != nil || d.Blocked {
				t.Fatalf("no budget: Admit = %v, %+v, %v; want 503 STORAGE_UNAVAILABLE", st, d, err)
			}
		})
	}
	// An unmetered call reserves nothing and is decided without the database.
	if _, d, err := l.Admit(ctx, s, usage.NewRequestID(time.Now()), budget.Cost{}); err != nil || d.Blocked {
		t.Fatalf("unmetered call while the database is down: %+v %v", d, err)
	}
}

// TestCrossings checks the watcher: a budget at 80% is handed once per replica, 100% once
// more when it gets there, and the mirror shows the database's spend.
func TestCrossings(t *testing.T) {
	url := storetest.PostgresURL(t)
	var mu sync.Mutex
	var got []budget.Crossing
	db, l, engine := replica(t, url, ledger.Options{OnCrossing: func(cs []budget.Crossing) {
		mu.Lock()
		got = append(got, cs...)
		mu.Unlock()
	}})
	ctx := context.Background()
	var wsID, pID int64
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		if wsID, err = db.InsertWorkspace(ctx, tx, store.Workspace{Name: "w", MonthlyBudgetNano: ptr(10_000)}); err != nil {
			return err
		}
		pID, err = db.InsertProject(ctx, tx, store.Project{WorkspaceID: wsID, Name: "p", DailyBudgetNano: ptr(1000)}, "hash")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	s := budget.Subject{ProjectID: pID, WorkspaceID: wsID}
	now := time.Now()
	refresh := func(spend pricing.NanoUSD) []budget.Crossing {
		t.Helper()
		if spend > 0 {
			if _, err := db.InsertUsage(ctx, []store.UsageRow{row(usage.NewRequestID(now), s, now, spend)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		out := got
		got = nil
		return out
	}
	if cs := refresh(700); len(cs) != 0 {
		t.Fatalf("at 70%%: %+v", cs)
	}
	if sp := engine.Spend(budget.ProjectScope, pID); sp.Day != 700 || sp.Month != 700 {
		t.Fatalf("mirror: %+v, want the database's 700", sp)
	}
	cs := refresh(150)
	if len(cs) != 1 || cs[0].Budget != budget.ProjectDaily || cs[0].Threshold != budget.FallbackLevel || cs[0].Spend != 850 ||
		cs[0].Limit != 1000 || cs[0].ProjectID != pID || cs[0].WorkspaceID != wsID {
		t.Fatalf("at 85%%: %+v", cs)
	}
	if cs := refresh(0); len(cs) != 0 {
		t.Fatalf("again at 85%%: %+v (handed twice)", cs)
	}
	if cs := refresh(200); len(cs) != 1 || cs[0].Threshold != budget.BlockLevel {
		t.Fatalf("at 105%%: %+v", cs)
	}
	if cs := refresh(7000); len(cs) != 1 || cs[0].Budget != budget.WorkspaceMonthly || cs[0].Threshold != budget.FallbackLevel {
		t.Fatalf("workspace at 80.5%%: %+v", cs)
	}
}

func ptr(v int64) *int64 { return &v }

// tcpProxy forwards connections to a PostgreSQL server until frozen (it stops forwarding and
// holds the connections open: the server hangs) or down (it closes them and refuses new ones).
type tcpProxy struct {
	addr   string
	ln     net.Listener
	mu     sync.Mutex
	conns  []net.Conn
	frozen atomic.Bool
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{addr: ln.Addr().String(), ln: ln}
	t.Cleanup(p.down)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if p.frozen.Load() {
				p.track(c) // accepted, never answered
				continue
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.track(c, s)
			go p.pipe(c, s)
			go p.pipe(s, c)
		}
	}()
	return p
}

func (p *tcpProxy) track(cs ...net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, cs...)
	p.mu.Unlock()
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for p.frozen.Load() {
			time.Sleep(10 * time.Millisecond) // hold the bytes: the peer waits
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				dst.Close()
			}
			return
		}
	}
}

func (p *tcpProxy) freeze() { p.frozen.Store(true) }

func (p *tcpProxy) down() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.frozen.Store(false)
}

// BenchmarkAdmit measures one request's trips through the gate: on PostgreSQL an admission
// (mostly from this replica's headroom slice, a top-up every 32; else read, decide,
// conditional reservation) and its settlement as a one-row usage batch (which
// the writer shares among many rows in production, so this overstates it), and the same on the
// single node's engine (in memory, settled by Settle).
func BenchmarkAdmit(b *testing.B) {
	s := budget.Subject{ProjectID: 1, WorkspaceID: 2, Project: budget.Limits{Daily: nano(1 << 60)},
		Workspace: budget.Limits{Monthly: nano(1 << 60)}}
	b.Run("engine", func(b *testing.B) {
		e := budget.New(time.Now)
		for b.Loop() {
			t, _ := e.AdmitCost(s, fixed(1000))
			t.Settle(time.Now(), 900)
		}
	})
	url := storetest.PostgresURL(b)
	db, l, _ := replica(b, url, ledger.Options{})
	ctx := context.Background()
	b.Run("postgres-admit", func(b *testing.B) {
		var rows []store.UsageRow
		for b.Loop() {
			id := usage.NewRequestID(time.Now())
			st, _, err := l.Admit(ctx, s, id, fixed(1000))
			if err != nil {
				b.Fatal(err)
			}
			rows = append(rows, tagged(st, row(id, s, time.Now(), 900)))
		}
		b.StopTimer()
		for len(rows) > 0 {
			n := min(len(rows), 1000)
			if _, err := db.InsertUsage(ctx, rows[:n]); err != nil {
				b.Fatal(err)
			}
			rows = rows[n:]
		}
	})
	b.Run("postgres-admit-settle", func(b *testing.B) {
		for b.Loop() {
			id := usage.NewRequestID(time.Now())
			st, _, err := l.Admit(ctx, s, id, fixed(1000))
			if err != nil {
				b.Fatal(err)
			}
			st.Settle(time.Now(), 900)
			if _, err := db.InsertUsage(ctx, []store.UsageRow{tagged(st, row(id, s, time.Now(), 900))}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("postgres-unmetered", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := l.Admit(ctx, s, "", budget.Cost{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestSlicesSteadyStream checks the point of headroom slices: of a steady stream of requests
// well inside their budgets, most are admitted without a round trip to PostgreSQL, and once
// settled the counters hold only the slice's free part, which an idle slice gives back within
// about two refreshes; the counters then equal the rows and nothing is reserved.
func TestSlicesSteadyStream(t *testing.T) {
	url := storetest.PostgresURL(t)
	const refresh = 100 * time.Millisecond
	db, l, _ := replica(t, url, ledger.Options{RefreshInterval: refresh})
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := budget.Subject{ProjectID: 21, WorkspaceID: 210, Project: budget.Limits{Daily: nano(1_000_000_000)},
		Workspace: budget.Limits{Monthly: nano(10_000_000_000)}}
	free := budget.Subject{ProjectID: 22, WorkspaceID: 220} // no budget at all
	ctx := context.Background()
	const n = 400
	var batch []store.UsageRow
	for i := range n {
		subject := s
		if i%10 == 0 {
			subject = free
		}
		now := time.Now()
		id := usage.NewRequestID(now)
		st, d, err := l.Admit(ctx, subject, id, fixed(1000))
		if err != nil || d.Blocked {
			t.Fatalf("request %d: %+v %v", i, d, err)
		}
		st.Settle(now, 700)
		batch = append(batch, tagged(st, row(id, subject, now, 700)))
		if len(batch) == 20 { // the writer's batches
			if _, err := db.InsertUsage(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	c := l.Counts()
	t.Logf("%d requests: %+v", n, c)
	if c.Unlimited != n/10 {
		t.Errorf("%d admissions without a budget, want %d", c.Unlimited, n/10)
	}
	if trips := c.TopUps + c.Exact; trips*10 > n || c.FromSlice < n/2 {
		t.Errorf("admissions %+v: want most without a round trip (at most one in ten with one)", c)
	}
	// What the counters hold now is the slice's free part, no request's.
	held := pgInt(t, db, `SELECT coalesce(sum(amount_nano), 0)::bigint FROM budget_reservations`)
	reserved := pgInt(t, db, `SELECT reserved_nano::bigint FROM spend_counters WHERE scope = 'project' AND scope_id = ? AND period = ?`,
		s.ProjectID, budget.DayKey(time.Now()))
	if held <= 0 || reserved != held || held > 32*1000 {
		t.Fatalf("after the stream: slices hold %d, the project's counter %d; want the same, at most one slice (32000)", held, reserved)
	}
	idle := time.Now()
	for pgInt(t, db, `SELECT count(*) FROM budget_reservations`) > 0 {
		if time.Since(idle) > 3*refresh {
			t.Fatalf("the idle slice still holds %d after %v (refresh %v)", held, time.Since(idle), refresh)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("idle slice given back %v after the stream (refresh %v)", time.Since(idle).Round(time.Millisecond), refresh)
	checkCountersEqualRows(t, db)
}

// TestSliceSettledOnce checks that a usage batch takes a request admitted from a slice off it
// once, however often the batch is retried, and only for the rows it inserted.
func TestSliceSettledOnce(t *testing.T) {
	url := storetest.PostgresURL(t)
	db, l, _ := replica(t, url, ledger.Options{})
	ctx := context.Background()
	s := budget.Subject{ProjectID: 23, WorkspaceID: 230, Workspace: budget.Limits{Daily: nano(1_000_000)}}
	now := time.Now()
	reservedNow := func() int64 {
		return pgInt(t, db, `SELECT reserved_nano::bigint FROM spend_counters WHERE scope = 'workspace' AND scope_id = ? AND period = ?`,
			s.WorkspaceID, budget.DayKey(now))
	}
	var sts []budget.Settler
	var ids []string
	for range 3 {
		id := usage.NewRequestID(now)
		st, d, err := l.Admit(ctx, s, id, fixed(500))
		if err != nil || d.Blocked {
			t.Fatalf("%+v %v", d, err)
		}
		sts, ids = append(sts, st), append(ids, id)
	}
	if c := l.Counts(); c.TopUps != 1 || c.FromSlice != 2 {
		t.Fatalf("admissions %+v: want one top-up and two from the slice", c)
	}
	slice := reservedNow() // 32 worst cases
	if slice != 32*500 {
		t.Fatalf("slice holds %d, want 16000", slice)
	}
	batch := []store.UsageRow{tagged(sts[0], row(ids[0], s, now, 400)), tagged(sts[1], row(ids[1], s, now, 300))}
	for try := range 3 {
		if _, err := db.InsertUsage(ctx, batch); err != nil {
			t.Fatalf("try %d: %v", try, err)
		}
		if got := reservedNow(); got != slice-1000 {
			t.Fatalf("try %d: reserved %d, want %d (the two requests' worst cases off the slice, once)", try, got, slice-1000)
		}
	}
	settle(t, db, sts[2], ids[2], s, now, 100)
	if got := pgInt(t, db, `SELECT amount_nano FROM budget_reservations WHERE owner = ?`, l.Owner()); got != slice-1500 || reservedNow() != got {
		t.Fatalf("slice row %d, counter %d; want both %d (its free part)", got, reservedNow(), slice-1500)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	checkCountersEqualRows(t, db)
}

// TestSliceOfDeadReplicaSwept checks that a replica that stops (closed without its rows
// written, as if killed) has its headroom slice swept by another replica within one lease, at
// what the slice held — one RESERVATION_EXPIRED row, counted like any row — and that a late
// row of one of its requests is stored and counted too, its take off the gone slice matching
// nothing: a dead replica can bill up to one slice more than its requests cost.
func TestSliceOfDeadReplicaSwept(t *testing.T) {
	url := storetest.PostgresURL(t)
	const lease = 800 * time.Millisecond
	deadDB, dead, _ := replica(t, url, ledger.Options{Lease: lease})
	db, live, _ := replica(t, url, ledger.Options{Lease: lease})
	if err := live.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := budget.Subject{ProjectID: 24, WorkspaceID: 240, Project: budget.Limits{Daily: nano(1_000_000)}}
	ctx := context.Background()
	admittedAt := time.Now()
	var first budget.Settler
	var firstID string
	for i := range 10 {
		id := usage.NewRequestID(time.Now())
		st, d, err := dead.Admit(ctx, s, id, fixed(100))
		if err != nil || d.Blocked {
			t.Fatalf("admit: %+v %v", d, err)
		}
		if i == 0 {
			first, firstID = st, id
		}
	}
	if c := dead.Counts(); c.FromSlice < 5 {
		t.Fatalf("admissions %+v: want most from a slice", c)
	}
	held := pgInt(t, db, `SELECT sum(amount_nano)::bigint FROM budget_reservations WHERE owner = ?`, dead.Owner())
	// As if killed: its database gone first, so Close gives nothing back, and no renewals.
	deadDB.Close()
	if err := dead.Close(); err == nil {
		t.Fatal("Close gave the slice back without a database")
	}
	for pgInt(t, db, `SELECT count(*) FROM budget_reservations WHERE owner = ?`, dead.Owner()) > 0 {
		if time.Since(admittedAt) > lease+200*time.Millisecond {
			t.Fatalf("the dead replica's slice is still there %v after it stopped (lease %v)", time.Since(admittedAt), lease)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("slice holding %d swept %v after the dead replica's admissions (lease %v)", held, time.Since(admittedAt).Round(time.Millisecond), lease)
	if got := pgInt(t, db, `SELECT coalesce(sum(cost_nano), 0)::bigint FROM usage_logs WHERE error_code = ? AND request_id LIKE 'slice:%'`,
		store.SweptErrorCode); got != held {
		t.Fatalf("swept rows cost %d, want what the slice held, %d", got, held)
	}
	first.Settle(admittedAt, 60)
	if n, err := db.InsertUsage(ctx, []store.UsageRow{tagged(first, row(firstID, s, admittedAt, 60))}); err != nil || n != 1 {
		t.Fatalf("late row of a request of the swept slice: inserted %d, %v", n, err)
	}
	checkCountersEqualRows(t, db)
	if got := pgInt(t, db, `SELECT spend_nano FROM spend_counters WHERE scope = 'project' AND scope_id = ? AND period = ?`,
		s.ProjectID, budget.DayKey(admittedAt)); got != held+60 {
		t.Fatalf("project spend %d, want %d (the swept slice %d + the late row 60)", got, held+60, held)
	}
}

// TestHugeWorstCase checks that worst cases near the NanoUSD range (absurd output on a costly
// model saturates there) size headroom slices without wrapping: each request is admitted, its
// reservation holds at least its worst case, and the counters hold what the reservations hold.
func TestHugeWorstCase(t *testing.T) {
	url := storetest.PostgresURL(t)
	db, l, _ := replica(t, url, ledger.Options{})
	for i, worst := range []pricing.NanoUSD{math.MaxInt64, math.MaxInt64 / 2, math.MaxInt64/32 + 1, 1<<59 + 1<<57} {
		s := budget.Subject{ProjectID: int64(31 + i), WorkspaceID: int64(310 + i), Project: budget.Limits{Daily: nano(math.MaxInt64)}}
		st, d, err := l.Admit(context.Background(), s, usage.NewRequestID(time.Now()), fixed(worst))
		if err != nil || d.Blocked || st == nil {
			t.Fatalf("worst case %d: %+v %v", worst, d, err)
		}
		if held := pgInt(t, db, `SELECT coalesce(min(amount_nano), 0) FROM budget_reservations WHERE project_id = ?`, s.ProjectID); held < int64(worst) {
			t.Errorf("worst case %d: its reservation holds %d", worst, held)
		}
	}
	t.Logf("admissions %+v", l.Counts())
	checkReservedMatches(t, db)
}
