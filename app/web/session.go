package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The dashboard session is a short-lived HS256 JWT in a cookie of its own. It is signed with a
// key derived from JWT_SECRET under a label and carries the dashboard audience, so rotating
// JWT_SECRET ends every dashboard session (as the docs promise) while the two surfaces stay
// apart: /api and the proxy accept only bearer tokens and keys (never this cookie, whose token
// does not verify with the API's key), and the dashboard accepts only this cookie (never a token
// from a header or the query string).

const (
	// sessionTTL is short; an active browser has its cookie renewed (renewAfter) so only idle
	// sessions end.
	sessionTTL = 12 * time.Hour
	renewAfter = 6 * time.Hour
	flashTTL   = 2 * time.Minute

	sessionIssuer   = "tokenguard"
	sessionAudience = "tokenguard-dashboard"
)

// sessionClaims are the dashboard token's claims.
type sessionClaims struct {
	Epoch int64  `json:"epoch"`
	SID   string `json:"sid"`
	jwt.RegisteredClaims
}

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

func (c *cookies) setSession(w http.ResponseWriter, s session) error {
	claims := sessionClaims{
		Epoch: s.Epoch,
		SID:   base64.RawURLEncoding.EncodeToString(s.ID[:]),
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    sessionIssuer,
			Audience:  jwt.ClaimStrings{sessionAudience},
			Subject:   strconv.FormatInt(s.UserID, 10),
			IssuedAt:  jwt.NewNumericDate(c.now()),
			ExpiresAt: jwt.NewNumericDate(s.Expires),
		},
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(c.key)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name: c.name, Value: tok, Path: "/",
		Expires: s.Expires, MaxAge: int(s.Expires.Sub(c.now()).Seconds()),
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode,
	})
	return nil
}

// renew re-issues a session that is past half its life, keeping its id (and so its CSRF token).
func (c *cookies) renew(w http.ResponseWriter, s session) {
	if s.Expires.Sub(c.now()) > sessionTTL-renewAfter {
		return
	}
	s.Expires = c.now().Add(sessionTTL)
	c.setSession(w, s)
}

func (c *cookies) clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: c.name, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode})
}

var errNoSession = errors.New("no valid session cookie")

// readSession returns the request's session if its cookie holds an authentic, unexpired
// dashboard token (HS256 only, the dashboard audience, exp required). The caller still checks
// the user's epoch.
func (c *cookies) readSession(r *http.Request) (session, error) {
	ck, err := r.Cookie(c.name)
	if err != nil || len(ck.Value) > 4096 {
		return session{}, errNoSession
	}
	var claims sessionClaims
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(sessionIssuer),
		jwt.WithAudience(sessionAudience),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(c.now),
	)
	if _, err := parser.ParseWithClaims(ck.Value, &claims, func(*jwt.Token) (any, error) { return c.key, nil }); err != nil {
		return session{}, errNoSession
	}
	uid, err := strconv.ParseInt(claims.Subject, 10, 64)
	sid, err2 := base64.RawURLEncoding.DecodeString(claims.SID)
	if err != nil || err2 != nil || uid <= 0 || len(sid) != 16 {
		return session{}, errNoSession
	}
	s := session{UserID: uid, Epoch: claims.Epoch, Expires: claims.ExpiresAt.Time}
	copy(s.ID[:], sid)
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
