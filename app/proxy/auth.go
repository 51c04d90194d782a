package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"tokenguard/app/allowlist"
	"tokenguard/app/apikey"
	"tokenguard/app/apperr"
	"tokenguard/app/budget"
	"tokenguard/app/pricing"
	"tokenguard/app/ratelimit"
	"tokenguard/app/secret"
	"tokenguard/store"
)

// project is a verified key's view of its project, cached in memory so bcrypt and SQL run once
// per key rather than per request. Everything but lastUsed is immutable once built; a change
// to the project (budgets, fallback, controls, provider keys, key, state) evicts the entry
// instead.
type project struct {
	id, workspaceID int64
	// deny is a contract error code when the key is known but must not pass
	// (KEY_DEACTIVATED, or INVALID_KEY for a deleted project or workspace).
	deny     string
	subject  budget.Subject
	fallback string
	// allowed is the project's model allow-list (the zero List allows every model).
	allowed allowlist.List
	// limits are the project's and its workspace's per-minute limits.
	limits ratelimit.Limits
	// fallbackOnError serves the fallback model when the requested one fails upstream.
	fallbackOnError bool
	// endUserDaily caps each end user's UTC-day spend; 0 is no limit.
	endUserDaily pricing.NanoUSD
	// keys are the project's provider keys, opened once when the entry is built.
	keys map[string]string
	// lastUsed is the unix ms of the latest request; flushed to SQL in batches.
	lastUsed atomic.Int64
	flushed  atomic.Int64
}

// authenticate finds the request's TokenGuard key (credentials: the slots of DESIGN §3, in
// order) and returns its project and the caller's own provider key, if any. When the key must
// not pass it answers the request itself — MISSING_KEY, INVALID_KEY, KEY_DEACTIVATED, or the
// key cache's error — and returns false.
func (p *Proxy) authenticate(w http.ResponseWriter, r *http.Request) (*project, string, bool) {
	tgKey, callerKey := credentials(r)
	if tgKey == "" {
		apperr.WriteJSON(w, apperr.New(apperr.MissingKey, "Missing TokenGuard key: send it in x-tokenguard-key or Authorization: Bearer"))
		return nil, "", false
	}
	prefix, ok := apikey.Parse(tgKey)
	if !ok {
		apperr.WriteJSON(w, errInvalidKey)
		return nil, "", false
	}
	proj, err := p.keys.get(r.Context(), tgKey, prefix)
	if err != nil {
		var known *apperr.Error
		if !errors.As(err, &known) && r.Context().Err() == nil {
			// The database failed (PostgreSQL unreachable, a SQLite I/O error): the key cannot
			// be checked, so nothing is served, and the caller is told to retry, not that the
			// server is broken.
			p.log.Error("key lookup failed: request refused", "err", err)
			err = &apperr.Error{Code: apperr.StorageUnavailable, RetryAfter: time.Second,
				Message: "The key cannot be checked: the database is failing, so requests are refused until it recovers"}
		}
		p.fail(w, r, err)
		return nil, "", false
	}
	switch proj.deny {
	case apperr.KeyDeactivated:
		apperr.WriteJSON(w, apperr.New(apperr.KeyDeactivated, "This project is deactivated"))
		return nil, "", false
	case apperr.InvalidKey:
		apperr.WriteJSON(w, errInvalidKey)
		return nil, "", false
	}
	return proj, callerKey, true
}

// keyLoader reads a key's project on a cache miss (store.DB.KeyAuthByPrefix in production).
type keyLoader func(ctx context.Context, prefix string) (store.KeyAuth, error)

// keyCache maps SHA-256(full key) to its verified project. Concurrent misses for one key share
// one load and one bcrypt; an eviction during a load keeps that load's result out of the cache.
//
// Refusals are cheap because a lookup prefix names exactly one key (regeneration issues a new
// prefix). Once a key has passed bcrypt, its prefix is proven: any other key with that prefix is
// refused by a map read, with no database read and no bcrypt, and the proven key itself skips
// bcrypt when an eviction makes it load again. Before a prefix is proven (a fresh start), its
// failed bcrypt runs draw on a token bucket of bcryptBurst refilled at bcryptPerMinute, so a
// flood costs at most bcryptBurst + bcryptPerMinute runs per prefix in any minute; a key that
// finds the bucket empty is told to retry later and is not remembered as refused. bcrypt runs
// at most bcryptSlots at a time, leaving the other cores to cached requests.
type keyCache struct {
	load keyLoader
	box  *secret.Box
	// now and bcrypt are time.Now and apikey.Verify; tests replace them to drive the clock and
	// count bcrypt runs.
	now    func() time.Time
	bcrypt func(hash, full string) bool
	slots  chan struct{}
	// loadTimeout is keyLoadTimeout; tests shorten it.
	loadTimeout time.Duration

	mu      sync.RWMutex
	entries map[[32]byte]*project
	flights map[[32]byte]*flight
	gen     uint64 // bumped by every eviction
	// refused remembers well-formed keys that failed (unknown prefix, or a known prefix with the
	// wrong secret), so repeating one costs a map read, not a database read and a bcrypt. Such
	// a key can never become valid: keys are random and only ever issued once. Bounded: it is
	// emptied when full.
	refused map[[32]byte]struct{}
	// proven maps a lookup prefix to the key that passed bcrypt under it. It outlives evictions;
	// entries exist only for real keys, and it is emptied if it ever reaches maxProven.
	proven map[string]proof
	// budgets holds the bcrypt budget of known prefixes not yet proven; an entry exists only
	// after the database named the prefix, so unknown prefixes cost no memory here.
	budgets map[string]*bucket
}

// proof is the key that passed bcrypt under a prefix and the stored hash it passed against.
type proof struct {
	sum  [32]byte
	hash string
}

// bucket is a token bucket of bcrypt runs: tokens as of at.
type bucket struct {
	tokens float64
	at     time.Time
}

const (
	// maxRefused bounds the refused-key memory.
	maxRefused = 4096
	// maxProven bounds the proven-prefix memory and maxBudgets is where spent budgets are pruned;
	// both only ever hold prefixes of keys that exist.
	maxProven  = 1 << 16
	maxBudgets = 4096
	// bcryptBurst and bcryptPerMinute are the bcrypt budget of an unproven prefix.
	bcryptBurst     = 5
	bcryptPerMinute = 5
)

// bcryptSlots bounds concurrent bcrypt runs: half the cores, at least one.
var bcryptSlots = max(1, runtime.GOMAXPROCS(0)/2)

var errInvalidKey = apperr.New(apperr.InvalidKey, "Invalid API key")

type flight struct {
	done chan struct{}
	p    *project
	err  error
}

func newKeyCache(load keyLoader, box *secret.Box) *keyCache {
	return &keyCache{
		load: load, box: box, now: time.Now, bcrypt: apikey.Verify, slots: make(chan struct{}, bcryptSlots),
		loadTimeout: keyLoadTimeout,
		entries:     map[[32]byte]*project{}, flights: map[[32]byte]*flight{}, refused: map[[32]byte]struct{}{},
		proven: map[string]proof{}, budgets: map[string]*bucket{},
	}
}

// keyLoadTimeout bounds one key's load from the database: SQLite's busy timeout, beyond which
// the store itself gives up on a locked file.
const keyLoadTimeout = 10 * time.Second

// get returns the project of the full key whose lookup prefix is prefix (already checked by
// apikey.Parse). It returns an *apperr.Error INVALID_KEY for an unknown or wrong key, and
// TOO_MANY_REQUESTS with a RetryAfter when the prefix's bcrypt budget is spent.
func (c *keyCache) get(ctx context.Context, full, prefix string) (*project, error) {
	ck := apikey.CacheKey(full)
	c.mu.RLock()
	p := c.entries[ck]
	bad := false
	if p == nil {
		_, bad = c.refused[ck]
		if pr, ok := c.proven[prefix]; ok && pr.sum != ck {
			bad = true
		}
	}
	c.mu.RUnlock()
	if p != nil {
		return p, nil
	}
	if bad {
		return nil, errInvalidKey
	}

	c.mu.Lock()
	if p := c.entries[ck]; p != nil {
		c.mu.Unlock()
		return p, nil
	}
	if f := c.flights[ck]; f != nil {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.p, f.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	c.flights[ck] = f
	gen := c.gen
	c.mu.Unlock()

	// The load runs detached from this request: other requests may be waiting on it. It is
	// bounded all the same, so that a database that stops answering (a PostgreSQL server
	// frozen or cut off) refuses requests in bounded time instead of holding them.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.loadTimeout)
	f.p, f.err = c.verify(lctx, full, prefix, ck)
	cancel()

	c.mu.Lock()
	delete(c.flights, ck)
	if f.err == nil && c.gen == gen {
		c.entries[ck] = f.p
	}
	if f.err == errInvalidKey {
		if len(c.refused) >= maxRefused {
			clear(c.refused)
		}
		c.refused[ck] = struct{}{}
	}
	c.mu.Unlock()
	close(f.done)
	return f.p, f.err
}

func (c *keyCache) verify(ctx context.Context, full, prefix string, ck [32]byte) (*project, error) {
	ka, err := c.load(ctx, prefix)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errInvalidKey
	}
	if err != nil {
		return nil, err
	}
	if err := c.check(ka.KeyHash, full, prefix, ck); err != nil {
		return nil, err
	}
	p := &project{
		id:          ka.ProjectID,
		workspaceID: ka.WorkspaceID,
		fallback:    ka.FallbackModel,
		subject: budget.Subject{
			ProjectID:   ka.ProjectID,
			WorkspaceID: ka.WorkspaceID,
			Project:     budget.Limits{Daily: nano(ka.ProjectDaily), Monthly: nano(ka.ProjectMonthly), Strict: ka.ProjectStrict},
			Workspace:   budget.Limits{Daily: nano(ka.WorkspaceDaily), Monthly: nano(ka.WorkspaceMonthly), Strict: ka.WorkspaceStrict},
			HasFallback: ka.FallbackModel != "",
		},
		allowed: allowlist.New(ka.AllowedModels),
		limits: ratelimit.Limits{
			ProjectID: ka.ProjectID, WorkspaceID: ka.WorkspaceID,
			ProjectRPM: ka.RPMLimit, ProjectTPM: ka.TPMLimit, WorkspaceRPM: ka.WorkspaceRPM, WorkspaceTPM: ka.WorkspaceTPM,
		},
		fallbackOnError: ka.FallbackOnError,
		endUserDaily:    pricing.NanoUSD(ka.EndUserDailyBudgetNano),
	}
	switch {
	case ka.ProjectDeleted || ka.WorkspaceDeleted:
		p.deny = apperr.InvalidKey
	case !ka.Active:
		p.deny = apperr.KeyDeactivated
	}
	for name, ct := range ka.ProviderKeys {
		if c.box == nil {
			return nil, fmt.Errorf("project %d has a stored %s key but no encryption key is configured", ka.ProjectID, name)
		}
		pt, err := c.box.Open(ct, secret.ProviderKeyAD(ka.ProjectID, name))
		if err != nil {
			return nil, fmt.Errorf("open stored %s key of project %d: %w", name, ka.ProjectID, err)
		}
		if p.keys == nil {
			p.keys = make(map[string]string, len(ka.ProviderKeys))
		}
		p.keys[name] = string(pt)
	}
	return p, nil
}

// check verifies full (SHA-256 ck) against hash, the stored hash of prefix's one key, running
// bcrypt only when the prefix is not yet proven and its budget allows.
func (c *keyCache) check(hash, full, prefix string, ck [32]byte) error {
	c.mu.Lock()
	if pr, ok := c.proven[prefix]; ok && pr.hash == hash {
		c.mu.Unlock()
		if pr.sum != ck {
			return errInvalidKey
		}
		return nil
	}
	if wait := c.spend(prefix); wait > 0 {
		c.mu.Unlock()
		return &apperr.Error{
			Code:       apperr.TooManyRequests,
			Message:    fmt.Sprintf("Too many wrong keys were tried with this key's prefix; retry in %d seconds", int64((wait+time.Second-1)/time.Second)),
			RetryAfter: wait,
		}
	}
	c.mu.Unlock()

	c.slots <- struct{}{}
	ok := c.bcrypt(hash, full)
	<-c.slots
	if !ok {
		return errInvalidKey
	}
	c.mu.Lock()
	if len(c.proven) >= maxProven {
		clear(c.proven)
	}
	c.proven[prefix] = proof{sum: ck, hash: hash}
	delete(c.budgets, prefix)
	c.mu.Unlock()
	return nil
}

// spend takes one bcrypt run from prefix's budget, or returns how long until one is available.
// The caller holds c.mu.
func (c *keyCache) spend(prefix string) time.Duration {
	const perSecond = bcryptPerMinute / 60.0
	const refill = time.Duration(bcryptBurst / perSecond * float64(time.Second))
	now := c.now()
	b := c.budgets[prefix]
	if b == nil {
		if len(c.budgets) >= maxBudgets {
			// A bucket that has refilled is the same as none. The rest stay, so an attack on many
			// prefixes cannot refill one: they are bounded by the number of projects.
			for p, b := range c.budgets {
				if now.Sub(b.at) >= refill {
					delete(c.budgets, p)
				}
			}
		}
		b = &bucket{tokens: bcryptBurst, at: now}
		c.budgets[prefix] = b
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(bcryptBurst, b.tokens+d.Seconds()*perSecond)
	}
	b.at = now
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) / perSecond * float64(time.Second))
	}
	b.tokens--
	return 0
}

func nano(v *int64) *pricing.NanoUSD {
	if v == nil {
		return nil
	}
	n := pricing.NanoUSD(*v)
	return &n
}

// evict drops every entry for which match is true, and keeps loads in flight from caching
// what they read before the change.
func (c *keyCache) evict(match func(*project) bool) []*project {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	var gone []*project
	for k, p := range c.entries {
		if match(p) {
			gone = append(gone, p)
			delete(c.entries, k)
		}
	}
	return gone
}

// snapshot returns every cached project.
func (c *keyCache) snapshot() []*project {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ps := make([]*project, 0, len(c.entries))
	for _, p := range c.entries {
		ps = append(ps, p)
	}
	return ps
}
