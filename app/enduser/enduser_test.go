package enduser_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"tokenguard/app/apperr"
	"tokenguard/app/enduser"
	"tokenguard/app/pricing"
	"tokenguard/store"
	"tokenguard/store/storetest"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

var usd = pricing.FromDollars

// TestConcurrentBurst ensures a burst of concurrent requests of one end user is admitted only
// while their spend plus what is in flight is under the budget — however the requests
// interleave — and that, once settled, the end user is refused until UTC midnight while other
// end users and other projects are not.
func TestConcurrentBurst(t *testing.T) {
	clk := &clock{now: time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC)}
	c := enduser.New(clk.Now, 0)
	limit, reserve, cost := usd(1), usd(0.30), usd(0.25)

	// All in flight at once: 0, 0.30, 0.60 and 0.90 are under $1, the fifth would see $1.20.
	var mu sync.Mutex
	var admitted []enduser.Ticket
	refused := 0
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 64 {
		wg.Go(func() {
			<-start
			tk, err := c.Admit(7, "alice", limit, reserve)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if apperr.Code(err) != apperr.BudgetExceeded {
					t.Errorf("refusal %v, want BUDGET_EXCEEDED", err)
				}
				refused++
				return
			}
			admitted = append(admitted, tk)
		})
	}
	close(start)
	wg.Wait()
	if got, want := len(admitted), 4; got != want {
		t.Fatalf("admitted %d of 64 concurrent requests, want %d", got, want)
	}
	// Settled concurrently, each at its actual cost: $1.00 spent, within one request of the limit.
	for _, tk := range admitted {
		wg.Go(func() { tk.Settle(cost) })
	}
	wg.Wait()
	if got, want := c.Spent(7, "alice"), usd(1); got != want {
		t.Fatalf("spent %v, want %v", got, want)
	}
	_, err := c.Admit(7, "alice", limit, reserve)
	var ae *apperr.Error
	if !errors.As(err, &ae) || ae.Code != apperr.BudgetExceeded || !strings.Contains(ae.Message, `end user "alice"`) {
		t.Fatalf("after the budget is spent: %v, want BUDGET_EXCEEDED naming the end user", err)
	}
	if got, want := ae.RetryAfter, 2*time.Hour; got != want {
		t.Errorf("Retry-After %v, want %v (UTC midnight)", got, want)
	}
	if _, err := c.Admit(7, "bob", limit, reserve); err != nil {
		t.Errorf("another end user: %v", err)
	}
	if _, err := c.Admit(8, "alice", limit, reserve); err != nil {
		t.Errorf("the same end user of another project: %v", err)
	}
	if _, err := c.Admit(7, "alice", 0, reserve); err != nil {
		t.Errorf("no limit: %v", err)
	}

	// A request in flight over midnight counts for the day it started, which is gone.
	late, err := c.Admit(7, "carol", limit, reserve)
	if err != nil {
		t.Fatal(err)
	}
	clk.set(time.Date(2026, 12, 2, 0, 0, 1, 0, time.UTC))
	late.Settle(usd(5))
	if _, err := c.Admit(7, "alice", limit, reserve); err != nil {
		t.Errorf("alice the next day: %v", err)
	}
	if got := c.Spent(7, "carol"); got != 0 {
		t.Errorf("carol's spend of yesterday counted today: %v", got)
	}
}

// TestBurstBound drives many rounds of concurrent admits and settles of random costs and
// checks that no end user's spend ever passes the limit by more than one reservation.
func TestBurstBound(t *testing.T) {
	clk := &clock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	c := enduser.New(clk.Now, 0)
	limit, reserve := usd(3), usd(0.7)
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := range 200 {
				tk, err := c.Admit(1, "u", limit, reserve)
				if err != nil {
					continue
				}
				tk.Settle(pricing.NanoUSD(int64(reserve) * int64((g+i)%5) / 4)) // 0 to the whole reservation
			}
		})
	}
	wg.Wait()
	if got, bound := c.Spent(1, "u"), limit+reserve; got >= bound {
		t.Fatalf("spent %v, want under %v", got, bound)
	}
	if got := c.Spent(1, "u"); got < limit-reserve {
		t.Fatalf("spent %v: the budget was not used", got)
	}
}

// TestMaxUsers ensures the day's end users are bounded: past the bound a new end user is
// refused, and one whose requests cost nothing leaves no entry behind.
func TestMaxUsers(t *testing.T) {
	clk := &clock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	c := enduser.New(clk.Now, 2)
	for i, u := range []string{"a", "b"} {
		tk, err := c.Admit(int64(1+i), u, usd(1), usd(0.1))
		if err != nil {
			t.Fatal(err)
		}
		tk.Settle(usd(0.01))
	}
	if _, err := c.Admit(1, "c", usd(1), usd(0.1)); apperr.Code(err) != apperr.BudgetExceeded {
		t.Fatalf("a third end user with room for two: %v, want BUDGET_EXCEEDED", err)
	}
	c2 := enduser.New(clk.Now, 1)
	tk, _ := c2.Admit(1, "free", usd(1), usd(0.1))
	tk.Settle(0)
	if _, err := c2.Admit(1, "next", usd(1), usd(0.1)); err != nil {
		t.Fatalf("an end user that spent nothing kept their entry: %v", err)
	}
}

// TestProjectShare ensures one project cannot take every end user's place: a key inventing end
// users fills its project's quarter of the bound, and another project's new end users are still
// tracked and served.
func TestProjectShare(t *testing.T) {
	clk := &clock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	c := enduser.New(clk.Now, 100)
	admitted := 0
	for i := range 100 {
		tk, err := c.Admit(1, fmt.Sprint("invented-", i), usd(1), usd(0.1))
		if err != nil {
			if apperr.Code(err) != apperr.BudgetExceeded {
				t.Fatal(err)
			}
			continue
		}
		admitted++
		tk.Settle(usd(0.000001))
	}
	if admitted != 25 {
		t.Errorf("one project got %d of 100 end users' places, want its share of 25", admitted)
	}
	for i := range 25 {
		if _, err := c.Admit(2, fmt.Sprint("real-", i), usd(1), usd(0.1)); err != nil {
			t.Fatalf("another project's end user %d refused after the first filled its share: %v", i, err)
		}
	}
}

// TestLoad ensures a restart keeps the day's spend: the counters are rebuilt from the usage
// rows of today, so a spent end user stays refused.
func TestLoad(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t)
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	var ws, proj int64
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		if ws, err = db.InsertWorkspace(ctx, tx, store.Workspace{Name: "w", CreatedAt: 1}); err != nil {
			return err
		}
		proj, err = db.InsertProject(ctx, tx, store.Project{WorkspaceID: ws, Name: "p", KeyPrefix: "k",
			Controls: store.Controls{EndUserDailyBudgetNano: int64(usd(1))}, CreatedAt: 1}, "h")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.InsertUsage(ctx, []store.UsageRow{{RequestID: "r1", CreatedAt: now.Add(-time.Hour).UnixMilli(), WorkspaceID: ws,
		ProjectID: proj, Provider: "openai", OriginalModel: "m", FinalModel: "m", Status: 200, CostNano: int64(usd(1)), EndUser: "alice"}}); err != nil {
		t.Fatal(err)
	}
	c := enduser.New(func() time.Time { return now }, 0)
	if err := c.Load(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Admit(proj, "alice", usd(1), usd(0.01)); apperr.Code(err) != apperr.BudgetExceeded {
		t.Fatalf("after a restart: %v, want BUDGET_EXCEEDED", err)
	}
}
