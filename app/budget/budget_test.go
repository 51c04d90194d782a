package budget

import (
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tokenguard/app/pricing"
)

// clock is a settable time source shared with the engine.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func newClock(t time.Time) *clock    { return &clock{t: t} }
func usd(d float64) *pricing.NanoUSD { n := pricing.FromDollars(d); return &n }
func fixed(n pricing.NanoUSD) func(bool) pricing.NanoUSD {
	return func(bool) pricing.NanoUSD { return n }
}

var noon = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// spendNow commits amount for the subject at the clock's time, as a settled request would.
func spendNow(t *testing.T, e *Engine, s Subject, at time.Time, amount float64) {
	t.Helper()
	tk, d := e.Admit(s, fixed(0))
	if d.Blocked {
		t.Fatalf("setup spend blocked: %+v", d)
	}
	tk.Settle(at, pricing.FromDollars(amount))
}

// The level picks the model: under 80% the requested one, from 80% the fallback (when set), and
// from 100% the request is blocked with the message naming the budget.
func TestDecisionByLevel(t *testing.T) {
	tests := []struct {
		name         string
		spent        float64
		project      Limits
		workspace    Limits
		hasFallback  bool
		wantLevel    float64
		wantFallback bool
		wantBlocked  bool
		wantMessage  string
	}{
		{"no budgets", 100, Limits{}, Limits{}, true, 0, false, false, ""},
		{"under 80%", 0.79, Limits{Daily: usd(1)}, Limits{}, true, 0.79, false, false, ""},
		{"at 80% with fallback", 0.80, Limits{Daily: usd(1)}, Limits{}, true, 0.80, true, false, ""},
		{"at 80% without fallback", 0.80, Limits{Daily: usd(1)}, Limits{}, false, 0.80, false, false, ""},
		{"99.9%", 0.999, Limits{Daily: usd(1)}, Limits{}, true, 0.999, true, false, ""},
		{"exactly 100% daily", 1, Limits{Daily: usd(1)}, Limits{}, true, 1, false, true, "Daily spend limit reached"},
		{"over monthly", 5, Limits{Daily: usd(100), Monthly: usd(4)}, Limits{}, true, 1.25, false, true, "Monthly spend limit reached"},
		{"workspace daily", 2, Limits{Daily: usd(10)}, Limits{Daily: usd(2)}, true, 1, false, true, "Workspace daily spend limit reached"},
		{"workspace monthly", 3, Limits{}, Limits{Daily: usd(10), Monthly: usd(2)}, false, 1.5, false, true, "Workspace monthly spend limit reached"},
		{"highest level wins", 0.85, Limits{Daily: usd(10)}, Limits{Monthly: usd(1)}, true, 0.85, true, false, ""},
		{"zero budget blocks", 0, Limits{Daily: usd(0)}, Limits{}, true, 1, false, true, "Daily spend limit reached"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := New(newClock(noon).Now)
			s := Subject{ProjectID: 1, WorkspaceID: 10, HasFallback: tt.hasFallback}
			spendNow(t, e, s, noon, tt.spent)
			s.Project, s.Workspace = tt.project, tt.workspace

			var asked []bool
			tk, d := e.Admit(s, func(fb bool) pricing.NanoUSD { asked = append(asked, fb); return 7 })
			if got, want := d.Level, tt.wantLevel; got < want-1e-9 || got > want+1e-9 {
				t.Errorf("Level = %v, want %v", got, want)
			}
			if d.Fallback != tt.wantFallback || d.Blocked != tt.wantBlocked || d.Message != tt.wantMessage {
				t.Errorf("decision = %+v, want fallback=%v blocked=%v message=%q", d, tt.wantFallback, tt.wantBlocked, tt.wantMessage)
			}
			if tt.wantBlocked {
				if tk != nil || len(asked) != 0 {
					t.Errorf("blocked request got a ticket (%v) or priced a reservation (%v)", tk, asked)
				}
				if got := e.Reserved(ProjectScope, 1); got != 0 {
					t.Errorf("blocked request reserved %d", got)
				}
				return
			}
			if len(asked) != 1 || asked[0] != tt.wantFallback {
				t.Errorf("reserve called with %v, want [%v]", asked, tt.wantFallback)
			}
			if got, want := e.Reserved(ProjectScope, 1), pricing.NanoUSD(7); got != want {
				t.Errorf("Reserved = %d, want %d", got, want)
			}
			tk.Settle(noon, 0)
		})
	}
}

// In-flight reservations of other requests count toward the level; a request's own does not.
func TestReservationsOfOthersCount(t *testing.T) {
	e := New(newClock(noon).Now)
	s := Subject{ProjectID: 1, WorkspaceID: 10, Project: Limits{Daily: usd(1)}, HasFallback: true}

	first, d := e.Admit(s, fixed(pricing.FromDollars(0.85)))
	if d.Level != 0 || d.Fallback {
		t.Fatalf("first request: %+v, want level 0 on the requested model", d)
	}
	second, d := e.Admit(s, fixed(pricing.FromDollars(0.20)))
	if d.Blocked || !d.Fallback {
		t.Fatalf("second request: %+v, want the fallback (0.85 reserved by the first)", d)
	}
	if _, d := e.Admit(s, fixed(1)); !d.Blocked {
		t.Fatalf("third request: %+v, want blocked (0.85 + 0.20 reserved)", d)
	}
	// The first turns out cheap: its reservation is released and only its real cost stays.
	first.Settle(noon, pricing.FromDollars(0.10))
	second.Settle(noon, pricing.FromDollars(0.05))
	if got, want := e.Spend(ProjectScope, 1).Day, pricing.FromDollars(0.15); got != want {
		t.Errorf("spend = %d, want %d", got, want)
	}
	if _, d := e.Admit(s, fixed(1)); d.Blocked || d.Fallback {
		t.Errorf("after settling: %+v, want admitted on the requested model", d)
	}
}

// Settle is idempotent and releases exactly what was reserved.
func TestSettleOnce(t *testing.T) {
	e := New(newClock(noon).Now)
	s := Subject{ProjectID: 1, WorkspaceID: 10}
	a, _ := e.Admit(s, fixed(100))
	b, _ := e.Admit(s, fixed(50))
	a.Settle(noon, 30)
	a.Settle(noon, 30)
	a.Settle(noon, 999)
	if got, want := e.Reserved(ProjectScope, 1), pricing.NanoUSD(50); got != want {
		t.Errorf("Reserved after double settle = %d, want %d", got, want)
	}
	if got, want := e.Spend(WorkspaceScope, 10), (Spend{Day: 30, Month: 30}); got != want {
		t.Errorf("workspace spend = %+v, want %+v", got, want)
	}
	b.Settle(noon, 0)
	if got := e.Reserved(WorkspaceScope, 10); got != 0 {
		t.Errorf("Reserved after all settled = %d, want 0", got)
	}
	var nilTicket *Ticket
	nilTicket.Settle(noon, 5) // a blocked request's nil ticket must be safe to settle
}

// The bound from DESIGN §4: $1.00 budget, $0.90 spent, 50 requests of $0.05 released together.
// At most 2 are admitted (0.90 → 0.95 → 1.00), the counters end at exactly the budget, and no
// reservation is left. Run for an established project and for one created a moment before
// (nothing spent, so the budget is $0.10 to keep it the same bound).
func TestConcurrentBurstCannotOvershoot(t *testing.T) {
	for _, tc := range []struct {
		name   string
		spent  float64
		budget float64
	}{
		{"established project", 0.90, 1.00},
		{"project created a moment before", 0, 0.10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := New(newClock(noon).Now)
			s := Subject{ProjectID: 42, WorkspaceID: 7, Project: Limits{Daily: usd(tc.budget), Monthly: usd(100)}}
			if tc.spent > 0 {
				spendNow(t, e, s, noon, tc.spent)
			}
			cost := pricing.FromDollars(0.05)

			var admitted, blocked atomic.Int64
			var ready, done sync.WaitGroup
			start := make(chan struct{})
			for range 50 {
				ready.Add(1)
				done.Add(1)
				go func() {
					defer done.Done()
					ready.Done()
					<-start
					tk, d := e.Admit(s, fixed(cost))
					if d.Blocked {
						// Refused while the others are in flight: the reservations are the cause,
						// and a retry may succeed in seconds; once settled, spend is.
						want := "Daily spend limit reached"
						if d.Reserved {
							want += ": requests in flight have reserved the rest of it"
						}
						if d.Message != want || (d.Reserved && d.RetryAfter != ReservedRetryAfter) || d.RetryAfter <= 0 {
							t.Errorf("refusal = %+v, want message %q", d, want)
						}
						blocked.Add(1)
						return
					}
					admitted.Add(1)
					time.Sleep(time.Millisecond) // in flight while the others decide
					tk.Settle(noon, cost)
				}()
			}
			ready.Wait()
			close(start)
			done.Wait()

			if got, want := admitted.Load(), int64(2); got != want {
				t.Errorf("admitted %d, want %d", got, want)
			}
			if got, want := blocked.Load(), int64(48); got != want {
				t.Errorf("blocked %d, want %d", got, want)
			}
			if got, want := e.Spend(ProjectScope, 42).Day, pricing.FromDollars(tc.budget); got != want {
				t.Errorf("spend = %d, want exactly the budget %d", got, want)
			}
			if got := e.Reserved(ProjectScope, 42) + e.Reserved(WorkspaceScope, 7); got != 0 {
				t.Errorf("reservations left after settling: %d", got)
			}
		})
	}
}

// Windows roll over exactly at 00:00:00.000 UTC: 23:59:59.999 is still the old day, and the
// monthly window rolls on the 1st — including December into January and the end of a leap
// February — while a mid-month midnight leaves the monthly counter alone.
func TestWindowsRollOverExactly(t *testing.T) {
	tests := []struct {
		name        string
		last        time.Time // the last millisecond of a day
		monthRolls  bool
		wantNextDay string
	}{
		{"mid-month midnight", time.Date(2026, 11, 26, 23, 59, 59, 999e6, time.UTC), false, "2026-11-27"},
		{"end of November", time.Date(2026, 11, 30, 23, 59, 59, 999e6, time.UTC), true, "2026-12-01"},
		{"December into January", time.Date(2026, 12, 31, 23, 59, 59, 999e6, time.UTC), true, "2027-01-01"},
		{"leap February 28th is not month end", time.Date(2028, 2, 28, 23, 59, 59, 999e6, time.UTC), false, "2028-02-29"},
		{"leap February 29th", time.Date(2028, 2, 29, 23, 59, 59, 999e6, time.UTC), true, "2028-03-01"},
		{"plain February 28th", time.Date(2027, 2, 28, 23, 59, 59, 999e6, time.UTC), true, "2027-03-01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock(tt.last.Add(-time.Hour))
			e := New(clk.Now)
			s := Subject{ProjectID: 1, WorkspaceID: 2,
				Project:   Limits{Daily: usd(1), Monthly: usd(1)},
				Workspace: Limits{Daily: usd(1), Monthly: usd(1)}}
			spendNow(t, e, s, clk.Now(), 1)

			clk.Set(tt.last)
			// Both budgets are spent; the refusal names the monthly one, since a retry cannot
			// succeed before it resets, and says when that is.
			nextMonth := time.Date(tt.last.Year(), tt.last.Month()+1, 1, 0, 0, 0, 0, time.UTC)
			if _, d := e.Admit(s, fixed(0)); !d.Blocked || d.Message != "Monthly spend limit reached" ||
				!d.ResetAt.Equal(nextMonth) || d.RetryAfter != max(nextMonth.Sub(tt.last), time.Second) {
				t.Fatalf("at %s: %+v, want blocked by the monthly budget until %s", tt.last.Format(time.RFC3339Nano), d, nextMonth)
			}
			clk.Set(tt.last.Add(time.Millisecond))
			if got := DayKey(clk.Now()); got != tt.wantNextDay {
				t.Fatalf("DayKey at midnight = %s, want %s", got, tt.wantNextDay)
			}
			tk, d := e.Admit(s, fixed(0))
			if tt.monthRolls {
				if d.Blocked || d.Level != 0 {
					t.Errorf("after midnight into a new month: %+v, want every window reset", d)
				}
			} else if !d.Blocked || d.Message != "Monthly spend limit reached" {
				t.Errorf("after a mid-month midnight: %+v, want the monthly budget still at 100%%", d)
			}
			tk.Settle(clk.Now(), 0)
			sp := e.Spend(ProjectScope, 1)
			if sp.Day != 0 {
				t.Errorf("day spend after midnight = %d, want 0", sp.Day)
			}
			if wantMonth := map[bool]pricing.NanoUSD{true: 0, false: pricing.FromDollars(1)}[tt.monthRolls]; sp.Month != wantMonth {
				t.Errorf("month spend = %d, want %d", sp.Month, wantMonth)
			}
			// Stepping back one millisecond (a request that started before midnight settles
			// after it) lands in the old day and does not leak into the new one.
			late, _ := e.Admit(Subject{ProjectID: 1, WorkspaceID: 2}, fixed(0))
			late.Settle(tt.last, pricing.FromDollars(0.5))
			if got := e.Spend(ProjectScope, 1).Day; got != 0 {
				t.Errorf("a request started before midnight counted in the new day: %d", got)
			}
		})
	}
}

// Load restores persisted counters of the current periods and ignores ended ones.
func TestLoad(t *testing.T) {
	e := New(newClock(noon).Now)
	err := e.Load([]Counter{
		{ProjectScope, 1, "2026-11-26", pricing.FromDollars(0.9)},
		{ProjectScope, 1, "2026-11", pricing.FromDollars(5)},
		{ProjectScope, 1, "2026-11-25", pricing.FromDollars(99)}, // yesterday
		{ProjectScope, 1, "2026-10", pricing.FromDollars(99)},    // last month
		{WorkspaceScope, 9, "2026-11-26", pricing.FromDollars(2)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.Spend(ProjectScope, 1), (Spend{Day: pricing.FromDollars(0.9), Month: pricing.FromDollars(5)}); got != want {
		t.Errorf("project spend = %+v, want %+v", got, want)
	}
	if got, want := e.Spend(WorkspaceScope, 9).Day, pricing.FromDollars(2); got != want {
		t.Errorf("workspace spend = %d, want %d", got, want)
	}
	_, d := e.Admit(Subject{ProjectID: 1, WorkspaceID: 9, Project: Limits{Daily: usd(1)}, HasFallback: true}, fixed(0))
	if !d.Fallback {
		t.Errorf("loaded 90%% spend did not trigger the fallback: %+v", d)
	}
	for _, bad := range []Counter{{"team", 1, "2026-11-26", 1}, {ProjectScope, 1, "26/11/2026", 1}} {
		if err := New(newClock(noon).Now).Load([]Counter{bad}); err == nil {
			t.Errorf("Load accepted %+v", bad)
		}
	}
}

// Counters of ended periods are dropped from memory once the day changes.
func TestPrunesEndedPeriods(t *testing.T) {
	clk := newClock(noon)
	e := New(clk.Now)
	for id := int64(1); id <= 100; id++ {
		spendNow(t, e, Subject{ProjectID: id, WorkspaceID: 1000 + id}, noon, 0.01)
	}
	clk.Set(noon.AddDate(0, 1, 0))
	e.Spend(ProjectScope, 1)
	e.mu.Lock()
	n := len(e.spend)
	e.mu.Unlock()
	if n != 0 {
		t.Errorf("%d counters kept after their periods ended", n)
	}
}

func BenchmarkAdmitSettle(b *testing.B) {
	e := New(time.Now)
	s := Subject{ProjectID: 1, WorkspaceID: 2, Project: Limits{Daily: usd(1e9), Monthly: usd(1e9)}, Workspace: Limits{Daily: usd(1e9)}}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tk, _ := e.Admit(s, fixed(1000))
			tk.Settle(time.Now(), 10)
		}
	})
}

// Settle reports each alert threshold once, when a request carries a budget across it.
func TestSettleReportsCrossingsOnce(t *testing.T) {
	e := New(newClock(noon).Now)
	s := Subject{ProjectID: 1, WorkspaceID: 2,
		Project:   Limits{Daily: usd(1), Monthly: usd(10)},
		Workspace: Limits{Daily: usd(2)}}
	settle := func(amount float64) []Crossing {
		tk, _ := e.Admit(s, fixed(0))
		return tk.Settle(noon, pricing.FromDollars(amount))
	}
	if got := settle(0.5); len(got) != 0 {
		t.Errorf("50%%: crossings %+v, want none", got)
	}
	got := settle(0.3) // project daily 0.5 → 0.8
	if len(got) != 1 || got[0].Budget != ProjectDaily || got[0].Threshold != FallbackLevel ||
		got[0].Spend != pricing.FromDollars(0.8) || got[0].Limit != pricing.FromDollars(1) || got[0].ProjectID != 1 {
		t.Errorf("at 80%%: crossings %+v, want project daily 0.8", got)
	}
	if got := settle(0.1); len(got) != 0 {
		t.Errorf("90%%: crossings %+v, want none (80%% already reported)", got)
	}
	// 0.9 → 1.7 crosses project daily 100% and workspace daily 80% (1.7 of 2) at once.
	got = settle(0.8)
	want := map[Budget]float64{ProjectDaily: BlockLevel, WorkspaceDaily: FallbackLevel}
	if len(got) != len(want) {
		t.Fatalf("crossings %+v, want %v", got, want)
	}
	for _, c := range got {
		if want[c.Budget] != c.Threshold {
			t.Errorf("unexpected crossing %+v", c)
		}
	}
	// Jumping past both thresholds in one request reports both.
	e2 := New(newClock(noon).Now)
	tk, _ := e2.Admit(Subject{ProjectID: 1, Project: Limits{Monthly: usd(1)}}, fixed(0))
	if got := tk.Settle(noon, pricing.FromDollars(5)); len(got) != 2 {
		t.Errorf("0 → 500%%: crossings %+v, want both thresholds", got)
	}
}

// A request that starts before midnight and settles after it is spent in the day it started,
// and its crossing says so: alerts are filed under the period the spend was counted in.
func TestCrossingCarriesTheRequestsPeriod(t *testing.T) {
	beforeMidnight := time.Date(2026, 11, 26, 23, 59, 59, 0, time.UTC)
	c := newClock(beforeMidnight)
	e := New(c.Now)
	s := Subject{ProjectID: 1, WorkspaceID: 2, Project: Limits{Daily: usd(1)}}
	tk, _ := e.Admit(s, fixed(0))
	c.Set(beforeMidnight.Add(2 * time.Second)) // settles at 00:00:01 the next day
	got := tk.Settle(beforeMidnight, pricing.FromDollars(0.9))
	if len(got) != 1 {
		t.Fatalf("crossings %+v, want the 80%% crossing", got)
	}
	if got, want := DayKey(got[0].At), "2026-11-26"; got != want {
		t.Errorf("crossing period = %s, want %s (the request's day)", got, want)
	}
}

// One request whose worst case is absurd (max_tokens 2e12, a saturating worst case) must not
// switch the budgets off for everything else while it is in flight: the sums saturate instead of
// wrapping, so every other request of the project and of the workspace is refused until it
// settles, and settling returns every reservation.
func TestAbsurdWorstCaseCannotDisableBudgets(t *testing.T) {
	e := New(newClock(noon).Now)
	a := Subject{ProjectID: 1, WorkspaceID: 10, Project: Limits{Daily: usd(0.02)}, Workspace: Limits{Daily: usd(0.02)}}
	b := Subject{ProjectID: 2, WorkspaceID: 10, Workspace: Limits{Daily: usd(0.02)}}
	huge, d := e.Admit(a, fixed(math.MaxInt64))
	if d.Blocked {
		t.Fatalf("first request refused: %+v", d)
	}
	for i := range 100 {
		for _, s := range []Subject{a, b} {
			if _, d := e.Admit(s, fixed(pricing.FromDollars(0.01))); !d.Blocked || !d.Reserved {
				t.Fatalf("request %d of project %d admitted beside a saturated reservation: %+v", i, s.ProjectID, d)
			}
		}
	}
	huge.Settle(noon, pricing.FromDollars(0.001))
	if got := e.Reserved(ProjectScope, 1) + e.Reserved(WorkspaceScope, 10); got != 0 {
		t.Fatalf("reservations left: %d", got)
	}
	if _, d := e.Admit(b, fixed(1)); d.Blocked {
		t.Fatalf("refused after the huge request settled: %+v", d)
	}
}

// A strict budget lowers the output cap to what is left and refuses only below the useful
// minimum; a soft one admits the whole worst case. The refusal names its cause: spend (retry at
// the reset) or requests in flight (retry in seconds).
func TestStrictCapsOutput(t *testing.T) {
	// $0.01 of input plus $10 per million output tokens, up to 100,000 tokens: $1.01 worst case.
	req := linearCost{input: pricing.FromDollars(0.01), perToken: 10_000, maxOutput: 100_000, minOutput: 256, choices: 1}
	tests := []struct {
		name       string
		strict     bool
		spent      float64
		inFlight   float64 // reserved by another request still running
		wantCap    int64
		wantBlock  bool
		wantReason bool // refusal caused by reservations
	}{
		{"soft admits the whole worst case", false, 0.9, 0, 0, false, false},
		{"strict caps to the $1 left", true, 0, 0, 99_000, false, false},
		{"strict caps to the $0.10 left", true, 0.9, 0, 9_000, false, false},
		{"strict counts requests in flight", true, 0.85, 0.05, 9_000, false, false},
		{"strict refuses below the minimum", true, 0.9885, 0, 0, true, false},
		{"strict refusal caused by requests in flight", true, 0.5, 0.49, 0, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := New(newClock(noon).Now)
			s := Subject{ProjectID: 1, WorkspaceID: 10, Project: Limits{Daily: usd(1), Strict: tt.strict}}
			spendNow(t, e, s, noon, tt.spent)
			if tt.inFlight > 0 {
				if _, d := e.Admit(s, fixed(pricing.FromDollars(tt.inFlight))); d.Blocked {
					t.Fatalf("in-flight request refused: %+v", d)
				}
			}
			tk, d := e.AdmitCost(s, req.cost())
			if d.Blocked != tt.wantBlock || d.OutputCap != tt.wantCap {
				t.Fatalf("decision = %+v, want blocked=%v cap=%d", d, tt.wantBlock, tt.wantCap)
			}
			if tt.wantBlock {
				wantRetry := 12 * time.Hour
				if tt.wantReason {
					wantRetry = ReservedRetryAfter
				}
				if d.Reserved != tt.wantReason || d.RetryAfter != wantRetry || !d.ResetAt.Equal(noon.Add(12*time.Hour)) ||
					!strings.HasPrefix(d.Message, "Daily spend limit reached: ") {
					t.Fatalf("refusal = %+v, want reserved=%v retry %s", d, tt.wantReason, wantRetry)
				}
				return
			}
			want := req.cost().WorstCase(false, tt.wantCap)
			if got := tk.Reserved(); got != want {
				t.Errorf("reserved %d, want the capped worst case %d", got, want)
			}
			if tt.strict && pricing.FromDollars(tt.spent+tt.inFlight)+tk.Reserved() > *usd(1) {
				t.Errorf("strict reservation %d passes the budget", tk.Reserved())
			}
		})
	}
}

// A strict budget refuses a request whose output cannot be capped when its whole worst case does
// not fit, and says when a retry can succeed: in seconds when requests in flight hold the room.
func TestStrictRefusesUncappable(t *testing.T) {
	e := New(newClock(noon).Now)
	s := Subject{ProjectID: 1, WorkspaceID: 10, Project: Limits{Daily: usd(1), Strict: true}}
	inFlight, d := e.Admit(s, fixed(pricing.FromDollars(0.6)))
	if d.Blocked {
		t.Fatalf("first request refused: %+v", d)
	}
	if _, d := e.Admit(s, fixed(pricing.FromDollars(0.5))); !d.Blocked || !d.Reserved || d.RetryAfter != ReservedRetryAfter {
		t.Fatalf("beside a request in flight: %+v, want a refusal that retries in seconds", d)
	}
	inFlight.Settle(noon, pricing.FromDollars(0.6))
	if _, d := e.Admit(s, fixed(pricing.FromDollars(0.5))); !d.Blocked || d.Reserved || d.RetryAfter != 12*time.Hour {
		t.Fatalf("after the spend: %+v, want a refusal until the reset", d)
	}
	if tk, d := e.Admit(s, fixed(pricing.FromDollars(0.4))); d.Blocked || d.OutputCap != 0 || tk.Reserved() != pricing.FromDollars(0.4) {
		t.Fatalf("a request that fits whole: %+v", d)
	}
}
