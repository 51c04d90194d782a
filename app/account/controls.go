package account

import (
	"slices"

	"tokenguard/app/allowlist"
	"tokenguard/app/apperr"
	"tokenguard/app/pricing"
	"tokenguard/store"
)

// MaxRateLimit bounds rpmLimit and tpmLimit: far above any real limit, far below where a
// minute's count could overflow.
const MaxRateLimit = 1_000_000_000

// Controls are a project's production controls (DESIGN §7). Zero values are no limit, every
// model, no failover.
type Controls struct {
	// RPMLimit and TPMLimit are requests and tokens per minute; 0 is no limit.
	RPMLimit, TPMLimit int64
	// AllowedModels are exact model names or "prefix*" patterns (app/allowlist); empty allows
	// every model.
	AllowedModels []string
	// FallbackOnError serves the fallback model when the requested one fails upstream.
	FallbackOnError bool
	// EndUserDailyBudget caps each end user's UTC-day spend; 0 is no limit.
	EndUserDailyBudget pricing.NanoUSD
}

// ControlsPatch is an optional change of a project's controls: nil fields stay as they are.
type ControlsPatch struct {
	RPMLimit, TPMLimit *int64
	// AllowedModels replaces the allow-list; an empty list allows every model.
	AllowedModels   *[]string
	FallbackOnError *bool
	// EndUserDailyBudget is in USD; 0 is no limit.
	EndUserDailyBudget *float64
}

// RateLimit validates a requests- or tokens-per-minute limit: 0 (none) to MaxRateLimit, else
// INVALID_REQUEST naming field.
func RateLimit(field string, v int64) (int64, error) {
	if v < 0 || v > MaxRateLimit {
		return 0, apperr.New(apperr.InvalidRequest, "%s must be between 0 (no limit) and %d", field, MaxRateLimit)
	}
	return v, nil
}

// rateLimitOr validates an optional limit and records its change: nil keeps cur.
func rateLimitOr(changes map[string]any, field string, v *int64, cur int64) (int64, error) {
	if v == nil {
		return cur, nil
	}
	next, err := RateLimit(field, *v)
	if err == nil && next != cur {
		changes[field] = map[string]any{"from": cur, "to": next}
	}
	return next, err
}

// apply validates the patch against cur and records what changed in changes.
func (c ControlsPatch) apply(cur Controls, changes map[string]any) (Controls, error) {
	next := cur
	var err error
	if next.RPMLimit, err = rateLimitOr(changes, "rpmLimit", c.RPMLimit, cur.RPMLimit); err != nil {
		return Controls{}, err
	}
	if next.TPMLimit, err = rateLimitOr(changes, "tpmLimit", c.TPMLimit, cur.TPMLimit); err != nil {
		return Controls{}, err
	}
	if c.AllowedModels != nil {
		if next.AllowedModels, err = allowlist.Normalize(*c.AllowedModels); err != nil {
			return Controls{}, err
		}
		if !slices.Equal(next.AllowedModels, cur.AllowedModels) {
			changes["allowedModels"] = map[string]any{"from": listOrEmpty(cur.AllowedModels), "to": listOrEmpty(next.AllowedModels)}
		}
	}
	if c.FallbackOnError != nil && *c.FallbackOnError != cur.FallbackOnError {
		next.FallbackOnError = *c.FallbackOnError
		changes["fallbackOnError"] = map[string]any{"from": cur.FallbackOnError, "to": next.FallbackOnError}
	}
	if c.EndUserDailyBudget != nil {
		if next.EndUserDailyBudget, err = BudgetFromUSD("endUserDailyBudgetUsd", *c.EndUserDailyBudget); err != nil {
			return Controls{}, err
		}
		if next.EndUserDailyBudget != cur.EndUserDailyBudget {
			changes["endUserDailyBudgetUsd"] = map[string]any{"from": cur.EndUserDailyBudget.Dollars(), "to": next.EndUserDailyBudget.Dollars()}
		}
	}
	return next, nil
}

// checkFallbackAllowed refuses a fallback model the allow-list would refuse at the proxy: a
// request falling back would be served a model it may not call. listChanged says which field
// the caller changed, so the message names the one to fix.
func checkFallbackAllowed(fallback string, models []string, listChanged bool) error {
	if fallback == "" || allowlist.New(models).Allows(fallback) {
		return nil
	}
	if listChanged {
		return apperr.New(apperr.InvalidRequest, "allowedModels must allow the fallback model %q; change or clear the fallback model first", fallback)
	}
	return apperr.New(apperr.InvalidRequest, "fallbackModel %q is not among the allowed models", fallback)
}

func listOrEmpty(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func controlsFrom(c store.Controls) Controls {
	return Controls{
		RPMLimit: c.RPMLimit, TPMLimit: c.TPMLimit, AllowedModels: c.AllowedModels,
		FallbackOnError: c.FallbackOnError, EndUserDailyBudget: pricing.NanoUSD(c.EndUserDailyBudgetNano),
	}
}

func (c Controls) store() store.Controls {
	return store.Controls{
		RPMLimit: c.RPMLimit, TPMLimit: c.TPMLimit, AllowedModels: c.AllowedModels,
		FallbackOnError: c.FallbackOnError, EndUserDailyBudgetNano: int64(c.EndUserDailyBudget),
	}
}
