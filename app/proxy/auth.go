package proxy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"tokenguard/app/apikey"
	"tokenguard/app/apperr"
	"tokenguard/app/budget"
	"tokenguard/app/pricing"
	"tokenguard/app/secret"
	"tokenguard/store"
)

// project is a verified key's view of its project, cached in memory so bcrypt and SQL run once
// per key rather than per request. Everything but lastUsed is immutable once built; a change
// to the project (budgets, fallback, provider keys, key, state) evicts the entry instead.
type project struct {
	id, workspaceID int64
	// deny is a contract error code when the key is known but must not pass
	// (KEY_DEACTIVATED, or INVALID_KEY for a deleted project or workspace).
	deny     string
	subject  budget.Subject
	fallback string
	// keys are the project's provider keys, opened once when the entry is built.
	keys map[string]string
	// lastUsed is the unix ms of the latest request; flushed to SQL in batches.
	lastUsed atomic.Int64
	flushed  atomic.Int64
}

// keyLoader reads a key's project on a cache miss (store.DB.KeyAuthByPrefix in production).
type keyLoader func(ctx context.Context, prefix string) (store.KeyAuth, error)

// keyCache maps SHA-256(full key) to its verified project. Concurrent misses for one key share
// one load and one bcrypt; an eviction during a load keeps that load's result out of the cache.
type keyCache struct {
	load keyLoader
	box  *secret.Box

	mu      sync.RWMutex
	entries map[[32]byte]*project
	flights map[[32]byte]*flight
	gen     uint64 // bumped by every eviction
	// refused remembers well-formed keys that failed (unknown prefix, or a known prefix with the
	// wrong secret), so repeating one costs a map read, not a database read and a bcrypt. Such
	// a key can never become valid: keys are random and only ever issued once. Bounded: it is
	// emptied when full.
	refused map[[32]byte]struct{}
}

// maxRefused bounds the refused-key memory.
const maxRefused = 4096

var errInvalidKey = apperr.New(apperr.InvalidKey, "Invalid API key")

type flight struct {
	done chan struct{}
	p    *project
	err  error
}

func newKeyCache(load keyLoader, box *secret.Box) *keyCache {
	return &keyCache{load: load, box: box, entries: map[[32]byte]*project{}, flights: map[[32]byte]*flight{}, refused: map[[32]byte]struct{}{}}
}

// get returns the project of the full key whose lookup prefix is prefix (already checked by
// apikey.Parse). It returns an *apperr.Error INVALID_KEY for an unknown or wrong key.
func (c *keyCache) get(ctx context.Context, full, prefix string) (*project, error) {
	ck := apikey.CacheKey(full)
	c.mu.RLock()
	p := c.entries[ck]
	_, bad := c.refused[ck]
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

	// The load runs detached from this request: other requests may be waiting on it.
	f.p, f.err = c.verify(context.WithoutCancel(ctx), full, prefix)

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

func (c *keyCache) verify(ctx context.Context, full, prefix string) (*project, error) {
	ka, err := c.load(ctx, prefix)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errInvalidKey
	}
	if err != nil {
		return nil, err
	}
	if !apikey.Verify(ka.KeyHash, full) {
		return nil, errInvalidKey
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
