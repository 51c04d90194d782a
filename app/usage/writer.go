package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"tokenguard/store"
)

// Writer batches usage records into SQLite off the request path. Add queues a record in memory
// and returns at once; a goroutine writes the queue at most FlushInterval after its oldest
// record arrived (sooner when MaxBatch records are waiting), one transaction per batch, which
// also adds each new row's cost to the spend counters. A failed write is retried with backoff,
// rows kept, so a database hiccup delays rows but never drops them.
type Writer struct {
	log      *slog.Logger
	interval time.Duration
	maxBatch int

	mu      sync.Mutex
	buf     []store.UsageRow
	firstAt time.Time // arrival of the oldest queued row
	closed  bool

	wake     chan struct{}                // a row arrived into an empty queue, or the queue is full
	flushReq chan chan error              // Flush asks for an immediate write
	stop     chan struct{}                // Close was called
	abort    chan struct{}                // Close's context expired: give up retrying
	done     chan struct{}                // the goroutine has exited
	closeErr error                        // rows Close could not write
	writeFn  func([]store.UsageRow) error // the batch write (tests wrap it to inject faults)
}

// WriterOptions tunes a Writer; zero fields take the defaults.
type WriterOptions struct {
	// FlushInterval is the longest a row waits in memory (config FLUSH_INTERVAL; default 200ms).
	FlushInterval time.Duration
	// MaxBatch queued rows trigger a write without waiting for the interval (default 2000).
	MaxBatch int
}

// Retry backoff for failed batch writes.
const (
	firstBackoff = 50 * time.Millisecond
	maxBackoff   = 5 * time.Second
)

// NewWriter starts a writer storing into db. Call Close to flush and stop it.
func NewWriter(db *store.DB, log *slog.Logger, opts WriterOptions) *Writer {
	return newWriter(log, opts, func(rows []store.UsageRow) error {
		_, err := db.InsertUsage(context.Background(), rows)
		return err
	})
}

func newWriter(log *slog.Logger, opts WriterOptions, writeFn func([]store.UsageRow) error) *Writer {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 200 * time.Millisecond
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 2000
	}
	w := &Writer{
		log:      log,
		interval: opts.FlushInterval,
		maxBatch: opts.MaxBatch,
		wake:     make(chan struct{}, 1),
		flushReq: make(chan chan error),
		stop:     make(chan struct{}),
		abort:    make(chan struct{}),
		done:     make(chan struct{}),
		writeFn:  writeFn,
	}
	go w.run()
	return w
}

// Add queues rec for writing, filling in RequestID when empty. It takes a mutex and appends to a
// slice — it never waits for the database. After Close it writes rec synchronously instead, so
// even a straggler is not lost.
func (w *Writer) Add(rec Record) {
	if rec.RequestID == "" {
		rec.RequestID = NewRequestID(rec.CreatedAt)
	}
	row := rec.row()
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		if err := w.writeFn([]store.UsageRow{row}); err != nil {
			w.log.Error("usage row after shutdown not written", "request_id", row.RequestID, "err", err)
		}
		return
	}
	w.buf = append(w.buf, row)
	n := len(w.buf)
	if n == 1 {
		w.firstAt = time.Now()
	}
	w.mu.Unlock()
	if n == 1 || n == w.maxBatch {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// Flush writes every queued row now and returns when they are stored (or ctx ends). Tests and
// the backup command use it; the request path never needs to.
func (w *Writer) Flush(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case w.flushReq <- reply:
	case <-w.done:
		return w.closeErr
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the writer after writing every queued row, retrying failed writes until ctx ends.
// It returns an error saying how many rows could not be written if ctx ended first. Call it
// after the HTTP server has drained, so no request adds rows behind it.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	already := w.closed
	w.closed = true
	w.mu.Unlock()
	if !already {
		close(w.stop)
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		if !already {
			close(w.abort)
		}
		<-w.done
	}
	return w.closeErr
}

func (w *Writer) take() []store.UsageRow {
	w.mu.Lock()
	defer w.mu.Unlock()
	batch := w.buf
	w.buf = nil
	return batch
}

func (w *Writer) run() {
	defer close(w.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		w.mu.Lock()
		n, first := len(w.buf), w.firstAt
		w.mu.Unlock()

		if n == 0 {
			select {
			case <-w.wake:
			case reply := <-w.flushReq:
				reply <- nil
			case <-w.stop:
				w.drain()
				return
			}
			continue
		}
		if n < w.maxBatch {
			if wait := w.interval - time.Since(first); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-w.wake:
					timer.Stop()
					continue // the queue filled up: look again
				case reply := <-w.flushReq:
					timer.Stop()
					reply <- w.write(w.take())
					continue
				case <-w.stop:
					timer.Stop()
					w.drain()
					return
				}
			}
		}
		// An error here means Close gave up on the batch; drain reports it.
		if err := w.write(w.take()); err != nil {
			w.closeErr = errors.Join(w.closeErr, err)
		}
	}
}

// drain writes everything still queued, at shutdown.
func (w *Writer) drain() {
	for {
		batch := w.take()
		if len(batch) == 0 {
			return
		}
		if err := w.write(batch); err != nil {
			w.closeErr = errors.Join(w.closeErr, err)
			if rest := w.take(); len(rest) > 0 {
				w.closeErr = errors.Join(w.closeErr, fmt.Errorf("%d queued usage rows not written", len(rest)))
			}
			return
		}
	}
}

// write stores one batch, retrying with backoff until it succeeds or Close gives up.
func (w *Writer) write(batch []store.UsageRow) error {
	if len(batch) == 0 {
		return nil
	}
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		err := w.writeFn(batch)
		if err == nil {
			if attempt > 1 {
				w.log.Info("usage batch written after retries", "rows", len(batch), "attempts", attempt)
			}
			return nil
		}
		w.log.Error("usage batch write failed; keeping rows and retrying", "rows", len(batch), "attempt", attempt, "retry_in", backoff, "err", err)
		select {
		case <-time.After(backoff):
		case <-w.abort:
			return fmt.Errorf("%d usage rows not written at shutdown: %w", len(batch), err)
		}
		backoff = min(backoff*2, maxBackoff)
	}
}
