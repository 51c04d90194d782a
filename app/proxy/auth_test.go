package proxy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tokenguard/app/apikey"
	"tokenguard/app/apperr"
	"tokenguard/store"

	"golang.org/x/crypto/bcrypt"
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

	// Same prefix, wrong secret: refused without a load, since the prefix's one key is known.
	other, _ := apikey.Generate()
	forged := k.Prefix + other.Full[len(k.Prefix):]
	for range 3 {
		if _, err := c.get(context.Background(), forged, k.Prefix); apperr.Code(err) != apperr.InvalidKey {
			t.Fatalf("forged key: %v, want INVALID_KEY", err)
		}
	}
	if got := loads.Load(); got != 2 {
		t.Fatalf("%d loads for a wrong key whose prefix has a verified key, want none", got-2)
	}
	// The right key still passes.
	if _, err := c.get(context.Background(), k.Full, k.Prefix); err != nil {
		t.Fatal(err)
	}
}

// floodCache is a key cache over one real key whose bcrypt runs and database reads are counted
// and whose clock moves only when told.
type floodCache struct {
	*keyCache
	key            apikey.Key
	bcrypts, loads atomic.Int32
	start          time.Time
	elapsed        atomic.Int64 // nanoseconds since start
}

func (fc *floodCache) advance(d time.Duration) { fc.elapsed.Add(int64(d)) }

// maxBcrypts is the stated bound on the prefix's bcrypt runs by the cache's clock.
func (fc *floodCache) maxBcrypts() int32 {
	return int32(bcryptBurst + time.Duration(fc.elapsed.Load()).Minutes()*bcryptPerMinute)
}

func newFloodCache(t *testing.T) *floodCache {
	t.Helper()
	k, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	// The lowest cost keeps the bcrypt runs the flood is allowed quick.
	hash, err := bcrypt.GenerateFromPassword([]byte(k.Full), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	fc := &floodCache{key: k, start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	fc.keyCache = newKeyCache(func(ctx context.Context, prefix string) (store.KeyAuth, error) {
		fc.loads.Add(1)
		if prefix != k.Prefix {
			return store.KeyAuth{}, store.ErrNotFound
		}
		return store.KeyAuth{ProjectID: 7, WorkspaceID: 3, KeyHash: string(hash), Active: true}, nil
	}, nil)
	fc.now = func() time.Time { return fc.start.Add(time.Duration(fc.elapsed.Load())) }
	fc.bcrypt = func(hash, full string) bool {
		fc.bcrypts.Add(1)
		return apikey.Verify(hash, full)
	}
	return fc
}

// forge returns n fresh keys with valid checksums and the real key's prefix.
func (fc *floodCache) forge(t *testing.T, n int) []string {
	t.Helper()
	keys := make([]string, n)
	for i := range keys {
		k, err := apikey.WithPrefix(fc.key.Prefix)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k.Full
	}
	return keys
}

// A flood of fresh valid-checksum keys with a real key's prefix costs no bcrypt and no database
// read once that key has verified, even after an eviction; before it has (a fresh start) the
// flood costs at most the prefix's bcrypt budget per minute, the keys over budget are told when
// to retry rather than refused for good, and the real key gets in once a run is free.
func TestKeyCacheForgedKeyFlood(t *testing.T) {
	t.Run("proven prefix", func(t *testing.T) {
		fc := newFloodCache(t)
		ctx := context.Background()
		if _, err := fc.get(ctx, fc.key.Full, fc.key.Prefix); err != nil {
			t.Fatal(err)
		}
		fc.evict(func(*project) bool { return true })
		for i, forged := range fc.forge(t, 500) {
			if _, err := fc.get(ctx, forged, fc.key.Prefix); apperr.Code(err) != apperr.InvalidKey {
				t.Fatalf("forged key %d: %v, want INVALID_KEY", i, err)
			}
		}
		if p, err := fc.get(ctx, fc.key.Full, fc.key.Prefix); err != nil || p.id != 7 {
			t.Fatalf("real key after the flood: %v, %v", p, err)
		}
		if got, want := fc.bcrypts.Load(), int32(1); got != want {
			t.Errorf("%d bcrypt runs, want %d: the real key's first check only", got, want)
		}
		if got, want := fc.loads.Load(), int32(2); got != want {
			t.Errorf("%d database reads, want %d: the real key's, before and after the eviction", got, want)
		}
	})

	t.Run("fresh start", func(t *testing.T) {
		fc := newFloodCache(t)
		ctx := context.Background()
		const minutes = 3
		forged := fc.forge(t, 40*minutes)
		var waited apikey.Key
		for m := range minutes {
			for i, key := range forged[40*m : 40*(m+1)] {
				_, err := fc.get(ctx, key, fc.key.Prefix)
				switch apperr.Code(err) {
				case apperr.InvalidKey:
				case apperr.TooManyRequests:
					var e *apperr.Error
					if !errors.As(err, &e) || e.RetryAfter <= 0 || e.RetryAfter > time.Minute {
						t.Fatalf("over-budget refusal %v: want a Retry-After within a minute", err)
					}
					waited.Full = key
				default:
					t.Fatalf("minute %d, forged key %d: %v", m, i, err)
				}
				fc.advance(time.Minute / 40)
			}
		}
		if got, max := fc.bcrypts.Load(), fc.maxBcrypts(); got > max {
			t.Fatalf("%d bcrypt runs for %d forged keys over %d minutes, want at most %d", got, len(forged), minutes, max)
		}
		if waited.Full == "" {
			t.Fatal("the flood never exhausted the budget")
		}

		// The real key arrives just after the flood spent the budget: it is told to wait, then
		// gets in.
		for _, key := range fc.forge(t, bcryptBurst+1) {
			if _, err := fc.get(ctx, key, fc.key.Prefix); apperr.Code(err) == apperr.TooManyRequests {
				break
			}
		}
		_, err := fc.get(ctx, fc.key.Full, fc.key.Prefix)
		var e *apperr.Error
		if !errors.As(err, &e) || e.Code != apperr.TooManyRequests {
			t.Fatalf("real key, budget spent: %v, want TOO_MANY_REQUESTS", err)
		}
		fc.advance(e.RetryAfter)
		if _, err := fc.get(ctx, fc.key.Full, fc.key.Prefix); err != nil {
			t.Fatalf("real key after Retry-After: %v", err)
		}
		// A key turned away for budget was not remembered as refused; now that the prefix is
		// proven it is refused without bcrypt.
		before := fc.bcrypts.Load()
		if _, err := fc.get(ctx, waited.Full, fc.key.Prefix); apperr.Code(err) != apperr.InvalidKey {
			t.Fatalf("a key turned away for budget, retried: %v, want INVALID_KEY", err)
		}
		if got := fc.bcrypts.Load(); got != before {
			t.Errorf("a forged key cost a bcrypt after its prefix was proven")
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		fc := newFloodCache(t)
		ctx := context.Background()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, batch := range [][]string{fc.forge(t, 300), fc.forge(t, 300), fc.forge(t, 300)} {
			wg.Go(func() {
				for _, key := range batch {
					if _, err := fc.get(ctx, key, fc.key.Prefix); apperr.Code(err) == apperr.Internal {
						t.Errorf("forged key: %v", err)
					}
				}
				<-stop
			})
		}
		served := 0
		for served < 50 {
			_, err := fc.get(ctx, fc.key.Full, fc.key.Prefix)
			var e *apperr.Error
			switch {
			case err == nil:
				served++
			case errors.As(err, &e) && e.Code == apperr.TooManyRequests:
				fc.advance(e.RetryAfter) // the client honours Retry-After
			default:
				t.Fatalf("real key during the flood: %v", err)
			}
		}
		close(stop)
		wg.Wait()
		if got, max := fc.bcrypts.Load(), fc.maxBcrypts(); got > max {
			t.Fatalf("%d bcrypt runs for 900 forged keys over %v, want at most %d", got, time.Duration(fc.elapsed.Load()), max)
		}
	})
}

// cachedKey returns a cache holding one verified key.
func cachedKey(b *testing.B) (*keyCache, apikey.Key) {
	k, hash := testKey(b)
	c := newKeyCache(func(ctx context.Context, prefix string) (store.KeyAuth, error) {
		return store.KeyAuth{ProjectID: 1, WorkspaceID: 1, KeyHash: hash, Active: true}, nil
	}, nil)
	if _, err := c.get(context.Background(), k.Full, k.Prefix); err != nil {
		b.Fatal(err)
	}
	return c, k
}

// Key auth on a cache hit: the SHA-256 of the key and a map read under a read lock.
func BenchmarkKeyCacheHit(b *testing.B) {
	c, k := cachedKey(b)
	ctx := context.Background()
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

// A legitimate key's cache hit while other goroutines send fresh valid-checksum keys with its
// prefix (paced, as from many clients): the flood must not take the CPU from the hit.
func BenchmarkKeyCacheHitUnderFlood(b *testing.B) {
	for _, flooders := range []int{0, 4} {
		b.Run(fmt.Sprintf("flooders=%d", flooders), func(b *testing.B) {
			c, k := cachedKey(b)
			ctx := context.Background()
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range flooders {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						case <-time.After(200 * time.Microsecond):
						}
						forged, err := apikey.WithPrefix(k.Prefix)
						if err != nil {
							b.Error(err)
							return
						}
						c.get(ctx, forged.Full, forged.Prefix)
					}
				})
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.get(ctx, k.Full, k.Prefix); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			close(stop)
			wg.Wait()
		})
	}
}

// A database that stops answering holds a key's load no longer than loadTimeout: the request
// gets an error it can refuse with, in bounded time, even though the load runs detached from
// the request (whose own context here never ends).
func TestKeyLoadBounded(t *testing.T) {
	k, _ := testKey(t)
	c := newKeyCache(func(ctx context.Context, prefix string) (store.KeyAuth, error) {
		<-ctx.Done() // a frozen server: nothing comes back until the caller gives up
		return store.KeyAuth{}, ctx.Err()
	}, nil)
	c.loadTimeout = 50 * time.Millisecond
	done := make(chan error, 1)
	go func() {
		_, err := c.get(context.Background(), k.Full, k.Prefix)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("get = %v, want the load's deadline", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a load from a database that does not answer is still waiting after 5s")
	}
}
