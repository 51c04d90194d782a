package proxy

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"tokenguard/app/apperr"
	"tokenguard/app/budget"
	"tokenguard/app/provider"
	"tokenguard/app/ratelimit"
)

// gate holds a parsed call to the project's controls, before the budget gate: the model
// allow-list (every route that names a model, metered or not), then, for metered calls, the
// per-minute limits, counting the call's worst-case tokens. A metered call's answer gets the
// budget headers whatever follows, and the RateLimit-* headers of the tightest limit. A refusal
// is a MODEL_NOT_ALLOWED or RATE_LIMITED error and counts nothing; otherwise the ticket must be
// settled with the actual tokens, or cancelled if a later gate refuses the call.
func (p *Proxy) gate(h http.Header, proj *project, call *provider.Call, wc *worstCase) (ratelimit.Ticket, error) {
	if call.Metered {
		setBudgetHeaders(h, p.cfg.Budget.Standing(proj.subject), proj.subject.HasFallback)
	}
	if call.Model != "" && !proj.allowed.Allows(call.Model) {
		return ratelimit.Ticket{}, apperr.New(apperr.ModelNotAllowed, "The model %q is not in this project's allowed models", call.Model)
	}
	if !call.Metered || !proj.limits.Any() {
		return ratelimit.Ticket{}, nil
	}
	ticket, res := p.limits.Admit(proj.limits, worstTokens(call, wc))
	setRateHeaders(h, res.Status)
	if !res.Allowed {
		return ticket, &apperr.Error{Code: apperr.RateLimited, Message: res.Message,
			RetryAfter: res.RetryAfter, ResetAt: p.cfg.Now().Add(res.RetryAfter)}
	}
	return ticket, nil
}

// worstTokens is the most tokens the call can be billed for: its input upper bound plus
// choices × its output cap (the model's maximum when it names none), saturating.
func worstTokens(call *provider.Call, wc *worstCase) int64 {
	in := max(call.MaxInputTokens, call.InputTokens, 0)
	out, n := max(wc.ownCap(false), 0), max(call.Choices, 1)
	if out > 0 && n > (math.MaxInt64-in)/out {
		return math.MaxInt64
	}
	return in + n*out
}

// setRateHeaders writes the RateLimit-Limit, -Remaining and -Reset headers of the IETF draft
// (draft-ietf-httpapi-ratelimit-headers): Reset is delta-seconds, rounded up.
// The header names are written in Go's canonical form, and the three values share one
// backing array, so that the headers of every limited request cost one allocation, not six.
func setRateHeaders(h http.Header, st ratelimit.Status) {
	if st.Limit <= 0 {
		return
	}
	v := make([]string, 3)
	v[0], v[1], v[2] = strconv.FormatInt(st.Limit, 10), strconv.FormatInt(st.Remaining, 10), strconv.FormatInt(ceilSeconds(st.Reset), 10)
	h["Ratelimit-Limit"], h["Ratelimit-Remaining"], h["Ratelimit-Reset"] = v[0:1:1], v[1:2:2], v[2:3:3]
}

func ceilSeconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }

// Budget levels, as the budget headers and GET /proxy/budget name them.
const (
	levelOK       = "ok"       // under 80% of every budget
	levelWarning  = "warning"  // a budget at 80% or more, and no fallback model
	levelFallback = "fallback" // a budget at 80% or more: requests go to the fallback model
	levelExceeded = "exceeded" // a budget at 100%: requests are refused
)

// budgetLevel names b's level for a project with or without a fallback model.
func budgetLevel(b budget.BudgetState, hasFallback bool) string {
	switch {
	case b.Level >= budget.BlockLevel:
		return levelExceeded
	case b.Level >= budget.FallbackLevel && hasFallback:
		return levelFallback
	case b.Level >= budget.FallbackLevel:
		return levelWarning
	}
	return levelOK
}

// tightest is the budget with the highest level (the first of equals, in Budget order); false
// when no budget applies.
func tightest(st budget.Standing) (budget.BudgetState, bool) {
	var best budget.BudgetState
	for i, b := range st.Budgets {
		if i == 0 || b.Level > best.Level {
			best = b
		}
	}
	return best, len(st.Budgets) > 0
}

// setBudgetHeaders writes x-tokenguard-budget-remaining-usd and x-tokenguard-budget-level for
// the tightest budget, judged on committed spend as the request arrived; nothing when no
// budget applies.
func setBudgetHeaders(h http.Header, st budget.Standing, hasFallback bool) {
	b, ok := tightest(st)
	if !ok {
		return
	}
	h.Set("X-Tokenguard-Budget-Remaining-Usd", strconv.FormatFloat(max(b.Limit-b.Spent, 0).Dollars(), 'f', 6, 64))
	h.Set("X-Tokenguard-Budget-Level", budgetLevel(b, hasFallback))
}
