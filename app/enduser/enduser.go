// Package enduser holds each end user to their project's daily budget (a project's
// endUserDailyBudgetUsd): in-memory spend and reservations per project, end user and UTC day,
// rebuilt at start from the day's usage rows.
//
// Admission works as the project budget's does (DESIGN §4): a request reserves its worst-case
// cost while in flight and is admitted while the end user's committed spend plus the
// reservations of their requests already in flight is under the limit, so a concurrent burst
// overshoots by at most about one request's cost. Settle replaces the reservation with the
// actual cost.
package enduser

import (
	"context"
	"fmt"
	"sync"
	"time"

	"tokenguard/app/apperr"
	"tokenguard/app/budget"
	"tokenguard/app/pricing"
	"tokenguard/store"
)

// DefaultMaxUsers bounds the end users tracked in one UTC day (about 400 bytes each at most,
// so 40 MB). Past it a new end user of a project with an end-user budget is refused until
// midnight: an unknown spend is not let through unmetered. One project holds at most a quarter
// of them, so a key that invents end users fills its own project's share, not every project's.
const DefaultMaxUsers = 100_000

type key struct {
	project int64
	user    string
}

type entry struct {
	spent, reserved pricing.NanoUSD
}

// Counter is the day's spend of every end user of projects with an end-user budget. It is safe
// for concurrent use.
type Counter struct {
	now   func() time.Time
	max   int
	share int // the most entries one project holds: max/4, at least 1

	mu      sync.Mutex
	day     string
	m       map[key]*entry
	entries map[int64]int // entries of m per project
}

// New returns an empty Counter on clock now tracking at most maxUsers end users a day
// (DefaultMaxUsers when 0 or less).
func New(now func() time.Time, maxUsers int) *Counter {
	if maxUsers <= 0 {
		maxUsers = DefaultMaxUsers
	}
	return &Counter{now: now, max: maxUsers, share: max(maxUsers/4, 1), m: make(map[key]*entry), entries: make(map[int64]int)}
}

// Load adds the spend recorded in db since the current UTC day began. Call it once at start,
// before the proxy serves.
func (c *Counter) Load(ctx context.Context, db *store.DB) error {
	now := c.now().UTC()
	start := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	spends, err := db.EndUserSpendSince(ctx, start.UnixMilli())
	if err != nil {
		return fmt.Errorf("load end-user spend: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.roll(now)
	for _, s := range spends {
		k := key{s.ProjectID, s.EndUser}
		if c.m[k] == nil {
			c.add(k)
		}
		c.m[k].spent = c.m[k].spent.Plus(pricing.NanoUSD(s.CostNano))
	}
	return nil
}

// roll starts a new day's counters when now is past the current day.
func (c *Counter) roll(now time.Time) {
	if d := budget.DayKey(now); d != c.day {
		c.day = d
		clear(c.m)
		clear(c.entries)
	}
}

// add makes k's entry.
func (c *Counter) add(k key) *entry {
	e := &entry{}
	c.m[k] = e
	c.entries[k.project]++
	return e
}

// Ticket is an admitted request's reservation. The zero Ticket (no end user, or no limit)
// settles nothing.
type Ticket struct {
	c       *Counter
	e       *entry
	k       key
	day     string
	reserve pricing.NanoUSD
}

// Admit decides on a request of project's end user user, whose daily budget is limit (0 or
// less: none) and whose worst-case cost is reserve. An admitted request holds reserve until its
// Ticket is settled. A refusal is a BUDGET_EXCEEDED *apperr.Error naming the end user, with
// Retry-After until UTC midnight (or, when only requests in flight fill the budget, until they
// may have settled).
func (c *Counter) Admit(project int64, user string, limit, reserve pricing.NanoUSD) (Ticket, error) {
	if user == "" || limit <= 0 {
		return Ticket{}, nil
	}
	now := c.now().UTC()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.roll(now)
	midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
	k := key{project, user}
	e := c.m[k]
	if e == nil {
		if len(c.m) >= c.max || c.entries[project] >= c.share {
			return Ticket{}, &apperr.Error{Code: apperr.BudgetExceeded, RetryAfter: midnight.Sub(now), ResetAt: midnight,
				Message: fmt.Sprintf("TokenGuard already tracks as many end users' daily budgets today as it can for this project (%d of at most %d); end user %q cannot be tracked until the day resets",
					c.entries[project], min(c.share, c.max), user)}
		}
		e = c.add(k)
	}
	// A reservation above the limit refuses as much as the limit itself, and keeping it there
	// keeps the sum of reservations far from saturating, so releasing one never under-counts
	// the others.
	reserve = min(max(reserve, 0), limit)
	switch {
	case e.spent >= limit:
		return Ticket{}, &apperr.Error{Code: apperr.BudgetExceeded, RetryAfter: midnight.Sub(now), ResetAt: midnight,
			Message: fmt.Sprintf("Daily spend limit of end user %q reached ($%.2f of $%.2f)", user, e.spent.Dollars(), limit.Dollars())}
	case e.spent.Plus(e.reserved) >= limit:
		return Ticket{}, &apperr.Error{Code: apperr.BudgetExceeded, RetryAfter: budget.ReservedRetryAfter, ResetAt: now.Add(budget.ReservedRetryAfter),
			Message: fmt.Sprintf("Daily spend limit of end user %q is held by their requests in flight; retry when they finish", user)}
	}
	e.reserved = e.reserved.Plus(reserve)
	return Ticket{c: c, e: e, k: k, day: c.day, reserve: reserve}, nil
}

// Settle releases t's reservation and counts actual, the request's cost, in the day it started
// (nothing when that day has ended since). Settle a Ticket once; cancel one with Settle(0).
func (t Ticket) Settle(actual pricing.NanoUSD) {
	if t.c == nil {
		return
	}
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.day != t.day || c.m[t.k] != t.e {
		return // the day rolled over: yesterday's counters are gone
	}
	t.e.reserved = max(t.e.reserved-t.reserve, 0)
	t.e.spent = t.e.spent.Plus(actual)
	if t.e.spent == 0 && t.e.reserved == 0 {
		delete(c.m, t.k) // nothing to remember: room for another end user
		c.entries[t.k.project]--
	}
}

// Spent returns the committed spend of project's end user user today.
func (c *Counter) Spent(project int64, user string) pricing.NanoUSD {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.roll(c.now().UTC())
	if e := c.m[key{project, user}]; e != nil {
		return e.spent
	}
	return 0
}
