package account

import (
	"math"

	"tokenguard/app/apperr"
	"tokenguard/app/pricing"
)

// MaxBudgetUSD is the largest budget accepted: far above any real one, far below where
// nano-dollars would overflow int64 (≈ $9.2 billion).
const MaxBudgetUSD = 1e8

// BudgetFromUSD converts a budget in USD (as the API and the dashboard take it) to nano-dollars.
// It rejects NaN, infinities, negative values and values above MaxBudgetUSD with
// INVALID_REQUEST naming field.
func BudgetFromUSD(field string, usd float64) (pricing.NanoUSD, error) {
	if math.IsNaN(usd) || math.IsInf(usd, 0) {
		return 0, apperr.New(apperr.InvalidRequest, "%s must be a number", field)
	}
	if usd < 0 {
		return 0, apperr.New(apperr.InvalidRequest, "%s must not be negative", field)
	}
	if usd > MaxBudgetUSD {
		return 0, apperr.New(apperr.InvalidRequest, "%s must be at most %.0f", field, MaxBudgetUSD)
	}
	return pricing.NanoUSD(math.Round(usd * 1e9)), nil
}

// Budget is an optional change of a budget: Set false leaves it unchanged; Set with a nil Value
// clears it (no limit); otherwise Value is the new budget in USD.
type Budget struct {
	Set   bool
	Value *float64
}

// apply returns the new budget for field given the current one.
func (b Budget) apply(field string, cur *pricing.NanoUSD) (*pricing.NanoUSD, error) {
	if !b.Set {
		return cur, nil
	}
	if b.Value == nil {
		return nil, nil
	}
	n, err := BudgetFromUSD(field, *b.Value)
	if err != nil {
		return nil, err
	}
	return &n, nil
}
