// Package ratelimit owns the per-minute request and token limits of projects and workspaces
// (DESIGN §7 rpmLimit, tpmLimit, RATE_LIMITED), held in memory.
//
// Each limited project or workspace has a sliding-window counter: the counts of the current
// one-minute window (aligned to the minute) and of the one before, the older one weighted by how
// much of it still lies within the last 60 seconds. A request is admitted while that estimate
// plus its own cost stays within the limit. Against the alternatives: a fixed window lets a
// client spend two limits within a second across a window edge; GCRA and token buckets refill
// continuously, so a client idle for a minute may send a full burst and then one more request
// per refill interval, well over the limit within a minute; a log of timestamps is exact but
// costs memory per request. The sliding-window counter is two integers per limit, is exact for
// a burst within one window (admitted = limit), and lets a token reservation be corrected at
// settle by adjusting the window it was counted in.
//
// Memory: only subjects with a limit have an entry, and an entry whose windows have both
// passed is dropped by a sweep each shard runs at most once a minute. Subjects are spread over
// shards, each with its own mutex, so requests of different projects rarely contend; a request
// locks at most its project's and its workspace's shards, in shard order, so its check-and-count
// across both is atomic.
package ratelimit

import (
	"fmt"
	"sync"
	"time"
)

// Window is the length of a rate-limit window.
const Window = time.Minute

const windowMs = int64(Window / time.Millisecond)

// maxCount bounds every counter, so sums and the window weighting never overflow.
const maxCount = 1 << 40

// Limits are the per-minute limits a request is held to; 0 is no limit.
type Limits struct {
	ProjectID, WorkspaceID     int64
	ProjectRPM, ProjectTPM     int64
	WorkspaceRPM, WorkspaceTPM int64
}

// Any reports whether any limit applies: with none, Admit is never needed.
func (l Limits) Any() bool {
	return l.ProjectRPM > 0 || l.ProjectTPM > 0 || l.WorkspaceRPM > 0 || l.WorkspaceTPM > 0
}

// Scope says whose limit a Status is.
type Scope string

// Kind says what a limit counts.
type Kind string

const (
	ProjectScope   Scope = "project"
	WorkspaceScope Scope = "workspace"
	Requests       Kind  = "requests"
	Tokens         Kind  = "tokens"
)

// Status is one limit's state: the limit, what is left of it in the sliding window, and the time
// until the current window ends (when the counts start to decay).
type Status struct {
	Scope     Scope
	Kind      Kind
	Limit     int64
	Remaining int64
	Reset     time.Duration
}

// Result is Admit's answer.
type Result struct {
	// Allowed is false when the request must be refused with RATE_LIMITED.
	Allowed bool
	// Status is the limit to report in the RateLimit-* headers: the one with the least room
	// left, or the one that refused the request. Limit is 0 when no limit applies.
	Status Status
	// RetryAfter is, when refused, how long until the same request would be admitted if
	// nothing else were counted meanwhile.
	RetryAfter time.Duration
	// Message names the limit that refused the request.
	Message string
}

// Limiter holds the windows. It is safe for concurrent use.
type Limiter struct {
	now    func() time.Time
	shards [nShards]shard
}

const nShards = 64

type shard struct {
	mu      sync.Mutex
	windows map[key]*window
	sweepAt int64
	_       [64]byte // keeps shards' mutexes off each other's cache lines
}

type key struct {
	id        int64
	workspace bool
}

// window is one subject's counts: start is the current window's start (unix ms); cur counts it
// and prev the window before.
type window struct {
	start           int64
	prevReq, curReq int64
	prevTok, curTok int64
}

// New returns an empty limiter reading the time from now (time.Now in production).
func New(now func() time.Time) *Limiter {
	l := &Limiter{now: now}
	for i := range l.shards {
		l.shards[i].windows = map[key]*window{}
	}
	return l
}

func (k key) shard() int {
	h := uint64(k.id) * 0x9E3779B97F4A7C15
	if k.workspace {
		h ^= 0xC2B2AE3D27D4EB4F
	}
	return int(h >> 58) // top 6 bits: nShards = 64
}

// subject is one of a request's two subjects during Admit.
type subject struct {
	k        key
	rpm, tpm int64
	scope    Scope
}

// Ticket is an admitted request's count. Settle or Cancel it exactly once; the zero Ticket
// (no limit applied) does nothing.
type Ticket struct {
	lim   *Limiter
	start int64 // the window the request was counted in
	subs  [2]counted
}

type counted struct {
	k      key
	ok     bool  // the subject has a limit, so the request was counted against it
	tpm    bool  // the subject has a tpm limit
	tokens int64 // tokens counted against that limit
}

// Admit decides on a request held to l that may use up to tokens tokens (its worst case), and
// counts it when admitted: one request against each rpm limit and the tokens against each tpm
// limit. A worst case above a tpm limit counts as the whole limit, so such a request is
// admitted when nothing else is counted rather than never. A refused request counts nothing.
func (lim *Limiter) Admit(l Limits, tokens int64) (Ticket, Result) {
	if !l.Any() {
		return Ticket{}, Result{Allowed: true}
	}
	tokens = min(max(tokens, 0), maxCount)
	subs := [2]subject{
		{key{l.ProjectID, false}, l.ProjectRPM, l.ProjectTPM, ProjectScope},
		{key{l.WorkspaceID, true}, l.WorkspaceRPM, l.WorkspaceTPM, WorkspaceScope},
	}
	now := lim.now().UnixMilli()
	start := now - mod(now, windowMs)
	a, b := lim.lock(subs)
	defer lim.unlock(a, b)

	var ws [2]*window
	best := Result{Allowed: true}
	bestFrac := 2.0
	for i, s := range subs {
		if s.rpm <= 0 && s.tpm <= 0 {
			continue
		}
		w := lim.window(s.k, now, start)
		ws[i] = w
		for _, c := range [2]struct {
			kind        Kind
			limit, cost int64
			prev, cur   int64
		}{{Requests, s.rpm, 1, w.prevReq, w.curReq}, {Tokens, s.tpm, min(tokens, s.tpm), w.prevTok, w.curTok}} {
			if c.limit <= 0 {
				continue
			}
			elapsed := now - start
			est := estimate(c.prev, c.cur, elapsed)
			st := Status{Scope: s.scope, Kind: c.kind, Limit: c.limit, Reset: ms(windowMs - elapsed)}
			if est+c.cost > c.limit {
				wait := retryWait(c.prev, c.cur, c.cost, c.limit, elapsed)
				if best.Allowed || wait > best.RetryAfter {
					st.Reset = wait
					best = Result{Status: st, RetryAfter: wait, Message: message(s.scope, c.kind, c.limit)}
				}
				continue
			}
			st.Remaining = c.limit - est - c.cost
			if frac := float64(st.Remaining) / float64(c.limit); best.Allowed && frac < bestFrac {
				best.Status, bestFrac = st, frac
			}
		}
	}
	if !best.Allowed {
		return Ticket{}, best
	}
	t := Ticket{lim: lim, start: start}
	for i, s := range subs {
		w := ws[i]
		if w == nil {
			continue
		}
		t.subs[i] = counted{k: s.k, ok: true}
		if s.rpm > 0 {
			w.curReq = min(w.curReq+1, maxCount)
		}
		if s.tpm > 0 {
			t.subs[i].tpm, t.subs[i].tokens = true, min(tokens, s.tpm)
			w.curTok = min(w.curTok+t.subs[i].tokens, maxCount)
		}
	}
	return t, best
}

// Settle corrects the tokens counted at admission to actual, the tokens the request really
// used, in the window it was counted in (no longer counted once that window has passed).
func (t Ticket) Settle(actual int64) { t.adjust(0, min(max(actual, 0), maxCount)) }

// Cancel takes back the whole count of a request that was not sent after all (refused by a
// later gate).
func (t Ticket) Cancel() { t.adjust(-1, 0) }

func (t Ticket) adjust(reqDelta, actual int64) {
	if t.lim == nil {
		return
	}
	now := t.lim.now().UnixMilli()
	for _, c := range t.subs {
		if !c.ok || (reqDelta == 0 && !c.tpm) {
			continue
		}
		sh := &t.lim.shards[c.k.shard()]
		sh.mu.Lock()
		if w := sh.windows[c.k]; w != nil {
			roll(w, now)
			tokDelta := int64(0)
			if c.tpm {
				tokDelta = actual - c.tokens
			}
			switch t.start {
			case w.start:
				w.curReq = clamp(w.curReq + reqDelta)
				w.curTok = clamp(w.curTok + tokDelta)
			case w.start - windowMs:
				w.prevReq = clamp(w.prevReq + reqDelta)
				w.prevTok = clamp(w.prevTok + tokDelta)
			}
		}
		sh.mu.Unlock()
	}
}

// Peek returns the state of every limit of l without counting anything: requests first, the
// project before the workspace; limits that are 0 are left out.
func (lim *Limiter) Peek(l Limits) []Status {
	var out []Status
	now := lim.now().UnixMilli()
	start := now - mod(now, windowMs)
	for _, s := range [2]subject{
		{key{l.ProjectID, false}, l.ProjectRPM, l.ProjectTPM, ProjectScope},
		{key{l.WorkspaceID, true}, l.WorkspaceRPM, l.WorkspaceTPM, WorkspaceScope},
	} {
		if s.rpm <= 0 && s.tpm <= 0 {
			continue
		}
		sh := &lim.shards[s.k.shard()]
		sh.mu.Lock()
		var w window
		if p := sh.windows[s.k]; p != nil {
			roll(p, now)
			w = *p
		}
		sh.mu.Unlock()
		elapsed := now - start
		for _, c := range [2]struct {
			kind      Kind
			limit     int64
			prev, cur int64
		}{{Requests, s.rpm, w.prevReq, w.curReq}, {Tokens, s.tpm, w.prevTok, w.curTok}} {
			if c.limit > 0 {
				out = append(out, Status{Scope: s.scope, Kind: c.kind, Limit: c.limit,
					Remaining: max(0, c.limit-estimate(c.prev, c.cur, elapsed)), Reset: ms(windowMs - elapsed)})
			}
		}
	}
	return out
}

// lock locks the shards of subs' subjects that have a limit, in shard order, and returns
// their indices (-1 for none) for unlock.
func (lim *Limiter) lock(subs [2]subject) (a, b int) {
	a, b = -1, -1
	for _, s := range subs {
		if s.rpm <= 0 && s.tpm <= 0 {
			continue
		}
		if i := s.k.shard(); a < 0 {
			a = i
		} else if i != a {
			b = i
		}
	}
	if b >= 0 && b < a {
		a, b = b, a
	}
	if a >= 0 {
		lim.shards[a].mu.Lock()
	}
	if b >= 0 {
		lim.shards[b].mu.Lock()
	}
	return a, b
}

func (lim *Limiter) unlock(a, b int) {
	if b >= 0 {
		lim.shards[b].mu.Unlock()
	}
	if a >= 0 {
		lim.shards[a].mu.Unlock()
	}
}

// window returns k's window rolled to now, creating it, and sweeps the shard when due. Called
// with k's shard locked.
func (lim *Limiter) window(k key, now, start int64) *window {
	sh := &lim.shards[k.shard()]
	if now >= sh.sweepAt {
		for wk, w := range sh.windows {
			if w.start < start-windowMs {
				delete(sh.windows, wk)
			}
		}
		sh.sweepAt = now + windowMs
	}
	w := sh.windows[k]
	if w == nil {
		w = &window{start: start}
		sh.windows[k] = w
	}
	roll(w, now)
	return w
}

// roll moves w to the window containing now.
func roll(w *window, now int64) {
	start := now - mod(now, windowMs)
	switch w.start {
	case start:
	case start - windowMs:
		w.prevReq, w.curReq, w.prevTok, w.curTok = w.curReq, 0, w.curTok, 0
		w.start = start
	default:
		if w.start < start {
			*w = window{start: start}
		}
	}
}

// estimate is the count within the last minute: the current window's, plus the previous one's
// weighted by the part of it still inside the minute (rounded up, so it never under-counts).
func estimate(prev, cur, elapsed int64) int64 {
	return cur + (prev*(windowMs-elapsed)+windowMs-1)/windowMs
}

// retryWait is how long until estimate + cost ≤ limit with the counts as they are: within this
// window, once enough of prev has slid out; else in the next, where cur has become the
// previous window. cost ≤ limit.
func retryWait(prev, cur, cost, limit, elapsed int64) time.Duration {
	if room := limit - cur - cost; room >= 0 && prev > 0 {
		// prev·(W−e′)/W ≤ room  ⇔  e′ ≥ W − room·W/prev.
		at := windowMs - room*windowMs/prev
		return ms(max(at-elapsed, 1))
	}
	// In the next window: cur·(W−g)/W + cost ≤ limit  ⇔  g ≥ W − (limit−cost)·W/cur.
	g := int64(0)
	if cur > 0 {
		g = max(0, windowMs-(limit-cost)*windowMs/cur)
	}
	return ms(windowMs - elapsed + g)
}

func message(s Scope, k Kind, limit int64) string {
	return fmt.Sprintf("The %s's limit of %d %s per minute is reached", s, limit, k)
}

func ms(v int64) time.Duration { return time.Duration(v) * time.Millisecond }

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

func clamp(v int64) int64 { return min(max(v, 0), maxCount) }
