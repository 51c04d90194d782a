package store_test

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"tokenguard/store"
	"tokenguard/store/storetest"
)

// The retention marks of the tests: raw rows are kept from an hour in November, hourly rollups
// from a day in October (both inside the random rows' 70 days).
var (
	rawSince    = time.Date(2026, 11, 10, 13, 0, 0, 0, time.UTC).UnixMilli()
	hourlySince = time.Date(2026, 10, 20, 0, 0, 0, 0, time.UTC).UnixMilli()
)

// widened is the range AggregateUsage answers for [from, to) once rows before rawSince and
// hourly rollups before hourlySince are pruned: each edge moved out to the hour (before
// rawSince) or the day (before hourlySince).
func widened(from, to int64) (int64, int64) {
	const hour, day = int64(time.Hour / time.Millisecond), int64(24 * time.Hour / time.Millisecond)
	down := func(ms, unit int64) int64 { return ms - ms%unit }
	up := func(ms, unit int64) int64 { return down(ms+unit-1, unit) }
	switch {
	case from < hourlySince:
		from = down(from, day)
	case from < rawSince:
		from = down(from, hour)
	}
	switch {
	case to <= hourlySince:
		to = up(to, day)
	case to <= rawSince:
		to = up(to, hour)
	}
	return from, to
}

// pruneAll prunes every workspace to the test's marks in batches of n, as the retention loop
// does, and returns how many usage rows and hourly rollups went.
func pruneAll(t *testing.T, db *store.DB, n int) (raw, hourly int64) {
	t.Helper()
	wss, err := db.UsageWorkspaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ws := range wss {
		for _, p := range []struct {
			fn     func(ws, before int64) (int64, error)
			total  *int64
			before int64
		}{
			{func(ws, before int64) (int64, error) { return db.PruneHourly(ctx, ws, before, n) }, &hourly, hourlySince},
			{func(ws, before int64) (int64, error) { return db.PruneUsage(ctx, ws, before, n) }, &raw, rawSince},
		} {
			for {
				k, err := p.fn(ws, p.before)
				if err != nil {
					t.Fatal(err)
				}
				*p.total += k
				if k < int64(n) {
					break
				}
			}
		}
	}
	return raw, hourly
}

func count(t *testing.T, db *store.DB, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.Read.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// fileSize is the main database file's size once the WAL is checkpointed into it (0 on
// PostgreSQL, whose autovacuum reuses the space rather than give it back).
func fileSize(t *testing.T, db *store.DB) int64 {
	t.Helper()
	if db.Postgres() {
		return 0
	}
	if _, err := db.Write.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestRetention prunes usage rows and hourly rollups of a database with 70 days of usage while
// the usage writer keeps inserting, and checks that the rows past retention are gone and every
// other row is still there, that months and other whole-day ranges answer exactly what they did
// before, that custom ranges answer the raw sums of their edges widened to the hour or day, and
// that the file gives the space back.
func TestRetention(t *testing.T) {
	db := storetest.OpenAt(t, filepath.Join(t.TempDir(), "tokenguard.db"))
	if err := db.EnableIncrementalVacuum(ctx); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 2026))
	// In time order with time-first request ids, as the proxy writes them, so the oldest rows
	// fill whole pages that pruning can free.
	rows := make([]store.UsageRow, 12_000)
	for i := range rows {
		rows[i] = randomUsage(rng, "")
	}
	slices.SortFunc(rows, func(a, b store.UsageRow) int { return cmp.Compare(a.CreatedAt, b.CreatedAt) })
	for i := range rows {
		rows[i].RequestID = fmt.Sprintf("req-%06d", i)
	}
	for start := 0; start < len(rows); start += 400 {
		if _, err := db.InsertUsage(ctx, rows[start:start+400]); err != nil {
			t.Fatal(err)
		}
	}
	sizeBefore := fileSize(t, db)
	kept := count(t, db, `SELECT count(*) FROM usage_logs WHERE created_at >= ?`, rawSince)
	if old := count(t, db, `SELECT count(*) FROM usage_logs WHERE created_at < ?`, rawSince); old == 0 || kept == 0 {
		t.Fatalf("test rows: %d before the mark, %d after; want some of both", old, kept)
	}

	months := [][2]int64{}
	for m := time.September; m <= time.December; m++ {
		months = append(months, [2]int64{time.Date(2026, m, 1, 0, 0, 0, 0, time.UTC).UnixMilli(),
			time.Date(2026, m+1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()})
	}
	custom := testRanges(rng, 30)
	filters := []store.AnalyticsFilter{{}, {ProjectID: 11}, {Provider: "anthropic"}, {Model: "4o"}}
	groups := []store.UsageGroup{store.GroupNone, store.GroupDay, store.GroupModel, store.GroupProject}
	type answer struct {
		f    store.AnalyticsFilter
		g    store.UsageGroup
		want []store.UsageAggregate
	}
	var answers []answer
	for i, r := range append(months, custom...) {
		for _, f := range filters {
			f.WorkspaceID, f.From, f.To = 1, r[0], r[1]
			for _, g := range groups {
				wide := f
				if i >= len(months) {
					wide.From, wide.To = widened(f.From, f.To)
				}
				answers = append(answers, answer{f, g, rawAggregate(t, db, wide, g)})
			}
		}
	}

	// The usage writer keeps inserting new rows while the pruner runs.
	var wg sync.WaitGroup
	wg.Add(1)
	var written int64
	go func() {
		defer wg.Done()
		now := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli() // after every range checked
		for batch := 0; batch < 20; batch++ {
			rows := make([]store.UsageRow, 100)
			for i := range rows {
				rows[i] = randomUsage(rng, fmt.Sprintf("live-%d-%d", batch, i))
				rows[i].CreatedAt = now + int64(batch*100+i)
			}
			n, err := db.InsertUsage(ctx, rows)
			if err != nil {
				t.Error(err)
				return
			}
			written += int64(n)
		}
	}()
	raw, hourly := pruneAll(t, db, 97)
	wg.Wait()
	if raw == 0 || hourly == 0 {
		t.Fatalf("pruned %d usage rows and %d hourly rollups; want some of both", raw, hourly)
	}
	if got, want := written, int64(2000); got != want {
		t.Fatalf("writer inserted %d rows while pruning, want %d", got, want)
	}
	if got := count(t, db, `SELECT count(*) FROM usage_logs WHERE created_at < ?`, rawSince); got != 0 {
		t.Errorf("%d usage rows older than retention left", got)
	}
	if got := count(t, db, `SELECT count(*) FROM usage_hourly WHERE period_start < ?`, hourlySince); got != 0 {
		t.Errorf("%d hourly rollups older than retention left", got)
	}
	if got, want := count(t, db, `SELECT count(*) FROM usage_logs WHERE created_at >= ?`, rawSince), kept+written; got != want {
		t.Errorf("%d usage rows within retention, want %d", got, want)
	}
	if got, err := db.Retained(ctx); err != nil || got != (store.Retained{RawSince: rawSince, HourlySince: hourlySince}) {
		t.Errorf("Retained = %+v, %v; want the marks pruned to", got, err)
	}
	for _, a := range answers {
		got, err := db.AggregateUsage(ctx, a.f, a.g, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, a.want) {
			t.Fatalf("range %s..%s filter %+v group %d after pruning:\n got %+v\nwant %+v",
				time.UnixMilli(a.f.From).UTC(), time.UnixMilli(a.f.To).UTC(), a.f, a.g, got, a.want)
		}
	}

	for {
		_, left, _, err := db.IncrementalVacuum(ctx, 64)
		if err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
	}
	got := fileSize(t, db)
	t.Logf("pruned %d usage rows and %d hourly rollups: file %d -> %d bytes", raw, hourly, sizeBefore, got)
	if !db.Postgres() && got >= sizeBefore*3/4 {
		t.Errorf("file is %d bytes after pruning and vacuum, was %d: want it at least a quarter smaller", got, sizeBefore)
	}
}

// TestPruneRefusesUnalignedMarks ensures a prune mark always falls on a period the next coarser
// table answers exactly.
func TestPruneRefusesUnalignedMarks(t *testing.T) {
	db := storetest.Open(t)
	if _, err := db.PruneUsage(ctx, 1, rawSince+1, 10); err == nil {
		t.Error("PruneUsage accepted a mark inside an hour")
	}
	if _, err := db.PruneHourly(ctx, 1, rawSince, 10); err == nil {
		t.Error("PruneHourly accepted a mark inside a day")
	}
}
