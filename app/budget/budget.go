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
	reserved map[subjectKey]pricing.NanoUSD
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
		reserved: make(map[subjectKey]pricing.NanoUSD),
	}
}

// periods returns the current day and month keys, rolling over (and pruning counters of ended
// periods) when the clock has left the day last seen. Called with e.mu held.
func (e *Engine) periods() (day, month int32) {
	ms := e.now().UnixMilli()
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
	day, month := e.periods()
	for _, c := range counters {
		sc, ok := scopeCode(c.Scope)
		if !ok {
			return fmt.Errorf("load budget counters: unknown scope %q", c.Scope)
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
			return fmt.Errorf("load budget counters: bad period %q", c.Period)
		}
		e.spend[k] += c.Spend
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
// worst-case cost of the model the request will go to — for it, atomically with the decision so
// that concurrent requests each see the others' reservations. A request is admitted while
// committed spend plus the reservations of requests already in flight is under every budget;
// its own reservation does not count against it. A blocked request gets a nil ticket and
// reserves nothing. reserve runs under the engine's lock: it must be quick and must not call
// the engine (pricing.Table.WorstCase is both); nil reserves nothing.
func (e *Engine) Admit(s Subject, reserve func(fallback bool) pricing.NanoUSD) (*Ticket, Decision) {
	e.mu.Lock()
	defer e.mu.Unlock()
	day, month := e.periods()

	d := Decision{}
	consider := func(b Budget, limit *pricing.NanoUSD, scope uint8, id int64, period int32, monthly bool) {
		if limit == nil {
			return
		}
		used := e.spend[counterKey{id, period, scope, monthly}] + e.reserved[subjectKey{id, scope}]
		lvl := level(used, *limit)
		if d.Budget == None || lvl > d.Level {
			d.Level, d.Budget = lvl, b
		}
	}
	consider(ProjectDaily, s.Project.Daily, projectScope, s.ProjectID, day, false)
	consider(ProjectMonthly, s.Project.Monthly, projectScope, s.ProjectID, month, true)
	consider(WorkspaceDaily, s.Workspace.Daily, workspaceScope, s.WorkspaceID, day, false)
	consider(WorkspaceMonthly, s.Workspace.Monthly, workspaceScope, s.WorkspaceID, month, true)

	switch {
	case d.Level >= BlockLevel:
		d.Blocked = true
		d.Message = d.Budget.Message()
		return nil, d
	case d.Level >= FallbackLevel && s.HasFallback:
		d.Fallback = true
	}

	amount := pricing.NanoUSD(0)
	if reserve != nil {
		amount = max(reserve(d.Fallback), 0)
	}
	t := &Ticket{e: e, projectID: s.ProjectID, workspaceID: s.WorkspaceID, amount: amount,
		limits: [4]*pricing.NanoUSD{s.Project.Daily, s.Project.Monthly, s.Workspace.Daily, s.Workspace.Monthly}}
	if amount > 0 {
		e.reserved[subjectKey{s.ProjectID, projectScope}] += amount
		e.reserved[subjectKey{s.WorkspaceID, workspaceScope}] += amount
	}
	return t, d
}

// level is used/limit; a zero (or negative) budget allows nothing, so it is always at 100%.
func level(used, limit pricing.NanoUSD) float64 {
	if limit <= 0 {
		return BlockLevel
	}
	return float64(used) / float64(limit)
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
	// The common case — the request started in the day last seen — needs no clock read and no
	// date arithmetic. (If that day has just ended, the counters land in it and are pruned at
	// the next roll-over, which is right: the usage writer persists them in that day too.)
	day, month := e.day, e.month
	if ms := at.UnixMilli(); e.dayEnd == 0 || ms < e.dayStart || ms >= e.dayEnd {
		curDay, curMonth := e.periods()
		day, month = dayIndex(ms), monthIndex(at)
		// A request that started in an ended period (it ran across midnight) is persisted in
		// that period by the usage writer; in memory it no longer matters for any decision.
		if day < curDay {
			day = -1
		}
		if month < curMonth {
			month = -1
		}
	}
	var crossed []Crossing
	add := func(b Budget, k counterKey) {
		before := e.spend[k]
		after := before + actual
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

func (e *Engine) release(k subjectKey, amount pricing.NanoUSD) {
	left := e.reserved[k] - amount
	if left <= 0 {
		delete(e.reserved, k)
		return
	}
	e.reserved[k] = left
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
	return e.reserved[subjectKey{id, sc}]
}
