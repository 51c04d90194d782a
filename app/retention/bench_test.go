package retention_test

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"tokenguard/app/retention"
	"tokenguard/store"
	"tokenguard/store/storetest"
)

// BenchmarkPrune measures retention on a copy of a big database (TOKENGUARD_BENCH_DB, made
// with scripts/genusage over the 90 days before 2026-12-01): the one-time conversion to
// incremental vacuum, then 30 days of raw retention and 60 of hourly pruned in DefaultBatch
// transactions, with the longest any transaction held the write connection, and the file's
// size before and after. It skips without the variable.
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
		b.ReportMetric(float64(batches[len(batches)-1].Microseconds())/1000, "batch-max-ms")
		b.ReportMetric(float64(vacuumSteps[len(vacuumSteps)-1].Microseconds())/1000, "vacuum-step-max-ms")
		b.ReportMetric(float64(size0)/(1<<20), "MB-before")
		b.ReportMetric(float64(fileSizeOf(b, path))/(1<<20), "MB-after")
		db.Close()
	}
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
