package account

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"tokenguard/app/apperr"
)

// throttled is a Service whose throttle clock moves only when told, with one real user.
type throttled struct {
	*Service
	at    time.Time
	email string
}

const realPassword = "long enough pw" // mustSignup's

func newThrottled(t *testing.T) *throttled {
	t.Helper()
	s := &throttled{Service: newService(t, bcrypt.MinCost), at: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), email: "user@example.com"}
	s.throttle.now = func() time.Time { return s.at }
	mustSignup(t, s.Service, s.email)
	return s
}

// try signs in and returns the error code ("" on success) and the Retry-After of a refusal.
func (s *throttled) try(t *testing.T, password, ip string) (code string, retry time.Duration) {
	t.Helper()
	_, err := s.Login(context.Background(), s.email, password, ip)
	if err == nil {
		return "", 0
	}
	var e *apperr.Error
	if !errors.As(err, &e) {
		t.Fatalf("login from %s: %v", ip, err)
	}
	if e.Code == apperr.TooManyRequests && (e.RetryAfter <= 0 || e.RetryAfter > s.throttle.limits.Window) {
		t.Fatalf("refusal %v: Retry-After %v, want within the %v window", e, e.RetryAfter, s.throttle.limits.Window)
	}
	return e.Code, e.RetryAfter
}

// TestThrottleStopsOneAddressNotTheUser ensures a guesser at one address (or one IPv6 /64) is
// refused after a few failures, even with the right password, while the real user signs in at
// once from another address.
func TestThrottleStopsOneAddressNotTheUser(t *testing.T) {
	for _, c := range []struct {
		name     string
		attacker func(i int) string
	}{
		{"one IPv4 address", func(int) string { return "203.0.113.7" }},
		{"one IPv6 /64", func(i int) string { return fmt.Sprintf("2001:db8:1:2::%x", i+1) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newThrottled(t)
			evaluated := 0
			for i := range 50 {
				switch code, _ := s.try(t, fmt.Sprintf("guess %d", i), c.attacker(i)); code {
				case apperr.Unauthorized:
					evaluated++
				case apperr.TooManyRequests:
				default:
					t.Fatalf("guess %d: code %q", i, code)
				}
				s.at = s.at.Add(time.Second)
			}
			if got, want := evaluated, s.throttle.limits.PerPair; got != want {
				t.Errorf("%d of 50 guesses checked, want %d", got, want)
			}
			if code, _ := s.try(t, realPassword, c.attacker(99)); code != apperr.TooManyRequests {
				t.Errorf("the right password from the guesser's address: %q, want TOO_MANY_REQUESTS", code)
			}
			if code, retry := s.try(t, realPassword, "198.51.100.20"); code != "" {
				t.Fatalf("the real user from another address: %q (Retry-After %v), want signed in", code, retry)
			}
		})
	}
}

// TestThrottleSlowsManyAddresses ensures a guesser using a fresh address for every guess is held
// to the account-wide delay (about one guess per MaxAccountDelay), that the real user's usual
// address is not delayed, and that from a new address they wait at most MaxAccountDelay.
func TestThrottleSlowsManyAddresses(t *testing.T) {
	s := newThrottled(t)
	const usual = "198.51.100.20"
	if code, _ := s.try(t, realPassword, usual); code != "" {
		t.Fatalf("first sign-in: %q", code)
	}
	const span = 10 * time.Minute
	evaluated := 0
	for i := 0; s.at.Before(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).Add(span)); i++ {
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		switch code, retry := s.try(t, fmt.Sprintf("guess %d", i), ip); code {
		case apperr.Unauthorized:
			evaluated++
		case apperr.TooManyRequests:
			if retry > s.throttle.limits.MaxAccountDelay {
				t.Fatalf("guess %d: Retry-After %v, over the %v cap", i, retry, s.throttle.limits.MaxAccountDelay)
			}
		default:
			t.Fatalf("guess %d: code %q", i, code)
		}
		if i%20 == 0 {
			if code, _ := s.try(t, realPassword, usual); code != "" {
				t.Fatalf("the real user from their usual address during the attack: %q", code)
			}
		}
		s.at = s.at.Add(250 * time.Millisecond)
	}
	// The free failures, the doubling delays up to the cap (1+2+4+8+16 s), then one per cap.
	l := s.throttle.limits
	if max := l.AccountFree + 5 + int(span/l.MaxAccountDelay) + 1; evaluated > max {
		t.Errorf("%d guesses checked in %v from fresh addresses, want at most %d", evaluated, span, max)
	}

	code, retry := s.try(t, realPassword, "192.0.2.50")
	if code == apperr.TooManyRequests {
		s.at = s.at.Add(retry)
		code, _ = s.try(t, realPassword, "192.0.2.50")
	}
	if code != "" {
		t.Fatalf("the real user from a new address after Retry-After: %q", code)
	}
}

// TestThrottleMemoryIsBounded ensures a flood of distinct emails and addresses keeps the
// throttle's records at maxEntries, and that a full table still counts a new guesser.
func TestThrottleMemoryIsBounded(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	th := newThrottle(ThrottleLimits{}, func() time.Time { return now })
	for i := range maxEntries / 2 { // three records each: pair, address, account
		th.fail(fmt.Sprintf("user%d@example.com", i), fmt.Sprintf("2001:db8:%x::1", i))
	}
	if got := len(th.recs); got > maxEntries {
		t.Fatalf("%d records after a flood, want at most %d", got, maxEntries)
	}
	for range th.limits.PerPair {
		th.fail("victim@example.com", "203.0.113.7")
	}
	if th.check("victim@example.com", "203.0.113.7") == nil {
		t.Fatal("a guesser who came after the flood was not refused")
	}
}
