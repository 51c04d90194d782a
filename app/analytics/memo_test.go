package analytics

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tokenguard/store"
	"tokenguard/store/storetest"
)

// counting is the real store, counting the aggregations that reach it.
type counting struct {
	Store
	reads atomic.Int64
}

func (c *counting) AggregateUsage(ctx context.Context, f store.AnalyticsFilter, g store.UsageGroup, limit int) ([]store.UsageAggregate, error) {
	c.reads.Add(1)
	return c.Store.AggregateUsage(ctx, f, g, limit)
}

// A page's repeated sums are read once, concurrent askers included, a limited read comes from
// the unlimited one already read, and every answer equals the store's own.
func TestMemo(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t)
	at := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	var rows []store.UsageRow
	for i := range 60 {
		rows = append(rows, store.UsageRow{RequestID: fmt.Sprint("r", i), CreatedAt: at.Add(time.Duration(i) * time.Minute).UnixMilli(),
			WorkspaceID: 1, ProjectID: int64(1 + i%3), Provider: "openai", OriginalModel: fmt.Sprint("m", i%5),
			FinalModel: fmt.Sprint("m", i%5), Status: 200, CostNano: int64(1000 * (i%5 + 1))})
	}
	if _, err := db.InsertUsage(ctx, rows); err != nil {
		t.Fatal(err)
	}
	c := &counting{Store: db}
	m := &memo{Store: c, calls: map[memoKey]*memoCall{}}
	f := store.AnalyticsFilter{WorkspaceID: 1, From: at.UnixMilli(), To: at.Add(2 * time.Hour).UnixMilli()}

	var wg sync.WaitGroup
	got := make([][]store.UsageAggregate, 8)
	for i := range got {
		wg.Go(func() {
			var err error
			if got[i], err = m.AggregateUsage(ctx, f, store.GroupModel, 0); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	want, err := db.AggregateUsage(ctx, f, store.GroupModel, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range got {
		if fmt.Sprint(g) != fmt.Sprint(want) {
			t.Errorf("asker %d got %v, want %v", i, g, want)
		}
	}
	if n := c.reads.Load(); n != 1 {
		t.Errorf("8 concurrent askers: %d reads, want 1", n)
	}
	top2, err := m.AggregateUsage(ctx, f, store.GroupModel, 2)
	if err != nil || fmt.Sprint(top2) != fmt.Sprint(want[:2]) || c.reads.Load() != 1 {
		t.Errorf("limit 2 = %v, %v after %d reads; want %v from the first read", top2, err, c.reads.Load(), want[:2])
	}
	other := f
	other.ProjectID = 2
	if _, err := m.AggregateUsage(ctx, other, store.GroupModel, 0); err != nil || c.reads.Load() != 2 {
		t.Errorf("another filter: %v after %d reads, want a read of its own", err, c.reads.Load())
	}
}
