package web_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"

	"tokenguard/app/account"
	"tokenguard/app/analytics"
	"tokenguard/app/api"
	"tokenguard/app/budget"
	"tokenguard/app/invite"
	"tokenguard/app/mail"
	"tokenguard/app/mail/mailtest"
	"tokenguard/app/pricing"
	"tokenguard/app/provider/openai"
	"tokenguard/app/provider/openai/openaitest"
	"tokenguard/app/proxy"
	"tokenguard/app/secret"
	"tokenguard/app/usage"
	"tokenguard/app/web"
	"tokenguard/app/webhook"
	"tokenguard/static"
	"tokenguard/store"
	"tokenguard/store/storetest"
)

// testApp is the whole program as the dashboard sees it: the dashboard, the proxy in front of a
// wire-format fake OpenAI, the account and invite services, a real SMTP server receiving the
// mail, and a real SQLite file — all on one httptest server.
type testApp struct {
	URL string
	// Logs is everything every component logged: no secret may appear in it.
	Logs     *syncBuffer
	DB       *store.DB
	Accounts *account.Service
	Budget   *budget.Engine
	Usage    *usage.Writer
	Proxy    *proxy.Proxy
	Mail     *mailtest.Server
	Upstream *openaitest.Server
	Server   *httptest.Server
}

const testSecret = "test-jwt-secret-0123456789abcdef"

func newApp(tb testing.TB) *testApp {
	tb.Helper()
	return newAppOn(tb, storetest.Open(tb))
}

// newAppOn is newApp over an open database (benchmarks at volume open a prepared file).
func newAppOn(tb testing.TB, db *store.DB) *testApp {
	tb.Helper()
	ctx := context.Background()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	box, err := secret.NewBox(strings.Repeat("ab", 32))
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()

	prices, err := pricing.New(nil, pricing.DefaultUnknownPrice())
	if err != nil {
		tb.Fatal(err)
	}
	eng := budget.New(time.Now)
	if err := usage.LoadCounters(ctx, db, eng, time.Now()); err != nil {
		tb.Fatal(err)
	}
	writer := usage.NewWriter(db, log, usage.WriterOptions{FlushInterval: 20 * time.Millisecond})
	upstream := openaitest.New(tb)
	px, err := proxy.New(proxy.Config{DB: db, Prices: prices, Budget: eng, Usage: writer, Logger: log, Box: box, Now: time.Now,
		TouchInterval: 20 * time.Millisecond},
		proxy.Upstream{Adapter: openai.New(), BaseURL: upstream.URL, EnvKey: "sk-test-upstream-key"})
	if err != nil {
		tb.Fatal(err)
	}
	accounts, err := account.New(db, account.Options{JWTSecret: []byte(testSecret), Box: box, Keys: px, AllowSignup: true,
		PasswordCost: 4, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	smtp := mailtest.Start(tb, mailtest.Options{})
	mailer, err := mail.New(db, mail.Options{SMTP: smtp.SMTP("none"), Log: log})
	if err != nil {
		tb.Fatal(err)
	}
	invites := invite.New(db, accounts, invite.Options{FrontendURL: base, Mailer: mailer, Log: log})
	assets, err := static.New()
	if err != nil {
		tb.Fatal(err)
	}
	hooks, err := webhook.New(webhook.Options{DB: db, Box: box, Accounts: accounts, FrontendURL: base, Log: log,
		AllowPrivate: true}) // the tests' receivers are on loopback
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { hooks.Close(context.Background()) })
	dash, err := web.New(web.Options{FrontendURL: base, JWTSecret: testSecret, AllowSignup: true, Accounts: accounts,
		Invites: web.InviteService(invites), Budget: eng, Prices: prices, DB: db, Assets: assets, MailConfigured: true, Logger: log, Refresh: time.Second,
		Webhooks: hooks})
	if err != nil {
		tb.Fatal(err)
	}
	router := httprouter.New()
	dash.Register(router)
	px.Register(router)
	api.New(api.Deps{Accounts: accounts, Analytics: analytics.New(analytics.Options{Store: db, Accounts: accounts}), Logger: log}).Register(router)
	srv.Config.Handler = router
	srv.Start()
	tb.Cleanup(func() {
		srv.Close()
		px.Close(context.Background())
		writer.Close(context.Background())
		mailer.Close(context.Background())
	})
	return &testApp{URL: base, Logs: logs, DB: db, Accounts: accounts, Budget: eng, Usage: writer, Proxy: px, Mail: smtp, Upstream: upstream, Server: srv}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of several loggers.
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

// client is a browser-like HTTP client: a cookie jar, no automatic redirects, and the Origin
// header a same-site form post carries.
type client struct {
	tb   testing.TB
	app  *testApp
	http *http.Client
	csrf string
}

func (a *testApp) client(tb testing.TB) *client {
	jar, _ := cookiejar.New(nil)
	return &client{tb: tb, app: a, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

type resp struct {
	Status int
	Header http.Header
	Body   string
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (c *client) do(req *http.Request) resp {
	c.tb.Helper()
	res, err := c.http.Do(req)
	if err != nil {
		c.tb.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if m := csrfField.FindStringSubmatch(string(b)); m != nil {
		c.csrf = m[1]
	}
	return resp{Status: res.StatusCode, Header: res.Header, Body: string(b)}
}

func (c *client) get(path string) resp {
	c.tb.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.app.URL+path, nil)
	return c.do(req)
}

// post sends a form as the dashboard's own pages do: same Origin, with the CSRF token.
func (c *client) post(path string, form url.Values) resp {
	c.tb.Helper()
	return c.postFrom(path, form, c.app.URL, true)
}

func (c *client) postFrom(path string, form url.Values, origin string, withToken bool) resp {
	c.tb.Helper()
	if form == nil {
		form = url.Values{}
	}
	if withToken && c.csrf != "" {
		form.Set("csrf", c.csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, c.app.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	return c.do(req)
}

// signup creates an account through the form and returns the path of its first workspace.
func (c *client) signup(name, email string) string {
	c.tb.Helper()
	c.get("/signup")
	r := c.post("/signup", url.Values{"name": {name}, "email": {email}, "password": {"correct horse battery"}})
	if r.Status != http.StatusSeeOther {
		c.tb.Fatalf("signup: status %d: %s", r.Status, r.Body)
	}
	loc := r.Header.Get("Location")
	if !strings.HasPrefix(loc, "/w/") {
		c.tb.Fatalf("signup redirected to %q", loc)
	}
	c.get(loc) // pick up the session's CSRF token
	return strings.TrimSuffix(loc, "/projects")
}

// signupWithProject signs Ada up and creates her project "alpha": the workspace's path and id
// and the project's id, for tests that then write usage rows into them.
func (c *client) signupWithProject() (ws string, wsID, projectID int64) {
	c.tb.Helper()
	ws = c.signup("Ada", "ada@example.com")
	path, _ := c.createProject(ws, url.Values{"name": {"alpha"}})
	if _, err := fmt.Sscanf(ws, "/w/%d", &wsID); err != nil {
		c.tb.Fatalf("workspace path %q: %v", ws, err)
	}
	if _, err := fmt.Sscanf(path, ws+"/projects/%d", &projectID); err != nil {
		c.tb.Fatalf("project path %q: %v", path, err)
	}
	return ws, wsID, projectID
}

var keyRe = regexp.MustCompile(`tg_live_[A-Za-z0-9]+`)

// createProject creates a project through the form and returns its page path and key.
func (c *client) createProject(ws string, form url.Values) (string, string) {
	c.tb.Helper()
	c.get(ws + "/new-project")
	r := c.post(ws+"/projects", form)
	if r.Status != http.StatusSeeOther {
		c.tb.Fatalf("create project: status %d: %s", r.Status, r.Body)
	}
	loc := r.Header.Get("Location")
	page := c.get(loc)
	key := keyRe.FindString(page.Body)
	if key == "" {
		c.tb.Fatalf("no key on the key page: %s", page.Body)
	}
	path, _, _ := strings.Cut(loc, "?")
	return path, key
}

func accountSignup(email string) account.SignupInput {
	return account.SignupInput{Email: email, Password: "correct horse battery", Name: "Bob"}
}

// sendChat sends one chat completion through the proxy with key, as an app would.
func sendChat(tb testing.TB, app *testApp, key string) {
	tb.Helper()
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}`
	req, _ := http.NewRequest(http.MethodPost, app.URL+"/proxy/openai/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-tokenguard-key", key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		tb.Fatalf("proxied request: status %d: %s", res.StatusCode, b)
	}
}

// waitUsage waits until n usage rows are stored (the writer batches them).
func waitUsage(tb testing.TB, app *testApp, n int) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var got int
		app.DB.Read.QueryRow(`SELECT count(*) FROM usage_logs`).Scan(&got)
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d usage rows stored, want %d", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
