package proxy

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"tokenguard/app/apikey"
	"tokenguard/app/apperr"
	"tokenguard/store"
)

func testKey(tb testing.TB) (apikey.Key, string) {
	tb.Helper()
	k, err := apikey.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	h, err := apikey.Hash(k.Full)
	if err != nil {
		tb.Fatal(err)
	}
	return k, h
}

// Concurrent misses for one key share one load (one bcrypt); later requests hit the cache; an
// eviction makes the next request load again; a wrong key with a real prefix is refused.
func TestKeyCacheLoadsOncePerKey(t *testing.T) {
	k, hash := testKey(t)
	var loads atomic.Int32
	c := newKeyCache(func(ctx context.Context, prefix string) (store.KeyAuth, error) {
		loads.Add(1)
		if prefix != k.Prefix {
			return store.KeyAuth{}, store.ErrNotFound
		}
		return store.KeyAuth{ProjectID: 7, WorkspaceID: 3, KeyHash: hash, Active: true}, nil
	}, nil)

	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := c.get(context.Background(), k.Full, k.Prefix)
			if err != nil || p.id != 7 {
				t.Errorf("get = %v, %v", p, err)
			}
		}()
	}
	wg.Wait()
	if got, want := loads.Load(), int32(1); got != want {
		t.Fatalf("%d loads for 20 concurrent misses of one key, want %d", got, want)
	}
	c.get(context.Background(), k.Full, k.Prefix)
	if got := loads.Load(); got != 1 {
		t.Fatalf("a cached key was loaded again (%d loads)", got)
	}
	c.evict(func(p *project) bool { return p.workspaceID == 3 })
	c.get(context.Background(), k.Full, k.Prefix)
	if got := loads.Load(); got != 2 {
		t.Fatalf("an evicted key was not reloaded (%d loads)", got)
	}

	// Same prefix, wrong secret: the bcrypt check refuses it.
	other, _ := apikey.Generate()
	forged := k.Prefix + other.Full[len(k.Prefix):]
	for range 3 {
		if _, err := c.get(context.Background(), forged, k.Prefix); apperr.Code(err) != apperr.InvalidKey {
			t.Fatalf("forged key: %v, want INVALID_KEY", err)
		}
	}
	if got := loads.Load(); got != 3 {
		t.Fatalf("%d loads: a refused key was checked again (want one load and one bcrypt for it)", got-2)
	}
	// The right key still passes.
	if _, err := c.get(context.Background(), k.Full, k.Prefix); err != nil {
		t.Fatal(err)
	}
}

// Key auth on a cache hit: the SHA-256 of the key and a map read under a read lock.
func BenchmarkKeyCacheHit(b *testing.B) {
	k, hash := testKey(b)
	c := newKeyCache(func(ctx context.Context, prefix string) (store.KeyAuth, error) {
		return store.KeyAuth{ProjectID: 1, WorkspaceID: 1, KeyHash: hash, Active: true}, nil
	}, nil)
	ctx := context.Background()
	if _, err := c.get(ctx, k.Full, k.Prefix); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		prefix, ok := apikey.Parse(k.Full)
		if !ok {
			b.Fatal("parse")
		}
		if _, err := c.get(ctx, k.Full, prefix); err != nil {
			b.Fatal(err)
		}
	}
}

// A junk key costs a format check, no bcrypt and no database read.
func BenchmarkJunkKey(b *testing.B) {
	junk := "tg_live_0123456789abcdefghijABCDEFGHIJklmnopqrstuvwxyz"
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := apikey.Parse(junk); ok {
			b.Fatal("junk accepted")
		}
	}
}
