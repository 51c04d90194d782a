package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"tokenguard/app/account"
)

// TestSessionsEnd ensures a dashboard session ends on the server, not only in the browser: a copy
// of the cookie taken before signing out (or before a password change) opens no page and can post
// no form afterwards, while a fresh sign-in works again.
func TestSessionsEnd(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, app *testApp, c *client)
	}{
		{"sign-out", func(t *testing.T, app *testApp, c *client) {
			if r := c.post("/logout", nil); r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
				t.Fatalf("sign out: %d to %q", r.Status, r.Header.Get("Location"))
			}
			if r := c.get("/login"); !strings.Contains(r.Body, "You are signed out.") {
				t.Error("the sign-in page does not say the user is signed out")
			}
		}},
		{"password change", func(t *testing.T, app *testApp, c *client) {
			u, err := app.DB.UserByEmail(context.Background(), "ada@example.com")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := app.Accounts.ChangePassword(context.Background(), account.Actor{UserID: u.ID}, "correct horse battery", "a new good password"); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := newApp(t)
			c := app.client(t)
			ws := c.signup("Ada", "ada@example.com")
			base, _ := url.Parse(app.URL)
			captured := c.http.Jar.Cookies(base)
			csrf := c.csrf
			if r := c.get(ws + "/usage"); r.Status != http.StatusOK {
				t.Fatalf("signed in: GET usage = %d", r.Status)
			}
			tc.end(t, app, c)

			// An attacker's browser holding the captured cookie and the form token.
			stolen := app.client(t)
			stolen.http.Jar.SetCookies(base, captured)
			stolen.csrf = csrf
			if r := stolen.get(ws + "/usage"); r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/login?next="+url.QueryEscape(ws+"/usage") {
				t.Errorf("old cookie, GET usage: %d to %q, want 303 to sign-in", r.Status, r.Header.Get("Location"))
			}
			stolen.http.Jar.SetCookies(base, captured)
			if r := stolen.post(ws+"/projects", url.Values{"name": {"ghost"}}); r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
				t.Errorf("old cookie, POST project: %d to %q, want 303 to sign-in", r.Status, r.Header.Get("Location"))
			}
			var n int
			app.DB.Read.QueryRow(`SELECT count(*) FROM projects`).Scan(&n)
			if n != 0 {
				t.Error("the old cookie created a project")
			}
		})
	}
}
