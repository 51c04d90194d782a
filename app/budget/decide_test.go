package budget

import (
	"math/rand/v2"
	"testing"
	"time"

	"tokenguard/app/pricing"
)

// TestBoundAgreesWithDecide checks that Account.Bound — the number app/ledger's database checks
// while it adds a reservation — admits exactly what Decide admits: for random accounts, a
// request Decide admits stands at or under every applying budget's bound for the amount it
// reserves, and one it refuses stands above the bound of at least one budget (or cannot be
// capped to fit a strict one). A bound looser than Decide would let replicas overshoot; a
// tighter one would refuse what one node admits.
func TestBoundAgreesWithDecide(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 2))
	now := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	for i := range 20000 {
		var acc [4]Account
		for j := range acc {
			if r.IntN(3) == 0 {
				continue
			}
			limit := pricing.NanoUSD(r.Int64N(10_000_000))
			if r.IntN(20) == 0 {
				limit = 0
			}
			acc[j] = Account{Limit: &limit, Spent: pricing.NanoUSD(r.Int64N(12_000_000)),
				Reserved: pricing.NanoUSD(r.Int64N(3_000_000)), Strict: j < 2 && r.IntN(2) == 0 || j >= 2 && r.IntN(3) == 0}
			if r.IntN(4) == 0 {
				acc[j].Spent, acc[j].Reserved = limit/2, 0
			}
		}
		lc := randomCost(r)
		if lc.input > 1_000_000_000 {
			lc.input = 1_000_000 // saturation is the engine tests' subject, not this one's
		}
		s := Subject{ProjectID: 1, WorkspaceID: 2, HasFallback: r.IntN(2) == 0}
		d, amount := Decide(s, acc, lc.cost(), now)
		fits := true
		for j, a := range acc {
			bound, ok := a.Bound(amount)
			if ok && int64(a.used()) > bound {
				fits = false
				if !d.Blocked {
					t.Fatalf("case %d: admitted (reserving %d) but budget %d stands at %d over its bound %d: %+v",
						i, amount, j+1, a.used(), bound, a)
				}
			}
		}
		if d.Blocked && fits && amount != 0 {
			t.Fatalf("case %d: refused, yet reserving %d fits every bound", i, amount)
		}
		if d.Blocked && amount != 0 {
			t.Fatalf("case %d: a refusal reserves %d", i, amount)
		}
	}
}

// TestDecideRefusalTimes checks the Retry-After and ResetAt a refusal carries from the clock it
// is given: the next UTC midnight for a daily budget, the next month's first for a monthly one,
// and ReservedRetryAfter when reservations in flight are the cause.
func TestDecideRefusalTimes(t *testing.T) {
	now := time.Date(2026, 12, 31, 22, 0, 0, 0, time.UTC)
	limit := pricing.NanoUSD(100)
	tests := []struct {
		name      string
		acc       [4]Account
		want      Budget
		reserved  bool
		resetAt   time.Time
		retryWait time.Duration
	}{
		{"daily spent", [4]Account{{Limit: &limit, Spent: 100}}, ProjectDaily, false,
			time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), 2 * time.Hour},
		{"monthly spent wins over daily", [4]Account{{Limit: &limit, Spent: 100}, {Limit: &limit, Spent: 100}}, ProjectMonthly, false,
			time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), 2 * time.Hour},
		{"workspace reserved", [4]Account{2: {Limit: &limit, Spent: 10, Reserved: 90}}, WorkspaceDaily, true,
			time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), ReservedRetryAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, amount := Decide(Subject{}, tt.acc, Cost{}, now)
			if !d.Blocked || d.Budget != tt.want || d.Reserved != tt.reserved || !d.ResetAt.Equal(tt.resetAt) ||
				d.RetryAfter != tt.retryWait || amount != 0 {
				t.Fatalf("got %+v (amount %d), want %v reserved=%v reset %v retry %v", d, amount, tt.want, tt.reserved, tt.resetAt, tt.retryWait)
			}
		})
	}
	if d := Refusal(WorkspaceMonthly, now); !d.Blocked || !d.Reserved || d.RetryAfter != ReservedRetryAfter ||
		d.Budget != WorkspaceMonthly || d.Message != "Workspace monthly spend limit reached: requests in flight have reserved the rest of it" {
		t.Fatalf("Refusal = %+v", d)
	}
}

// TestSetSpendAndRecord checks the mirror's two writes: SetSpend replaces counters (Load adds),
// and Record adds to the four counters of the request's periods without touching reservations.
func TestSetSpendAndRecord(t *testing.T) {
	now := time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC)
	e := New(func() time.Time { return now })
	counters := []Counter{{ProjectScope, 1, DayKey(now), 500}, {ProjectScope, 1, MonthKey(now), 700},
		{WorkspaceScope, 9, DayKey(now), 800}, {ProjectScope, 1, DayKey(now.AddDate(0, 0, -1)), 999}}
	if err := e.Load(counters); err != nil {
		t.Fatal(err)
	}
	if err := e.SetSpend(counters); err != nil {
		t.Fatal(err)
	}
	if got := e.Spend(ProjectScope, 1); got != (Spend{Day: 500, Month: 700}) {
		t.Fatalf("after SetSpend of what Load added: %+v, want 500/700 (set, not added)", got)
	}
	e.Record(1, 9, now, 25)
	e.Record(1, 9, now.AddDate(0, -1, 0), 1000) // last month's: no current counter moves
	if got := e.Spend(ProjectScope, 1); got != (Spend{Day: 525, Month: 725}) {
		t.Fatalf("project after Record: %+v", got)
	}
	if got := e.Spend(WorkspaceScope, 9); got != (Spend{Day: 825, Month: 25}) {
		t.Fatalf("workspace after Record: %+v", got)
	}
	if got := e.Reserved(ProjectScope, 1); got != 0 {
		t.Fatalf("Record reserved %d", got)
	}
	if err := e.SetSpend([]Counter{{"team", 1, DayKey(now), 1}}); err == nil {
		t.Fatal("SetSpend took an unknown scope")
	}
}
