package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"tokenguard/app/apperr"
	"tokenguard/store"
)

// Writer batches usage records into SQLite off the request path. A request takes a Slot at
// admission (Acquire) and fills it with its record at the end (Slot.Add), which queues the row in
// memory and returns at once; a goroutine writes the queue at most FlushInterval after its oldest
// record arrived (sooner when MaxBatch records are waiting), one transaction per batch, which
// also adds each new row's cost to the spend counters. A failed write is retried with backoff,
// rows kept, so a database hiccup delays rows but never drops them.
//
// Memory is bounded: queued rows (the batch being written included) plus slots held by requests
// in flight never exceed MaxQueue. When they would, Acquire refuses with STORAGE_UNAVAILABLE, so
// a request that could not be recorded is never served (fail closed), and a crash loses at most
// MaxQueue rows.
type Writer struct {
	log      *slog.Logger
	interval time.Duration
	maxBatch int
	maxQueue int

	mu       sync.Mutex
	buf      []store.UsageRow
	firstAt  time.Time // arrival of the oldest queued row
	writing  int       // rows taken from buf by the batch being written
	reserved int       // slots handed out and not yet added or released
	closed   bool
	// failingSince is when the current run of failed writes began (zero while writes succeed);
	// lastErr is the latest failure's text, for Status.
	failingSince time.Time
	lastErr      string

	wake     chan struct{}                // a row arrived into an empty queue, or the queue is full
	flushReq chan chan error              // Flush asks for an immediate write
	stop     chan struct{}                // Close was called
	abort    chan struct{}                // Close's context expired: give up retrying
	done     chan struct{}                // the goroutine has exited
	closeErr error                        // rows Close could not write
	writeFn  func([]store.UsageRow) error // the batch write (tests wrap it to inject faults)
	onBatch  func(rows int, took time.Duration)
}

// WriterOptions tunes a Writer; zero fields take the defaults.
type WriterOptions struct {
	// FlushInterval is the longest a row waits in memory (config FLUSH_INTERVAL; default 200ms).
	FlushInterval time.Duration
	// MaxBatch queued rows trigger a write without waiting for the interval (default 2000).
	MaxBatch int
	// MaxQueue bounds queued rows plus slots held by requests in flight (config USAGE_QUEUE_MAX;
	// default DefaultMaxQueue).
	MaxQueue int
	// OnBatch, when set, is told of every batch stored: its rows and how long storing it took
	// (retries included). It runs on the writer's goroutine: keep it quick.
	OnBatch func(rows int, took time.Duration)
}

// DefaultMaxQueue is the default bound on queued rows plus in-flight slots. It is far above
// what a healthy database lets accumulate (a 200ms flush interval at 10,000 requests/s queues
// 2,000 rows, and BenchmarkWriter stores some 40,000 rows/s on two cores), leaves room for
// thousands of long streams in flight, and holds well under 10 MB when full. It is also the
// most rows a crash during a database outage can lose.
const DefaultMaxQueue = 10_000

// Retry backoff for failed batch writes.
const (
	firstBackoff = 50 * time.Millisecond
	maxBackoff   = 5 * time.Second
)

// maxErrorText bounds the error text Status reports.
const maxErrorText = 300

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
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = DefaultMaxQueue
	}
	w := &Writer{
		log:      log,
		interval: opts.FlushInterval,
		maxBatch: opts.MaxBatch,
		maxQueue: opts.MaxQueue,
		wake:     make(chan struct{}, 1),
		flushReq: make(chan chan error),
		stop:     make(chan struct{}),
		abort:    make(chan struct{}),
		done:     make(chan struct{}),
		writeFn:  writeFn,
		onBatch:  opts.OnBatch,
	}
	go w.run()
	return w
}

// Slot is room in the writer's queue for one request's row, held from admission until the row
// is added. A Slot belongs to one request; it is not for concurrent use.
type Slot struct {
	w    *Writer
	used bool // Add or Release has run (guarded by w.mu)
}

// Acquire reserves room for one row. The proxy calls it when it admits a metered request,
// before anything goes upstream, and then calls exactly one of Slot.Add (the row) or
// Slot.Release (no row after all). When queued rows and held slots already reach MaxQueue —
// the database has not been taking writes — it returns an *apperr.Error STORAGE_UNAVAILABLE
// and no slot: the request must be refused, since its spend could not be recorded. After
// Close it always succeeds; Slot.Add then writes synchronously.
func (w *Writer) Acquire() (*Slot, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.checkRoomLocked(); err != nil {
		return nil, err
	}
	w.reserved++
	return &Slot{w: w}, nil
}

// Add queues rec, filling in RequestID when empty, and frees the slot. It never waits for the
// database. It panics if the slot was already added or released: that is a bug in the caller,
// which would otherwise lose a row or count it twice.
func (s *Slot) Add(rec Record) {
	row := prepare(rec)
	w := s.w
	w.mu.Lock()
	if s.used {
		w.mu.Unlock()
		panic("usage: Slot.Add on a slot already added or released")
	}
	s.used = true
	w.reserved--
	w.enqueueLocked(row)
}

// Release frees the slot when the request will leave no row (it failed before anything was
// metered). It is idempotent and does nothing after Add, so callers may defer it.
func (s *Slot) Release() {
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if !s.used {
		s.used = true
		w.reserved--
	}
}

// Add queues rec without a slot taken beforehand (tests, benchmarks, tools). Like Acquire it
// refuses with an *apperr.Error STORAGE_UNAVAILABLE, and queues nothing, when the queue is full;
// the request path uses Acquire instead, so that the refusal comes before the request is served.
func (w *Writer) Add(rec Record) error {
	row := prepare(rec)
	w.mu.Lock()
	if err := w.checkRoomLocked(); err != nil {
		w.mu.Unlock()
		return err
	}
	w.enqueueLocked(row)
	return nil
}

func prepare(rec Record) store.UsageRow {
	if rec.RequestID == "" {
		rec.RequestID = NewRequestID(rec.CreatedAt)
	}
	return rec.row()
}

// checkRoomLocked refuses when queued rows plus held slots reach the bound. After Close nothing
// is queued (rows are written synchronously), so there is always room.
func (w *Writer) checkRoomLocked() error {
	if w.closed || len(w.buf)+w.writing+w.reserved < w.maxQueue {
		return nil
	}
	if !w.failingSince.IsZero() {
		return &apperr.Error{Code: apperr.StorageUnavailable, RetryAfter: maxBackoff,
			Message: "Usage cannot be recorded: the database is not taking writes, so metered requests are refused until it recovers"}
	}
	return &apperr.Error{Code: apperr.StorageUnavailable, RetryAfter: time.Second,
		Message: fmt.Sprintf("Usage cannot be recorded: %d requests are already waiting for their usage rows (USAGE_QUEUE_MAX)", w.maxQueue)}
}

// enqueueLocked appends row and unlocks w.mu; after Close it writes row synchronously instead,
// so even a straggler is not lost.
func (w *Writer) enqueueLocked(row store.UsageRow) {
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

// Status is the writer's state for readiness checks.
type Status struct {
	// Queued rows are in memory, not yet stored (the batch being written included).
	Queued int `json:"queued"`
	// Reserved slots are held by requests in flight.
	Reserved int `json:"reserved"`
	// Max is the bound on Queued + Reserved (USAGE_QUEUE_MAX).
	Max int `json:"max"`
	// Healthy is true while writes succeed and the queue has room.
	Healthy bool `json:"healthy"`
	// LastError is the latest failed write's error while writes are failing (SQLite's message:
	// no row content, no secrets), and FailingSince when the failures began.
	LastError    string    `json:"lastError,omitempty"`
	FailingSince time.Time `json:"failingSince,omitzero"`
}

// Status reports the queue and whether writes are failing.
func (w *Writer) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := Status{
		Queued: len(w.buf) + w.writing, Reserved: w.reserved, Max: w.maxQueue,
		LastError: w.lastErr, FailingSince: w.failingSince,
	}
	s.Healthy = s.FailingSince.IsZero() && s.Queued+s.Reserved < s.Max
	return s
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

// take moves the queue into a batch for writing; its rows still count against the bound until
// the batch is stored (see stored).
func (w *Writer) take() []store.UsageRow {
	w.mu.Lock()
	defer w.mu.Unlock()
	batch := w.buf
	w.buf = nil
	w.writing = len(batch)
	return batch
}

// stored records the outcome of one write attempt: the batch leaves the queue on success (or
// when Close gave up on it), and the failure state is set or cleared.
func (w *Writer) stored(err error, final bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if final {
		w.writing = 0
	}
	if err == nil {
		w.failingSince, w.lastErr = time.Time{}, ""
		return
	}
	if w.failingSince.IsZero() {
		w.failingSince = time.Now()
	}
	w.lastErr = truncate(err.Error(), maxErrorText)
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
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
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := w.writeFn(batch)
		w.stored(err, err == nil)
		if err == nil {
			if w.onBatch != nil {
				w.onBatch(len(batch), time.Since(start))
			}
			if attempt > 1 {
				w.log.Info("usage batch written after retries", "rows", len(batch), "attempts", attempt)
			}
			return nil
		}
		w.log.Error("usage batch write failed; keeping rows and retrying", "rows", len(batch), "attempt", attempt, "retry_in", backoff, "err", err)
		select {
		case <-time.After(backoff):
		case <-w.abort:
			w.stored(err, true)
			return fmt.Errorf("%d usage rows not written at shutdown: %w", len(batch), err)
		}
		backoff = min(backoff*2, maxBackoff)
	}
}
