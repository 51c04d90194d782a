package store_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"tokenguard/store"
	"tokenguard/store/storetest"
)

// The write-ahead log stays under store.WALLimit through sustained usage writes while readers
// run back to back, staggered so that a read transaction is open at every moment: the
// adversarial case for SQLite's own checkpoints, which can never reset a log that some reader
// still reads and so let it grow without end.
func TestWALBoundedUnderOverlappingReads(t *testing.T) {
	storetest.SQLiteOnly(t)
	if testing.Short() {
		t.Skip("writes 300,000 usage rows")
	}
	path := filepath.Join(t.TempDir(), "tokenguard.db")
	db := storetest.OpenAt(t, path)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var readErr error
	var mu sync.Mutex
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(r) * 7 * time.Millisecond)
			for {
				select {
				case <-stop:
					return
				default:
				}
				tx, err := db.Read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
				if err == nil {
					var n int
					err = tx.QueryRowContext(ctx, `SELECT count(*) FROM usage_logs WHERE project_id = ?`, r).Scan(&n)
					time.Sleep(20 * time.Millisecond) // a slow page render holding its snapshot
					tx.Rollback()
				}
				if err != nil {
					mu.Lock()
					readErr = err
					mu.Unlock()
					return
				}
			}
		}()
	}

	at := time.Now()
	var peak int64
	seq := 0
	for batch := 0; batch < 150; batch++ {
		rows := make([]store.UsageRow, 2000)
		for i := range rows {
			seq++
			rows[i] = usageRow(fmt.Sprintf("%012x%020x", at.UnixMilli(), seq), at.Add(time.Duration(seq)*time.Microsecond), 1, int64(seq%50), 1234)
		}
		if _, err := db.InsertUsage(ctx, rows); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path + "-wal"); err == nil {
			peak = max(peak, fi.Size())
		}
	}
	close(stop)
	wg.Wait()
	if readErr != nil {
		t.Fatal(readErr)
	}
	t.Logf("%d rows written; write-ahead log peaked at %.1f MB", seq, float64(peak)/(1<<20))
	if peak > store.WALLimit {
		t.Errorf("write-ahead log reached %d bytes, over the %d-byte limit", peak, store.WALLimit)
	}
}
