package account

import (
	"crypto/sha256"
	"net/netip"
	"sync"
	"time"

	"tokenguard/app/apperr"
)

// ThrottleLimits bound failed sign-ins (and wrong current passwords). The design slows a
// password guesser without letting them lock the real user out; failures are counted three
// ways:
//
//   - per (account, address): PerPair failures within Window refuse that account from that
//     address until the window ends. A guesser at one address is stopped; the user elsewhere
//     is not.
//   - per address, over all accounts: PerIP failures within Window refuse the address for
//     every account, so one address cannot spray many accounts.
//   - per account, from anywhere: after AccountFree failures (each within Window of the last),
//     every further failure makes the account's next attempt wait AccountDelay, doubling up to
//     MaxAccountDelay. Attempts that come too soon are refused with Retry-After and are not
//     counted. This bounds a guesser with any number of addresses to about one guess per
//     MaxAccountDelay (2,880 a day at 30 s), and never refuses the account for longer than
//     that after its last failure.
//
// An address the account has signed in from within Trust skips the account-wide delay, so the
// real user's usual address stays fast during a distributed attack; the per-pair and
// per-address limits still apply to it. The trade-offs: a user on a new address during a
// sustained distributed attack competes with the guessers for the one attempt per delay, and a
// user who shares an address (NAT) with a guesser shares that address's limits. IPv6 addresses
// count by /64, the block one subscriber is usually given.
//
// The counts are in memory, per process: a restart forgets them, which costs an attacker a
// restart they cannot cause. Memory is bounded by maxEntries fixed-size records (keys are
// hashed); when full, expired records go first, then arbitrary ones down to 7/8 full, so a
// flood of distinct emails or addresses evicts a given record only after about maxEntries
// insertions (each of them a failed sign-in subject to the limits above) on average.
//
// Zero fields take DefaultThrottle's values.
type ThrottleLimits struct {
	// PerPair is the failures allowed per account and address within Window.
	PerPair int
	// PerIP is the failures allowed per address, over all accounts, within Window.
	PerIP int
	// Window is how long failures are remembered.
	Window time.Duration
	// AccountFree is the failures of an account, from anywhere, before it is delayed.
	AccountFree int
	// AccountDelay is the first delay; each further failure doubles it up to MaxAccountDelay.
	AccountDelay    time.Duration
	MaxAccountDelay time.Duration
	// Trust is how long a sign-in exempts its account and address from the account's delay.
	Trust time.Duration
}

// DefaultThrottle allows 5 failures per account and address and 20 per address every 15
// minutes; past 5 failures of an account, its delay grows from 1 s to at most 30 s; a sign-in
// is trusted for 30 days.
var DefaultThrottle = ThrottleLimits{
	PerPair: 5, PerIP: 20, Window: 15 * time.Minute,
	AccountFree: 5, AccountDelay: time.Second, MaxAccountDelay: 30 * time.Second,
	Trust: 30 * 24 * time.Hour,
}

// maxEntries bounds the throttle's records (about 64 bytes each with the map's overhead).
const maxEntries = 100_000

// record kinds, the first byte of a record's hashed key.
const (
	kindPair byte = iota
	kindAddr
	kindAccount
	kindTrusted
)

// record is one counter. For a pair or an address, n failures in the window that ends at until;
// for an account, n failures, the latest at last, forgotten at until; for a trusted pair,
// trusted until until.
type record struct {
	n           int
	last, until time.Time
}

type throttle struct {
	limits ThrottleLimits
	now    func() time.Time
	mu     sync.Mutex
	recs   map[[16]byte]record
}

func newThrottle(l ThrottleLimits, now func() time.Time) *throttle {
	d := DefaultThrottle
	l.PerPair, l.PerIP, l.AccountFree = orDefault(l.PerPair, d.PerPair), orDefault(l.PerIP, d.PerIP), orDefault(l.AccountFree, d.AccountFree)
	l.Window, l.Trust = orDefault(l.Window, d.Window), orDefault(l.Trust, d.Trust)
	l.AccountDelay, l.MaxAccountDelay = orDefault(l.AccountDelay, d.AccountDelay), orDefault(l.MaxAccountDelay, d.MaxAccountDelay)
	return &throttle{limits: l, now: now, recs: make(map[[16]byte]record)}
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// key hashes a record's identity to a fixed size, so long emails cost no more memory.
func key(kind byte, account, addr string) [16]byte {
	h := sha256.New()
	h.Write([]byte{kind})
	h.Write([]byte(account))
	h.Write([]byte{0})
	h.Write([]byte(addr))
	var k [16]byte
	copy(k[:], h.Sum(nil))
	return k
}

// addrKey is the part of a client address that counts as one address: an IPv6 /64.
func addrKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is6() || a.Is4In6() {
		return ip
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// check returns TOO_MANY_REQUESTS, with a Retry-After, when account may not try to sign in
// from ip now.
func (t *throttle) check(account, ip string) error {
	now := t.now()
	addr := addrKey(ip)
	t.mu.Lock()
	defer t.mu.Unlock()
	if r, ok := t.live(kindAddr, "", addr, now); ok && r.n >= t.limits.PerIP {
		return refusal("from your address", r.until.Sub(now))
	}
	if r, ok := t.live(kindPair, account, addr, now); ok && r.n >= t.limits.PerPair {
		return refusal("for this account from your address", r.until.Sub(now))
	}
	if _, trusted := t.live(kindTrusted, account, addr, now); trusted {
		return nil
	}
	if r, ok := t.live(kindAccount, account, "", now); ok {
		if wait := r.last.Add(t.delay(r.n)).Sub(now); wait > 0 {
			return refusal("for this account", wait)
		}
	}
	return nil
}

func refusal(scope string, wait time.Duration) error {
	secs := (wait + time.Second - 1).Truncate(time.Second)
	e := apperr.New(apperr.TooManyRequests, "Too many failed sign-in attempts %s; try again in %s", scope, secs)
	e.RetryAfter = wait
	return e
}

// delay is how long an account with n recent failures waits between attempts.
func (t *throttle) delay(n int) time.Duration {
	over := n - t.limits.AccountFree
	if over <= 0 {
		return 0
	}
	d := t.limits.AccountDelay
	for i := 1; i < over && d < t.limits.MaxAccountDelay; i++ {
		d *= 2
	}
	return min(d, t.limits.MaxAccountDelay)
}

// fail counts a failed sign-in of account from ip.
func (t *throttle) fail(account, ip string) {
	now := t.now()
	addr := addrKey(ip)
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range [][16]byte{key(kindPair, account, addr), key(kindAddr, "", addr)} {
		r := t.recs[k]
		if !now.Before(r.until) {
			r = record{until: now.Add(t.limits.Window)}
		}
		r.n++
		t.put(k, r, now)
	}
	k := key(kindAccount, account, "")
	r := t.recs[k]
	if !now.Before(r.until) {
		r = record{}
	}
	r.n++
	r.last, r.until = now, now.Add(t.limits.Window)
	t.put(k, r, now)
}

// succeed forgets the failures of account from ip and trusts that pair. The account's and the
// address's counts stay: a success elsewhere must not give a guesser fresh free attempts, and
// one valid account must not reset the count of an address guessing others.
func (t *throttle) succeed(account, ip string) {
	now := t.now()
	addr := addrKey(ip)
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.recs, key(kindPair, account, addr))
	t.put(key(kindTrusted, account, addr), record{until: now.Add(t.limits.Trust)}, now)
}

// live returns the record of (kind, account, addr) if it has not expired.
func (t *throttle) live(kind byte, account, addr string, now time.Time) (record, bool) {
	r, ok := t.recs[key(kind, account, addr)]
	return r, ok && now.Before(r.until)
}

// put stores r under k, making room first when the table is full.
func (t *throttle) put(k [16]byte, r record, now time.Time) {
	if _, ok := t.recs[k]; !ok && len(t.recs) >= maxEntries {
		for k, r := range t.recs {
			if !now.Before(r.until) {
				delete(t.recs, k)
			}
		}
		// Then arbitrary ones, down to 7/8 full, so the scans cost O(1) per insertion over
		// time. Map order is random, so no one record can be aimed at.
		for k := range t.recs {
			if len(t.recs) <= maxEntries-maxEntries/8 {
				break
			}
			delete(t.recs, k)
		}
	}
	t.recs[k] = r
}
