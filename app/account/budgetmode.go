package account

import "tokenguard/app/apperr"

// BudgetMode is how a project's or a workspace's budgets hold against a burst (DESIGN §7
// budgetMode).
type BudgetMode string

const (
	// BudgetSoft is the default: a request that starts under the budget runs to completion, so
	// a burst can overshoot by about one request.
	BudgetSoft BudgetMode = "soft"
	// BudgetStrict has the proxy lower a request's output cap to what the remaining budget
	// affords, and refuse only when even a short answer cannot be paid: late answers may be cut
	// short.
	BudgetStrict BudgetMode = "strict"
)

// ParseBudgetMode accepts exactly "soft" or "strict". Anything else, "" and other spellings
// included, is INVALID_REQUEST naming the budgetMode field.
func ParseBudgetMode(s string) (BudgetMode, error) {
	switch m := BudgetMode(s); m {
	case BudgetSoft, BudgetStrict:
		return m, nil
	}
	return "", apperr.New(apperr.InvalidRequest, `budgetMode must be "soft" or "strict"`)
}

// budgetModeOr validates an optional mode: nil keeps cur.
func budgetModeOr(s *string, cur BudgetMode) (BudgetMode, error) {
	if s == nil {
		return cur, nil
	}
	return ParseBudgetMode(*s)
}
