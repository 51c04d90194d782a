package ratelimit

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newClock starts at the beginning of a minute, so window edges are where tests put them.
func newClock() *clock { return &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)} }

// TestBurstAdmitsExactlyTheLimit ensures a concurrent burst is admitted exactly up to each
// limit, no more: rpm and tpm, of a project alone and of a workspace shared by projects.
func TestBurstAdmitsExactlyTheLimit(t *testing.T) {
	cases := []struct {
		name     string
		projects int64 // the burst is spread over projects 1..projects of workspace 7
		limits   Limits
		tokens   int64
		want     int64
	}{
		{"project rpm", 1, Limits{ProjectRPM: 60}, 0, 60},
		{"project tpm", 1, Limits{ProjectTPM: 10_000}, 100, 100},
		{"workspace rpm over four projects", 4, Limits{ProjectRPM: 1000, WorkspaceRPM: 75}, 0, 75},
		{"workspace tpm over four projects", 4, Limits{WorkspaceTPM: 5000, ProjectRPM: 1000}, 250, 20},
		{"tightest of all four", 1, Limits{ProjectRPM: 30, ProjectTPM: 1e6, WorkspaceRPM: 100, WorkspaceTPM: 1e6}, 10, 30},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lim := New(newClock().now)
			var admitted, refused atomic.Int64
			var wg sync.WaitGroup
			for g := range 400 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					l := c.limits
					l.ProjectID, l.WorkspaceID = int64(g)%c.projects+1, 7
					_, res := lim.Admit(l, c.tokens)
					if res.Allowed {
						admitted.Add(1)
					} else {
						refused.Add(1)
					}
				}()
			}
			wg.Wait()
			if got := admitted.Load(); got != c.want {
				t.Errorf("admitted %d of 400, want exactly %d", got, c.want)
			}
		})
	}
}

// TestRetryAfterIsWhenARetrySucceeds ensures a refused request is told to wait exactly as long
// as it must: refused a moment before, admitted at that time; and that the previous minute's
// count slides out gradually rather than at once.
func TestRetryAfterIsWhenARetrySucceeds(t *testing.T) {
	clk := newClock()
	lim := New(clk.now)
	l := Limits{ProjectID: 1, WorkspaceID: 1, ProjectRPM: 10}
	clk.add(30 * time.Second)
	for range 10 {
		if _, res := lim.Admit(l, 0); !res.Allowed {
			t.Fatal("refused within the limit")
		}
	}
	_, res := lim.Admit(l, 0)
	if res.Allowed || res.Status.Remaining != 0 || res.Status.Limit != 10 || res.Status.Kind != Requests || res.Status.Scope != ProjectScope {
		t.Fatalf("11th request: %+v", res)
	}
	// Ten in the previous window's second half: one slides out every 6 s of the next window.
	if want := 30*time.Second + 6*time.Second; res.RetryAfter != want {
		t.Errorf("RetryAfter = %v, want %v", res.RetryAfter, want)
	}
	clk.add(res.RetryAfter - time.Millisecond)
	if _, r := lim.Admit(l, 0); r.Allowed {
		t.Error("admitted before RetryAfter")
	}
	clk.add(time.Millisecond)
	if _, r := lim.Admit(l, 0); !r.Allowed {
		t.Errorf("refused at RetryAfter: %+v", r)
	}
	// 18 s into the new window, 7/10 of the old count weighs, plus the one just admitted.
	clk.add(12 * time.Second)
	if st := lim.Peek(l); len(st) != 1 || st[0].Remaining != 10-7-1 || st[0].Reset != 42*time.Second {
		t.Errorf("Peek = %+v, want 2 remaining, reset in 42s", st)
	}
}

// TestTokensCorrectAtSettle ensures tpm counts the worst case at admission and the actual
// tokens after settle, that Cancel takes a request back whole, and that a worst case above the
// limit is admitted only into an empty window.
func TestTokensCorrectAtSettle(t *testing.T) {
	clk := newClock()
	lim := New(clk.now)
	l := Limits{ProjectID: 1, WorkspaceID: 2, ProjectTPM: 1000, WorkspaceRPM: 5}
	a, res := lim.Admit(l, 800)
	if !res.Allowed || res.Status.Kind != Tokens || res.Status.Remaining != 200 {
		t.Fatalf("first: %+v", res)
	}
	if _, res := lim.Admit(l, 300); res.Allowed {
		t.Fatal("admitted past the reservation")
	}
	a.Settle(100) // the request used far less than its worst case
	b, res := lim.Admit(l, 300)
	if !res.Allowed || res.Status.Remaining != 600 {
		t.Fatalf("after settle: %+v", res)
	}
	b.Cancel()
	st := lim.Peek(l)
	if len(st) != 2 || st[0].Kind != Tokens || st[0].Remaining != 900 || st[1].Kind != Requests || st[1].Remaining != 4 {
		t.Errorf("after cancel: %+v", st)
	}
	if _, res := lim.Admit(l, 5000); res.Allowed {
		t.Error("a worst case above the limit was admitted beside other tokens")
	}
	clk.add(2 * Window)
	c, res := lim.Admit(l, 5000)
	if !res.Allowed {
		t.Errorf("a worst case above the limit was refused in an empty window: %+v", res)
	}
	clk.add(2 * Window)
	c.Settle(1e15) // a settle after its windows passed counts nowhere
	if st := lim.Peek(l); st[0].Remaining != 1000 {
		t.Errorf("a late settle counted: %+v", st)
	}
}

// TestIdleSubjectsAreDropped ensures memory is bounded by the subjects active in the last two
// minutes: entries of idle ones go at the next sweep of their shard.
func TestIdleSubjectsAreDropped(t *testing.T) {
	clk := newClock()
	lim := New(clk.now)
	for p := range int64(5000) {
		lim.Admit(Limits{ProjectID: p, WorkspaceID: 1_000_000 + p, ProjectRPM: 10, WorkspaceTPM: 10}, 1)
	}
	if got := lim.entries(); got != 10000 {
		t.Fatalf("%d entries, want 10000", got)
	}
	clk.add(2*Window + time.Second)
	for p := range int64(nShards * 50) {
		lim.Admit(Limits{ProjectID: 1e9 + p, WorkspaceID: 1, ProjectRPM: 10}, 1)
	}
	if got := lim.entries(); got > nShards*50+1 {
		t.Errorf("%d entries after the idle ones expired, want at most %d", got, nShards*50+1)
	}
}

func (lim *Limiter) entries() int {
	n := 0
	for i := range lim.shards {
		lim.shards[i].mu.Lock()
		n += len(lim.shards[i].windows)
		lim.shards[i].mu.Unlock()
	}
	return n
}

// TestNeverOverWithinAWindow drives random interleavings of admissions, settles (at most the
// worst case, as real usage is), cancels and clock steps and checks, after every step, the
// invariant the limiter promises: the requests and tokens counted in one minute window never
// exceed the limits, and the sliding estimate never exceeds them either.
func TestNeverOverWithinAWindow(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		clk := newClock()
		lim := New(clk.now)
		l := Limits{ProjectID: 3, WorkspaceID: 4, ProjectRPM: 1 + rng.Int64N(20), WorkspaceTPM: 1 + rng.Int64N(5000)}
		type admitted struct {
			t      Ticket
			tokens int64
		}
		var open []admitted
		for step := range 2000 {
			switch op := rng.IntN(10); {
			case op < 6:
				tokens := rng.Int64N(2000)
				if tk, res := lim.Admit(l, tokens); res.Allowed {
					open = append(open, admitted{tk, min(tokens, l.WorkspaceTPM)})
				} else if res.RetryAfter <= 0 {
					t.Fatalf("seed %d step %d: refused without RetryAfter", seed, step)
				}
			case op < 8 && len(open) > 0:
				i := rng.IntN(len(open))
				if rng.IntN(4) == 0 {
					open[i].t.Cancel()
				} else {
					open[i].t.Settle(rng.Int64N(open[i].tokens + 1))
				}
				open = append(open[:i], open[i+1:]...)
			default:
				clk.add(time.Duration(rng.Int64N(int64(20 * time.Second))))
			}
			for _, k := range []key{{3, false}, {4, true}} {
				sh := &lim.shards[k.shard()]
				sh.mu.Lock()
				w := sh.windows[k]
				if w != nil {
					roll(w, clk.now().UnixMilli())
					e := clk.now().UnixMilli() - w.start
					if k.workspace && (w.curTok > l.WorkspaceTPM || estimate(w.prevTok, w.curTok, e) > l.WorkspaceTPM) {
						t.Fatalf("seed %d step %d: workspace tokens %+v over %d", seed, step, *w, l.WorkspaceTPM)
					}
					if !k.workspace && (w.curReq > l.ProjectRPM || estimate(w.prevReq, w.curReq, e) > l.ProjectRPM) {
						t.Fatalf("seed %d step %d: project requests %+v over %d", seed, step, *w, l.ProjectRPM)
					}
				}
				sh.mu.Unlock()
			}
		}
	}
}

// BenchmarkAdmit measures one admission and settle with all four limits set, from every core at
// once: across many projects (the shards keep them apart) and all on one project (its shard
// serialises them).
func BenchmarkAdmit(b *testing.B) {
	for _, bc := range []struct {
		name     string
		projects int64
	}{{"many projects", 1 << 12}, {"one project", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			lim := New(time.Now)
			var next atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := next.Add(1) % bc.projects
					l := Limits{ProjectID: id, WorkspaceID: id / 8, ProjectRPM: 1e9, ProjectTPM: 1e9, WorkspaceRPM: 1e9, WorkspaceTPM: 1e9}
					t, res := lim.Admit(l, 500)
					if !res.Allowed {
						b.Fatal(res.Message)
					}
					t.Settle(300)
				}
			})
		})
	}
}
