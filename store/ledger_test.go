package store_test

import (
	"context"
	"errors"
	"testing"

	"tokenguard/store"
	"tokenguard/store/storetest"
)

// TestReserveBounds checks Reserve's conditional upsert on PostgreSQL: a reservation is taken on
// all four counters when each stands at or under its bound (no bound: always), and when any one
// is over, nothing at all is written — neither the other counters nor the reservation row.
func TestReserveBounds(t *testing.T) {
	if !storetest.OnPostgres() {
		t.Skip("PostgreSQL only: runs in the suite's PostgreSQL pass")
	}
	ctx := context.Background()
	check := func(max int64) store.LedgerBound { return store.LedgerBound{Check: true, Max: max} }
	tests := []struct {
		name   string
		before int64 // spend of each of the four counters (0: not yet written)
		bounds [4]store.LedgerBound
		ok     bool
	}{
		{"no bounds", 1 << 40, [4]store.LedgerBound{}, true},
		{"every counter at its bound", 500, [4]store.LedgerBound{check(500), check(500), check(500), check(500)}, true},
		{"the project's day over its bound", 500, [4]store.LedgerBound{store.LedgerProjectDay: check(499)}, false},
		{"the workspace's month over its bound", 500, [4]store.LedgerBound{store.LedgerWorkspaceMonth: check(499)}, false},
		// The caller decided reading zero: a counter not yet written is taken unconditionally.
		{"counters not yet written", 0, [4]store.LedgerBound{check(-1), check(-1), check(-1), check(-1)}, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := storetest.Open(t)
			project, workspace := int64(1+i), int64(100+i)
			day, month := "2026-03-14", "2026-03"
			if tt.before > 0 {
				if _, err := db.InsertUsage(ctx, []store.UsageRow{{RequestID: "seed", CreatedAt: 1773446400000 + 1000, // 2026-03-14
					WorkspaceID: workspace, ProjectID: project, Provider: "openai", Status: 200, CostNano: tt.before}}); err != nil {
					t.Fatal(err)
				}
			}
			ok, err := db.Reserve(ctx, store.Reservation{RequestID: "r", Owner: "replica-a", ProjectID: project,
				WorkspaceID: workspace, Day: day, Month: month, AmountNano: 70, CreatedAt: 1, LeaseMs: 30000}, tt.bounds)
			if err != nil || ok != tt.ok {
				t.Fatalf("Reserve = %v, %v; want %v", ok, err, tt.ok)
			}
			got, err := db.ReadLedger(ctx, project, workspace, day, month)
			if err != nil {
				t.Fatal(err)
			}
			want := int64(0)
			if tt.ok {
				want = 70
			}
			for i, c := range got {
				if c.ReservedNano != want {
					t.Errorf("counter %d holds %d reserved, want %d (all four or none): %+v", i, c.ReservedNano, want, got)
				}
			}
			renewed, err := db.RenewReservations(ctx, "replica-a", []string{"r"}, 30000)
			if err != nil || len(renewed) != btoi(tt.ok) {
				t.Fatalf("reservation row stored = %v (%v), want %v", renewed, err, tt.ok)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestTopUpStoredSlice checks that a top-up of a slice row already written only ever updates it:
// once the row is gone (swept while its replica was cut off, or returned), the top-up writes
// nothing — no row under the old id, no reservation on the counters — and says so.
func TestTopUpStoredSlice(t *testing.T) {
	if !storetest.OnPostgres() {
		t.Skip("PostgreSQL only: runs in the suite's PostgreSQL pass")
	}
	ctx := context.Background()
	db := storetest.Open(t)
	const project, workspace, day, month = 7, 70, "2026-03-14", "2026-03"
	r := store.Reservation{RequestID: "slice:a:7:2026-03-14:1", Owner: "a", ProjectID: project, WorkspaceID: workspace,
		Day: day, Month: month, AmountNano: 100, CreatedAt: 1, LeaseMs: 30000}
	if ok, err := db.TopUpSlice(ctx, r, [4]store.LedgerBound{}, false); !ok || err != nil {
		t.Fatalf("first top-up = %v, %v", ok, err)
	}
	if ok, err := db.TopUpSlice(ctx, r, [4]store.LedgerBound{}, true); !ok || err != nil {
		t.Fatalf("second top-up = %v, %v", ok, err)
	}
	reserved := func() int64 {
		got, err := db.ReadLedger(ctx, project, workspace, day, month)
		if err != nil {
			t.Fatal(err)
		}
		return got[store.LedgerProjectDay].ReservedNano
	}
	if got := reserved(); got != 200 {
		t.Fatalf("after two top-ups the counter holds %d, want 200", got)
	}
	if _, _, err := db.ReturnSlice(ctx, "a", r.RequestID, 200); err != nil {
		t.Fatal(err)
	}
	ok, err := db.TopUpSlice(ctx, r, [4]store.LedgerBound{}, true)
	if ok || !errors.Is(err, store.ErrSliceGone) {
		t.Fatalf("top-up of a slice no longer stored = %v, %v; want ErrSliceGone", ok, err)
	}
	if got := reserved(); got != 0 {
		t.Fatalf("the refused top-up left %d reserved, want 0", got)
	}
	if renewed, err := db.RenewReservations(ctx, "a", []string{r.RequestID}, 30000); err != nil || len(renewed) != 0 {
		t.Fatalf("a row is back under the old id: %v, %v", renewed, err)
	}
}
