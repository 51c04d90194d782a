package budget

import (
	"math"
	"time"

	"tokenguard/app/pricing"
)

// Account is one budget's state as a request arrives: what Decide judges it on. The in-memory
// Engine fills it from its own counters; a shared ledger (app/ledger) from the database's, so
// one node and N replicas decide by the same rules.
type Account struct {
	// Limit is the budget; nil means it does not apply.
	Limit *pricing.NanoUSD
	// Spent is the committed spend of the budget's period.
	Spent pricing.NanoUSD
	// Reserved is what requests already in flight hold against it (their worst cases).
	Reserved pricing.NanoUSD
	Strict   bool
}

// used is committed spend plus the reservations in flight, saturated.
func (a Account) used() pricing.NanoUSD { return a.Spent.Plus(a.Reserved) }

// Bound is the most committed spend plus reservations a budget may stand at, before a request
// reserving amount is added to it, for the request to be admitted: the rule Decide applies,
// stated as a number a database can check atomically while it adds the reservation (app/ledger
// conditions its upsert on it). ok is false when the budget does not apply (no condition).
//
// A soft budget admits while spend plus reservations is under the limit (limit-1), the
// request's own reservation not counted; a strict one also requires the reservation to fit
// (limit-amount). A bound below zero admits nothing.
func (a Account) Bound(amount pricing.NanoUSD) (bound int64, ok bool) {
	if a.Limit == nil {
		return 0, false
	}
	limit := int64(*a.Limit)
	bound = limit - 1
	if a.Strict {
		bound = min(bound, limit-int64(max(amount, 0)))
	}
	return bound, true
}

// Decide is the gate's rule for one request of s, given its four budgets' accounts (indexed by
// Budget-1; Limit nil where one does not apply) at now. It returns the decision and, unless the
// request is blocked, the amount to reserve for it: its worst case on the model it will go to,
// after any strict cap. It is pure: the caller reserves the amount atomically with the
// accounts it read (the Engine under its mutex; app/ledger with a conditional upsert per
// budget on Account.Bound).
//
// Soft budgets (the default) admit a request while committed spend plus the reservations of
// requests already in flight is under every budget; its own reservation does not count against
// it, so spend can pass a soft budget by at most one request's worst case (plus any amount by
// which a request's real cost exceeds its reservation). Strict budgets also require the
// request's own worst case to fit in what is left: when it does not, the output cap is lowered
// to the most the rest affords (Decision.OutputCap), and the request is refused when even
// c.MinOutput does not fit. Spend then never passes a strict budget by more than the amount by
// which real costs exceed reservations (the input estimate's error).
//
// From FallbackLevel on any budget a project with a fallback model sends to it. A refusal
// caused by committed spend waits until the budget resets (the latest to reset wins: a retry
// cannot succeed before it does); one caused by reservations in flight is Reserved, with
// ReservedRetryAfter.
func Decide(s Subject, acc [4]Account, c Cost, now time.Time) (Decision, pricing.NanoUSD) {
	var d Decision
	// headroom is what the strict budgets leave after committed spend and reservations, and
	// spendRoom what they leave after committed spend alone; strict tells whether any applies.
	var headroom, spendRoom pricing.NanoUSD = math.MaxInt64, math.MaxInt64
	strict := false
	// spendBlock is the budget that committed spend alone has filled (the latest to reset wins:
	// a retry cannot succeed before it resets); reserveBlock the fullest one otherwise.
	spendBlock, reserveBlock := None, None
	var reserveLevel float64
	for i, b := range acc {
		if b.Limit == nil {
			continue
		}
		which := Budget(i + 1)
		used := b.used()
		lvl := level(used, *b.Limit)
		if d.Budget == None || lvl > d.Level {
			d.Level, d.Budget = lvl, which
		}
		switch {
		case level(b.Spent, *b.Limit) >= BlockLevel:
			if spendBlock == None || which.monthly() && !spendBlock.monthly() {
				spendBlock = which
			}
		case lvl >= BlockLevel && (reserveBlock == None || lvl > reserveLevel):
			reserveBlock, reserveLevel = which, lvl
		}
		if b.Strict {
			strict = true
			headroom = min(headroom, max(*b.Limit-used, 0))
			spendRoom = min(spendRoom, max(*b.Limit-b.Spent, 0))
		}
	}

	switch {
	case spendBlock != None:
		return refuse(d, spendBlock, false, "", now), 0
	case reserveBlock != None:
		return refuse(d, reserveBlock, true, "", now), 0
	case d.Level >= FallbackLevel && s.HasFallback:
		d.Fallback = true
	}

	var amount pricing.NanoUSD
	if c.WorstCase != nil {
		amount = max(c.WorstCase(d.Fallback, 0), 0)
	}
	if strict && amount > headroom {
		capped, ok := c.cap(d.Fallback, headroom)
		if !ok {
			// Whether it would fit once the requests in flight have settled decides when a
			// retry can succeed.
			_, later := c.cap(d.Fallback, spendRoom)
			return refuse(d, tightest(acc), later, "the rest of the budget cannot pay for this request", now), 0
		}
		d.OutputCap, amount = capped, max(c.WorstCase(d.Fallback, capped), 0)
	}
	return d, amount
}

// Refusal is the decision refusing a request by budget b at now because requests in flight
// hold the rest of it (Reserved, ReservedRetryAfter): what a shared ledger answers when other
// replicas keep taking the room between its read and its reservation.
func Refusal(b Budget, now time.Time) Decision {
	return refuse(Decision{Level: BlockLevel, Budget: b}, b, true, "", now)
}

// cap finds the largest per-choice output cap in [MinOutput, MaxOutput] whose worst case fits
// in room; ok is false when none does. A request whose output cannot be capped (MaxOutput nil)
// fits only whole, and then needs no cap (0). WorstCase is monotone in the cap, so a binary
// search needs about 17 calls for a 128K-token range.
func (c Cost) cap(fallback bool, room pricing.NanoUSD) (int64, bool) {
	if c.WorstCase == nil {
		return 0, true
	}
	if c.MaxOutput == nil {
		return 0, c.WorstCase(fallback, 0) <= room
	}
	lo, hi := max(c.MinOutput, 1), c.MaxOutput(fallback)
	if hi < lo || c.WorstCase(fallback, lo) > room {
		return 0, false
	}
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if c.WorstCase(fallback, mid) <= room {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo, true
}

// refuse fills d as a refusal by budget b at now. reserved is true when a retry may succeed
// before the period resets (in-flight reservations are part of the cause); detail, when set,
// replaces the default explanation of that cause.
func refuse(d Decision, b Budget, reserved bool, detail string, now time.Time) Decision {
	d.Blocked, d.Budget, d.Reserved = true, b, reserved
	d.ResetAt = resetAt(b, now)
	d.Message = b.Message()
	switch {
	case detail != "":
		d.Message += ": " + detail
	case reserved:
		d.Message += ": requests in flight have reserved the rest of it"
	}
	if reserved {
		d.RetryAfter = ReservedRetryAfter
	} else {
		d.RetryAfter = max(d.ResetAt.Sub(now), time.Second)
	}
	return d
}

// tightest is the strict budget with the least room left, to name in a strict refusal.
func tightest(acc [4]Account) Budget {
	best, room := None, pricing.NanoUSD(0)
	for i, b := range acc {
		if b.Limit == nil || !b.Strict {
			continue
		}
		if left := *b.Limit - min(b.used(), *b.Limit); best == None || left < room {
			best, room = Budget(i+1), left
		}
	}
	return best
}

// resetAt is when budget b's period containing now ends: the next UTC midnight, or the 1st of
// the next UTC month.
func resetAt(b Budget, now time.Time) time.Time {
	y, m, d := now.UTC().Date()
	if b.monthly() {
		return time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}

// level is used/limit; a zero (or negative) budget allows nothing, so it is always at 100%.
func level(used, limit pricing.NanoUSD) float64 {
	if limit <= 0 {
		return BlockLevel
	}
	return float64(used) / float64(limit)
}

// Accounts are s's four budgets (indexed by Budget-1) standing at the given committed spend and
// reservations: how a caller holding its own counters (app/ledger) builds Decide's input.
func (s Subject) Accounts(spent, reserved [4]pricing.NanoUSD) (acc [4]Account) {
	for i, limit := range s.limits() {
		if limit == nil {
			continue
		}
		strict := s.Project.Strict
		if i >= 2 {
			strict = s.Workspace.Strict
		}
		acc[i] = Account{Limit: limit, Spent: spent[i], Reserved: reserved[i], Strict: strict}
	}
	return acc
}
