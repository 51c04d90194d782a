package retention_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"tokenguard/app/retention"
	"tokenguard/app/usage"
	"tokenguard/store"
	"tokenguard/store/storetest"
)

var ctx = context.Background()

// now is the clock of the tests: raw rows are kept 30 days back, to 2026-11-01 12:00, and
// hourly rollups 60 days, to 2026-10-02.
var now = time.Date(2026, 12, 1, 12, 30, 0, 0, time.UTC)

const day = 24 * time.Hour

// seed writes one row a day of each workspace for the 90 days before now, in time order.
func seed(t *testing.T, db *store.DB) {
	t.Helper()
	var rows []store.UsageRow
	for at := now.Add(-90 * day); at.Before(now); at = at.Add(day) {
		for ws := int64(1); ws <= 2; ws++ {
			rows = append(rows, store.UsageRow{RequestID: usage.NewRequestID(at), CreatedAt: at.UnixMilli(),
				WorkspaceID: ws, ProjectID: ws * 10, Provider: "openai", OriginalModel: "gpt-4o", FinalModel: "gpt-4o",
				Status: 200, InputTokens: 100, OutputTokens: 50, TotalTokens: 150, CostNano: 1_000_000, LatencyMs: 300})
		}
	}
	if _, err := db.InsertUsage(ctx, rows); err != nil {
		t.Fatal(err)
	}
}

// TestPass ensures a pass deletes what is past each retention, in batches, while the usage
// writer keeps storing rows; audits each workspace's deletions as a system event; leaves the
// months' analytics as they were; and that a second pass finds nothing left to do.
func TestPass(t *testing.T) {
	db := storetest.OpenAt(t, filepath.Join(t.TempDir(), "tokenguard.db"))
	seed(t, db)
	october := store.AnalyticsFilter{WorkspaceID: 1, From: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC).UnixMilli(),
		To: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMilli()}
	before, err := db.AggregateUsage(ctx, october, store.GroupDay, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := retention.New(ctx, retention.Options{DB: db, Usage: 30 * day, Hourly: 60 * day, Batch: 7,
		Now: func() time.Time { return now }, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if mode, err := db.AutoVacuum(ctx); err != nil || mode != 2 {
		t.Fatalf("auto_vacuum = %d, %v; want 2 (incremental) once a raw retention is set", mode, err)
	}

	w := usage.NewWriter(db, slog.New(slog.DiscardHandler), usage.WriterOptions{FlushInterval: time.Millisecond})
	stop := make(chan struct{})
	wrote := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				wrote <- n
				return
			default:
			}
			if err := w.Add(usage.Record{CreatedAt: now, WorkspaceID: 1, ProjectID: 10, Provider: "openai",
				OriginalModel: "gpt-4o", FinalModel: "gpt-4o", Status: 200}); err != nil {
				t.Error(err)
			}
			n++
			time.Sleep(100 * time.Microsecond)
		}
	}()
	res, err := p.Pass(ctx)
	close(stop)
	n := <-wrote
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}

	// 90 days back from 12:30 on Dec 1: rows at 12:30 of Sep 2 .. Oct 31 are past 30 days
	// (60 a workspace), hourly rollups of Sep 2 .. Oct 1 past 60 days (30 a workspace).
	if got, want := res, (retention.Result{UsageRows: 120, HourlyRows: 60, FreedBytes: res.FreedBytes}); got != want {
		t.Errorf("pass = %+v, want %+v", got, want)
	}
	var live int
	if err := db.Read.QueryRow(`SELECT count(*) FROM usage_logs WHERE created_at = ?`, now.UnixMilli()).Scan(&live); err != nil {
		t.Fatal(err)
	}
	if live != n {
		t.Errorf("%d rows the writer took while pruning are stored, want %d", live, n)
	}
	after, err := db.AggregateUsage(ctx, october, store.GroupDay, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) || len(after) != 31 {
		t.Fatalf("October by day: %d days after, %d before; want 31", len(after), len(before))
	}
	for i := range after {
		if after[i] != before[i] {
			t.Errorf("October %s: %+v after pruning, %+v before", after[i].Key, after[i], before[i])
		}
	}

	for ws := int64(1); ws <= 2; ws++ {
		entries, _, err := db.ListAudit(ctx, store.AuditFilter{WorkspaceID: ws, Action: retention.AuditUsagePruned})
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].ActorUserID != 0 {
			t.Fatalf("workspace %d: audit %+v, want one system usage_pruned entry", ws, entries)
		}
		var d map[string]any
		if err := json.Unmarshal([]byte(entries[0].Details), &d); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"usageRows": 60.0, "hourlyRows": 30.0, "usageBefore": "2026-11-01T12:00:00Z", "hourlyBefore": "2026-10-02T00:00:00Z"}
		for k, v := range want {
			if d[k] != v {
				t.Errorf("workspace %d audit %s = %v, want %v", ws, k, d[k], v)
			}
		}
	}

	if res, err := p.Pass(ctx); err != nil || res.UsageRows+res.HourlyRows != 0 {
		t.Errorf("second pass = %+v, %v; want nothing deleted", res, err)
	}
}

// TestNoRetention ensures that with nothing to prune the database is left in its vacuum mode,
// and Start and Close do nothing.
func TestNoRetention(t *testing.T) {
	db := storetest.Open(t)
	p, err := retention.New(ctx, retention.Options{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if mode, err := db.AutoVacuum(ctx); err != nil || mode != 0 {
		t.Errorf("auto_vacuum = %d, %v; want it untouched (0)", mode, err)
	}
}

// TestStartClose ensures the background loop stops on Close.
func TestStartClose(t *testing.T) {
	db := storetest.Open(t)
	seed(t, db)
	p, err := retention.New(ctx, retention.Options{DB: db, Usage: 30 * day, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
