// Package cluster keeps TokenGuard replicas that share one PostgreSQL database in step. A change
// that alters what a project key may do — the key regenerated, the project deactivated or
// deleted, a project or workspace budget changed — must drop the key from the proxy cache of
// every replica, not only the one that served the change, or the others would keep admitting it
// from memory.
//
// The replica that makes a change evicts its own cache at once, as on a single node, and
// publishes the change with PostgreSQL's NOTIFY (store.DB.Notify). Every replica keeps a session
// of its own listening for changes (store.Listen) and evicts what each event names; delivery
// takes milliseconds. Notifications sent while a listener is disconnected are lost, so the
// listener drops its whole cache when it loses its session, after every failed attempt to
// reconnect (at most RetryMax apart) and once it listens again: each key's next request reads
// it from the database (one query: bcrypt is not run again for a key already proven).
//
// On SQLite there is one node and no Notifier: the account service evicts the proxy directly.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tokenguard/store"
)

// Cache is the replica's cache of verified keys (the proxy).
type Cache interface {
	EvictProject(projectID int64)
	EvictWorkspace(workspaceID int64)
	// EvictAll drops every cached key: a listener that reconnects cannot tell what it missed.
	EvictAll()
}

// Options configures a Notifier. DB, URL and Cache are required.
type Options struct {
	// DB is the store changes are published through (its pool).
	DB *store.DB
	// URL is the PostgreSQL DATABASE_URL the store was opened with; the listener opens a
	// session of its own on it (a pooled connection cannot wait for notifications).
	URL string
	// Cache is what the events evict.
	Cache Cache
	// Log receives a line per lost or restored listener session and per failed publish.
	// Default: discard.
	Log *slog.Logger
	// RetryMin and RetryMax bound the wait between two failed attempts to connect the listener
	// or to publish: it starts at RetryMin and doubles up to RetryMax. Defaults: 100ms, 5s.
	RetryMin, RetryMax time.Duration
	// PingEvery is how long the listener waits for an event before it checks that its session is
	// alive; a connection that went silent (a peer gone without a reset) is noticed within
	// PingEvery plus PingTimeout. Defaults: 10s and 5s.
	PingEvery, PingTimeout time.Duration
}

// Notifier publishes this replica's changes and applies every replica's. It implements the
// account service's KeyCache, so the service's evictions go through it: local first, then to
// the cluster. Create it with Start; Close it after the HTTP server has drained.
type Notifier struct {
	o Options

	mu      sync.Mutex
	pending map[string]struct{} // events not yet published
	kick    chan struct{}

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	pid      atomic.Uint32 // the listener session's backend pid, 0 while disconnected
	connects atomic.Int64  // listener sessions opened so far
}

// Event payloads: what changed, as the proxy's cache evicts it.
const (
	projectEvent   = "project:"
	workspaceEvent = "workspace:"
	allEvent       = "all"
)

// Start opens the listener session (failing when PostgreSQL cannot be reached: the store was
// opened just before, so that is a real fault), empties the cache, and starts the listener and
// the publisher in the background.
func Start(ctx context.Context, o Options) (*Notifier, error) {
	if o.DB == nil || o.URL == "" || o.Cache == nil {
		return nil, errors.New("cluster: DB, URL and Cache are required")
	}
	if !o.DB.Postgres() {
		return nil, errors.New("cluster: change notifications need PostgreSQL")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 100 * time.Millisecond
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(5*time.Second, o.RetryMin)
	}
	if o.PingEvery <= 0 {
		o.PingEvery = 10 * time.Second
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = 5 * time.Second
	}
	l, err := store.Listen(ctx, o.URL)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	n := &Notifier{o: o, pending: map[string]struct{}{}, kick: make(chan struct{}, 1)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.listening(l)
	n.wg.Add(2)
	go n.listen(l)
	go n.publish()
	return n, nil
}

// EvictProject evicts project id here and on every other replica.
func (n *Notifier) EvictProject(id int64) {
	n.o.Cache.EvictProject(id)
	n.send(projectEvent + strconv.FormatInt(id, 10))
}

// EvictWorkspace evicts every project of workspace id here and on every other replica.
func (n *Notifier) EvictWorkspace(id int64) {
	n.o.Cache.EvictWorkspace(id)
	n.send(workspaceEvent + strconv.FormatInt(id, 10))
}

// EvictAll empties the cache here and on every other replica.
func (n *Notifier) EvictAll() {
	n.o.Cache.EvictAll()
	n.send(allEvent)
}

// send queues event for the publisher and returns at once: the caller is an API request that
// has committed its change, and a slow or unreachable database must not hold it up.
func (n *Notifier) send(event string) {
	n.mu.Lock()
	n.pending[event] = struct{}{}
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// Close stops the listener and makes one last attempt, within ctx, to publish the events still
// queued.
func (n *Notifier) Close(ctx context.Context) error {
	n.cancel()
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("cluster: closing: %w", ctx.Err())
	}
	n.mu.Lock()
	left := len(n.pending)
	n.mu.Unlock()
	if left > 0 {
		return fmt.Errorf("cluster: %d change events not published at shutdown", left)
	}
	return nil
}

// publish is the publisher: it sends the queued events, retrying with backoff while the
// database refuses them, until Close.
func (n *Notifier) publish() {
	defer n.wg.Done()
	wait := n.o.RetryMin
	for {
		select {
		case <-n.kick:
		case <-n.ctx.Done():
			// Last attempt, bounded: the replica is shutting down.
			ctx, cancel := context.WithTimeout(context.Background(), n.o.PingTimeout)
			n.flush(ctx)
			cancel()
			return
		}
		for !n.flush(n.ctx) {
			if sleep(n.ctx, wait) != nil {
				break // shutting down: the last attempt above
			}
			wait = min(2*wait, n.o.RetryMax)
		}
		wait = n.o.RetryMin
	}
}

// flush publishes every queued event and reports whether all went out; the ones that failed
// stay queued.
func (n *Notifier) flush(ctx context.Context) bool {
	n.mu.Lock()
	events := n.pending
	n.pending = map[string]struct{}{}
	n.mu.Unlock()
	var failed []string
	var lastErr error
	for ev := range events {
		if err := n.o.DB.Notify(ctx, ev); err != nil {
			failed, lastErr = append(failed, ev), err
		}
	}
	if len(failed) == 0 {
		return true
	}
	n.o.Log.Warn("cluster: change events not published yet; retrying", "events", len(failed), "err", lastErr)
	n.mu.Lock()
	for _, ev := range failed {
		n.pending[ev] = struct{}{}
	}
	n.mu.Unlock()
	return false
}

// listen is the listener: it applies every event the session receives and, when the session is
// lost, connects again with backoff and empties the cache.
func (n *Notifier) listen(l *store.Listener) {
	defer n.wg.Done()
	for {
		err := n.serve(l)
		l.Close(context.Background())
		n.pid.Store(0)
		if n.ctx.Err() != nil {
			return
		}
		n.o.Log.Warn("cluster: change listener lost its PostgreSQL session; reconnecting", "err", err)
		// Changes go unheard from now on: what the cache holds may already be stale.
		n.o.Cache.EvictAll()
		if l = n.reconnect(); l == nil {
			return
		}
		n.o.Log.Info("cluster: change listener reconnected; key cache emptied (changes may have been missed)")
	}
}

// reconnect opens a new listener session, waiting RetryMin doubling to RetryMax between
// attempts, and returns nil once Close is called. After every failed attempt it empties the
// cache again, so while no session listens a change takes at most RetryMax to reach this
// replica (its keys are read from the database again), not until the listener is back.
func (n *Notifier) reconnect() *store.Listener {
	wait := n.o.RetryMin
	for {
		if sleep(n.ctx, wait) != nil {
			return nil
		}
		ctx, cancel := context.WithTimeout(n.ctx, n.o.PingEvery)
		l, err := store.Listen(ctx, n.o.URL)
		cancel()
		if err == nil {
			n.listening(l)
			return l
		}
		if n.ctx.Err() != nil {
			return nil
		}
		n.o.Log.Warn("cluster: change listener cannot connect; retrying", "in", wait, "err", err)
		n.o.Cache.EvictAll()
		wait = min(2*wait, n.o.RetryMax)
	}
}

// listening records a session that has just started to listen and empties the cache: only
// changes published from now on reach it, and whatever was published while no session listened
// is lost.
func (n *Notifier) listening(l *store.Listener) {
	n.pid.Store(l.PID())
	n.o.Cache.EvictAll()
	n.connects.Add(1)
}

// serve waits for events on l and applies them until the session fails or Close is called.
func (n *Notifier) serve(l *store.Listener) error {
	for {
		ctx, cancel := context.WithTimeout(n.ctx, n.o.PingEvery)
		ev, err := l.Wait(ctx)
		cancel()
		switch {
		case err == nil:
			n.apply(ev)
			continue
		case n.ctx.Err() != nil:
			return n.ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !l.IsClosed():
			// Quiet for PingEvery: make sure the session is still there.
			ctx, cancel := context.WithTimeout(n.ctx, n.o.PingTimeout)
			err = l.Ping(ctx)
			cancel()
			if err == nil {
				continue
			}
		}
		return err
	}
}

// apply evicts what ev names. An event it does not know (from a newer release) empties the
// cache: too much evicted only costs a database read.
func (n *Notifier) apply(ev string) {
	if ev == allEvent {
		n.o.Cache.EvictAll()
		return
	}
	if s, ok := strings.CutPrefix(ev, projectEvent); ok {
		if id, err := strconv.ParseInt(s, 10, 64); err == nil {
			n.o.Cache.EvictProject(id)
			return
		}
	}
	if s, ok := strings.CutPrefix(ev, workspaceEvent); ok {
		if id, err := strconv.ParseInt(s, 10, 64); err == nil {
			n.o.Cache.EvictWorkspace(id)
			return
		}
	}
	n.o.Log.Warn("cluster: unknown change event; emptying the key cache", "event", ev)
	n.o.Cache.EvictAll()
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
