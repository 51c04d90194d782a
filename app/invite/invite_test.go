package invite_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"tokenguard/app/account"
	"tokenguard/app/invite"
	"tokenguard/app/mail/mailtest"
	"tokenguard/store"
)

// TestInviteMailCarriesWorkingLink is the whole story over real parts: an owner invites by
// email, a real SMTP server (STARTTLS + AUTH) receives a plain-text and HTML mail, the invitee
// follows the link from the mail, sees what they are joining, signs up and accepts through the
// API, and is a member at once with the invited role. No token is ever logged or recorded.
func TestInviteMailCarriesWorkingLink(t *testing.T) {
	smtp := mailtest.Start(t, mailtest.Options{StartTLS: true, User: "apikey", Pass: "SG.secret"})
	a := newApp(t, appOptions{smtp: smtp})
	owner := a.signup("owner@acme.test", "Olivia Owner")
	a.call(http.MethodPatch, path("/api/workspaces/%d", owner.Workspace), owner.Token,
		map[string]any{"name": "Acme <Prod>"}, http.StatusOK, nil)

	inv := a.invite(owner, owner.Workspace, "Dev@Example.com", "admin")
	if !strings.HasPrefix(inv.AcceptURL, a.srv.URL+"/invites/") {
		t.Errorf("acceptUrl = %q, want FRONTEND_URL + /invites/TOKEN", inv.AcceptURL)
	}
	if got, want := inv.Invite.Email, "dev@example.com"; got != want {
		t.Errorf("invite email = %q, want %q", got, want)
	}
	if d := time.Until(inv.Invite.ExpiresAt); d < 7*24*time.Hour-time.Minute || d > 7*24*time.Hour+time.Minute {
		t.Errorf("invite expires in %s, want 7 days", d)
	}

	msg := smtp.Wait(1, 10*time.Second)[0]
	if !msg.TLS || msg.AuthUser != "apikey" {
		t.Errorf("mail delivered tls=%v auth=%q, want STARTTLS and AUTH", msg.TLS, msg.AuthUser)
	}
	if got, want := strings.Join(msg.To, ","), "dev@example.com"; got != want {
		t.Errorf("mail to %q, want %q", got, want)
	}
	if !strings.Contains(msg.Subject, "Olivia Owner") || !strings.Contains(msg.Subject, "Acme <Prod>") {
		t.Errorf("subject %q does not name the inviter and workspace", msg.Subject)
	}
	textLink := linkRe.FindString(msg.Text)
	htmlLink := linkRe.FindString(msg.HTML)
	if textLink != inv.AcceptURL || htmlLink != inv.AcceptURL {
		t.Fatalf("links in mail: text %q, html %q; want both %q", textLink, htmlLink, inv.AcceptURL)
	}
	if !strings.Contains(msg.HTML, "Acme &lt;Prod&gt;") || strings.Contains(msg.HTML, "Acme <Prod>") {
		t.Errorf("HTML body does not escape the workspace name:\n%s", msg.HTML)
	}

	// The invitee follows the link from the mail.
	token := tokenOf(t, textLink)
	var preview struct {
		Invite map[string]any `json:"invite"`
	}
	a.call(http.MethodGet, "/api/invites/"+token, "", nil, http.StatusOK, &preview)
	want := map[string]any{"workspaceName": "Acme <Prod>", "inviterName": "Olivia Owner", "role": "admin",
		"email": "dev@example.com", "expiresAt": inv.Invite.ExpiresAt.UTC().Format(time.RFC3339)}
	if len(preview.Invite) != len(want) {
		t.Errorf("preview has fields %v, want exactly %v", preview.Invite, want)
	}
	for k, v := range want {
		if preview.Invite[k] != v {
			t.Errorf("preview %s = %v, want %v", k, preview.Invite[k], v)
		}
	}

	dev := a.signup("dev@example.com", "Dana Dev")
	var accepted struct {
		Workspace struct {
			ID   int64
			Name string
			Role string
		}
	}
	a.call(http.MethodPost, "/api/invites/"+token+"/accept", dev.Token, nil, http.StatusOK, &accepted)
	if accepted.Workspace.ID != owner.Workspace || accepted.Workspace.Role != "admin" {
		t.Errorf("accept answered %+v, want workspace %d as admin", accepted.Workspace, owner.Workspace)
	}
	// Added at once: the new admin can list the workspace's members and invites.
	a.call(http.MethodGet, path("/api/workspaces/%d/members", owner.Workspace), dev.Token, nil, http.StatusOK, nil)
	a.call(http.MethodGet, path("/api/workspaces/%d/invites", owner.Workspace), dev.Token, nil, http.StatusOK, nil)
	if got := a.role(dev, owner.Workspace); got != "admin" {
		t.Errorf("role after accept = %q, want admin", got)
	}

	if row := a.mailLog(func(m store.MailLog) bool { return m.Status != store.MailPending }); row.Status != store.MailSent || row.Kind != "invite" {
		t.Errorf("mail_log = %+v, want an invite recorded sent", row)
	}
	if a.countAudit(owner.Workspace, account.AuditMemberInvited) != 1 || a.countAudit(owner.Workspace, account.AuditInviteAccepted) != 1 {
		t.Errorf("audit = %+v, want one member_invited and one invite_accepted", a.audit(owner.Workspace))
	}
	a.noSecretLogged(token)
}

// TestInviteSurvivesSMTPOutage ensures an invite is created (201 with its accept URL) while the
// mail server is down, the mail is retried, and it is delivered with the same working link once
// the server is back.
func TestInviteSurvivesSMTPOutage(t *testing.T) {
	smtp := mailtest.Start(t, mailtest.Options{})
	smtp.Stop()
	a := newApp(t, appOptions{smtp: smtp})
	owner := a.signup("owner@acme.test", "Olivia")

	inv := a.invite(owner, owner.Workspace, "dev@example.com", "member")
	if inv.AcceptURL == "" {
		t.Fatal("no accept URL while SMTP is down")
	}
	row := a.mailLog(func(m store.MailLog) bool { return m.Attempts >= 2 })
	if row.Status != store.MailPending {
		t.Fatalf("while the server is down: %+v, want pending and retried", row)
	}

	smtp.Restart()
	msg := smtp.Wait(1, 10*time.Second)[0]
	if got := linkRe.FindString(msg.Text); got != inv.AcceptURL {
		t.Errorf("delivered link %q, want %q", got, inv.AcceptURL)
	}
	if row := a.mailLog(func(m store.MailLog) bool { return m.Status != store.MailPending }); row.Status != store.MailSent || row.Attempts < 3 {
		t.Errorf("after the outage: %+v, want sent after 3+ attempts", row)
	}
	dev := a.signup("dev@example.com", "Dana")
	a.call(http.MethodPost, "/api/invites/"+tokenOf(t, inv.AcceptURL)+"/accept", dev.Token, nil, http.StatusOK, nil)
	a.noSecretLogged(tokenOf(t, inv.AcceptURL))
}

// TestInviteMailGivesUp ensures a mail server that never comes back ends in "failed" after the
// bounded attempts, while the invite itself stays usable.
func TestInviteMailGivesUp(t *testing.T) {
	smtp := mailtest.Start(t, mailtest.Options{})
	smtp.Stop()
	a := newApp(t, appOptions{smtp: smtp, maxAttempts: 3})
	owner := a.signup("owner@acme.test", "Olivia")
	inv := a.invite(owner, owner.Workspace, "dev@example.com", "member")
	row := a.mailLog(func(m store.MailLog) bool { return m.Status != store.MailPending })
	if row.Status != store.MailFailed || row.Attempts != 3 || row.LastError == "" {
		t.Errorf("mail_log = %+v, want failed after 3 attempts with the error", row)
	}
	a.call(http.MethodGet, "/api/invites/"+tokenOf(t, inv.AcceptURL), "", nil, http.StatusOK, nil)
}

// TestInviteWithoutSMTP ensures invites work with no SMTP configured: the response carries the
// link and the mail is recorded skipped.
func TestInviteWithoutSMTP(t *testing.T) {
	a := newApp(t, appOptions{})
	owner := a.signup("owner@acme.test", "Olivia")
	inv := a.invite(owner, owner.Workspace, "dev@example.com", "member")
	if row := a.mailLog(func(m store.MailLog) bool { return m.Status != store.MailPending }); row.Status != store.MailSkipped {
		t.Errorf("mail_log = %+v, want skipped", row)
	}
	dev := a.signup("dev@example.com", "Dana")
	a.call(http.MethodPost, "/api/invites/"+tokenOf(t, inv.AcceptURL)+"/accept", dev.Token, nil, http.StatusOK, nil)
	if got := a.role(dev, owner.Workspace); got != "member" {
		t.Errorf("role = %q, want member", got)
	}
}

// TestConcurrentAcceptsJoinOnce ensures that many simultaneous accepts of one invite add exactly
// one membership and record exactly one acceptance; every other attempt gets 409.
func TestConcurrentAcceptsJoinOnce(t *testing.T) {
	a := newApp(t, appOptions{})
	owner := a.signup("owner@acme.test", "Olivia")
	token := tokenOf(t, a.invite(owner, owner.Workspace, "dev@example.com", "member").AcceptURL)
	dev := a.signup("dev@example.com", "Dana")

	const n = 8
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			statuses[i], _ = a.do(http.MethodPost, "/api/invites/"+token+"/accept", dev.Token, nil)
		}()
	}
	close(start)
	wg.Wait()
	ok, conflict := 0, 0
	for _, s := range statuses {
		switch s {
		case http.StatusOK:
			ok++
		case http.StatusConflict:
			conflict++
		}
	}
	if ok != 1 || conflict != n-1 {
		t.Errorf("statuses %v: want exactly one 200 and %d × 409", statuses, n-1)
	}
	var members int
	a.db.Read.QueryRow(`SELECT count(*) FROM memberships WHERE workspace_id = ? AND user_id = ?`, owner.Workspace, dev.ID).Scan(&members)
	if members != 1 {
		t.Errorf("%d memberships, want 1", members)
	}
	if got := a.countAudit(owner.Workspace, account.AuditInviteAccepted); got != 1 {
		t.Errorf("%d invite_accepted events, want 1", got)
	}
}

// TestRejectedTokens ensures every link that must not work is refused with its documented
// status and a message saying why, and adds no one.
func TestRejectedTokens(t *testing.T) {
	a := newApp(t, appOptions{})
	owner := a.signup("owner@acme.test", "Olivia")
	dev := a.signup("dev@example.com", "Dana")
	eve := a.signup("eve@example.com", "Eve")

	for _, tc := range []struct {
		name string
		// setup returns the token to try.
		setup   func(t *testing.T) string
		as      user
		status  int
		code    string
		message string
	}{
		{
			name: "expired",
			setup: func(t *testing.T) string {
				tok := tokenOf(t, a.invite(owner, owner.Workspace, "dev@example.com", "member").AcceptURL)
				a.clock.Advance(invite.TTL + time.Millisecond)
				return tok
			},
			as: dev, status: http.StatusConflict, code: "CONFLICT", message: "expired",
		},
		{
			name: "cancelled",
			setup: func(t *testing.T) string {
				inv := a.invite(owner, owner.Workspace, "dev@example.com", "member")
				a.call(http.MethodDelete, path("/api/workspaces/%d/invites/%d", owner.Workspace, inv.Invite.ID), owner.Token, nil, http.StatusNoContent, nil)
				return tokenOf(t, inv.AcceptURL)
			},
			as: dev, status: http.StatusConflict, code: "CONFLICT", message: "cancelled",
		},
		{
			name: "replaced by a resend",
			setup: func(t *testing.T) string {
				inv := a.invite(owner, owner.Workspace, "dev@example.com", "member")
				var again issued
				a.call(http.MethodPost, path("/api/workspaces/%d/invites/%d/resend", owner.Workspace, inv.Invite.ID), owner.Token, nil, http.StatusOK, &again)
				if again.AcceptURL == inv.AcceptURL {
					t.Fatal("resend kept the old link")
				}
				return tokenOf(t, inv.AcceptURL)
			},
			as: dev, status: http.StatusNotFound, code: "NOT_FOUND", message: "replaced",
		},
		{
			name: "another user's email",
			setup: func(t *testing.T) string {
				return tokenOf(t, a.invite(owner, owner.Workspace, "dev@example.com", "member").AcceptURL)
			},
			as: eve, status: http.StatusForbidden, code: "FORBIDDEN", message: "different email",
		},
		{
			name: "already accepted",
			setup: func(t *testing.T) string {
				tok := tokenOf(t, a.invite(owner, owner.Workspace, "dev@example.com", "member").AcceptURL)
				a.call(http.MethodPost, "/api/invites/"+tok+"/accept", dev.Token, nil, http.StatusOK, nil)
				a.db.Write.Exec(`DELETE FROM memberships WHERE workspace_id = ? AND user_id = ?`, owner.Workspace, dev.ID)
				return tok
			},
			as: dev, status: http.StatusConflict, code: "CONFLICT", message: "already been accepted",
		},
		{
			name:  "malformed",
			setup: func(t *testing.T) string { return "not-a-token" },
			as:    dev, status: http.StatusNotFound, code: "NOT_FOUND", message: "not found",
		},
		{
			name:  "well-formed but unknown",
			setup: func(t *testing.T) string { return strings.Repeat("A", 43) },
			as:    dev, status: http.StatusNotFound, code: "NOT_FOUND", message: "not found",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Each case starts with no open invite and dev outside the workspace.
			a.db.Write.Exec(`UPDATE invites SET cancelled_at = 1 WHERE cancelled_at IS NULL AND accepted_at IS NULL`)
			tok := tc.setup(t)
			status, body := a.do(http.MethodPost, "/api/invites/"+tok+"/accept", tc.as.Token, nil)
			if status != tc.status || errorCode(body) != tc.code || !strings.Contains(string(body), tc.message) {
				t.Errorf("accept = %d %s, want %d %s mentioning %q", status, body, tc.status, tc.code, tc.message)
			}
			if tc.name != "another user's email" {
				if status, body := a.do(http.MethodGet, "/api/invites/"+tok, "", nil); status != tc.status {
					t.Errorf("preview = %d %s, want %d", status, body, tc.status)
				}
			}
			if got := a.role(tc.as, owner.Workspace); got != "" {
				t.Errorf("%s became a %s", tc.as.Email, got)
			}
		})
	}
}

// TestResendRevivesExpiredInvite ensures an expired invite can be resent: the new link works for
// a fresh 7 days, and the resend and cancel are audited.
func TestResendRevivesExpiredInvite(t *testing.T) {
	a := newApp(t, appOptions{})
	owner := a.signup("owner@acme.test", "Olivia")
	inv := a.invite(owner, owner.Workspace, "dev@example.com", "member")
	a.clock.Advance(8 * 24 * time.Hour)

	var list struct {
		Data []struct {
			ID     int64
			Status string
		}
	}
	a.call(http.MethodGet, path("/api/workspaces/%d/invites", owner.Workspace), owner.Token, nil, http.StatusOK, &list)
	if len(list.Data) != 1 || list.Data[0].Status != invite.StatusExpired {
		t.Fatalf("list = %+v, want the one invite marked expired", list.Data)
	}
	var again issued
	a.call(http.MethodPost, path("/api/workspaces/%d/invites/%d/resend", owner.Workspace, inv.Invite.ID), owner.Token, nil, http.StatusOK, &again)
	if got, want := again.Invite.ExpiresAt, a.clock.Now().Add(invite.TTL).Truncate(time.Second); !got.Equal(want) {
		t.Errorf("resent invite expires %s, want %s", got, want)
	}
	dev := a.signup("dev@example.com", "Dana")
	a.call(http.MethodPost, "/api/invites/"+tokenOf(t, again.AcceptURL)+"/accept", dev.Token, nil, http.StatusOK, nil)
	if got := a.countAudit(owner.Workspace, account.AuditInviteResent); got != 1 {
		t.Errorf("%d invite_resent events, want 1", got)
	}

	other := a.invite(owner, owner.Workspace, "x@example.com", "member")
	a.call(http.MethodDelete, path("/api/workspaces/%d/invites/%d", owner.Workspace, other.Invite.ID), owner.Token, nil, http.StatusNoContent, nil)
	if got := a.countAudit(owner.Workspace, account.AuditInviteCancelled); got != 1 {
		t.Errorf("%d invite_cancelled events, want 1", got)
	}
	// Cancelled and accepted invites are closed: resend and cancel say so.
	for _, id := range []int64{inv.Invite.ID, other.Invite.ID} {
		if status, body := a.do(http.MethodPost, path("/api/workspaces/%d/invites/%d/resend", owner.Workspace, id), owner.Token, nil); status != http.StatusConflict {
			t.Errorf("resend of closed invite %d = %d %s, want 409", id, status, body)
		}
	}
	a.call(http.MethodGet, path("/api/workspaces/%d/invites", owner.Workspace), owner.Token, nil, http.StatusOK, &list)
	if len(list.Data) != 0 {
		t.Errorf("list = %+v, want no open invites", list.Data)
	}
}

// TestInvitePermissions checks who may manage invites and what they may grant: owners and admins
// invite admins and members, never owners, and never above their own role; members get 403; a
// user of another workspace gets 404 for its invites and invite ids, never 403.
func TestInvitePermissions(t *testing.T) {
	a := newApp(t, appOptions{})
	owner := a.signup("owner@acme.test", "Olivia")
	admin := a.signup("admin@acme.test", "Adam")
	member := a.signup("member@acme.test", "Mia")
	outsider := a.signup("out@other.test", "Otto")
	ws := owner.Workspace
	a.join(admin, ws, account.RoleAdmin)
	a.join(member, ws, account.RoleMember)
	pending := a.invite(owner, ws, "pending@example.com", "member")
	outsiderInvite := a.invite(outsider, outsider.Workspace, "someone@example.com", "member")

	for _, tc := range []struct {
		name   string
		as     user
		method string
		path   string
		body   any
		status int
	}{
		{"owner invites admin", owner, "POST", path("/api/workspaces/%d/invites", ws), map[string]string{"email": "a1@example.com", "role": "admin"}, 201},
		{"owner invites owner", owner, "POST", path("/api/workspaces/%d/invites", ws), map[string]string{"email": "o1@example.com", "role": "owner"}, 403},
		{"admin invites admin", admin, "POST", path("/api/workspaces/%d/invites", ws), map[string]string{"email": "a2@example.com", "role": "admin"}, 201},
		{"admin invites member", admin, "POST", path("/api/workspaces/%d/invites", ws), map[string]string{"email": "m2@example.com", "role": "member"}, 201},
		{"admin invites owner", admin, "POST", path("/api/workspaces/%d/invites", ws), map[string]string{"email": "o2@example.com", "role": "owner"}, 403},
		{"member invites member", member, "POST", path("/api/workspaces/%d/invites", ws), map[string]string{"email": "m3@example.com", "role": "member"}, 403},
		{"member lists invites", member, "GET", path("/api/workspaces/%d/invites", ws), nil, 403},
		{"member cancels", member, "DELETE", path("/api/workspaces/%d/invites/%d", ws, pending.Invite.ID), nil, 403},
		{"member resends", member, "POST", path("/api/workspaces/%d/invites/%d/resend", ws, pending.Invite.ID), nil, 403},
		{"outsider invites", outsider, "POST", path("/api/workspaces/%d/invites", ws), map[string]string{"email": "x@example.com", "role": "member"}, 404},
		{"outsider lists", outsider, "GET", path("/api/workspaces/%d/invites", ws), nil, 404},
		{"outsider cancels", outsider, "DELETE", path("/api/workspaces/%d/invites/%d", ws, pending.Invite.ID), nil, 404},
		{"outsider resends", outsider, "POST", path("/api/workspaces/%d/invites/%d/resend", ws, pending.Invite.ID), nil, 404},
		{"other workspace's invite id via own workspace", outsider, "DELETE", path("/api/workspaces/%d/invites/%d", outsider.Workspace, pending.Invite.ID), nil, 404},
		{"own workspace's invite id via another", owner, "DELETE", path("/api/workspaces/%d/invites/%d", ws, outsiderInvite.Invite.ID), nil, 404},
		{"unknown role", owner, "POST", path("/api/workspaces/%d/invites", ws), map[string]string{"email": "r@example.com", "role": "superuser"}, 400},
		{"bad email", owner, "POST", path("/api/workspaces/%d/invites", ws), map[string]string{"email": "Eve <e@example.com>", "role": "member"}, 400},
		{"unknown field", owner, "POST", path("/api/workspaces/%d/invites", ws), map[string]string{"email": "f@example.com", "role": "member", "admin": "yes"}, 400},
		{"already a member", owner, "POST", path("/api/workspaces/%d/invites", ws), map[string]string{"email": "MEMBER@acme.test", "role": "admin"}, 409},
		{"already invited", owner, "POST", path("/api/workspaces/%d/invites", ws), map[string]string{"email": "pending@example.com", "role": "admin"}, 409},
		{"no session", user{}, "GET", path("/api/workspaces/%d/invites", ws), nil, 401},
		{"accept without session", user{}, "POST", "/api/invites/" + tokenOf(t, pending.AcceptURL) + "/accept", nil, 401},
		{"accept with a forged session", user{Token: "eyJhbGciOiJub25lIn0.e30."}, "POST", "/api/invites/" + tokenOf(t, pending.AcceptURL) + "/accept", nil, 401},
		{"admin cancels", admin, "DELETE", path("/api/workspaces/%d/invites/%d", ws, pending.Invite.ID), nil, 204},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := a.do(tc.method, tc.path, tc.as.Token, tc.body)
			if status != tc.status {
				t.Errorf("%s %s = %d %s, want %d", tc.method, tc.path, status, body, tc.status)
			}
		})
	}
	// Refused invites left nothing behind.
	var n int
	a.db.Read.QueryRow(`SELECT count(*) FROM invites WHERE role = 'owner' OR email IN ('m3@example.com', 'x@example.com')`).Scan(&n)
	if n != 0 {
		t.Errorf("%d refused invites were stored", n)
	}
}

// TestInviteSignupWhenSignupClosed ensures that with ALLOW_SIGNUP=false a stranger cannot sign
// up, but the holder of an invite can create an account (with the invited email) and joins the
// workspace in the same step.
func TestInviteSignupWhenSignupClosed(t *testing.T) {
	a := newApp(t, appOptions{closedSignup: true})
	// The first owner exists already (created before signup was closed).
	s, err := a.accounts.SignupInvited(t.Context(), account.SignupInput{Email: "owner@acme.test", Password: "correct horse", Name: "Olivia"}, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	owner := user{ID: s.User.ID, Token: s.Token, Workspace: s.Workspace.ID}
	if status, _ := a.do(http.MethodPost, "/api/auth/signup", "", map[string]string{"email": "dev@example.com", "password": "correct horse", "name": "Dana"}); status != http.StatusForbidden {
		t.Fatalf("self-signup with ALLOW_SIGNUP=false = %d, want 403", status)
	}
	token := tokenOf(t, a.invite(owner, owner.Workspace, "dev@example.com", "member").AcceptURL)

	var out struct {
		Token string
		User  struct {
			ID    int64
			Email string
		}
		Workspace struct {
			ID   int64
			Role string
		}
	}
	a.call(http.MethodPost, "/api/invites/"+token+"/signup", "", map[string]string{"password": "correct horse", "name": "Dana"}, http.StatusCreated, &out)
	if out.User.Email != "dev@example.com" || out.Workspace.ID != owner.Workspace || out.Workspace.Role != "member" {
		t.Errorf("invite signup = %+v, want dev@example.com joined workspace %d as member", out, owner.Workspace)
	}
	a.call(http.MethodGet, "/api/me", out.Token, nil, http.StatusOK, nil)
	if got := a.role(user{ID: out.User.ID}, owner.Workspace); got != "member" {
		t.Errorf("role = %q, want member", got)
	}
	// The link is used up: a second signup with it is refused.
	if status, _ := a.do(http.MethodPost, "/api/invites/"+token+"/signup", "", map[string]string{"password": "correct horse", "name": "Eve"}); status != http.StatusConflict {
		t.Errorf("second signup with a used invite = %d, want 409", status)
	}
}

// TestInviteRouteMatrix runs every invite management route as each of owner, admin, member and a
// user of another workspace: owners and admins succeed, members get 403, outsiders 404.
func TestInviteRouteMatrix(t *testing.T) {
	a := newApp(t, appOptions{})
	owner := a.signup("owner@acme.test", "Olivia")
	admin := a.signup("admin@acme.test", "Adam")
	member := a.signup("member@acme.test", "Mia")
	outsider := a.signup("out@other.test", "Otto")
	ws := owner.Workspace
	a.join(admin, ws, account.RoleAdmin)
	a.join(member, ws, account.RoleMember)

	n := 0
	routes := []struct {
		name string
		ok   int
		// req builds the request, creating what it needs (a fresh open invite) as the owner.
		req func() (method, path string, body any)
	}{
		{"list", http.StatusOK, func() (string, string, any) {
			return "GET", path("/api/workspaces/%d/invites", ws), nil
		}},
		{"create", http.StatusCreated, func() (string, string, any) {
			n++
			return "POST", path("/api/workspaces/%d/invites", ws), map[string]string{"email": fmt.Sprintf("new%d@example.com", n), "role": "member"}
		}},
		{"cancel", http.StatusNoContent, func() (string, string, any) {
			n++
			inv := a.invite(owner, ws, fmt.Sprintf("c%d@example.com", n), "member")
			return "DELETE", path("/api/workspaces/%d/invites/%d", ws, inv.Invite.ID), nil
		}},
		{"resend", http.StatusOK, func() (string, string, any) {
			n++
			inv := a.invite(owner, ws, fmt.Sprintf("r%d@example.com", n), "member")
			return "POST", path("/api/workspaces/%d/invites/%d/resend", ws, inv.Invite.ID), nil
		}},
	}
	roles := []struct {
		name string
		u    user
		want func(ok int) int
	}{
		{"owner", owner, func(ok int) int { return ok }},
		{"admin", admin, func(ok int) int { return ok }},
		{"member", member, func(int) int { return http.StatusForbidden }},
		{"outsider", outsider, func(int) int { return http.StatusNotFound }},
	}
	for _, rt := range routes {
		for _, role := range roles {
			t.Run(rt.name+"/"+role.name, func(t *testing.T) {
				method, p, body := rt.req()
				status, b := a.do(method, p, role.u.Token, body)
				if want := role.want(rt.ok); status != want {
					t.Errorf("%s %s as %s = %d %s, want %d", method, p, role.name, status, b, want)
				}
			})
		}
	}
}

// TestInviteAuditEvents ensures each invite action writes its own audit event, with the actor,
// the invite as target, the email and role as details, and the client IP — never the token.
func TestInviteAuditEvents(t *testing.T) {
	a := newApp(t, appOptions{})
	owner := a.signup("owner@acme.test", "Olivia")
	dev := a.signup("dev@example.com", "Dana")
	ws := owner.Workspace

	var inv issued
	var token string
	for _, tc := range []struct {
		action string
		actor  *user
		act    func()
	}{
		{account.AuditMemberInvited, &owner, func() { inv = a.invite(owner, ws, "dev@example.com", "admin") }},
		{account.AuditInviteResent, &owner, func() {
			a.call(http.MethodPost, path("/api/workspaces/%d/invites/%d/resend", ws, inv.Invite.ID), owner.Token, nil, http.StatusOK, &inv)
			token = tokenOf(t, inv.AcceptURL)
		}},
		{account.AuditInviteAccepted, &dev, func() {
			a.call(http.MethodPost, "/api/invites/"+token+"/accept", dev.Token, nil, http.StatusOK, nil)
		}},
		{account.AuditInviteCancelled, &owner, func() {
			inv = a.invite(owner, ws, "x@example.com", "member")
			a.call(http.MethodDelete, path("/api/workspaces/%d/invites/%d", ws, inv.Invite.ID), owner.Token, nil, http.StatusNoContent, nil)
		}},
	} {
		t.Run(tc.action, func(t *testing.T) {
			before := a.countAudit(ws, tc.action)
			tc.act()
			events := a.audit(ws)
			last := events[len(events)-1]
			if got := a.countAudit(ws, tc.action); got != before+1 {
				t.Fatalf("%d %s events after the action, want %d", got, tc.action, before+1)
			}
			if last.Action != tc.action || last.ActorUserID != tc.actor.ID || last.TargetType != "invite" ||
				last.TargetID != fmt.Sprint(inv.Invite.ID) || last.IP != "127.0.0.1" {
				t.Errorf("last event = %+v, want %s by user %d on invite %d from 127.0.0.1", last, tc.action, tc.actor.ID, inv.Invite.ID)
			}
			if !strings.Contains(last.Details, inv.Invite.Email) || !strings.Contains(last.Details, inv.Invite.Role) {
				t.Errorf("details %s do not name the email and role", last.Details)
			}
			if token != "" && strings.Contains(last.Details, token) {
				t.Error("the audit log holds an invite token")
			}
		})
	}
}
