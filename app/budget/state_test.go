package budget

import (
	"testing"
	"time"
)

// TestStanding ensures the dashboard reads the gate's own verdict: fallback from 80% when a
// fallback model is set, blocked at 100% naming the budget that resets last and when, and
// nothing from requests still in flight.
func TestStanding(t *testing.T) {
	midnight := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	firstOfMonth := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name         string
		spent        float64
		project      Limits
		workspace    Limits
		hasFallback  bool
		wantBudgets  int
		wantFallback bool
		wantBlocked  bool
		wantBudget   Budget
		wantReset    time.Time
	}{
		{"no budgets", 5, Limits{}, Limits{}, true, 0, false, false, None, time.Time{}},
		{"under 80%", 0.79, Limits{Daily: usd(1)}, Limits{}, true, 1, false, false, None, time.Time{}},
		{"80% with fallback", 0.8, Limits{Daily: usd(1), Monthly: usd(100)}, Limits{}, true, 2, true, false, ProjectDaily, time.Time{}},
		{"80% without fallback", 0.8, Limits{Daily: usd(1)}, Limits{}, false, 1, false, false, None, time.Time{}},
		{"fullest budget named", 0.9, Limits{Daily: usd(10)}, Limits{Monthly: usd(1)}, true, 2, true, false, WorkspaceMonthly, time.Time{}},
		{"daily spent", 1, Limits{Daily: usd(1)}, Limits{}, true, 1, false, true, ProjectDaily, midnight},
		{"both spent: the monthly resets last", 5, Limits{Daily: usd(1), Monthly: usd(4)}, Limits{}, true, 2, false, true, ProjectMonthly, firstOfMonth},
		{"workspace spent", 2, Limits{}, Limits{Daily: usd(2)}, false, 1, false, true, WorkspaceDaily, midnight},
		{"zero budget", 0, Limits{Monthly: usd(0)}, Limits{}, false, 1, false, true, ProjectMonthly, firstOfMonth},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := New(newClock(noon).Now)
			s := Subject{ProjectID: 1, WorkspaceID: 2, Project: tc.project, Workspace: tc.workspace, HasFallback: tc.hasFallback}
			spendNow(t, e, Subject{ProjectID: 1, WorkspaceID: 2}, noon, tc.spent)
			// A request in flight reserves a lot: the standing ignores it.
			if tk, _ := e.Admit(Subject{ProjectID: 1, WorkspaceID: 2}, fixed(*usd(1000))); tk == nil {
				t.Fatal("in-flight request refused")
			}
			got := e.Standing(s)
			if len(got.Budgets) != tc.wantBudgets || got.Fallback != tc.wantFallback || got.Blocked != tc.wantBlocked ||
				got.Budget != tc.wantBudget || !got.ResetAt.Equal(tc.wantReset) {
				t.Errorf("Standing = %+v, want %d budgets, fallback %v, blocked %v, budget %v, reset %v",
					got, tc.wantBudgets, tc.wantFallback, tc.wantBlocked, tc.wantBudget, tc.wantReset)
			}
			for _, b := range got.Budgets {
				if want := level(b.Spent, b.Limit); b.Level != want {
					t.Errorf("%v level %v, want %v", b.Budget, b.Level, want)
				}
			}
		})
	}
}
