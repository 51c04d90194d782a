package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"tokenguard/app/cluster"
	"tokenguard/store"
	"tokenguard/store/storetest"
)

var ctx = context.Background()

// within is how long a test waits for an event that takes milliseconds: generous, so a loaded
// machine does not fail it; it asserts that the event arrives, not how fast.
const within = 15 * time.Second

// cache records what a replica's key cache was told to evict, as the proxy would be.
type cache struct {
	mu     sync.Mutex
	events []string
	seen   chan string
}

func newCache() *cache { return &cache{seen: make(chan string, 1000)} }

func (c *cache) record(ev string) {
	c.mu.Lock()
	c.events = append(c.events, ev)
	c.mu.Unlock()
	c.seen <- ev
}

func (c *cache) EvictProject(id int64)   { c.record(fmt.Sprintf("project %d", id)) }
func (c *cache) EvictWorkspace(id int64) { c.record(fmt.Sprintf("workspace %d", id)) }
func (c *cache) EvictAll()               { c.record("all") }

// count is how many times ev was recorded.
func (c *cache) count(ev string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, e := range c.events {
		if e == ev {
			n++
		}
	}
	return n
}

// await waits for ev, skipping others.
func (c *cache) await(t *testing.T, who, ev string) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case got := <-c.seen:
			if got == ev {
				return
			}
		case <-deadline:
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Fatalf("%s: no %q within %v (got %q)", who, ev, within, c.events)
		}
	}
}

// replica is one TokenGuard's store and notifier on the shared database.
type replica struct {
	db    *store.DB
	cache *cache
	n     *cluster.Notifier
}

func replicas(t *testing.T, count int) (string, []*replica) {
	t.Helper()
	u := storetest.PostgresURL(t)
	rs := make([]*replica, count)
	for i := range rs {
		db := storetest.OpenPostgresURL(t, u)
		r := &replica{db: db, cache: newCache()}
		var err error
		r.n, err = cluster.Start(ctx, cluster.Options{DB: db, URL: u, Cache: r.cache, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			c, cancel := context.WithTimeout(ctx, within)
			defer cancel()
			if err := r.n.Close(c); err != nil {
				t.Errorf("close notifier %d: %v", i, err)
			}
		})
		rs[i] = r
	}
	return u, rs
}

func TestChangeReachesEveryReplica(t *testing.T) {
	_, rs := replicas(t, 3)
	for i, r := range rs {
		r.cache.await(t, fmt.Sprintf("replica %d at start", i), "all")
	}
	for _, tc := range []struct {
		name   string
		evict  func(*cluster.Notifier)
		wanted string
	}{
		{"project", func(n *cluster.Notifier) { n.EvictProject(12) }, "project 12"},
		{"workspace", func(n *cluster.Notifier) { n.EvictWorkspace(3) }, "workspace 3"},
		{"all", func(n *cluster.Notifier) { n.EvictAll() }, "all"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.evict(rs[1].n)
			// The replica that made the change evicts at once, before anything is published.
			select {
			case got := <-rs[1].cache.seen:
				if got != tc.wanted {
					t.Fatalf("local eviction %q, want %q", got, tc.wanted)
				}
			default:
				t.Fatal("the changing replica did not evict its own cache before returning")
			}
			rs[0].cache.await(t, "replica 0", tc.wanted)
			rs[2].cache.await(t, "replica 2", tc.wanted)
			// Its own listener hears it too (harmless: evicting twice costs a read).
			rs[1].cache.await(t, "replica 1's own listener", tc.wanted)
		})
	}
}

// A listener that loses its session connects again and empties its cache, since whatever was
// published meanwhile is lost; changes published afterwards reach it again.
func TestReconnectEmptiesCache(t *testing.T) {
	_, rs := replicas(t, 2)
	a, b := rs[0], rs[1]
	b.cache.await(t, "replica 1 at start", "all")

	pid := b.n.ListenerPID()
	admin, err := pgx.Connect(ctx, storetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var ended bool
	if err := admin.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, int64(pid)).Scan(&ended); err != nil || !ended {
		t.Fatalf("terminate the listener's session %d: %v %v", pid, ended, err)
	}
	deadline := time.Now().Add(within)
	for b.n.Connects() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("listener not reconnected within %v", within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Emptied at start, when the session was lost, and once listening again.
	if got := b.cache.count("all"); got < 3 {
		t.Fatalf("cache emptied %d times, want at least 3 (start, loss, reconnect)", got)
	}
	if b.n.ListenerPID() == pid {
		t.Fatal("listener still reports the ended session")
	}

	a.n.EvictProject(7)
	b.cache.await(t, "replica 1 on its new session", "project 7")
}

// A listener wakes up regularly to check its session; quiet periods leave it listening.
func TestQuietListenerKeepsListening(t *testing.T) {
	u := storetest.PostgresURL(t)
	db, err := store.Open(ctx, u, storetest.PostgresSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := newCache()
	n, err := cluster.Start(ctx, cluster.Options{DB: db, URL: u, Cache: c, PingEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(ctx)
	c.await(t, "at start", "all")
	time.Sleep(300 * time.Millisecond) // several pings
	n.EvictWorkspace(5)
	c.await(t, "local", "workspace 5")
	c.await(t, "through the listener", "workspace 5")
	if got := n.Connects(); got != 1 {
		t.Fatalf("listener reconnected %d times while quiet", got-1)
	}
}

func TestStartRefusesSQLite(t *testing.T) {
	db, err := store.Open(ctx, t.TempDir()+"/tg.db", storetest.Schema(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := cluster.Start(ctx, cluster.Options{DB: db, URL: "x", Cache: newCache()}); err == nil {
		t.Fatal("a notifier started on SQLite")
	}
}
