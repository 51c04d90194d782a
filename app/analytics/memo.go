package analytics

import (
	"context"
	"sync"
	"time"

	"tokenguard/store"
)

// ForPage returns a Service for the figures of one page, which ask for the same sums several
// times (the day's and the month's spend by project for the overview, the forecast and the
// projects table; the range by model for the overview and the models table). It reads the clock
// once, so every figure is of the same instant, and answers a repeated aggregation, or one that
// keeps the first rows of an aggregation already read, from the first read. Its methods may run
// concurrently; a read another one is making is waited for, not repeated. The rows it returns
// are shared by the callers that asked for them, which only read them. It is meant to live for
// one request.
func (s *Service) ForPage() *Service {
	now := s.now()
	page := *s
	page.now = func() time.Time { return now }
	page.db = &memo{Store: s.db, calls: map[memoKey]*memoCall{}}
	return &page
}

// memo is a Store that remembers its aggregations (see ForPage).
type memo struct {
	Store
	mu    sync.Mutex
	calls map[memoKey]*memoCall
}

type memoKey struct {
	f       store.AnalyticsFilter
	endUser string
	g       store.UsageGroup
	limit   int
}

type memoCall struct {
	done chan struct{} // closed when rows and err are set
	rows []store.UsageAggregate
	err  error
}

func (m *memo) AggregateUsage(ctx context.Context, f store.AnalyticsFilter, g store.UsageGroup, limit int) ([]store.UsageAggregate, error) {
	return m.call(ctx, memoKey{f: f, g: g, limit: limit}, func() ([]store.UsageAggregate, error) {
		return m.Store.AggregateUsage(ctx, f, g, limit)
	})
}

func (m *memo) AggregateEndUserUsage(ctx context.Context, f store.AnalyticsFilter, endUser string, g store.UsageGroup, limit int) ([]store.UsageAggregate, error) {
	return m.call(ctx, memoKey{f: f, endUser: endUser, g: g, limit: limit}, func() ([]store.UsageAggregate, error) {
		return m.Store.AggregateEndUserUsage(ctx, f, endUser, g, limit)
	})
}

// call answers k from an earlier call: the same one, or for a limited read the unlimited one
// when it has finished (its rows come in the same order, so the limited read is their first
// rows); else it reads, once, and remembers.
func (m *memo) call(ctx context.Context, k memoKey, read func() ([]store.UsageAggregate, error)) ([]store.UsageAggregate, error) {
	m.mu.Lock()
	c := m.calls[k]
	if c == nil && k.limit > 0 {
		all := k
		all.limit = 0
		if a := m.calls[all]; a != nil && a.finished() && a.err == nil {
			m.mu.Unlock()
			return a.rows[:min(k.limit, len(a.rows))], nil
		}
	}
	if c != nil {
		m.mu.Unlock()
		select {
		case <-c.done:
			return c.rows, c.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c = &memoCall{done: make(chan struct{})}
	m.calls[k] = c
	m.mu.Unlock()
	c.rows, c.err = read()
	close(c.done)
	return c.rows, c.err
}

func (c *memoCall) finished() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}
