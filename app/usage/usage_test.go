package usage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tokenguard/app/budget"
	"tokenguard/app/pricing"
	"tokenguard/store"
	"tokenguard/store/storetest"
)

var ctx = context.Background()

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

var noon = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func record(at time.Time, project, workspace int64, cost pricing.NanoUSD) Record {
	return Record{
		CreatedAt: at, WorkspaceID: workspace, ProjectID: project, Provider: "openai",
		OriginalModel: "gpt-4o", FinalModel: "gpt-4o", Status: 200,
		InputTokens: 100, OutputTokens: 20, TotalTokens: 120, Cost: cost, LatencyMs: 12,
	}
}

// dbState reads back what a test needs to compare: row count, sum of row costs, and every
// counter of the given periods.
type dbState struct {
	rows     int
	rowSum   int64
	counters map[string]int64
}

func readState(t *testing.T, db *store.DB, periods ...string) dbState {
	t.Helper()
	var s dbState
	if err := db.Read.QueryRow(`SELECT COUNT(*), COALESCE(SUM(cost_nano), 0) FROM usage_logs`).Scan(&s.rows, &s.rowSum); err != nil {
		t.Fatal(err)
	}
	cs, err := db.SpendCounters(ctx, periods...)
	if err != nil {
		t.Fatal(err)
	}
	s.counters = map[string]int64{}
	for _, c := range cs {
		s.counters[fmt.Sprintf("%s/%d/%s", c.Scope, c.ScopeID, c.Period)] = c.SpendNano
	}
	return s
}

// Close writes every queued row, and the counters it writes equal the sum of the rows.
func TestCloseFlushesEverything(t *testing.T) {
	db := storetest.Open(t)
	// An interval far beyond the test: only Close can have written the rows.
	w := NewWriter(db, quietLog(), WriterOptions{FlushInterval: time.Hour, MaxBatch: 1 << 30})
	var want int64
	for i := range 5000 {
		cost := pricing.NanoUSD(i % 97)
		want += int64(cost)
		w.Add(record(noon.Add(time.Duration(i)*time.Millisecond), int64(1+i%3), 9, cost))
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s := readState(t, db, "2026-11-26", "2026-11")
	if s.rows != 5000 || s.rowSum != want {
		t.Fatalf("rows = %d (sum %d), want 5000 (sum %d)", s.rows, s.rowSum, want)
	}
	if got := s.counters["workspace/9/2026-11-26"]; got != want {
		t.Errorf("workspace day counter = %d, want %d", got, want)
	}
	if got := s.counters["workspace/9/2026-11"]; got != want {
		t.Errorf("workspace month counter = %d, want %d", got, want)
	}
	var projects int64
	for p := 1; p <= 3; p++ {
		projects += s.counters[fmt.Sprintf("project/%d/2026-11-26", p)]
	}
	if projects != want {
		t.Errorf("project day counters sum to %d, want %d", projects, want)
	}
	// A straggler after Close is written synchronously, not lost.
	w.Add(record(noon, 1, 9, 5))
	if got := readState(t, db).rows; got != 5001 {
		t.Errorf("rows after a late Add = %d, want 5001", got)
	}
}

// Without Close or Flush, a row reaches the database on its own shortly after the flush interval.
func TestRowsFlushAfterInterval(t *testing.T) {
	db := storetest.Open(t)
	w := NewWriter(db, quietLog(), WriterOptions{FlushInterval: 20 * time.Millisecond})
	defer w.Close(ctx)
	w.Add(record(noon, 1, 1, 10))
	deadline := time.Now().Add(10 * time.Second)
	for readState(t, db).rows != 1 {
		if time.Now().After(deadline) {
			t.Fatal("row never written without Close")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Flush writes queued rows at once, whatever the interval.
	slow := NewWriter(db, quietLog(), WriterOptions{FlushInterval: time.Hour})
	defer slow.Close(ctx)
	slow.Add(record(noon, 1, 1, 10))
	if err := slow.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readState(t, db).rows; got != 2 {
		t.Errorf("rows after Flush = %d, want 2", got)
	}
}

// A failing database delays rows but loses none; a batch whose commit went through but was
// reported as failed is retried without being counted twice.
func TestFailedWritesAreRetriedWithoutDoubleCounting(t *testing.T) {
	db := storetest.Open(t)
	var calls atomic.Int32
	w := newWriter(quietLog(), WriterOptions{FlushInterval: time.Millisecond}, func(rows []store.UsageRow) error {
		switch calls.Add(1) {
		case 1, 2:
			return errors.New("disk I/O error") // nothing written
		case 3:
			if _, err := db.InsertUsage(ctx, rows); err != nil {
				return err
			}
			return errors.New("connection reset after commit") // written, but reported failed
		}
		_, err := db.InsertUsage(ctx, rows)
		return err
	})
	for i := range 10 {
		w.Add(record(noon, 1, 2, pricing.NanoUSD(100+i)))
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if calls.Load() < 4 {
		t.Fatalf("write attempts = %d, want at least 4", calls.Load())
	}
	s := readState(t, db, "2026-11-26")
	if s.rows != 10 || s.rowSum != 1045 {
		t.Errorf("rows = %d sum %d, want 10 sum 1045", s.rows, s.rowSum)
	}
	if got := s.counters["project/1/2026-11-26"]; got != 1045 {
		t.Errorf("counter = %d, want 1045 (counted once)", got)
	}
}

// When the database stays down past the shutdown deadline, Close says how many rows it could
// not write instead of pretending.
func TestCloseReportsUnwrittenRows(t *testing.T) {
	w := newWriter(quietLog(), WriterOptions{FlushInterval: time.Hour}, func([]store.UsageRow) error {
		return errors.New("database is locked")
	})
	for range 3 {
		w.Add(record(noon, 1, 1, 1))
	}
	c, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err := w.Close(c)
	if err == nil || !strings.Contains(err.Error(), "3 usage rows not written") {
		t.Errorf("Close = %v, want it to report 3 unwritten rows", err)
	}
}

// Counters survive a restart: what the engine counted in memory comes back from the database.
func TestRestartKeepsCounters(t *testing.T) {
	path := t.TempDir() + "/tg.db"
	db := storetest.OpenAt(t, path)
	now := func() time.Time { return noon }
	e := budget.New(now)
	w := NewWriter(db, quietLog(), WriterOptions{})
	s := budget.Subject{ProjectID: 5, WorkspaceID: 6}
	for i := range 20 {
		tk, _ := e.Admit(s, func(bool) pricing.NanoUSD { return 1000 })
		cost := pricing.NanoUSD(10 * (i + 1))
		tk.Settle(noon, cost)
		w.Add(record(noon, 5, 6, cost))
	}
	// A request that started yesterday and settled now counts toward this month, not today.
	tk, _ := e.Admit(s, nil)
	tk.Settle(noon.Add(-24*time.Hour), 1_000_000)
	w.Add(record(noon.Add(-24*time.Hour), 5, 6, 1_000_000))
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db2 := storetest.OpenAt(t, path)
	e2 := budget.New(now)
	if err := LoadCounters(ctx, db2, e2, noon); err != nil {
		t.Fatal(err)
	}
	for _, sc := range []budget.Scope{budget.ProjectScope, budget.WorkspaceScope} {
		id := int64(5)
		if sc == budget.WorkspaceScope {
			id = 6
		}
		if got, want := e2.Spend(sc, id), e.Spend(sc, id); got != want {
			t.Errorf("%s spend after restart = %+v, want %+v", sc, got, want)
		}
	}
	if got, want := e2.Spend(budget.ProjectScope, 5), (budget.Spend{Day: 2100, Month: 1_002_100}); got != want {
		t.Errorf("spend = %+v, want %+v", got, want)
	}
}

// LoadCounters fails (so the server refuses to start) when the counters cannot be read.
func TestLoadCountersFailsClosed(t *testing.T) {
	db := storetest.Open(t)
	db.Read.Close()
	if err := LoadCounters(ctx, db, budget.New(time.Now), noon); err == nil {
		t.Error("LoadCounters succeeded on a closed database")
	}
}

// The concurrency scenario end to end: budget $1.00 with $0.90 spent, 50 requests of
// $0.05 released together. At most 2 are admitted, blocked ones are logged at cost 0 with
// BUDGET_EXCEEDED, reservations end at 0, and each counter — in memory and in the database —
// equals the sum of its usage rows. Also for a project created a moment before.
func TestConcurrentBurstEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name   string
		spent  pricing.NanoUSD
		budget pricing.NanoUSD
	}{
		{"established project", pricing.FromDollars(0.90), pricing.FromDollars(1)},
		{"project created a moment before", 0, pricing.FromDollars(0.10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := storetest.Open(t)
			e := budget.New(func() time.Time { return noon })
			w := NewWriter(db, quietLog(), WriterOptions{FlushInterval: 5 * time.Millisecond})
			s := budget.Subject{ProjectID: 77, WorkspaceID: 7, Project: budget.Limits{Daily: &tc.budget}}
			if tc.spent > 0 {
				tk, _ := e.Admit(s, nil)
				tk.Settle(noon, tc.spent)
				w.Add(record(noon, 77, 7, tc.spent))
			}
			cost := pricing.FromDollars(0.05)
			var admitted atomic.Int32
			var wg sync.WaitGroup
			start := make(chan struct{})
			for range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					tk, d := e.Admit(s, func(bool) pricing.NanoUSD { return cost })
					rec := record(noon, 77, 7, cost)
					if d.Blocked {
						rec.Status, rec.ErrorCode, rec.Cost = 429, "BUDGET_EXCEEDED", 0
						rec.InputTokens, rec.OutputTokens, rec.TotalTokens = 0, 0, 0
					} else {
						admitted.Add(1)
						time.Sleep(time.Millisecond)
					}
					tk.Settle(noon, rec.Cost)
					w.Add(rec)
				}()
			}
			close(start)
			wg.Wait()
			if err := w.Close(ctx); err != nil {
				t.Fatal(err)
			}

			if got := admitted.Load(); got != 2 {
				t.Errorf("admitted %d, want 2", got)
			}
			if got := e.Reserved(budget.ProjectScope, 77) + e.Reserved(budget.WorkspaceScope, 7); got != 0 {
				t.Errorf("reservations left: %d", got)
			}
			st := readState(t, db, "2026-11-26", "2026-11")
			var blocked int
			if err := db.Read.QueryRow(`SELECT COUNT(*) FROM usage_logs WHERE status = 429 AND error_code = 'BUDGET_EXCEEDED' AND cost_nano = 0`).Scan(&blocked); err != nil {
				t.Fatal(err)
			}
			if blocked != 48 {
				t.Errorf("blocked rows = %d, want 48", blocked)
			}
			mem := e.Spend(budget.ProjectScope, 77)
			for key, got := range map[string]int64{
				"project/77/2026-11-26 (db)": st.counters["project/77/2026-11-26"],
				"project/77/2026-11 (db)":    st.counters["project/77/2026-11"],
				"workspace/7/2026-11 (db)":   st.counters["workspace/7/2026-11"],
				"project day (memory)":       int64(mem.Day),
				"project month (memory)":     int64(mem.Month),
			} {
				if got != st.rowSum {
					t.Errorf("%s = %d, want the sum of the usage rows %d", key, got, st.rowSum)
				}
			}
			if got, want := st.rowSum, int64(tc.budget); got != want {
				t.Errorf("spend = %d, want exactly the budget %d", got, want)
			}
		})
	}
}

// The JSON of a record uses the contract's names and types.
func TestRecordJSON(t *testing.T) {
	r := Record{
		ID: 3, RequestID: "rid", CreatedAt: time.Date(2026, 11, 26, 13, 4, 5, 123e6, time.FixedZone("CET", 3600)),
		WorkspaceID: 1, ProjectID: 2, Provider: "anthropic", OriginalModel: "claude-opus-4-5", FinalModel: "claude-haiku-4-5",
		WasFallback: true, Status: 200, InputTokens: 10, OutputTokens: 20, TotalTokens: 30,
		Cost: 1_234_500, LatencyMs: 99, ErrorCode: "", Stream: true, UsageEstimated: true, PricedByDefault: false,
		PricesVersion: "genai-prices@0.1.8+ac450c11", CacheReadTokens: 4, CacheWriteTokens: 2, ReasoningTokens: 5,
		TTFBMs: 310, ErrorMessage: "overloaded", EndUser: "u-1",
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"id": 3.0, "requestId": "rid", "createdAt": "2026-11-26T12:04:05.123Z", "workspaceId": 1.0,
		"projectId": 2.0, "provider": "anthropic", "originalModel": "claude-opus-4-5",
		"finalModel": "claude-haiku-4-5", "wasFallback": true, "status": 200.0, "inputTokens": 10.0,
		"outputTokens": 20.0, "totalTokens": 30.0, "estimatedCostUsd": 0.0012345, "latencyMs": 99.0,
		"errorCode": "", "stream": true, "usageEstimated": true, "pricedByDefault": false,
		"pricesVersion": "genai-prices@0.1.8+ac450c11", "cacheReadTokens": 4.0, "cacheWriteTokens": 2.0,
		"reasoningTokens": 5.0, "ttfbMs": 310.0, "errorMessage": "overloaded", "endUser": "u-1",
	}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Errorf("JSON = %s\nwant %v", b, want)
	}
	var back Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Cost != r.Cost || !back.CreatedAt.Equal(r.CreatedAt) || back.FinalModel != r.FinalModel {
		t.Errorf("round trip = %+v", back)
	}
}

// Request ids are unique and sort in time order.
func TestNewRequestID(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for i := range 1000 {
		id := NewRequestID(noon.Add(time.Duration(i) * time.Millisecond))
		if len(id) != 32 || seen[id] {
			t.Fatalf("id %q: bad length or repeated", id)
		}
		seen[id] = true
		if id <= prev {
			t.Fatalf("id %q sorts before the earlier %q", id, prev)
		}
		prev = id
	}
}

// BenchmarkWriter measures sustained throughput of the whole writer: Acquire and Slot.Add
// from 4 goroutines (the request path) into a real SQLite file with the default queue bound,
// until Close has stored every row. A producer refused by the full queue waits a moment and
// tries again, as a client retrying a 503 would. Each row starts when it is added, as the
// proxy's do, so its request id is in time order like theirs (ids of one instant would land
// at random places in the unique index).
func BenchmarkWriter(b *testing.B) {
	db := storetest.Open(b)
	var batches, rows atomic.Int64
	w := NewWriter(db, quietLog(), WriterOptions{FlushInterval: 200 * time.Millisecond,
		OnBatch: func(n int, _ time.Duration) { batches.Add(1); rows.Add(int64(n)) }})
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N/4 + 1
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				s, err := w.Acquire()
				for err != nil {
					time.Sleep(100 * time.Microsecond)
					s, err = w.Acquire()
				}
				s.Add(record(time.Now(), int64(1+(g*per+i)%100), 1, 1234))
			}
		}()
	}
	wg.Wait()
	if err := w.Close(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(4*per)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(rows.Load())/float64(max(batches.Load(), 1)), "rows/batch")
}

// BenchmarkAdd is the request path's cost of logging one row: Acquire at admission, Slot.Add
// at the end. The bound is lifted so that no iteration is refused.
func BenchmarkAdd(b *testing.B) {
	db := storetest.Open(b)
	w := NewWriter(db, quietLog(), WriterOptions{MaxQueue: 1 << 30})
	defer w.Close(ctx)
	rec := record(noon, 1, 1, 1234)
	for b.Loop() {
		rec.RequestID = ""
		s, err := w.Acquire()
		if err != nil {
			b.Fatal(err)
		}
		s.Add(rec)
	}
}
