package api

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestSessionTokens ensures only an unexpired HS256 token signed with our secret, carrying exp
// and the user's current session epoch, opens the API; every forgery is 401.
func TestSessionTokens(t *testing.T) {
	a := newApp(t)
	alice := a.signup("alice@example.com")
	now := a.clock.Now()
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": "tokenguard", "sub": strconv.FormatInt(alice.id, 10), "session_epoch": 0,
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	sign := func(m jwt.SigningMethod, c jwt.MapClaims, key any) string {
		s, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	secret := []byte(testJWTSecret)
	valid := sign(jwt.SigningMethodHS256, claims(nil), secret)
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"tokenguard","sub":"999","session_epoch":0,"exp":`+strconv.FormatInt(now.Add(time.Hour).Unix(), 10)+`}`)) + "." + parts[2]
	noneTok := sign(jwt.SigningMethodNone, claims(nil), jwt.UnsafeAllowNoneSignatureType)

	cases := []struct {
		name, header string
		want         int
	}{
		{"valid HS256", "Bearer " + valid, http.StatusOK},
		{"token from login", "Bearer " + alice.token, http.StatusOK},
		{"alg none", "Bearer " + noneTok, http.StatusUnauthorized},
		{"alg none unsigned", "Bearer " + strings.Join([]string{base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)), parts[1], ""}, "."), http.StatusUnauthorized},
		{"HS512 with our secret", "Bearer " + sign(jwt.SigningMethodHS512, claims(nil), secret), http.StatusUnauthorized},
		{"HS384 with our secret", "Bearer " + sign(jwt.SigningMethodHS384, claims(nil), secret), http.StatusUnauthorized},
		{"tampered payload", "Bearer " + tampered, http.StatusUnauthorized},
		{"expired", "Bearer " + sign(jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Second).Unix() }), secret), http.StatusUnauthorized},
		{"missing exp", "Bearer " + sign(jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) { delete(c, "exp") }), secret), http.StatusUnauthorized},
		{"other secret", "Bearer " + sign(jwt.SigningMethodHS256, claims(nil), []byte("another-secret-another-secret!!")), http.StatusUnauthorized},
		{"stale session epoch", "Bearer " + sign(jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) { c["session_epoch"] = 7 }), secret), http.StatusUnauthorized},
		{"unknown user", "Bearer " + sign(jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) { c["sub"] = "424242" }), secret), http.StatusUnauthorized},
		{"garbage", "Bearer not.a.jwt", http.StatusUnauthorized},
		{"no scheme", valid, http.StatusUnauthorized},
		{"none", "", http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := a.call("", http.MethodGet, "/api/me", nil, "Authorization", tc.header)
			if got, want := r.status, tc.want; got != want {
				t.Fatalf("status = %d, want %d (%s)", got, want, r.body)
			}
			if tc.want == http.StatusUnauthorized {
				if got, want := r.errCode(), "UNAUTHORIZED"; got != want {
					t.Errorf("code = %q, want %q", got, want)
				}
			}
		})
	}

	t.Run("session expires after its TTL", func(t *testing.T) {
		a.clock.Add(13 * time.Hour)
		defer a.clock.Add(-13 * time.Hour)
		if got := alice.call(http.MethodGet, "/api/me", nil).status; got != http.StatusUnauthorized {
			t.Fatalf("status = %d, want 401", got)
		}
	})
	t.Run("a cookie is never a credential", func(t *testing.T) {
		r := a.call("", http.MethodGet, "/api/me", nil, "Cookie", "session="+valid+"; token="+valid)
		if got, want := r.status, http.StatusUnauthorized; got != want {
			t.Fatalf("status = %d, want %d", got, want)
		}
	})
}

// TestSignupValidation ensures bad sign-up input gets a clear 400 and an existing email 409.
func TestSignupValidation(t *testing.T) {
	a := newApp(t)
	a.signup("taken@example.com")
	cases := []struct {
		name string
		body any
		want int
		msg  string
	}{
		{"password over 72 bytes", map[string]any{"email": "a@example.com", "password": strings.Repeat("p", 73), "name": "A"}, 400, "72"},
		{"72 multi-byte runes over 72 bytes", map[string]any{"email": "a@example.com", "password": strings.Repeat("é", 40), "name": "A"}, 400, "72"},
		{"password under 8", map[string]any{"email": "a@example.com", "password": "short", "name": "A"}, 400, "8"},
		{"bad email", map[string]any{"email": "not-an-email", "password": "long enough pw", "name": "A"}, 400, "email"},
		{"email with display name", map[string]any{"email": "Bob <b@example.com>", "password": "long enough pw", "name": "A"}, 400, "email"},
		{"duplicate email, other case", map[string]any{"email": "TAKEN@example.com", "password": "long enough pw", "name": "A"}, 409, "exists"},
		{"unknown field", map[string]any{"email": "a@example.com", "password": "long enough pw", "name": "A", "admin": true}, 400, "admin"},
		{"wrong type", `{"email":"a@example.com","password":12345678,"name":"A"}`, 400, "password"},
		{"not JSON", `{"email":`, 400, "JSON"},
		{"two objects", `{"email":"a@example.com","password":"long enough pw"}{}`, 400, "one JSON object"},
		{"empty body", ``, 400, "JSON object"},
		{"exactly 72 bytes", map[string]any{"email": "ok72@example.com", "password": strings.Repeat("p", 72), "name": "A"}, 201, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := a.call("", http.MethodPost, "/api/auth/signup", tc.body)
			if got, want := r.status, tc.want; got != want {
				t.Fatalf("status = %d, want %d (%s)", got, want, r.body)
			}
			if tc.msg != "" && !strings.Contains(string(r.body), tc.msg) {
				t.Errorf("body %s does not mention %q", r.body, tc.msg)
			}
		})
	}
	t.Run("body over the limit", func(t *testing.T) {
		r := a.call("", http.MethodPost, "/api/auth/signup", `{"name":"`+strings.Repeat("x", DefaultMaxBodyBytes)+`"}`)
		if got, want := r.status, http.StatusRequestEntityTooLarge; got != want {
			t.Fatalf("status = %d, want %d", got, want)
		}
	})
}

// TestSignupClosed ensures ALLOW_SIGNUP=false closes self-signup while invitees can still get an
// account through SignupInvited.
func TestSignupClosed(t *testing.T) {
	a := newApp(t, withSignupClosed())
	r := a.call("", http.MethodPost, "/api/auth/signup", map[string]any{"email": "x@example.com", "password": "long enough pw", "name": "X"})
	if got, want := r.status, http.StatusForbidden; got != want {
		t.Fatalf("status = %d, want %d (%s)", got, want, r.body)
	}
	s, err := a.acct.SignupInvited(t.Context(), accountSignup("x@example.com"), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if got := a.call(s.Token, http.MethodGet, "/api/me", nil).status; got != http.StatusOK {
		t.Fatalf("invited user's session: status %d", got)
	}
}

// TestLoginThrottle ensures failed sign-ins are limited per account and per IP, and that an
// unknown email and a wrong password are answered identically.
func TestLoginThrottle(t *testing.T) {
	a := newApp(t)
	alice := a.signup("alice@example.com")
	login := func(email, pass string) response {
		return a.call("", http.MethodPost, "/api/auth/login", map[string]any{"email": email, "password": pass})
	}
	unknown := login("nobody@example.com", "whatever pw")
	wrong := login(alice.email, "wrong password")
	if unknown.status != http.StatusUnauthorized || string(unknown.body) != string(wrong.body) {
		t.Fatalf("unknown email %s vs wrong password %s: want identical 401s", unknown, wrong)
	}
	if got := login(alice.email, alice.pass).status; got != http.StatusOK {
		t.Fatalf("correct login: %d", got)
	}

	// Five failures lock the account from that address, even against the right password.
	for i := 0; i < 5; i++ {
		if got := login(alice.email, "wrong password").status; got != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d", i+1, got)
		}
	}
	r := login("ALICE@example.com", alice.pass)
	if got, want := r.status, http.StatusTooManyRequests; got != want {
		t.Fatalf("locked account: status %d, want %d (%s)", got, want, r.body)
	}
	if got, want := r.errCode(), "TOO_MANY_REQUESTS"; got != want {
		t.Errorf("code = %q, want %q", got, want)
	}
	a.clock.Add(16 * time.Minute)
	if got := login(alice.email, alice.pass).status; got != http.StatusOK {
		t.Fatalf("after the window: status %d, want 200", got)
	}

	// Twenty failures from one IP over many accounts lock the IP for everyone.
	bob := a.signup("bob@example.com")
	for i := 0; i < 20; i++ {
		login("guess"+strconv.Itoa(i)+"@example.com", "wrong password")
	}
	if got, want := login(bob.email, bob.pass).status, http.StatusTooManyRequests; got != want {
		t.Fatalf("locked IP: status %d, want %d", got, want)
	}
}

// TestPasswordChangeRevokesSessions ensures a password change ends every earlier session.
func TestPasswordChangeRevokesSessions(t *testing.T) {
	a := newApp(t)
	alice := a.signup("alice@example.com")
	var second struct{ Token string }
	a.mustJSON(a.call("", http.MethodPost, "/api/auth/login", map[string]any{"email": alice.email, "password": alice.pass}), 200, &second)

	if r := alice.call(http.MethodPost, "/api/auth/password", map[string]any{"currentPassword": "wrong one!", "newPassword": "a new password"}); r.status != http.StatusUnauthorized {
		t.Fatalf("wrong current password: %s", r)
	}
	var changed struct{ Token string }
	a.mustJSON(alice.call(http.MethodPost, "/api/auth/password", map[string]any{"currentPassword": alice.pass, "newPassword": "a new password"}), 200, &changed)

	for _, old := range []string{alice.token, second.Token} {
		if got := a.call(old, http.MethodGet, "/api/me", nil).status; got != http.StatusUnauthorized {
			t.Errorf("old session after password change: status %d, want 401", got)
		}
	}
	if got := a.call(changed.Token, http.MethodGet, "/api/me", nil).status; got != http.StatusOK {
		t.Errorf("new session: status %d, want 200", got)
	}
	if got := a.call("", http.MethodPost, "/api/auth/login", map[string]any{"email": alice.email, "password": alice.pass}).status; got != http.StatusUnauthorized {
		t.Errorf("old password: status %d, want 401", got)
	}
	if got := a.call("", http.MethodPost, "/api/auth/login", map[string]any{"email": alice.email, "password": "a new password"}).status; got != http.StatusOK {
		t.Errorf("new password: status %d, want 200", got)
	}
}

// TestMe ensures /api/me names the user and every workspace with their role.
func TestMe(t *testing.T) {
	a := newApp(t)
	alice := a.signup("alice@example.com")
	bob := a.signup("bob@example.com")
	a.addMember(bob.ws, alice, "admin")
	var me struct {
		User       struct{ Email string }
		Workspaces []struct {
			ID   int64
			Name string
			Role string
		}
	}
	a.mustJSON(alice.call(http.MethodGet, "/api/me", nil), 200, &me)
	if got, want := me.User.Email, "alice@example.com"; got != want {
		t.Errorf("email = %q, want %q", got, want)
	}
	if len(me.Workspaces) != 2 || me.Workspaces[0].ID != alice.ws || me.Workspaces[0].Role != "owner" ||
		me.Workspaces[1].ID != bob.ws || me.Workspaces[1].Role != "admin" {
		t.Errorf("workspaces = %+v, want own (owner) then bob's (admin)", me.Workspaces)
	}
}
