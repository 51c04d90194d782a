package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"time"
)

// The dashboard session is a signed cookie of its own, never a JWT: /api and the proxy accept
// only bearer tokens and keys, and the dashboard accepts only this cookie, so a token leaked from
// one surface is useless on the other. The signing key is derived from JWT_SECRET with a label,
// so rotating JWT_SECRET ends every dashboard session too (as the docs promise), while no value
// signed for the API verifies here.

const (
	sessionTTL = 7 * 24 * time.Hour
	// sessionLen is uid(8) + epoch(8) + expires(8) + session id(16).
	sessionLen = 40
	flashTTL   = 2 * time.Minute
)

// session is a signed-in browser.
type session struct {
	UserID int64
	// Epoch is the user's session_epoch when the cookie was issued; bumping it (a password
	// change) ends every session.
	Epoch   int64
	Expires time.Time
	// ID is random per sign-in; the CSRF token is derived from it.
	ID [16]byte
}

// cookies issues and verifies the session and flash cookies.
type cookies struct {
	key     []byte
	secure  bool
	name    string // session cookie name: __Host- prefixed when secure
	flash   string
	now     func() time.Time
	randSrc func([]byte) (int, error)
}

func newCookies(jwtSecret string, secure bool, now func() time.Time) *cookies {
	mac := hmac.New(sha256.New, []byte(jwtSecret))
	mac.Write([]byte("tokenguard dashboard session cookie v1"))
	c := &cookies{key: mac.Sum(nil), secure: secure, now: now, randSrc: rand.Read}
	// The __Host- prefix (Secure, Path=/, no Domain) stops a sibling subdomain from planting or
	// overwriting the cookie; browsers only accept it over https.
	if secure {
		c.name, c.flash = "__Host-tg_session", "__Host-tg_flash"
	} else {
		c.name, c.flash = "tg_session", "tg_flash"
	}
	return c
}

func (c *cookies) sign(label string, payload []byte) string {
	mac := hmac.New(sha256.New, c.key)
	mac.Write([]byte(label))
	mac.Write(payload)
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (c *cookies) open(label, value string) ([]byte, bool) {
	p, s, ok := strings.Cut(value, ".")
	if !ok {
		return nil, false
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p)
	sig, err2 := base64.RawURLEncoding.DecodeString(s)
	if err1 != nil || err2 != nil {
		return nil, false
	}
	mac := hmac.New(sha256.New, c.key)
	mac.Write([]byte(label))
	mac.Write(payload)
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return nil, false
	}
	return payload, true
}

// newSession starts a session for a user who just signed in.
func (c *cookies) newSession(userID, epoch int64) (session, error) {
	s := session{UserID: userID, Epoch: epoch, Expires: c.now().Add(sessionTTL)}
	if _, err := c.randSrc(s.ID[:]); err != nil {
		return session{}, err
	}
	return s, nil
}

func (c *cookies) setSession(w http.ResponseWriter, s session) {
	b := make([]byte, sessionLen)
	binary.BigEndian.PutUint64(b[0:], uint64(s.UserID))
	binary.BigEndian.PutUint64(b[8:], uint64(s.Epoch))
	binary.BigEndian.PutUint64(b[16:], uint64(s.Expires.Unix()))
	copy(b[24:], s.ID[:])
	http.SetCookie(w, &http.Cookie{
		Name: c.name, Value: c.sign("session", b), Path: "/",
		Expires: s.Expires, MaxAge: int(s.Expires.Sub(c.now()).Seconds()),
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode,
	})
}

func (c *cookies) clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: c.name, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode})
}

var errNoSession = errors.New("no valid session cookie")

// readSession returns the request's session if its cookie is present, authentic and unexpired.
// The caller still checks the user's epoch.
func (c *cookies) readSession(r *http.Request) (session, error) {
	ck, err := r.Cookie(c.name)
	if err != nil {
		return session{}, errNoSession
	}
	b, ok := c.open("session", ck.Value)
	if !ok || len(b) != sessionLen {
		return session{}, errNoSession
	}
	s := session{
		UserID:  int64(binary.BigEndian.Uint64(b[0:])),
		Epoch:   int64(binary.BigEndian.Uint64(b[8:])),
		Expires: time.Unix(int64(binary.BigEndian.Uint64(b[16:])), 0),
	}
	copy(s.ID[:], b[24:])
	if !c.now().Before(s.Expires) || s.UserID <= 0 {
		return session{}, errNoSession
	}
	return s, nil
}

// csrfToken is the session's anti-forgery token: forms send it as the "csrf" field and HTMX as
// the X-CSRF-Token header. It is bound to the session id, so it changes at every sign-in.
func (c *cookies) csrfToken(s session) string {
	mac := hmac.New(sha256.New, c.key)
	mac.Write([]byte("csrf"))
	mac.Write(s.ID[:])
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// checkCSRF reports whether r carries s's token in the header or the form.
func (c *cookies) checkCSRF(r *http.Request, s session) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	want := c.csrfToken(s)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// setFlash stores a one-shot message for the next page (after a POST-redirect).
func (c *cookies) setFlash(w http.ResponseWriter, kind, text string) {
	http.SetCookie(w, &http.Cookie{
		Name: c.flash, Value: c.sign("flash", []byte(kind+"\x00"+text)), Path: "/",
		MaxAge: int(flashTTL.Seconds()), HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode,
	})
}

// takeFlash reads and clears the flash message.
func (c *cookies) takeFlash(w http.ResponseWriter, r *http.Request) (kind, text string) {
	ck, err := r.Cookie(c.flash)
	if err != nil {
		return "", ""
	}
	http.SetCookie(w, &http.Cookie{Name: c.flash, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode})
	b, ok := c.open("flash", ck.Value)
	if !ok {
		return "", ""
	}
	kind, text, _ = strings.Cut(string(b), "\x00")
	switch kind {
	case "ok", "error", "warn":
		return kind, text
	}
	return "", ""
}
