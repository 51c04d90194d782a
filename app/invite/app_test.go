package invite_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"
	"golang.org/x/crypto/bcrypt"

	"tokenguard/app/account"
	"tokenguard/app/api"
	"tokenguard/app/config"
	"tokenguard/app/invite"
	"tokenguard/app/mail"
	"tokenguard/app/mail/mailtest"
	"tokenguard/app/secret"
	"tokenguard/store"
	"tokenguard/store/storetest"
)

// app is a ready TokenGuard API with the invite routes: a real SQLite file, the real account
// service and JSON API, the real mailer pointed at a real SMTP server (or at none), served over
// HTTP by httptest.
type app struct {
	t        testing.TB
	db       *store.DB
	accounts *account.Service
	invites  *invite.Service
	mailer   *mail.Mailer
	smtp     *mailtest.Server
	srv      *httptest.Server
	clock    *clock
	logs     *syncBuffer
}

type appOptions struct {
	// smtp is the mail server; nil means SMTP is not configured.
	smtp *mailtest.Server
	// closedSignup sets ALLOW_SIGNUP=false.
	closedSignup bool
	// maxAttempts bounds mail retries (default 1000: retry until the test ends).
	maxAttempts int
}

func newApp(t testing.TB, o appOptions) *app {
	t.Helper()
	a := &app{t: t, db: storetest.Open(t), smtp: o.smtp, clock: &clock{now: time.Now()}, logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	box, err := secret.NewBox(strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	a.accounts, err = account.New(a.db, account.Options{
		JWTSecret: []byte("test-secret-test-secret-test-secret"), Box: box, AllowSignup: !o.closedSignup,
		PasswordCost: bcrypt.MinCost, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	var smtpCfg config.SMTP
	mopts := mail.Options{Log: log, Backoff: func(n int) time.Duration { return time.Duration(n) * 10 * time.Millisecond },
		MaxAttempts: 1000, AttemptTimeout: 5 * time.Second}
	if o.maxAttempts > 0 {
		mopts.MaxAttempts = o.maxAttempts
	}
	if o.smtp != nil {
		smtpCfg = o.smtp.SMTP(mail.TLSStartTLS)
		mopts.TLS = o.smtp.ClientTLS
	}
	mopts.SMTP = smtpCfg
	a.mailer, err = mail.New(a.db, mopts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.mailer.Close(context.Background()) })

	router := httprouter.New()
	a.srv = httptest.NewServer(router)
	t.Cleanup(a.srv.Close)
	a.invites = invite.New(a.db, a.accounts, invite.Options{
		FrontendURL: a.srv.URL + "/", Mailer: a.mailer, Now: a.clock.Now, Log: log,
	})
	apiSrv := api.New(api.Deps{Accounts: a.accounts, Logger: log})
	apiSrv.Register(router)
	invite.NewHandler(a.invites, apiSrv, log).Register(router)
	return a
}

// user is a signed-up account with its session and its own first workspace.
type user struct {
	ID        int64
	Email     string
	Token     string
	Workspace int64
}

// signup creates an account through the real API.
func (a *app) signup(email, name string) user {
	a.t.Helper()
	var out struct {
		Token     string `json:"token"`
		User      struct{ ID int64 }
		Workspace struct{ ID int64 }
	}
	a.call(http.MethodPost, "/api/auth/signup", "", map[string]string{"email": email, "password": "correct horse", "name": name}, http.StatusCreated, &out)
	return user{ID: out.User.ID, Email: email, Token: out.Token, Workspace: out.Workspace.ID}
}

// join makes u a member of workspace with role, directly in the database (setup, not under test).
func (a *app) join(u user, workspace int64, role account.Role) {
	a.t.Helper()
	err := a.db.WriteTx(context.Background(), func(tx *sql.Tx) error {
		return a.db.InsertMembership(context.Background(), tx, workspace, u.ID, string(role), time.Now().UnixMilli())
	})
	if err != nil {
		a.t.Fatal(err)
	}
}

// do sends a request and returns the status and body.
func (a *app) do(method, path, token string, body any) (int, []byte) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.srv.URL+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// call is do that fails the test unless the status is want, decoding the body into out.
func (a *app) call(method, path, token string, body any, want int, out any) {
	a.t.Helper()
	status, b := a.do(method, path, token, body)
	if status != want {
		a.t.Fatalf("%s %s = %d %s, want %d", method, api.RedactPath(path), status, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

// errorCode returns the contract error code of a response body.
func errorCode(b []byte) string {
	var e struct {
		Error struct{ Code, Message string }
	}
	json.Unmarshal(b, &e)
	return e.Error.Code
}

type issued struct {
	Invite struct {
		ID        int64
		Email     string
		Role      string
		Status    string
		ExpiresAt time.Time
	}
	AcceptURL string
}

// invite creates an invite through the API and returns it with its accept URL.
func (a *app) invite(by user, workspace int64, email, role string) issued {
	a.t.Helper()
	var out issued
	a.call(http.MethodPost, path("/api/workspaces/%d/invites", workspace), by.Token,
		map[string]string{"email": email, "role": role}, http.StatusCreated, &out)
	return out
}

// tokenOf returns the token at the end of an accept URL.
func tokenOf(t *testing.T, acceptURL string) string {
	t.Helper()
	i := strings.LastIndex(acceptURL, "/invites/")
	if i < 0 {
		t.Fatalf("accept URL %q has no /invites/ segment", acceptURL)
	}
	return acceptURL[i+len("/invites/"):]
}

var linkRe = regexp.MustCompile(`https?://[^\s"<>]+/invites/[A-Za-z0-9_-]+`)

// audit returns the actions recorded for workspace, oldest first.
func (a *app) audit(workspace int64) []store.AuditEntry {
	a.t.Helper()
	rows, _, err := a.db.ListAudit(context.Background(), store.AuditFilter{WorkspaceID: workspace, Limit: 500})
	if err != nil {
		a.t.Fatal(err)
	}
	for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
		rows[i], rows[j] = rows[j], rows[i]
	}
	return rows
}

func (a *app) countAudit(workspace int64, action string) int {
	n := 0
	for _, e := range a.audit(workspace) {
		if e.Action == action {
			n++
		}
	}
	return n
}

// role returns u's role in workspace, or "" when not a member.
func (a *app) role(u user, workspace int64) string {
	a.t.Helper()
	var role string
	err := a.db.Read.QueryRow(`SELECT role FROM memberships WHERE workspace_id = ? AND user_id = ?`, workspace, u.ID).Scan(&role)
	if err == sql.ErrNoRows {
		return ""
	}
	if err != nil {
		a.t.Fatal(err)
	}
	return role
}

// mailLog waits until the newest mail_log row satisfies done and returns it.
func (a *app) mailLog(done func(store.MailLog) bool) store.MailLog {
	a.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last []store.MailLog
	for time.Now().Before(deadline) {
		rows, err := a.db.RecentMailLog(context.Background(), 1)
		if err != nil {
			a.t.Fatal(err)
		}
		if len(rows) == 1 && done(rows[0]) {
			return rows[0]
		}
		last = rows
		time.Sleep(5 * time.Millisecond)
	}
	a.t.Fatalf("mail_log never reached the wanted state; last: %+v", last)
	return store.MailLog{}
}

// noSecretLogged fails the test if any token appears in a log line or in mail_log.
func (a *app) noSecretLogged(tokens ...string) {
	a.t.Helper()
	a.mailer.Close(context.Background())
	rows, err := a.db.RecentMailLog(context.Background(), 1000)
	if err != nil {
		a.t.Fatal(err)
	}
	logs := a.logs.String()
	for _, tok := range tokens {
		if strings.Contains(logs, tok) {
			a.t.Errorf("an invite token appears in the logs:\n%s", logs)
		}
		for _, r := range rows {
			if strings.Contains(r.Subject+r.To+r.LastError+r.Kind, tok) {
				a.t.Errorf("an invite token appears in mail_log row %+v", r)
			}
		}
	}
}

func path(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// clock is the invite service's clock, moved by tests to expire invites.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
