package budget

import (
	"time"

	"tokenguard/app/pricing"
)

// BudgetState is one budget's committed spend against its limit.
type BudgetState struct {
	Budget Budget
	Limit  pricing.NanoUSD
	Spent  pricing.NanoUSD
	// Level is Spent over Limit (at or above BlockLevel for a zero limit).
	Level   float64
	ResetAt time.Time
}

// Standing is what the gate would do with a request arriving now, judged on committed spend:
// the reservations of requests in flight only ever hold a request back for seconds. Budgets
// holds every budget that applies, in Budget order.
type Standing struct {
	Budgets []BudgetState
	// Blocked is set when a budget is spent; Budget then names the one that resets last, and
	// ResetAt is when it does (when a request can pass again).
	Blocked bool
	// Fallback is set when the project's fallback model serves requests (HasFallback, and a
	// budget at FallbackLevel or more); Budget then names the fullest one.
	Fallback bool
	Budget   Budget
	ResetAt  time.Time
}

// Standing reads s's budgets without admitting anything: the state the dashboard shows.
func (e *Engine) Standing(s Subject) Standing {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	day, month := e.periodsAt(now.UnixMilli())
	var out Standing
	var top float64
	for i, b := range e.accounts(s, day, month) {
		if b.Limit == nil {
			continue
		}
		which := Budget(i + 1)
		bs := BudgetState{Budget: which, Limit: *b.Limit, Spent: b.Spent, Level: level(b.Spent, *b.Limit), ResetAt: resetAt(which, now)}
		out.Budgets = append(out.Budgets, bs)
		switch {
		case bs.Level >= BlockLevel:
			// As the gate names a refusal: the budget that resets last, since no retry can pass
			// before it does.
			if !out.Blocked || bs.ResetAt.After(out.ResetAt) {
				out.Blocked, out.Budget, out.ResetAt = true, which, bs.ResetAt
			}
		case !out.Blocked && bs.Level >= FallbackLevel && s.HasFallback && bs.Level > top:
			out.Fallback, out.Budget, top = true, which, bs.Level
		}
	}
	if out.Blocked {
		out.Fallback = false
	}
	return out
}
