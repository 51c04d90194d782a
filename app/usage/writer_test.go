package usage

import (
	"errors"
	"fmt"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"tokenguard/app/apperr"
	"tokenguard/app/pricing"
	"tokenguard/store"
	"tokenguard/store/storetest"
)

// waitStatus polls the writer until cond holds, failing after a generous bound.
func waitStatus(t *testing.T, w *Writer, what string, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := w.Status()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; status %+v", what, s)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// assertStorageUnavailable checks err is the contract's 503 refusal.
func assertStorageUnavailable(t *testing.T, err error, wantInMessage string) {
	t.Helper()
	if err == nil {
		t.Fatal("no refusal, want STORAGE_UNAVAILABLE")
	}
	if got, want := apperr.Code(err), apperr.StorageUnavailable; got != want {
		t.Fatalf("code = %s (%v), want %s", got, err, want)
	}
	if got, want := apperr.Status(err), 503; got != want {
		t.Errorf("status = %d, want %d", got, want)
	}
	if !strings.Contains(apperr.Message(err), wantInMessage) {
		t.Errorf("message %q does not say %q", apperr.Message(err), wantInMessage)
	}
}

// storedIDs returns how many times each request id is stored.
func storedIDs(t *testing.T, db *store.DB) map[string]int {
	t.Helper()
	rows, err := db.Read.Query(`SELECT request_id FROM usage_logs`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	ids := map[string]int{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[id]++
	}
	return ids
}

// assertStoredOnce checks every added row is stored exactly once, nothing else is, and the
// project's day counter equals the sum of the stored rows.
func assertStoredOnce(t *testing.T, db *store.DB, added map[string]pricing.NanoUSD) {
	t.Helper()
	ids := storedIDs(t, db)
	var want int64
	for id, cost := range added {
		if n := ids[id]; n != 1 {
			t.Errorf("row %s stored %d times, want once", id, n)
		}
		want += int64(cost)
	}
	if got, want := len(ids), len(added); got != want {
		t.Errorf("stored %d rows, want the %d added", got, want)
	}
	s := readState(t, db, "2026-11-26")
	if s.rowSum != want || s.counters["project/1/2026-11-26"] != want {
		t.Errorf("row sum %d, counter %d, want both %d", s.rowSum, s.counters["project/1/2026-11-26"], want)
	}
}

// While the store rejects every write, the queue fills to exactly MaxQueue — rows and slots
// held by requests in flight together — and then every new request is refused with
// STORAGE_UNAVAILABLE; Status reports it; a released slot makes room for exactly one more.
// When the store takes writes again the retries succeed without a restart and every added row
// is stored exactly once, counters included.
func TestQueueFailsClosedAtBoundAndRecovers(t *testing.T) {
	const max = 6
	db := storetest.Open(t)
	var down atomic.Bool
	down.Store(true)
	w := newWriter(quietLog(), WriterOptions{FlushInterval: time.Millisecond, MaxQueue: max}, func(rows []store.UsageRow) error {
		if down.Load() {
			return errors.New("insert usage batch: commit: database or disk is full (13)")
		}
		_, err := db.InsertUsage(ctx, rows)
		return err
	})
	defer w.Close(ctx)

	added := map[string]pricing.NanoUSD{}
	add := func(s *Slot, i int) {
		rec := record(noon, 1, 2, pricing.NanoUSD(100+i))
		rec.RequestID = fmt.Sprintf("req-%03d", i)
		added[rec.RequestID] = rec.Cost
		s.Add(rec)
	}
	// Four requests finish (rows queued), two are still in flight (slots held).
	var held []*Slot
	for i := range max {
		s, err := w.Acquire()
		if err != nil {
			t.Fatalf("acquire %d of %d: %v", i+1, max, err)
		}
		if i < 4 {
			add(s, i)
		} else {
			held = append(held, s)
		}
	}
	st := waitStatus(t, w, "the failing write", func(s Status) bool { return !s.FailingSince.IsZero() })
	if st.Queued != 4 || st.Reserved != 2 || st.Max != max || st.Healthy || !strings.Contains(st.LastError, "disk is full") {
		t.Errorf("status = %+v, want 4 queued, 2 reserved, max %d, unhealthy, the store's error", st, max)
	}

	_, err := w.Acquire()
	assertStorageUnavailable(t, err, "not taking writes")
	assertStorageUnavailable(t, w.Add(record(noon, 1, 2, 1)), "not taking writes")

	// A request that ends without a row frees its slot; releasing again changes nothing.
	held[0].Release()
	held[0].Release()
	if got := w.Status().Reserved; got != 1 {
		t.Fatalf("reserved after a double release = %d, want 1", got)
	}
	s, err := w.Acquire()
	if err != nil {
		t.Fatalf("acquire after a release: %v", err)
	}
	add(s, 10)
	s.Release() // no-op after Add
	_, err = w.Acquire()
	assertStorageUnavailable(t, err, "not taking writes")
	add(held[1], 11)
	if got := w.Status(); got.Queued != max || got.Reserved != 0 {
		t.Fatalf("status = %+v, want %d queued and no slot held", got, max)
	}

	down.Store(false)
	waitStatus(t, w, "recovery", func(s Status) bool { return s.Healthy && s.Queued == 0 })
	if st := w.Status(); st.LastError != "" || !st.FailingSince.IsZero() {
		t.Errorf("status after recovery = %+v, want the failure cleared", st)
	}
	s, err = w.Acquire()
	if err != nil {
		t.Fatalf("acquire after recovery: %v", err)
	}
	add(s, 12)
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	assertStoredOnce(t, db, added)
}

// A healthy writer refuses too when every place is held by requests in flight, and says so
// (not "the database is failing"); Add and Release in any order cannot push the count below 0.
func TestQueueFullOfRequestsInFlight(t *testing.T) {
	db := storetest.Open(t)
	w := NewWriter(db, quietLog(), WriterOptions{MaxQueue: 2})
	defer w.Close(ctx)
	a, _ := w.Acquire()
	b, _ := w.Acquire()
	_, err := w.Acquire()
	assertStorageUnavailable(t, err, "USAGE_QUEUE_MAX")
	if st := w.Status(); st.Healthy || st.Reserved != 2 || st.LastError != "" {
		t.Errorf("status = %+v, want unhealthy (full), 2 reserved, no error", st)
	}
	a.Add(record(noon, 1, 1, 1))
	a.Release()
	b.Release()
	b.Release()
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := w.Status(); !st.Healthy || st.Reserved != 0 || st.Queued != 0 {
		t.Errorf("status = %+v, want healthy and empty", st)
	}
	defer func() {
		if recover() == nil {
			t.Error("a second Add on one slot did not panic")
		}
	}()
	a.Add(record(noon, 1, 1, 1))
}

// outage makes a real SQLite file stop taking writes; the function start returns makes it
// take them again.
type outage struct {
	name string
	// setup returns the directory the database lives in, or skips the test.
	setup        func(t *testing.T) string
	start        func(t *testing.T, dir string) (heal func())
	wantErrorHas string
}

var outages = []outage{
	{
		// Writes past RLIMIT_FSIZE fail with EFBIG, which SQLite reports as SQLITE_IOERR_WRITE:
		// the file cannot be written, as on an I/O error.
		name:  "I/O error (file size limit)",
		setup: func(t *testing.T) string { return t.TempDir() },
		start: func(t *testing.T, _ string) func() {
			signal.Ignore(syscall.SIGXFSZ) // deliver EFBIG instead of killing the test
			var orig syscall.Rlimit
			if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &orig); err != nil {
				t.Fatal(err)
			}
			lim := orig
			lim.Cur = 1
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
				t.Fatal(err)
			}
			heal := func() { syscall.Setrlimit(syscall.RLIMIT_FSIZE, &orig) }
			t.Cleanup(heal)
			return heal
		},
		wantErrorHas: "disk I/O error",
	},
	{
		// The database on a small tmpfs that a filler file uses up: SQLITE_FULL.
		name:  "disk full (tmpfs)",
		setup: func(t *testing.T) string { return storetest.Tmpfs(t, "4m") },
		start: func(t *testing.T, dir string) func() {
			return storetest.FillDisk(t, filepath.Join(dir, "filler"))
		},
		wantErrorHas: "disk is full",
	},
}

// A real SQLite file that stops taking writes: the writer keeps the rows, fails closed at the
// bound, reports the store's error, and — once the file takes writes again — stores every row
// exactly once on the same connection, without a restart.
func TestWriterSurvivesUnwritableDatabase(t *testing.T) {
	for _, o := range outages {
		t.Run(o.name, func(t *testing.T) {
			const max = 20
			dir := o.setup(t)
			db := storetest.OpenAt(t, filepath.Join(dir, "tg.db"))
			w := NewWriter(db, quietLog(), WriterOptions{FlushInterval: time.Millisecond, MaxQueue: max})
			defer w.Close(ctx)
			added := map[string]pricing.NanoUSD{}
			addOne := func(i int) error {
				s, err := w.Acquire()
				if err != nil {
					return err
				}
				rec := record(noon, 1, 1, pricing.NanoUSD(1000+i))
				rec.RequestID = fmt.Sprintf("r%06d", i)
				added[rec.RequestID] = rec.Cost
				s.Add(rec)
				return nil
			}
			for i := range 5 {
				addOne(i)
			}
			if err := w.Flush(ctx); err != nil {
				t.Fatal(err)
			}

			heal := o.start(t, dir)
			// One row at a time, each written or failed before the next, until the bound refuses:
			// the space SQLite still had (a WAL it can reuse) is used up along the way.
			var refused error
			for i := 5; i < 100_000 && refused == nil; i++ {
				if refused = addOne(i); refused == nil {
					waitStatus(t, w, "the row to be written or fail", func(s Status) bool { return s.Queued == 0 || !s.FailingSince.IsZero() })
				}
			}
			assertStorageUnavailable(t, refused, "not taking writes")
			st := w.Status()
			if st.Queued != max || st.Healthy || !strings.Contains(st.LastError, o.wantErrorHas) {
				t.Errorf("status = %+v, want %d queued, unhealthy, an error with %q", st, max, o.wantErrorHas)
			}

			heal()
			waitStatus(t, w, "recovery", func(s Status) bool { return s.Healthy && s.Queued == 0 })
			if err := addOne(1_000_000); err != nil {
				t.Fatalf("after recovery: %v", err)
			}
			if err := w.Close(ctx); err != nil {
				t.Fatal(err)
			}
			assertStoredOnce(t, db, added)
			var ic string
			if err := db.Read.QueryRow(`PRAGMA integrity_check`).Scan(&ic); err != nil || ic != "ok" {
				t.Errorf("integrity_check = %q, %v", ic, err)
			}
		})
	}
}
