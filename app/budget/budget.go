// Package budget is TokenGuard's spend gate (DESIGN §4). It keeps, in memory and authoritative
// while the process runs, the spend of every project and workspace in the current UTC day and
// UTC calendar month, plus the worst-case cost reserved by requests still in flight, and decides
// for each new request whether it goes to the requested model, to the fallback model, or is
// blocked with BUDGET_EXCEEDED.
//
// The counters are the same ones the usage writer persists (spend_counters) in the batch
// transaction that stores the usage rows; on start they are loaded back with Load.
package budget

import (
	"fmt"
	"math"
	"math/bits"
	"sync"
	"time"

	"tokenguard/app/pricing"
)

// Level thresholds: from FallbackLevel a request goes to the fallback model (if one is set);
// from BlockLevel it is refused.
const (
	FallbackLevel = 0.8
	BlockLevel    = 1.0
)

// Scope says whose spend a counter holds.
type Scope string

// The two scopes of a budget; the strings are the spend_counters.scope values.
const (
	ProjectScope   Scope = "project"
	WorkspaceScope Scope = "workspace"
)

// Period keys are the spend_counters.period values: "2006-01-02" for a UTC day and "2006-01" for
// a UTC calendar month.
const (
	dayLayout   = "2006-01-02"
	monthLayout = "2006-01"
)

// DayKey is the period key of the UTC day containing t.
func DayKey(t time.Time) string { return t.UTC().Format(dayLayout) }

// MonthKey is the period key of the UTC month containing t.
func MonthKey(t time.Time) string { return t.UTC().Format(monthLayout) }

// Limits are the budgets of one project or workspace; nil means no limit.
type Limits struct {
	Daily, Monthly *pricing.NanoUSD
	// Strict is budgetMode "strict": a request whose worst case the remaining budget cannot
	// pay has its output capped to what it affords, and is refused only below a useful minimum.
	Strict bool
}

// Subject is what a request is held to: its project's and its workspace's budgets.
type Subject struct {
	ProjectID, WorkspaceID int64
	Project, Workspace     Limits
	// HasFallback is true when the project names a fallback model.
	HasFallback bool
}

// Budget names one of the four budgets that can apply to a request.
type Budget int

// The budgets, in the order that breaks ties between equal levels.
const (
	None Budget = iota
	ProjectDaily
	ProjectMonthly
	WorkspaceDaily
	WorkspaceMonthly
)

// Message is the BUDGET_EXCEEDED message naming b (contract wording: "Daily spend limit reached").
func (b Budget) Message() string {
	switch b {
	case ProjectDaily:
		return "Daily spend limit reached"
	case ProjectMonthly:
		return "Monthly spend limit reached"
	case WorkspaceDaily:
		return "Workspace daily spend limit reached"
	case WorkspaceMonthly:
		return "Workspace monthly spend limit reached"
	}
	return ""
}

// String names b for logs and alerts.
func (b Budget) String() string {
	switch b {
	case ProjectDaily:
		return "project daily"
	case ProjectMonthly:
		return "project monthly"
	case WorkspaceDaily:
		return "workspace daily"
	case WorkspaceMonthly:
		return "workspace monthly"
	}
	return "none"
}

// Decision is the gate's answer for one request.
type Decision struct {
	// Level is the highest spend/budget ratio over every budget that applies, counting committed
	// spend and the reservations of requests already in flight (0 when no budget applies).
	Level float64
	// Budget is the budget that set Level (None when no budget applies).
	Budget Budget
	// Fallback is true when the request must go to the project's fallback model.
	Fallback bool
	// Blocked is true when the request must be refused with 429 BUDGET_EXCEEDED and Message.
	Blocked bool
	Message string
	// Reserved is true when a refusal is caused by the reservations of requests in flight rather
	// than by committed spend: a retry can succeed as soon as they settle.
	Reserved bool
	// RetryAfter is how long a refused client should wait before a retry can succeed: until the
	// period resets when spend is the cause, ReservedRetryAfter when reservations are.
	RetryAfter time.Duration
	// ResetAt is when the budget that refused the request resets (the next UTC midnight, or the
	// 1st of the next month), zero when not blocked.
	ResetAt time.Time
	// OutputCap, when positive, is the per-choice output cap a strict budget lowered the request
	// to: the most the remaining budget affords. The request must be sent with it.
	OutputCap int64
}

// ReservedRetryAfter is the Retry-After of a refusal caused by in-flight reservations: they are
// released as those requests end, typically within seconds.
const ReservedRetryAfter = 2 * time.Second

// Cost describes a request's worst case to Admit. WorstCase must be monotone in outputCap.
type Cost struct {
	// WorstCase is the most the request can cost on the requested model (fallback false) or on
	// the project's fallback model, with output capped at outputCap tokens per choice; outputCap
	// 0 means the request's own cap. It runs under the engine's lock: it must be quick and must
	// not call the engine.
	WorstCase func(fallback bool, outputCap int64) pricing.NanoUSD
	// MaxOutput is the request's own per-choice output cap on each model (what WorstCase assumes
	// for outputCap 0). Nil means the output cannot be capped: a strict budget that cannot pay
	// the whole worst case refuses the request.
	MaxOutput func(fallback bool) int64
	// MinOutput is the smallest useful per-choice cap: a strict budget refuses rather than cap
	// below it.
	MinOutput int64
}

// Counter is one persisted period counter, as Load takes it.
type Counter struct {
	Scope  Scope
	ID     int64
	Period string // DayKey or MonthKey
	Spend  pricing.NanoUSD
}

// Spend is a project's or workspace's committed spend in the current periods.
type Spend struct {
	Day, Month pricing.NanoUSD
}

// counterKey identifies one counter in memory. Periods are integers (days since the epoch, or
// year*12+month) rather than the persisted strings, so the hot path hashes a few machine words.
type counterKey struct {
	id      int64
	period  int32
	scope   uint8
	monthly bool
}

type subjectKey struct {
	id    int64
	scope uint8
}

const (
	projectScope uint8 = iota
	workspaceScope
)

func scopeCode(s Scope) (uint8, bool) {
	switch s {
	case ProjectScope:
		return projectScope, true
	case WorkspaceScope:
		return workspaceScope, true
	}
	return 0, false
}

const msPerDay = 24 * 60 * 60 * 1000

// dayIndex is the UTC day containing unix millisecond ms, counted from 1970-01-01 (unix time has
// no leap seconds, so every UTC day is exactly msPerDay long).
func dayIndex(ms int64) int32 {
	d := ms / msPerDay
	if ms%msPerDay < 0 {
		d--
	}
	return int32(d)
}

func monthIndex(t time.Time) int32 {
	t = t.UTC()
	return int32(t.Year()*12 + int(t.Month()) - 1)
}

// Engine holds the counters and reservations. It is safe for concurrent use; every decision and
// settlement happens under one mutex, so check-and-reserve is atomic.
type Engine struct {
	now func() time.Time

	mu       sync.Mutex
	spend    map[counterKey]pricing.NanoUSD
	reserved map[subjectKey]*sum128
	// day and month are the current UTC day and month as last seen; when the clock moves past
	// them the old periods' counters are dropped.
	day, month int32
	// dayStart/dayEnd bound the current day in unix ms.
	dayStart, dayEnd int64
}

// New returns an empty engine reading the time from now (time.Now in production; tests inject
// a clock to cross midnight and month ends).
func New(now func() time.Time) *Engine {
	return &Engine{
		now:      now,
		spend:    make(map[counterKey]pricing.NanoUSD),
		reserved: make(map[subjectKey]*sum128),
	}
}

// periods returns the current day and month keys, rolling over (and pruning counters of ended
// periods) when the clock has left the day last seen. Called with e.mu held.
func (e *Engine) periods() (day, month int32) {
	return e.periodsAt(e.now().UnixMilli())
}

// periodsAt is periods at unix millisecond ms. Called with e.mu held.
func (e *Engine) periodsAt(ms int64) (day, month int32) {
	if e.dayEnd != 0 && ms >= e.dayStart && ms < e.dayEnd {
		return e.day, e.month
	}
	e.setPeriods(ms)
	return e.day, e.month
}

func (e *Engine) setPeriods(ms int64) {
	day := dayIndex(ms)
	changed := e.dayEnd == 0 || day != e.day
	e.day, e.month = day, monthIndex(time.UnixMilli(ms))
	e.dayStart = int64(day) * msPerDay
	e.dayEnd = e.dayStart + msPerDay
	if changed {
		e.prune()
	}
}

// prune drops counters of periods before the current ones: nothing decides on them any more,
// and the database keeps their history. Called with e.mu held.
func (e *Engine) prune() {
	for k := range e.spend {
		if !k.monthly && k.period < e.day || k.monthly && k.period < e.month {
			delete(e.spend, k)
		}
	}
}

// Load adds persisted counters (from spend_counters, at start-up) to the engine. Counters of
// periods that have already ended are ignored.
func (e *Engine) Load(counters []Counter) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.putCounters(counters, false)
}

// putCounters adds counters to the engine's (set: replaces them). Called with e.mu held.
func (e *Engine) putCounters(counters []Counter, set bool) error {
	day, month := e.periods()
	for _, c := range counters {
		sc, ok := scopeCode(c.Scope)
		if !ok {
			return fmt.Errorf("budget counters: unknown scope %q", c.Scope)
		}
		k := counterKey{id: c.ID, scope: sc}
		if t, err := time.Parse(dayLayout, c.Period); err == nil {
			k.period = dayIndex(t.UnixMilli())
			if k.period < day {
				continue
			}
		} else if t, err := time.Parse(monthLayout, c.Period); err == nil {
			k.period, k.monthly = monthIndex(t), true
			if k.period < month {
				continue
			}
		} else {
			return fmt.Errorf("budget counters: bad period %q", c.Period)
		}
		if set {
			e.spend[k] = c.Spend
		} else {
			e.spend[k] = e.spend[k].Plus(c.Spend)
		}
	}
	return nil
}

// Ticket is an admitted request's reservation. Settle it exactly once the request ends,
// whatever the outcome (success, upstream error, timeout, client gone); further calls are no-ops.
type Ticket struct {
	e           *Engine
	projectID   int64
	workspaceID int64
	limits      [4]*pricing.NanoUSD // by Budget-1, to report crossings on Settle
	amount      pricing.NanoUSD
	settled     bool
}

// Settler is an admitted request's hold on its budgets: a *Ticket of the in-memory Engine, or
// a shared ledger's (app/ledger). Settle it exactly once the request ends, whatever the
// outcome, with its actual cost; it returns the alert thresholds the cost carried a budget
// across, when the settler is the one to tell (a shared ledger's watcher tells them instead).
type Settler interface {
	Settle(at time.Time, actual pricing.NanoUSD) []Crossing
}

// Crossing reports that a settled request took a budget across an alert threshold (80% or 100%)
// in the current period. Because spend only grows within a period, each threshold is crossed at
// most once per period per budget (unless the budget itself is changed), and a restart — which
// loads the counters back — does not report it again.
type Crossing struct {
	Budget      Budget
	Threshold   float64 // FallbackLevel (0.8) or BlockLevel (1.0)
	ProjectID   int64
	WorkspaceID int64
	Spend       pricing.NanoUSD // committed spend of the period after this request
	Limit       pricing.NanoUSD
	// At is the request's start, whose UTC day or month the spend was counted in: the period
	// the crossing belongs to, even when the request settles after midnight.
	At time.Time
}

// Reserved is the worst-case amount the ticket holds.
func (t *Ticket) Reserved() pricing.NanoUSD { return t.amount }

// Admit decides on a request for s and, unless it is blocked, reserves reserve(fallback) — the
// worst-case cost of the model the request will go to — for it. It is AdmitCost for a request
// whose output cannot be capped; nil reserves nothing.
func (e *Engine) Admit(s Subject, reserve func(fallback bool) pricing.NanoUSD) (*Ticket, Decision) {
	var c Cost
	if reserve != nil {
		c.WorstCase = func(fallback bool, _ int64) pricing.NanoUSD { return reserve(fallback) }
	}
	return e.AdmitCost(s, c)
}

// AdmitCost decides on a request for s and, unless it is blocked, reserves its worst case on the
// model it will go to, atomically with the decision so that concurrent requests each see the
// others' reservations. The decision is Decide's (the rules are stated there); the engine only
// supplies the four budgets' standings and holds the reservation.
//
// A blocked request gets a nil ticket and reserves nothing. Every sum saturates, so no request,
// however large its worst case, can wrap a counter.
func (e *Engine) AdmitCost(s Subject, c Cost) (*Ticket, Decision) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	day, month := e.periodsAt(now.UnixMilli())
	d, amount := Decide(s, e.accounts(s, day, month), c, now)
	if d.Blocked {
		return nil, d
	}
	t := &Ticket{e: e, projectID: s.ProjectID, workspaceID: s.WorkspaceID, amount: amount, limits: s.limits()}
	if amount > 0 {
		e.reserve(subjectKey{s.ProjectID, projectScope}, amount)
		e.reserve(subjectKey{s.WorkspaceID, workspaceScope}, amount)
	}
	return t, d
}

// limits are s's four budgets, indexed by Budget-1.
func (s Subject) limits() [4]*pricing.NanoUSD {
	return [4]*pricing.NanoUSD{s.Project.Daily, s.Project.Monthly, s.Workspace.Daily, s.Workspace.Monthly}
}

// accounts reads the state of s's four budgets, indexed by Budget-1. Each subject's
// reservations are read once, not once per budget: map lookups are most of the gate's cost.
// Called with e.mu held.
func (e *Engine) accounts(s Subject, day, month int32) (acc [4]Account) {
	limits := s.limits()
	var projectReserved, workspaceReserved pricing.NanoUSD
	if limits[0] != nil || limits[1] != nil {
		projectReserved = e.reserved[subjectKey{s.ProjectID, projectScope}].total()
	}
	if limits[2] != nil || limits[3] != nil {
		workspaceReserved = e.reserved[subjectKey{s.WorkspaceID, workspaceScope}].total()
	}
	for i, limit := range limits {
		if limit == nil {
			continue
		}
		k, reserved, strict := counterKey{s.ProjectID, day, projectScope, false}, projectReserved, s.Project.Strict
		if i >= 2 {
			k, reserved, strict = counterKey{s.WorkspaceID, day, workspaceScope, false}, workspaceReserved, s.Workspace.Strict
		}
		if i%2 == 1 {
			k.period, k.monthly = month, true
		}
		acc[i] = Account{Limit: limit, Spent: e.spend[k], Reserved: reserved, Strict: strict}
	}
	return acc
}

func (b Budget) monthly() bool { return b == ProjectMonthly || b == WorkspaceMonthly }

// sum128 is an exact sum of in-flight reservations: each is at most MaxInt64, and adding and
// releasing them in 128 bits keeps the total exact however many are outstanding, so a release
// after a saturated total can never make the remaining reservations look smaller than they are.
type sum128 struct{ hi, lo uint64 }

func (s *sum128) add(n pricing.NanoUSD) {
	var carry uint64
	s.lo, carry = bits.Add64(s.lo, uint64(n), 0)
	s.hi += carry
}

func (s *sum128) sub(n pricing.NanoUSD) {
	var borrow uint64
	s.lo, borrow = bits.Sub64(s.lo, uint64(n), 0)
	s.hi -= borrow
}

// total is the sum, saturated to the NanoUSD range; a nil sum is zero.
func (s *sum128) total() pricing.NanoUSD {
	if s == nil {
		return 0
	}
	if s.hi != 0 || s.lo > math.MaxInt64 {
		return math.MaxInt64
	}
	return pricing.NanoUSD(s.lo)
}

// Settle releases the ticket's reservation and adds actual (the request's real cost) to the
// project's and workspace's counters of the day and month containing at — the request's start,
// which is also its usage row's createdAt, so memory and the persisted counters agree. Only the
// first call has an effect; a nil ticket is a no-op.
//
// It returns the alert thresholds this request's cost carried a budget across (usually none),
// for the caller to send the 80% / 100% budget alerts.
func (t *Ticket) Settle(at time.Time, actual pricing.NanoUSD) []Crossing {
	if t == nil {
		return nil
	}
	e := t.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if t.settled {
		return nil
	}
	t.settled = true
	if t.amount > 0 {
		e.release(subjectKey{t.projectID, projectScope}, t.amount)
		e.release(subjectKey{t.workspaceID, workspaceScope}, t.amount)
	}
	if actual <= 0 {
		return nil
	}
	day, month := e.periodsOf(at)
	var crossed []Crossing
	add := func(b Budget, k counterKey) {
		before := e.spend[k]
		after := before.Plus(actual)
		e.spend[k] = after
		limit := t.limits[b-1]
		if limit == nil || *limit <= 0 {
			return
		}
		for _, thr := range [...]float64{FallbackLevel, BlockLevel} {
			if level(before, *limit) < thr && level(after, *limit) >= thr {
				crossed = append(crossed, Crossing{Budget: b, Threshold: thr, ProjectID: t.projectID,
					WorkspaceID: t.workspaceID, Spend: after, Limit: *limit, At: at})
			}
		}
	}
	if day >= 0 {
		add(ProjectDaily, counterKey{t.projectID, day, projectScope, false})
		add(WorkspaceDaily, counterKey{t.workspaceID, day, workspaceScope, false})
	}
	if month >= 0 {
		add(ProjectMonthly, counterKey{t.projectID, month, projectScope, true})
		add(WorkspaceMonthly, counterKey{t.workspaceID, month, workspaceScope, true})
	}
	return crossed
}

// periodsOf is the day and month a request that started at counts in, -1 for one that has
// ended: a request that started in an ended period (it ran across midnight) is persisted in
// that period by the usage writer, and in memory it no longer matters for any decision. Called
// with e.mu held.
func (e *Engine) periodsOf(at time.Time) (day, month int32) {
	// The common case — the request started in the day last seen — needs no clock read and no
	// date arithmetic. (If that day has just ended, the counters land in it and are pruned at
	// the next roll-over, which is right: the usage writer persists them in that day too.)
	day, month = e.day, e.month
	if ms := at.UnixMilli(); e.dayEnd == 0 || ms < e.dayStart || ms >= e.dayEnd {
		curDay, curMonth := e.periods()
		day, month = dayIndex(ms), monthIndex(at)
		if day < curDay {
			day = -1
		}
		if month < curMonth {
			month = -1
		}
	}
	return day, month
}

// Record adds actual to a project's and its workspace's counters of the day and month
// containing at, without reserving or reporting crossings: how a shared ledger keeps this
// replica's view of spend current between its refreshes (the database holds the real counters,
// and SetSpend overwrites these with them).
func (e *Engine) Record(projectID, workspaceID int64, at time.Time, actual pricing.NanoUSD) {
	if actual <= 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	day, month := e.periodsOf(at)
	if day >= 0 {
		k := counterKey{projectID, day, projectScope, false}
		e.spend[k] = e.spend[k].Plus(actual)
		k = counterKey{workspaceID, day, workspaceScope, false}
		e.spend[k] = e.spend[k].Plus(actual)
	}
	if month >= 0 {
		k := counterKey{projectID, month, projectScope, true}
		e.spend[k] = e.spend[k].Plus(actual)
		k = counterKey{workspaceID, month, workspaceScope, true}
		e.spend[k] = e.spend[k].Plus(actual)
	}
}

// SetSpend sets counters to the values given, where Load adds them: a shared ledger's
// database holds the authoritative counters, and this engine mirrors them for the dashboard
// and metrics. Counters of ended periods are ignored; counters not named keep their values.
func (e *Engine) SetSpend(counters []Counter) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.putCounters(counters, true)
}

// reserve adds amount to k's reservations. Entries stay when they return to zero, so the hot
// path is one map lookup; there is one per project and workspace ever seen, 16 bytes each.
func (e *Engine) reserve(k subjectKey, amount pricing.NanoUSD) {
	r := e.reserved[k]
	if r == nil {
		r = new(sum128)
		e.reserved[k] = r
	}
	r.add(amount)
}

// release takes back what a ticket reserved for k.
func (e *Engine) release(k subjectKey, amount pricing.NanoUSD) {
	if r := e.reserved[k]; r != nil {
		r.sub(amount)
	}
}

// Spend returns the committed spend of a project or workspace in the current UTC day and month.
func (e *Engine) Spend(scope Scope, id int64) Spend {
	e.mu.Lock()
	defer e.mu.Unlock()
	sc, _ := scopeCode(scope)
	day, month := e.periods()
	return Spend{
		Day:   e.spend[counterKey{id, day, sc, false}],
		Month: e.spend[counterKey{id, month, sc, true}],
	}
}

// Reserved returns the amount reserved by a project's or workspace's in-flight requests.
func (e *Engine) Reserved(scope Scope, id int64) pricing.NanoUSD {
	e.mu.Lock()
	defer e.mu.Unlock()
	sc, _ := scopeCode(scope)
	return e.reserved[subjectKey{id, sc}].total()
}
