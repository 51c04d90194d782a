package ledger

import (
	"context"
	"testing"
	"time"

	"tokenguard/app/budget"
	"tokenguard/app/pricing"
	"tokenguard/store/storetest"
)

// Returns of idle headroom that run out of time are kept for the next refresh, not dropped:
// a dropped slice expires and is swept at what it held, billing its free part as spend. (At UTC
// midnight one refresh returns every slice of the ended day, under one deadline.)
func TestSliceReturnOutOfTimeKept(t *testing.T) {
	db := storetest.OpenPostgres(t)
	l, err := New(db, budget.New(time.Now), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	limit := pricing.NanoUSD(1_000_000_000)
	s := budget.Subject{ProjectID: 5, WorkspaceID: 50, Project: budget.Limits{Daily: &limit}}
	cost := budget.Cost{WorstCase: func(bool, int64) pricing.NanoUSD { return 1000 }}
	for range 3 { // the first tops a slice up, the next are taken from it
		if _, d, err := l.Admit(ctx, s, "r-"+time.Now().Format("150405.000000000"), cost); err != nil || d.Blocked {
			t.Fatalf("admit: %+v %v", d, err)
		}
	}
	held := func() int64 {
		var n int64
		if err := db.Write.QueryRow(`SELECT coalesce(sum(amount_nano), 0)::bigint FROM budget_reservations`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := held()
	if len(l.slices) != 1 || before <= 3000 {
		t.Fatalf("%d slices holding %d; want one with free headroom beside the three requests", len(l.slices), before)
	}

	gone, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.returnSlices(gone, budget.DayKey(time.Now()), true); err == nil {
		t.Fatal("a return with no time left reported no error")
	}
	if len(l.slices) != 1 || held() != before {
		t.Fatalf("after a return out of time: %d slices, %d held; want the slice kept, still holding %d", len(l.slices), held(), before)
	}
	if err := l.returnSlices(ctx, budget.DayKey(time.Now()), true); err != nil {
		t.Fatal(err)
	}
	if got := held(); got != 3000 {
		t.Fatalf("after the next return the slice holds %d; want the three requests' 3000", got)
	}
}
