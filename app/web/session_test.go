package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestSessionCookie ensures the session cookie is hardened when served over https, survives a
// round trip, and is refused when tampered with, expired, or signed with another secret.
func TestSessionCookie(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	secure := newCookies("0123456789abcdef0123456789abcdef", true, clock)

	s, err := secure.newSession(42, 3)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if err := secure.setSession(rec, s); err != nil {
		t.Fatal(err)
	}
	ck := rec.Result().Cookies()[0]
	if got, want := ck.Name, "__Host-tg_session"; got != want {
		t.Errorf("cookie name %q, want %q", got, want)
	}
	if !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" {
		t.Errorf("cookie flags: %+v", ck)
	}
	if plain := newCookies("0123456789abcdef0123456789abcdef", false, clock); plain.name != "tg_session" {
		t.Errorf("plain http cookie name %q", plain.name)
	}

	read := func(c *cookies, value string) (session, error) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.AddCookie(&http.Cookie{Name: c.name, Value: value})
		return c.readSession(r)
	}
	got, err := read(secure, ck.Value)
	if err != nil || got.UserID != 42 || got.Epoch != 3 || got.ID != s.ID {
		t.Fatalf("round trip: %+v, %v", got, err)
	}

	payload, sig, _ := strings.Cut(ck.Value, ".")
	flipped := []byte(payload)
	flipped[3] ^= 1
	other := newCookies("another-secret-another-secret-xx", true, clock)
	later := newCookies("0123456789abcdef0123456789abcdef", true, func() time.Time { return now.Add(sessionTTL) })
	for name, tc := range map[string]struct {
		c     *cookies
		value string
	}{
		"tampered payload": {secure, string(flipped) + "." + sig},
		"no signature":     {secure, payload},
		"other secret":     {other, ck.Value},
		"expired":          {later, ck.Value},
		"garbage":          {secure, "%%%.###"},
	} {
		if _, err := read(tc.c, tc.value); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	// The CSRF token is bound to the session: another session's token fails.
	token := secure.csrfToken(s)
	s2, _ := secure.newSession(42, 3)
	for _, tc := range []struct {
		token string
		sess  session
		ok    bool
	}{{token, s, true}, {token, s2, false}, {"", s, false}} {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(url.Values{"csrf": {tc.token}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if got := secure.checkCSRF(r, tc.sess); got != tc.ok {
			t.Errorf("checkCSRF(%q) = %v, want %v", tc.token, got, tc.ok)
		}
	}
}

// TestSafeNext ensures a post-sign-in redirect never leaves the site.
func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/invites/abc":         "/invites/abc",
		"/w/1/projects?x=1":    "/w/1/projects?x=1",
		"//evil.example/":      "",
		"/\\evil.example":      "",
		"https://evil.example": "",
		"javascript:alert(1)":  "",
		"":                     "",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSessionRenewal ensures an active browser's session is re-issued past half its life (with
// the same id, so its CSRF token stays valid) and a fresh one is left alone.
func TestSessionRenewal(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	c := newCookies("0123456789abcdef0123456789abcdef", false, func() time.Time { return now })
	s, _ := c.newSession(7, 0)

	now = now.Add(time.Hour)
	rec := httptest.NewRecorder()
	c.renew(rec, s)
	if got := len(rec.Result().Cookies()); got != 0 {
		t.Errorf("a 1-hour-old session was re-issued")
	}

	now = now.Add(6 * time.Hour)
	rec = httptest.NewRecorder()
	c.renew(rec, s)
	cks := rec.Result().Cookies()
	if len(cks) != 1 {
		t.Fatalf("a 7-hour-old session was not re-issued")
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(cks[0])
	got, err := c.readSession(r)
	if err != nil || got.ID != s.ID || !got.Expires.Equal(now.Add(sessionTTL).Truncate(time.Second)) {
		t.Errorf("renewed session %+v, %v", got, err)
	}
}
