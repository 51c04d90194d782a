package account

import (
	"sync"
	"time"

	"tokenguard/app/apperr"
)

// ThrottleLimits bounds failed sign-ins: at most PerAccount failures for one email and PerIP
// failures from one client IP within Window. Zero fields take DefaultThrottle's values.
type ThrottleLimits struct {
	PerAccount int
	PerIP      int
	Window     time.Duration
}

// DefaultThrottle allows 5 failures per account and 20 per IP every 15 minutes.
var DefaultThrottle = ThrottleLimits{PerAccount: 5, PerIP: 20, Window: 15 * time.Minute}

// throttle counts failures in memory in fixed windows. It is per process: a restart forgets it,
// which costs an attacker a restart they cannot cause.
type throttle struct {
	limits ThrottleLimits
	now    func() time.Time
	mu     sync.Mutex
	counts map[string]*window
}

type window struct {
	n     int
	until time.Time
}

// maxEntries bounds memory under a flood of distinct emails or IPs; expired entries are pruned
// first when it is reached.
const maxEntries = 100_000

func newThrottle(l ThrottleLimits, now func() time.Time) *throttle {
	if l.PerAccount <= 0 {
		l.PerAccount = DefaultThrottle.PerAccount
	}
	if l.PerIP <= 0 {
		l.PerIP = DefaultThrottle.PerIP
	}
	if l.Window <= 0 {
		l.Window = DefaultThrottle.Window
	}
	return &throttle{limits: l, now: now, counts: make(map[string]*window)}
}

func (t *throttle) over(key string, limit int, now time.Time) bool {
	w := t.counts[key]
	return w != nil && now.Before(w.until) && w.n >= limit
}

// check returns TOO_MANY_REQUESTS when the account or the IP is over its limit.
func (t *throttle) check(account, ip string) error {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.over("a:"+account, t.limits.PerAccount, now) || (ip != "" && t.over("i:"+ip, t.limits.PerIP, now)) {
		return apperr.New(apperr.TooManyRequests, "Too many failed sign-in attempts; try again in %d minutes", int(t.limits.Window/time.Minute))
	}
	return nil
}

func (t *throttle) fail(account, ip string) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.counts) >= maxEntries {
		for k, w := range t.counts {
			if !now.Before(w.until) {
				delete(t.counts, k)
			}
		}
	}
	t.add("a:"+account, now)
	if ip != "" {
		t.add("i:"+ip, now)
	}
}

func (t *throttle) add(key string, now time.Time) {
	w := t.counts[key]
	if w == nil || !now.Before(w.until) {
		if w == nil && len(t.counts) >= maxEntries {
			return // full of live entries: the ones already counted keep limiting
		}
		w = &window{until: now.Add(t.limits.Window)}
		t.counts[key] = w
	}
	w.n++
}

// succeed forgets an account's failures; the IP's stay, so one valid account cannot be used to
// reset the count of an IP guessing others.
func (t *throttle) succeed(account string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.counts, "a:"+account)
}
