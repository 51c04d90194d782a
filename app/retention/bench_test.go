package retention_test

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"tokenguard/app/retention"
	"tokenguard/app/usage"
	"tokenguard/store"
	"tokenguard/store/storetest"
)

// BenchmarkPrune measures retention on a copy of a big database (TOKENGUARD_BENCH_DB, made
// with scripts/genusage over the 90 days before 2026-12-01): the one-time conversion to
// incremental vacuum, then 30 days of raw retention and 60 of hourly pruned in DefaultBatch
// transactions, with the longest any transaction held the write connection, and the file's
// size before and after; and on a second copy, the usage writer's rows/s alone and while a
// whole (paced) pass runs. It skips without the variable.
func BenchmarkPrune(b *testing.B) {
	src := os.Getenv("TOKENGUARD_BENCH_DB")
	if src == "" {
		b.Skip("set TOKENGUARD_BENCH_DB to a database made with scripts/genusage -end 2026-12-01T00:00:00Z")
	}
	end := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for range b.N {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "copy.db")
		copyFile(b, src, path)
		db, err := store.Open(ctx, path, storetest.Schema(b))
		if err != nil {
			b.Fatal(err)
		}
		size0 := fileSizeOf(b, path)
		b.StartTimer()

		started := time.Now()
		if _, err := retention.New(ctx, retention.Options{DB: db, Usage: 30 * day}); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(started).Seconds(), "vacuum-s")

		// The pass's steps, timed one by one.
		wss, err := db.UsageWorkspaces(ctx)
		if err != nil {
			b.Fatal(err)
		}
		var batches []time.Duration
		var firstBatch time.Duration
		var rows int64
		started = time.Now()
		for _, ws := range wss {
			for _, step := range []func() (int64, error){
				func() (int64, error) {
					return db.PruneHourly(ctx, ws, end.Add(-60*day).UnixMilli(), retention.DefaultBatch)
				},
				func() (int64, error) {
					return db.PruneUsage(ctx, ws, end.Add(-30*day).UnixMilli(), retention.DefaultBatch)
				},
			} {
				for {
					t := time.Now()
					n, err := step()
					if err != nil {
						b.Fatal(err)
					}
					if len(batches) == 0 {
						// The first statement after the conversion's VACUUM reads its pages
						// from disk into a cold cache; it is reported apart.
						firstBatch = time.Since(t)
					}
					batches = append(batches, time.Since(t))
					rows += n
					if n < retention.DefaultBatch {
						break
					}
				}
			}
		}
		pruneTook := time.Since(started)
		var vacuumSteps []time.Duration
		for {
			t := time.Now()
			freed, left, _, err := db.IncrementalVacuum(ctx, retention.VacuumPages)
			if err != nil {
				b.Fatal(err)
			}
			vacuumSteps = append(vacuumSteps, time.Since(t))
			if left == 0 || freed == 0 {
				break
			}
		}
		if _, err := db.Write.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		slices.Sort(batches)
		slices.Sort(vacuumSteps)
		b.ReportMetric(float64(rows)/pruneTook.Seconds(), "pruned-rows/s")
		b.ReportMetric(float64(batches[len(batches)/2].Microseconds())/1000, "batch-p50-ms")
		b.ReportMetric(float64(batches[len(batches)*99/100].Microseconds())/1000, "batch-p99-ms")
		b.ReportMetric(float64(batches[len(batches)-1].Microseconds())/1000, "batch-max-ms")
		b.ReportMetric(float64(firstBatch.Microseconds())/1000, "first-batch-ms")
		b.ReportMetric(float64(vacuumSteps[len(vacuumSteps)-1].Microseconds())/1000, "vacuum-step-max-ms")
		b.ReportMetric(float64(size0)/(1<<20), "MB-before")
		b.ReportMetric(float64(fileSizeOf(b, path))/(1<<20), "MB-after")
		db.Close()

		// A second copy: the usage writer's rows/s alone, then while a whole paced pass runs
		// (rows of the last day, which retention keeps).
		db = openCopy(b, src)
		p, err := retention.New(ctx, retention.Options{DB: db, Usage: 30 * day, Hourly: 60 * day,
			Now: func() time.Time { return end }})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(writeRows(b, db, end, 50, nil), "writer-alone-rows/s")
		stop := make(chan struct{})
		during := make(chan float64)
		go func() { during <- writeRows(b, db, end.Add(time.Hour), 1<<30, stop) }()
		started = time.Now()
		if _, err := p.Pass(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(started).Seconds(), "pass-with-writer-s")
		close(stop)
		b.ReportMetric(<-during, "writer-pruning-rows/s")
		b.ReportMetric(writeRows(b, db, end.Add(2*time.Hour), 50, nil), "writer-after-rows/s")
		db.Close()
	}
}

func openCopy(b *testing.B, src string) *store.DB {
	path := filepath.Join(b.TempDir(), "copy.db")
	copyFile(b, src, path)
	db, err := store.Open(ctx, path, storetest.Schema(b))
	if err != nil {
		b.Fatal(err)
	}
	return db
}

func copyFile(b *testing.B, src, dst string) {
	in, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
}

func fileSizeOf(b *testing.B, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}

// writeRows inserts batches of 1,000 rows at at (the usage writer's batch size) until n batches
// or stop, and returns the rows per second it stored.
func writeRows(b *testing.B, db *store.DB, at time.Time, n int, stop <-chan struct{}) float64 {
	started, rows := time.Now(), 0
	batch := make([]store.UsageRow, 1000)
	for i := 0; i < n; i++ {
		select {
		case <-stop:
			return float64(rows) / time.Since(started).Seconds()
		default:
		}
		for j := range batch {
			// Ids of the moment they are written, time-ordered as the proxy's are (ids of
			// one instant would land at random places in the unique index).
			batch[j] = store.UsageRow{RequestID: usage.NewRequestID(time.Now()), CreatedAt: at.UnixMilli(), WorkspaceID: 1,
				ProjectID: 1, Provider: "openai", OriginalModel: "gpt-4o", FinalModel: "gpt-4o", Status: 200,
				InputTokens: 100, OutputTokens: 50, TotalTokens: 150, CostNano: 1000, LatencyMs: 300}
		}
		k, err := db.InsertUsage(ctx, batch)
		if err != nil {
			b.Error(err)
			return 0
		}
		rows += k
	}
	return float64(rows) / time.Since(started).Seconds()
}
