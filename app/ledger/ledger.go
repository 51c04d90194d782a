// Package ledger is the budget gate of a TokenGuard cluster: several replicas on one PostgreSQL
// database, holding every project and workspace to one budget between them. It owns the
// reservations of this replica's requests in PostgreSQL (budget_reservations, and
// spend_counters.reserved_nano), their leases, the sweep of other replicas' expired
// reservations, this replica's mirror of the counters (a budget.Engine, which the dashboard,
// /proxy/budget and the metrics read), and the budget alerts' crossings. The rules are
// app/budget's (budget.Decide): one node and N replicas decide alike.
//
// How a request flows:
//
//  1. Admit reads the request's four counters (project and workspace, UTC day and month) in one
//     SELECT: committed spend and what requests in flight on every replica hold.
//  2. budget.Decide rules on them, exactly as the single-node engine does.
//  3. When the request reserves something, one statement (atomic on its own: one round trip, no
//     explicit transaction) adds its worst case to the four counters — one conditional upsert
//     taking them in lock order, each under its budget's bound (budget.Account.Bound: soft,
//     spend plus reservations under the limit; strict, the reservation fits too) as PostgreSQL
//     sees the row once it holds its lock — and stores the reservation row (owner = this
//     replica, expiring after the lease). If another replica took the room between 1 and 3, the
//     statement fails and writes nothing, and Admit starts over from 1, up to three times, then
//     refuses as a reservation refusal (Retry-After 2 s).
//  4. The request's Settle writes nothing to PostgreSQL: the usage writer's batch stores the
//     request's usage row, adds its cost to spend_nano and deletes the reservation (taking it
//     off reserved_nano) in one transaction (store.settleReservations), so no crash leaves spend
//     counted without its row or a reservation released without its spend. Settle only adds the
//     cost to this replica's mirror.
//
// Headroom slices (the hot path). Steps 1-3 cost two statements on four hot rows per request,
// so most requests skip them. Each replica holds, per project and day, a slice: a
// budget_reservations row of its own ("slice:<owner>:<project>:<day>:<n>") held on the four
// counters like a request's reservation and renewed with them; its unassigned part (free) is
// in memory. A request whose budgets, decided by budget.Decide on the counters this replica
// last read (its refresh every RefreshInterval, or its own reads; at most 1.25 intervals old,
// the slice's free part not counted as in flight), admit whole — not blocked, no output cap, no
// fallback, and for a project with a fallback model not within fallbackMargin of FallbackLevel —
// takes its worst case w from free: no round trip. When free is short, one statement tops the
// slice up by S = min(32w, room/8) (room: the least headroom over the limited counters; no
// slice when S < 2w) under a strict bound on every limited counter — spend + reserved + S ≤
// limit — in Reserve's statement shape and lock order. Otherwise, or when the top-up fails, the
// exact path (1-3) decides, unchanged. The request's usage row names the slice and w
// (store.UsageRow.SliceID, SliceNano; the proxy copies them from the ticket's Slice), and the
// batch that inserts the row takes w off the slice row and its counters, in the same
// transaction, once (only for rows that batch inserted). A slice that admitted nothing since
// the last refresh gives its free part back then (a slice of an ended day too), and is deleted
// when nothing is left in it; Close gives every free part back. Subjects with no budget at all
// reserve nothing and are admitted without a round trip (the batch still adds their spend)
// while the last refresh is fresh; past that, after one read that proves PostgreSQL answers.
//
// The bound. Every admission is decided on the counters as they stand, and the conditional
// upsert makes "read, decide, reserve" atomic per counter across replicas, so the single-node
// rule holds for the cluster as a whole: committed spend passes a soft budget by at most one
// request's worst case (the last one admitted under it), plus whatever real costs exceed their
// reservations by; a strict budget is never passed except by that excess. N replicas do not
// multiply the overshoot. Slices keep that bound: they are only ever taken strictly inside
// every budget, and a request admitted from one holds its own worst case there, so only the
// exact path can pass a soft budget, by one worst case. Their cost: up to N slices of headroom
// parked in other replicas can refuse a request early (a refusal by reservations, Retry-After)
// until they are given back, and a fallback or strict-cap decision taken from a slice is on
// counters up to 1.25 refresh intervals old. A dead replica's slice is swept like any
// reservation, at what it held (its requests' worst cases and its free part): up to one slice
// more than its requests cost.
//
// Leases. A reservation expires Lease×3/4 after it was taken or last renewed, on PostgreSQL's
// clock (replicas' clocks may differ); a goroutine renews
// this replica's reservations every Lease/4 — those of requests in flight, and of settled ones
// whose usage rows are still waiting for the writer — so long streams keep theirs. Every
// replica sweeps every Lease/4: an expired reservation (its replica died, or lost PostgreSQL for
// longer than the lease) is settled at its reserved cost, since the provider may have billed
// it, as a usage row of its own — status 502, error code RESERVATION_EXPIRED, usage estimated,
// no provider or model (the reservation does not know them) — through the usage writer's own
// insert, so rollups and counters stay equal to the rows (store.SweepReservations). Whoever
// sweeps first wins. A dead replica's reservations are therefore settled within one Lease of
// its last renewal. Should the dead request's own row arrive later (a replica that lost
// PostgreSQL, not its life), it is skipped by request id: the swept row stands.
//
// Failure. Every admission runs under Timeout (default 2 s). When PostgreSQL does not answer
// in time, or fails, a metered request is refused with 503 STORAGE_UNAVAILABLE: it is never
// admitted unmetered (one taken from a slice while the counters are fresh is held there). A
// slice whose top-up or return failed is forgotten, left to expire and be swept: whether the
// statement landed is unknown, and guessing either way could hold less than its requests need. Unmetered calls (model lists and the like, which reserve nothing) are
// decided on the mirror without a round trip, as they are on one node.
//
// Mirror and alerts. Each admission writes the four counters it read into the mirror, and a
// watcher refreshes every current-period counter every RefreshInterval (1 s), then hands the
// budgets standing at or above 80% and 100% of their limits to OnCrossing — once per budget,
// period and threshold per replica; the alert and webhook packages claim each one with a
// database row (budget_alerts, webhook_deliveries.dedupe_key), so across replicas each alert is
// sent once.
package ledger

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"tokenguard/app/apperr"
	"tokenguard/app/budget"
	"tokenguard/app/pricing"
	"tokenguard/store"
)

// Defaults of Options.
const (
	// DefaultLease is how long a dead replica's reservations hold budget before a sweep settles
	// them (BUDGET_LEASE).
	DefaultLease = 30 * time.Second
	// DefaultTimeout bounds one admission's round trips (BUDGET_LEDGER_TIMEOUT).
	DefaultTimeout = 2 * time.Second
	// DefaultRefresh is how often the mirror and the crossings are refreshed.
	DefaultRefresh = time.Second
	// reserveAttempts is how many times Admit reads and reserves when other replicas keep
	// taking the room in between.
	reserveAttempts = 3
	// sweepBatch bounds the reservations one sweep transaction settles.
	sweepBatch = 500
	// sliceRequests and sliceShare size a headroom slice's top-up: sliceRequests worst cases of
	// the request asking, at most a sliceShare-th of the least room its budgets have left; a top-up
	// smaller than two worst cases is not worth a slice (the exact path decides).
	sliceRequests = 32
	sliceShare    = 8
	// fallbackMargin keeps requests of a project with a fallback model off the slices from this
	// far below FallbackLevel, so that a decision on counters up to a refresh old does not miss a
	// fallback the exact path would have made.
	fallbackMargin = 0.05
)

// Options configure a Ledger; zero values take the defaults.
type Options struct {
	// Owner names this replica on its reservations; empty means host-pid-random, unique per
	// process, so a restarted replica never renews its previous life's reservations.
	Owner string
	// Lease bounds how long a reservation outlives its replica (DefaultLease).
	Lease time.Duration
	// Timeout bounds an admission's round trips to PostgreSQL (DefaultTimeout).
	Timeout time.Duration
	// RefreshInterval is how often the mirror and crossings are refreshed (DefaultRefresh).
	RefreshInterval time.Duration
	// OnCrossing is handed the budgets that reached 80% or 100% (alerts, webhooks); nil: none.
	OnCrossing func([]budget.Crossing)
	Logger     *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time
	// DisableSlices admits every metered request by the exact path (a read and a reservation of
	// its own in PostgreSQL), as before headroom slices: for tests and diagnosis.
	DisableSlices bool
}

// Counts are how a ledger's metered admissions were made, since New.
type Counts struct {
	// Unlimited: the subject has no budget at all, so nothing was reserved (no round trip
	// while the last refresh is fresh).
	Unlimited int64
	// FromSlice: taken from this replica's headroom slice without a round trip.
	FromSlice int64
	// TopUps: admitted by adding to the slice (one statement).
	TopUps int64
	// Exact: decided on a fresh read and reserved alone (two statements or more).
	Exact int64
}

// Ledger admits requests against budgets held in PostgreSQL. Create it with New, start its
// background work with Start, and stop it with Close.
type Ledger struct {
	db     *store.DB
	engine *budget.Engine
	opt    Options
	log    *slog.Logger

	mu sync.Mutex
	// live are this replica's reservations to renew: in flight, or settled and waiting for their
	// usage row (settled set, misses counting renewals that did not find the row).
	live map[string]*liveReservation
	// told are the crossings handed to OnCrossing, so each is handed once per replica.
	told map[crossingKey]bool
	// cache is the four counters of every subject as last read (a refresh or an admission's
	// read), refreshedAt when the last refresh read them: a counter missing from cache was zero
	// then.
	cache       map[store.SpendCounter]cachedCounter
	refreshedAt time.Time
	// slices are this replica's headroom slices, by project and day; sliceSeq numbers their ids,
	// so a slice id is never used twice.
	slices   map[sliceKey]*slice
	sliceSeq int64

	unlimited, fromSlice, topUps, exact atomic.Int64

	stop      chan struct{}
	done      sync.WaitGroup
	startOnce sync.Once
	closeOnce sync.Once
}

// cachedCounter is one counter as read at at.
type cachedCounter struct {
	c  store.LedgerCounter
	at time.Time
}

type sliceKey struct {
	projectID int64
	day       string
}

// slice is one headroom slice: a reservation (r, amount not kept here) this replica holds on a
// project's and workspace's four counters, from which it admits requests without a round trip.
// free is the part no request has taken; the rest is held by requests admitted from it until
// the usage batch storing their rows takes their worst cases off it.
type slice struct {
	r    store.Reservation
	free int64
	// took says a request was admitted from it since the last refresh (an idle slice gives its
	// free part back); stored that its row was written (by a top-up).
	took, stored bool
	// topping is closed when the top-up in progress ends (nil when none is).
	topping chan struct{}
}

type liveReservation struct {
	settled bool
	misses  int
}

type crossingKey struct {
	budget    budget.Budget
	id        int64
	period    string
	threshold float64
}

// New returns a ledger over db, which must be PostgreSQL, mirroring its counters into engine.
func New(db *store.DB, engine *budget.Engine, opt Options) (*Ledger, error) {
	if db == nil || engine == nil {
		return nil, errors.New("ledger: a database and an engine are required")
	}
	if !db.Postgres() {
		return nil, errors.New("ledger: budgets are shared through PostgreSQL; on SQLite the engine is the gate")
	}
	if opt.Owner == "" {
		var b [4]byte
		rand.Read(b[:])
		host, _ := os.Hostname()
		opt.Owner = host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
	}
	if opt.Lease <= 0 {
		opt.Lease = DefaultLease
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.RefreshInterval <= 0 {
		opt.RefreshInterval = DefaultRefresh
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Ledger{db: db, engine: engine, opt: opt, log: opt.Logger,
		live: make(map[string]*liveReservation), told: make(map[crossingKey]bool), stop: make(chan struct{}),
		cache: make(map[store.SpendCounter]cachedCounter), slices: make(map[sliceKey]*slice)}, nil
}

// Owner is the name this replica's reservations carry.
func (l *Ledger) Owner() string { return l.opt.Owner }

// Counts returns how the metered admissions so far were made.
func (l *Ledger) Counts() Counts {
	return Counts{Unlimited: l.unlimited.Load(), FromSlice: l.fromSlice.Load(), TopUps: l.topUps.Load(), Exact: l.exact.Load()}
}

// Start starts the lease renewal and sweep (every Lease/4) and the mirror and crossing refresh
// (every RefreshInterval). It refreshes the mirror once first, so the dashboard starts current,
// and starts nothing when that fails.
func (l *Ledger) Start(ctx context.Context) error {
	if err := l.Refresh(ctx); err != nil {
		return err
	}
	l.startOnce.Do(func() {
		l.done.Add(2)
		go l.every(l.opt.Lease/4, func(ctx context.Context) {
			if err := l.Renew(ctx); err != nil {
				l.log.Error("budget reservations not renewed", "err", err)
			}
			if _, err := l.Sweep(ctx); err != nil {
				l.log.Error("expired budget reservations not swept", "err", err)
			}
		})
		go l.every(l.opt.RefreshInterval, func(ctx context.Context) {
			if err := l.Refresh(ctx); err != nil {
				l.log.Error("budget counters not refreshed", "err", err)
			}
		})
	})
	return nil
}

// every runs fn every interval until Close, each run bounded by the interval.
func (l *Ledger) every(interval time.Duration, fn func(context.Context)) {
	defer l.done.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), max(interval, l.opt.Timeout))
			fn(ctx)
			cancel()
		}
	}
}

// Close stops the background work and gives the free part of every headroom slice back. It
// settles nothing: reservations still held expire after their lease and are swept (close the
// ledger after the usage writer has stored its rows, and none are left).
func (l *Ledger) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.stop)
		l.done.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), l.opt.Timeout)
		defer cancel()
		err = l.returnSlices(ctx, "", true)
	})
	l.done.Wait()
	return err
}

// Admit decides on a request of s with id requestID and, unless it is blocked, reserves its
// worst case in PostgreSQL (see the package doc). It returns a 503 STORAGE_UNAVAILABLE error
// when PostgreSQL does not answer within Timeout or fails; a blocked request gets a nil settler.
func (l *Ledger) Admit(ctx context.Context, s budget.Subject, requestID string, c budget.Cost) (budget.Settler, budget.Decision, error) {
	if c.WorstCase == nil {
		// Unmetered: nothing to reserve and no money at stake, so the mirror decides.
		t, d := l.engine.AdmitCost(s, c)
		if d.Blocked {
			return nil, d, nil
		}
		return t, d, nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.opt.Timeout)
	defer cancel()
	if !l.opt.DisableSlices && !limited(s) {
		// No budget to hold: nothing to reserve (the usage batch still adds the spend). While the
		// last refresh is recent PostgreSQL is known to answer; past that, one read proves it
		// does, so that with PostgreSQL gone these fail closed in bounded time like the others,
		// instead of piling rows up in memory.
		l.mu.Lock()
		stale := l.opt.Now().Sub(l.refreshedAt) >= l.opt.RefreshInterval+l.opt.RefreshInterval/4
		l.mu.Unlock()
		if stale {
			if _, err := l.db.ReadLedger(ctx, s.ProjectID, s.WorkspaceID, budget.DayKey(l.opt.Now()), budget.MonthKey(l.opt.Now())); err != nil {
				return nil, budget.Decision{}, l.unavailable(ctx, err)
			}
		}
		l.unlimited.Add(1)
		return &ticket{l: l, requestID: requestID, projectID: s.ProjectID, workspaceID: s.WorkspaceID}, budget.Decision{}, nil
	}
	var read *[4]store.LedgerCounter
	if !l.opt.DisableSlices {
		t, d, fresh, err := l.admitFromSlice(ctx, s, requestID, c)
		if err != nil || t != nil {
			return t, d, err
		}
		read = fresh
	}
	l.exact.Add(1)
	var last budget.Decision
	for range reserveAttempts {
		now := l.opt.Now()
		day, month := budget.DayKey(now), budget.MonthKey(now)
		var counters [4]store.LedgerCounter
		if read != nil {
			counters, read = *read, nil // the slice path's read, just made
		} else {
			var err error
			if counters, err = l.db.ReadLedger(ctx, s.ProjectID, s.WorkspaceID, day, month); err != nil {
				return nil, budget.Decision{}, l.unavailable(ctx, err)
			}
			l.remember(s, day, month, counters, now)
		}
		l.mirror(s, day, month, counters)
		acc := accounts(s, counters)
		d, amount := budget.Decide(s, acc, c, now)
		if d.Blocked {
			return nil, d, nil
		}
		t := &ticket{l: l, requestID: requestID, projectID: s.ProjectID, workspaceID: s.WorkspaceID}
		if amount <= 0 {
			return t, d, nil
		}
		var bounds [4]store.LedgerBound
		for i, a := range acc {
			if b, ok := a.Bound(amount); ok {
				bounds[i] = store.LedgerBound{Check: true, Max: b}
			}
		}
		// Tracked before the reservation exists, so a renewal never misses it.
		l.track(requestID)
		ok, err := l.db.Reserve(ctx, store.Reservation{RequestID: requestID, Owner: l.opt.Owner,
			ProjectID: s.ProjectID, WorkspaceID: s.WorkspaceID, Day: day, Month: month, AmountNano: int64(amount),
			CreatedAt: now.UnixMilli(), LeaseMs: l.leaseMs()}, bounds)
		if err != nil || !ok {
			l.untrack(requestID)
		}
		if err != nil {
			return nil, budget.Decision{}, l.unavailable(ctx, err)
		}
		if ok {
			t.reserved = true
			return t, d, nil
		}
		last = d
	}
	// Other replicas kept taking the room: refused like a request whose budget the ones in
	// flight hold, naming the fullest budget as last read (one with a bound, since only a bound
	// can fail).
	return nil, budget.Refusal(last.Budget, l.opt.Now()), nil
}

// limited says whether any budget applies to s.
func limited(s budget.Subject) bool {
	for _, a := range s.Accounts([4]pricing.NanoUSD{}, [4]pricing.NanoUSD{}) {
		if a.Limit != nil {
			return true
		}
	}
	return false
}

// accounts are s's budgets standing at counters.
func accounts(s budget.Subject, counters [4]store.LedgerCounter) [4]budget.Account {
	var spent, reserved [4]pricing.NanoUSD
	for i, c := range counters {
		spent[i], reserved[i] = pricing.NanoUSD(c.SpendNano), pricing.NanoUSD(c.ReservedNano)
	}
	return s.Accounts(spent, reserved)
}

// admitFromSlice admits a request of s from this replica's headroom slice of its project and
// day when the counters last read (reading them when they are older than a refresh and a
// quarter) admit it whole — not blocked, no output cap, no fallback, and for a project with a
// fallback model a margin below FallbackLevel — taking its worst case from the slice's free
// part, after topping the slice up when that is short. It returns a nil ticket when the exact
// path must decide, with the counters it read (nil when it read none, or they are stale).
func (l *Ledger) admitFromSlice(ctx context.Context, s budget.Subject, requestID string, c budget.Cost) (budget.Settler, budget.Decision, *[4]store.LedgerCounter, error) {
	now := l.opt.Now()
	day, month := budget.DayKey(now), budget.MonthKey(now)
	counters, fresh := l.cached(s, day, month, now)
	var read *[4]store.LedgerCounter
	if !fresh {
		var err error
		if counters, err = l.db.ReadLedger(ctx, s.ProjectID, s.WorkspaceID, day, month); err != nil {
			return nil, budget.Decision{}, nil, l.unavailable(ctx, err)
		}
		l.remember(s, day, month, counters, now)
		read = &counters
	}
	acc := accounts(s, counters)
	// Decided as the engine would: the slice's free part is this replica's to give, not held
	// by a request in flight (its requests are). The top-up's room counts it, as PostgreSQL does.
	mine := acc
	l.mu.Lock()
	if sl := l.slices[sliceKey{s.ProjectID, day}]; sl != nil {
		for i := range mine {
			mine[i].Reserved = max(mine[i].Reserved-pricing.NanoUSD(sl.free), 0)
		}
	}
	l.mu.Unlock()
	d, amount := budget.Decide(s, mine, c, now)
	if d.Blocked || d.OutputCap > 0 || d.Fallback || amount <= 0 ||
		s.HasFallback && d.Level >= budget.FallbackLevel-fallbackMargin {
		// A refusal on counters read earlier might be stale (reservations settle): the exact
		// path reads them again.
		if !fresh {
			return nil, budget.Decision{}, read, nil
		}
		return nil, budget.Decision{}, nil, nil
	}
	w := int64(amount)
	key := sliceKey{s.ProjectID, day}
	for {
		l.mu.Lock()
		sl := l.slices[key]
		if sl != nil && sl.free >= w {
			sl.free -= w
			sl.took = true
			id := sl.r.RequestID
			l.mu.Unlock()
			l.fromSlice.Add(1)
			return l.sliceTicket(s, requestID, id, w), d, nil, nil
		}
		if sl != nil && sl.topping != nil {
			// Another request is topping it up: wait for that rather than add a second top-up.
			ch := sl.topping
			l.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, budget.Decision{}, nil, l.unavailable(ctx, ctx.Err())
			}
		}
		// The top-up: sliceRequests worst cases, at most a sliceShare-th of the least room
		// left, taken only while every budget holds it whole (strict bounds).
		room := int64(-1)
		for _, a := range acc {
			if a.Limit != nil {
				left := int64(*a.Limit) - int64(a.Spent.Plus(a.Reserved))
				if room < 0 || left < room {
					room = max(left, 0)
				}
			}
		}
		// Divided rather than multiplied: a worst case near the NanoUSD range must not wrap.
		size := room / sliceShare
		if w <= size/sliceRequests {
			size = sliceRequests * w
		}
		if w > size/2 {
			l.mu.Unlock()
			return nil, budget.Decision{}, read, nil
		}
		if sl == nil {
			l.sliceSeq++
			sl = &slice{r: store.Reservation{RequestID: l.sliceID(s.ProjectID, day), Owner: l.opt.Owner,
				ProjectID: s.ProjectID, WorkspaceID: s.WorkspaceID, Day: day, Month: month}}
			l.slices[key] = sl
		}
		ch := make(chan struct{})
		sl.topping = ch
		stored := sl.stored
		l.mu.Unlock()

		var bounds [4]store.LedgerBound
		for i, a := range acc {
			if a.Limit != nil {
				bounds[i] = store.LedgerBound{Check: true, Max: int64(*a.Limit) - size}
			}
		}
		r := sl.r
		r.AmountNano, r.CreatedAt, r.LeaseMs = size, now.UnixMilli(), l.leaseMs()
		ok, err := l.db.TopUpSlice(ctx, r, bounds, stored)

		l.mu.Lock()
		sl.topping = nil
		close(ch)
		switch {
		case errors.Is(err, store.ErrSliceGone):
			// Swept (this replica was cut off for a lease) or returned meanwhile: nothing of it
			// is held any more, so its free part is not this replica's to give. A new slice
			// gets a new id; the exact path answers now.
			l.dropSliceLocked(key, sl)
			l.mu.Unlock()
			return nil, budget.Decision{}, nil, nil
		case err != nil:
			// Whether it was added is unknown: the slice is left to expire and be swept, as a
			// dead replica's would be, and the exact path answers (it fails closed).
			l.dropSliceLocked(key, sl)
			l.mu.Unlock()
			l.log.Error("headroom slice not topped up: left to expire", "slice", sl.r.RequestID, "err", err)
			return nil, budget.Decision{}, nil, l.unavailable(ctx, err)
		case !ok:
			if !sl.stored && sl.free == 0 {
				l.dropSliceLocked(key, sl) // nothing was written
			}
			l.mu.Unlock()
			return nil, budget.Decision{}, nil, nil // the exact path reads again
		}
		sl.stored, sl.took = true, true
		sl.free += size - w
		l.adjustLocked(s, day, month, size)
		l.mu.Unlock()
		l.topUps.Add(1)
		return l.sliceTicket(s, requestID, sl.r.RequestID, w), d, nil, nil
	}
}

func (l *Ledger) sliceTicket(s budget.Subject, requestID, sliceID string, w int64) *ticket {
	return &ticket{l: l, requestID: requestID, projectID: s.ProjectID, workspaceID: s.WorkspaceID, slice: sliceID, sliceNano: w}
}

// sliceID names a new slice of project on day: unique per replica (owner) and use (sliceSeq),
// within the reservations' 128 characters.
func (l *Ledger) sliceID(projectID int64, day string) string {
	owner := l.opt.Owner
	if len(owner) > 64 {
		sum := sha256.Sum256([]byte(owner))
		owner = hex.EncodeToString(sum[:12])
	}
	return fmt.Sprintf("slice:%s:%d:%s:%d", owner, projectID, day, l.sliceSeq)
}

// dropSliceLocked forgets sl (no more admissions from it, no renewals).
func (l *Ledger) dropSliceLocked(key sliceKey, sl *slice) {
	if l.slices[key] == sl {
		delete(l.slices, key)
	}
}

// counterKeys are s's four counters of day and month, indexed LedgerProjectDay….
func counterKeys(s budget.Subject, day, month string) [4]store.SpendCounter {
	return [4]store.SpendCounter{
		store.LedgerProjectDay:     {Scope: "project", ScopeID: s.ProjectID, Period: day},
		store.LedgerProjectMonth:   {Scope: "project", ScopeID: s.ProjectID, Period: month},
		store.LedgerWorkspaceDay:   {Scope: "workspace", ScopeID: s.WorkspaceID, Period: day},
		store.LedgerWorkspaceMonth: {Scope: "workspace", ScopeID: s.WorkspaceID, Period: month},
	}
}

// cached returns s's four counters as last read, and whether all were read within a refresh
// interval and a quarter of now.
func (l *Ledger) cached(s budget.Subject, day, month string, now time.Time) ([4]store.LedgerCounter, bool) {
	var out [4]store.LedgerCounter
	maxAge := l.opt.RefreshInterval + l.opt.RefreshInterval/4
	fresh := true
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, k := range counterKeys(s, day, month) {
		e, ok := l.cache[k]
		if !ok {
			e.at = l.refreshedAt
		}
		out[i] = e.c
		if e.at.IsZero() || now.Sub(e.at) >= maxAge {
			fresh = false
		}
	}
	return out, fresh
}

// remember caches the four counters an admission read at at.
func (l *Ledger) remember(s budget.Subject, day, month string, c [4]store.LedgerCounter, at time.Time) {
	l.mu.Lock()
	for i, k := range counterKeys(s, day, month) {
		l.cache[k] = cachedCounter{c: c[i], at: at}
	}
	l.mu.Unlock()
}

// adjustLocked adds reserved to s's cached counters (a top-up or return of this replica's).
func (l *Ledger) adjustLocked(s budget.Subject, day, month string, reserved int64) {
	for _, k := range counterKeys(s, day, month) {
		e, ok := l.cache[k]
		if !ok {
			e.at = l.refreshedAt
		}
		e.c.ReservedNano = max(e.c.ReservedNano+reserved, 0)
		l.cache[k] = e
	}
}

// returnSlices gives the free part of this replica's slices back: all of them when all is set
// (Close), else those idle since the last refresh and those of a day other than day. A slice
// whose row is left empty is deleted and forgotten; one whose return failed is left to expire
// and be swept (whether the return landed is unknown).
func (l *Ledger) returnSlices(ctx context.Context, day string, all bool) error {
	type job struct {
		key  sliceKey
		sl   *slice
		give int64
	}
	var jobs []job
	l.mu.Lock()
	for k, sl := range l.slices {
		if sl.topping != nil || !sl.stored {
			continue
		}
		if sl.took && !all && sl.r.Day == day {
			sl.took = false
			continue
		}
		sl.took = false
		jobs = append(jobs, job{k, sl, sl.free})
		sl.free = 0 // out of reach of admissions while it is returned
	}
	l.mu.Unlock()
	var errs []error
	for i, j := range jobs {
		if ctx.Err() != nil {
			// Out of time before these were sent: they are kept, whole, for the next refresh
			// (a return never sent is not uncertain, and dropping it would bill its free part).
			l.mu.Lock()
			for _, j := range jobs[i:] {
				j.sl.free += j.give
			}
			l.mu.Unlock()
			errs = append(errs, fmt.Errorf("return headroom slices: %d left for the next refresh: %w", len(jobs)-i, ctx.Err()))
			break
		}
		left, found, err := l.db.ReturnSlice(ctx, l.opt.Owner, j.sl.r.RequestID, j.give)
		l.mu.Lock()
		switch {
		case err != nil:
			l.dropSliceLocked(j.key, j.sl)
			errs = append(errs, err)
		case !found, left == 0 && j.sl.free == 0 && j.sl.topping == nil:
			l.dropSliceLocked(j.key, j.sl)
		}
		if err == nil && found {
			l.adjustLocked(budget.Subject{ProjectID: j.sl.r.ProjectID, WorkspaceID: j.sl.r.WorkspaceID},
				j.sl.r.Day, j.sl.r.Month, -j.give)
		}
		l.mu.Unlock()
	}
	return errors.Join(errs...)
}

// leaseMs is how long a reservation lasts once taken or renewed: three quarters of a lease (on
// the database's clock), so that with renewals every quarter one can fail and the next still
// lands in time, and a dead replica's reservations are swept (every quarter) within one lease.
func (l *Ledger) leaseMs() int64 {
	return (l.opt.Lease * 3 / 4).Milliseconds()
}

// unavailable is the fail-closed refusal of a metered request the ledger could not decide on.
func (l *Ledger) unavailable(ctx context.Context, err error) error {
	l.log.Error("budget ledger unavailable: metered request refused", "err", err)
	msg := "Budgets cannot be checked: the database is failing, so metered requests are refused until it recovers"
	if ctx.Err() != nil {
		msg = fmt.Sprintf("Budgets cannot be checked: the database did not answer within %v, so metered requests are refused until it does", l.opt.Timeout)
	}
	return &apperr.Error{Code: apperr.StorageUnavailable, Message: msg, RetryAfter: time.Second}
}

// mirror writes the four counters an admission read into the engine.
func (l *Ledger) mirror(s budget.Subject, day, month string, c [4]store.LedgerCounter) {
	l.engine.SetSpend([]budget.Counter{
		{Scope: budget.ProjectScope, ID: s.ProjectID, Period: day, Spend: pricing.NanoUSD(c[store.LedgerProjectDay].SpendNano)},
		{Scope: budget.ProjectScope, ID: s.ProjectID, Period: month, Spend: pricing.NanoUSD(c[store.LedgerProjectMonth].SpendNano)},
		{Scope: budget.WorkspaceScope, ID: s.WorkspaceID, Period: day, Spend: pricing.NanoUSD(c[store.LedgerWorkspaceDay].SpendNano)},
		{Scope: budget.WorkspaceScope, ID: s.WorkspaceID, Period: month, Spend: pricing.NanoUSD(c[store.LedgerWorkspaceMonth].SpendNano)},
	})
}

func (l *Ledger) track(id string) {
	l.mu.Lock()
	l.live[id] = &liveReservation{}
	l.mu.Unlock()
}

func (l *Ledger) untrack(id string) {
	l.mu.Lock()
	delete(l.live, id)
	l.mu.Unlock()
}

// ticket is an admitted request's hold on the shared budgets.
type ticket struct {
	l                      *Ledger
	requestID              string
	projectID, workspaceID int64
	reserved               bool
	// slice and sliceNano name the headroom slice the request was admitted from and the worst
	// case it holds there (empty when it was not).
	slice     string
	sliceNano int64
	mu        sync.Mutex
	settled   bool
}

// Slice names the headroom slice the request was admitted from and the worst case it took, for
// its usage row (store.UsageRow.SliceID, SliceNano): the batch storing the row takes that off
// the slice. id is empty when the request holds no slice.
func (t *ticket) Slice() (id string, nano int64) {
	if t == nil {
		return "", 0
	}
	return t.slice, t.sliceNano
}

// Settle adds actual to this replica's mirror and marks the reservation settled: it is still
// renewed until the usage writer's batch has stored the request's row and deleted it. The
// watcher reports crossings, so Settle reports none.
func (t *ticket) Settle(at time.Time, actual pricing.NanoUSD) []budget.Crossing {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	done := t.settled
	t.settled = true
	t.mu.Unlock()
	if done {
		return nil
	}
	t.l.engine.Record(t.projectID, t.workspaceID, at, actual)
	if t.reserved {
		t.l.mu.Lock()
		if r := t.l.live[t.requestID]; r != nil {
			r.settled = true
		}
		t.l.mu.Unlock()
	}
	return nil
}

// Renew moves the expiry of this replica's live reservations a lease on, in one statement. A
// settled reservation the renewal does not find twice in a row is forgotten: its usage row was
// stored (or, rarely, it was swept).
func (l *Ledger) Renew(ctx context.Context) error {
	sliceErr := l.renewSlices(ctx)
	l.mu.Lock()
	ids := make([]string, 0, len(l.live))
	for id := range l.live {
		ids = append(ids, id)
	}
	l.mu.Unlock()
	if len(ids) == 0 {
		return sliceErr
	}
	renewed, err := l.db.RenewReservations(ctx, l.opt.Owner, ids, l.leaseMs())
	if err != nil {
		return errors.Join(sliceErr, err)
	}
	found := make(map[string]bool, len(renewed))
	for _, id := range renewed {
		found[id] = true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		r := l.live[id]
		switch {
		case r == nil || found[id]:
			if r != nil {
				r.misses = 0
			}
		case r.settled:
			if r.misses++; r.misses >= 2 {
				delete(l.live, id)
			}
		}
	}
	return sliceErr
}

// renewSlices renews this replica's headroom slices; one not found was swept (this replica
// lost PostgreSQL for longer than a lease) and is forgotten.
func (l *Ledger) renewSlices(ctx context.Context) error {
	l.mu.Lock()
	ids := make([]string, 0, len(l.slices))
	for _, sl := range l.slices {
		if sl.stored {
			ids = append(ids, sl.r.RequestID)
		}
	}
	l.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	renewed, err := l.db.RenewSlices(ctx, l.opt.Owner, ids, l.leaseMs())
	if err != nil {
		return err
	}
	found := make(map[string]bool, len(renewed))
	for _, id := range renewed {
		found[id] = true
	}
	l.mu.Lock()
	for k, sl := range l.slices {
		if sl.stored && sl.topping == nil && !found[sl.r.RequestID] && slices.Contains(ids, sl.r.RequestID) {
			l.log.Warn("headroom slice swept: forgotten", "slice", sl.r.RequestID)
			delete(l.slices, k)
		}
	}
	l.mu.Unlock()
	return nil
}

// Sweep settles expired reservations of any replica at their reserved cost, in batches, and
// returns how many it settled.
func (l *Ledger) Sweep(ctx context.Context) (int, error) {
	total := 0
	for {
		swept, err := l.db.SweepReservations(ctx, sweepBatch)
		if err != nil {
			return total, err
		}
		total += len(swept)
		if len(swept) > 0 {
			owners := map[string]int{}
			for _, r := range swept {
				owners[r.Owner]++
			}
			l.log.Warn("expired budget reservations settled at their reserved cost", "count", len(swept), "owners", owners)
		}
		if len(swept) < sweepBatch {
			return total, nil
		}
	}
}

// Refresh reads every counter of the current day and month into the mirror, and hands the
// budgets that stand at or above 80% or 100% of their limits, and were not handed before, to
// OnCrossing.
func (l *Ledger) Refresh(ctx context.Context) error {
	now := l.opt.Now()
	day, month := budget.DayKey(now), budget.MonthKey(now)
	counters, err := l.db.ReadLedgerAll(ctx, day, month)
	if err != nil {
		return err
	}
	mirror := make([]budget.Counter, len(counters))
	spend := make(map[store.SpendCounter]int64, len(counters))
	cache := make(map[store.SpendCounter]cachedCounter, len(counters))
	for i, c := range counters {
		mirror[i] = budget.Counter{Scope: budget.Scope(c.Scope), ID: c.ScopeID, Period: c.Period, Spend: pricing.NanoUSD(c.SpendNano)}
		k := store.SpendCounter{Scope: c.Scope, ScopeID: c.ScopeID, Period: c.Period}
		spend[k] = c.SpendNano
		cache[k] = cachedCounter{c: c.LedgerCounter, at: now}
	}
	l.mu.Lock()
	l.cache, l.refreshedAt = cache, now
	l.mu.Unlock()
	if err := l.engine.SetSpend(mirror); err != nil {
		return err
	}
	if err := l.returnSlices(ctx, day, false); err != nil {
		l.log.Error("idle headroom not returned: its slices are left to expire", "err", err)
	}
	if l.opt.OnCrossing == nil {
		return nil
	}
	projects, workspaces, err := l.db.ListBudgetLimits(ctx)
	if err != nil {
		return err
	}
	var crossed []budget.Crossing
	check := func(b budget.Budget, scope string, id, workspaceID int64, period string, limit *int64) {
		if limit == nil || *limit <= 0 {
			return
		}
		s := spend[store.SpendCounter{Scope: scope, ScopeID: id, Period: period}]
		for _, thr := range [...]float64{budget.FallbackLevel, budget.BlockLevel} {
			if float64(s)/float64(*limit) < thr {
				return
			}
			k := crossingKey{b, id, period, thr}
			if l.told[k] {
				continue
			}
			l.told[k] = true
			c := budget.Crossing{Budget: b, Threshold: thr, WorkspaceID: workspaceID,
				Spend: pricing.NanoUSD(s), Limit: pricing.NanoUSD(*limit), At: now}
			if scope == "project" {
				c.ProjectID = id
			}
			crossed = append(crossed, c)
		}
	}
	l.mu.Lock()
	for k := range l.told {
		if k.period != day && k.period != month {
			delete(l.told, k) // an ended period's: it cannot be crossed again
		}
	}
	for _, p := range projects {
		check(budget.ProjectDaily, "project", p.ID, p.WorkspaceID, day, p.Daily)
		check(budget.ProjectMonthly, "project", p.ID, p.WorkspaceID, month, p.Monthly)
	}
	for _, w := range workspaces {
		check(budget.WorkspaceDaily, "workspace", w.ID, w.ID, day, w.Daily)
		check(budget.WorkspaceMonthly, "workspace", w.ID, w.ID, month, w.Monthly)
	}
	l.mu.Unlock()
	if len(crossed) > 0 {
		l.opt.OnCrossing(crossed)
	}
	return nil
}
