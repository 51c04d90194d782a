package api

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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"
	"golang.org/x/crypto/bcrypt"

	"tokenguard/app/account"
	"tokenguard/app/analytics"
	"tokenguard/app/secret"
	"tokenguard/store"
	"tokenguard/store/storetest"
)

const (
	testJWTSecret = "test-jwt-secret-0123456789abcdef"
	testEncKey    = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
)

// evictions records what the API asked the proxy's key cache to forget. It stands in for the
// proxy at the edge; the proxy's own tests show that an evicted key is re-read (and rejected).
type evictions struct {
	mu         sync.Mutex
	projects   []int64
	workspaces []int64
}

func (e *evictions) EvictProject(id int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.projects = append(e.projects, id)
}

func (e *evictions) EvictWorkspace(id int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.workspaces = append(e.workspaces, id)
}

func (e *evictions) project(id int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.projects {
		if p == id {
			return true
		}
	}
	return false
}

func (e *evictions) workspace(id int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, w := range e.workspaces {
		if w == id {
			return true
		}
	}
	return false
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testApp is a running API on a real SQLite file behind a real HTTP server.
type testApp struct {
	t      testing.TB
	srv    *httptest.Server
	db     *store.DB
	acct   *account.Service
	api    *API
	box    *secret.Box
	evict  *evictions
	clock  *clock
	dbPath string
}

type appOption func(*account.Options, *Deps)

func withSignupClosed() appOption {
	return func(o *account.Options, _ *Deps) { o.AllowSignup = false }
}

func withCORS(origin string) appOption {
	return func(_ *account.Options, d *Deps) { d.CORSOrigin = origin }
}

// newApp builds a ready API with a temp database, so a test reads as the story it checks.
func newApp(t testing.TB, opts ...appOption) *testApp {
	t.Helper()
	return newAppOn(t, storetest.Open(t), opts...)
}

// newAppOn is newApp over an open database (benchmarks at volume open a prepared file).
func newAppOn(t testing.TB, db *store.DB, opts ...appOption) *testApp {
	t.Helper()
	box, err := secret.NewBox(testEncKey)
	if err != nil {
		t.Fatal(err)
	}
	a := &testApp{t: t, db: db, box: box, evict: &evictions{},
		clock: &clock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}, dbPath: db.Path()}
	o := account.Options{
		JWTSecret: []byte(testJWTSecret), Box: box, Keys: a.evict, AllowSignup: true,
		PasswordCost: bcrypt.MinCost, Now: a.clock.Now, Logger: slog.New(slog.DiscardHandler),
	}
	d := Deps{Usage: db, Logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o, &d)
	}
	var extra []func(*httprouter.Router)
	if o.Keys != account.KeyCache(a.evict) {
		// An option put a real key cache (the proxy) in place: it serves on the same router.
		if r, ok := o.Keys.(interface{ Register(*httprouter.Router) }); ok {
			extra = append(extra, r.Register)
		}
	}
	a.acct, err = account.New(db, o)
	if err != nil {
		t.Fatal(err)
	}
	d.Accounts = a.acct
	d.Analytics = analytics.New(analytics.Options{Store: db, Accounts: a.acct, Now: a.clock.Now})
	a.api = New(d)
	router := httprouter.New()
	a.api.Register(router)
	for _, register := range extra {
		register(router)
	}
	a.srv = httptest.NewServer(router)
	t.Cleanup(a.srv.Close)
	return a
}

// user is a signed-up user of a testApp with their session and first workspace.
type user struct {
	app   *testApp
	email string
	pass  string
	token string
	id    int64
	ws    int64 // the workspace signup created
}

// signup creates an account through the API.
func (a *testApp) signup(email string) *user {
	a.t.Helper()
	u := &user{app: a, email: email, pass: "correct horse battery"}
	var out struct {
		Token     string
		User      struct{ ID int64 }
		Workspace struct{ ID int64 }
	}
	a.mustJSON(a.call("", http.MethodPost, "/api/auth/signup", map[string]any{"email": email, "password": u.pass, "name": "User " + email}), http.StatusCreated, &out)
	u.token, u.id, u.ws = out.Token, out.User.ID, out.Workspace.ID
	return u
}

// addMember puts u in workspace ws with role, as an accepted invite would.
func (a *testApp) addMember(ws int64, u *user, role account.Role) {
	a.t.Helper()
	err := a.db.WriteTx(context.Background(), func(tx *sql.Tx) error {
		return a.db.InsertMembership(context.Background(), tx, ws, u.id, string(role), a.clock.Now().UnixMilli())
	})
	if err != nil {
		a.t.Fatal(err)
	}
}

// response is a finished HTTP exchange.
type response struct {
	status int
	body   []byte
	header http.Header
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

// errCode returns the contract error code of the body ("" if none).
func (r response) errCode() string {
	var b struct{ Error struct{ Code string } }
	json.Unmarshal(r.body, &b)
	return b.Error.Code
}

// call sends a request with an optional bearer token and JSON body (a string is sent raw) and
// optional header pairs.
func (a *testApp) call(token, method, path string, body any, headers ...string) response {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, a.srv.URL+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := a.srv.Client().Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return response{status: res.StatusCode, body: b, header: res.Header}
}

// mustJSON checks the status and decodes the body into out (when non-nil).
func (a *testApp) mustJSON(r response, status int, out any) {
	a.t.Helper()
	if r.status != status {
		a.t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			a.t.Fatalf("decode %s: %v", r.body, err)
		}
	}
}

func (u *user) call(method, path string, body any, headers ...string) response {
	u.app.t.Helper()
	return u.app.call(u.token, method, path, body, headers...)
}

// in sends a request in workspace ws (X-Workspace-Id).
func (u *user) in(ws int64, method, path string, body any) response {
	u.app.t.Helper()
	return u.app.call(u.token, method, path, body, "X-Workspace-Id", fmt.Sprint(ws))
}

type createdProject struct {
	Project struct {
		ID        int64
		KeyPrefix string
	}
	Key string
}

// createProject creates a project in ws through the API and returns its id and key.
func (u *user) createProject(ws int64, name string) createdProject {
	u.app.t.Helper()
	var out createdProject
	u.app.mustJSON(u.in(ws, http.MethodPost, "/api/projects", map[string]any{"name": name, "dailyBudgetUsd": 5, "monthlyBudgetUsd": 50}), http.StatusCreated, &out)
	return out
}

// auditActions returns the actions in ws's audit log (newest first), read from the database.
func (a *testApp) auditRows(ws int64, action string) []store.AuditEntry {
	a.t.Helper()
	rows, _, err := a.db.ListAudit(context.Background(), store.AuditFilter{WorkspaceID: ws, Action: action, Limit: store.MaxAuditLimit})
	if err != nil {
		a.t.Fatal(err)
	}
	return rows
}

func accountSignup(email string) account.SignupInput {
	return account.SignupInput{Email: email, Password: "long enough pw", Name: "Invitee"}
}
