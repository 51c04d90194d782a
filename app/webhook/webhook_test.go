package webhook_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tokenguard/app/account"
	"tokenguard/app/budget"
	"tokenguard/app/pricing"
	"tokenguard/app/secret"
	"tokenguard/app/webhook"
	"tokenguard/store"
	"tokenguard/store/storetest"
)

var ctx = context.Background()

const hexKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

// receiver is a webhook endpoint as a team would run one: it verifies every delivery's
// signature with webhook.Verify over the raw body and answers with the next scripted status
// (200 once the script runs out).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret string
	now    func() time.Time

	mu     sync.Mutex
	script []int
	got    []delivery
	seen   chan delivery
}

type delivery struct {
	body    webhook.Body
	raw     string
	header  http.Header
	sigErr  error
	replied int
}

func newReceiver(t *testing.T, now func() time.Time, script ...int) *receiver {
	rc := &receiver{t: t, now: now, script: script, seen: make(chan delivery, 100)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		d := delivery{raw: string(raw), header: r.Header.Clone(), sigErr: webhook.Verify(rc.secret, r.Header.Get(webhook.SignatureHeader), raw, rc.now(), 0)}
		d.replied = http.StatusOK
		if len(rc.script) > 0 {
			d.replied, rc.script = rc.script[0], rc.script[1:]
		}
		rc.got = append(rc.got, d)
		rc.mu.Unlock()
		if err := json.Unmarshal(raw, &d.body); err != nil {
			t.Errorf("delivery body is not JSON: %v %s", err, raw)
		}
		w.WriteHeader(d.replied)
		io.WriteString(w, `{"ok":false}`)
		rc.seen <- d
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// next waits for the receiver's next delivery.
func (rc *receiver) next() delivery {
	rc.t.Helper()
	select {
	case d := <-rc.seen:
		return d
	case <-time.After(10 * time.Second):
		rc.t.Fatal("no webhook delivery arrived")
		return delivery{}
	}
}

// fixture is a workspace with an owner and a project on a real SQLite file, and a running
// webhook service on a clock the test controls.
type fixture struct {
	t        *testing.T
	path     string
	db       *store.DB
	box      *secret.Box
	accounts *account.Service
	svc      *webhook.Service
	owner    account.Actor
	ws, proj int64
	// allowPrivate lets the service post to the test's loopback receivers.
	allowPrivate bool

	mu  sync.Mutex
	now time.Time
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, path: filepath.Join(t.TempDir(), "tg.db"), now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), allowPrivate: true}
	f.db = storetest.OpenAt(t, f.path)
	var err error
	if f.box, err = secret.NewBox(hexKey); err != nil {
		t.Fatal(err)
	}
	f.accounts, err = account.New(f.db, account.Options{JWTSecret: []byte("test-secret-test-secret-test-secret"), Box: f.box,
		AllowSignup: true, PasswordCost: 4, Now: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.accounts.Signup(ctx, account.SignupInput{Email: "owner@example.com", Password: "correct horse battery", Name: "Owner"}, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	f.owner, f.ws = account.Actor{UserID: s.User.ID, IP: "127.0.0.1"}, s.Workspace.ID
	p, _, err := f.accounts.CreateProject(ctx, f.owner, f.ws, account.ProjectInput{Name: "chat <!channel>"})
	if err != nil {
		t.Fatal(err)
	}
	f.proj = p.ID
	return f
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// start runs a webhook service with attempts attempts and backoff.
func (f *fixture) start(attempts int, backoff time.Duration) {
	f.t.Helper()
	svc, err := webhook.New(webhook.Options{DB: f.db, Box: f.box, Accounts: f.accounts, FrontendURL: "https://tg.example.com",
		MaxAttempts: attempts, Backoff: func(int) time.Duration { return backoff }, Now: f.clock, AllowPrivate: f.allowPrivate})
	if err != nil {
		f.t.Fatal(err)
	}
	f.svc = svc
	f.t.Cleanup(func() { f.stop() })
}

func (f *fixture) stop() {
	if f.svc != nil {
		if err := f.svc.Close(ctx); err != nil {
			f.t.Error(err)
		}
		f.svc = nil
	}
}

func (f *fixture) crossing(b budget.Budget, threshold float64) budget.Crossing {
	return budget.Crossing{Budget: b, Threshold: threshold, ProjectID: f.proj, WorkspaceID: f.ws,
		Spend: pricing.FromDollars(4.2), Limit: pricing.FromDollars(5), At: f.clock()}
}

// deliveries reads the outbox rows of the workspace, oldest first.
func (f *fixture) deliveries() []store.WebhookDelivery {
	f.t.Helper()
	rows, err := f.db.RecentWebhooks(ctx, f.ws, 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
		rows[i], rows[j] = rows[j], rows[i]
	}
	return rows
}

// TestCrossingDelivered ensures a budget crossing reaches the workspace's receiver once per
// budget, period and threshold, Slack-compatible and with a signature the receiver verifies with
// the secret shown once; a changed URL keeps the secret and a rotation replaces it.
func TestCrossingDelivered(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, f.clock)
	f.start(3, time.Millisecond)
	cfg, sec, err := f.svc.Set(ctx, f.owner, f.ws, rc.srv.URL+"/hooks/T000/B000/XXXXXXXXXXXX", false)
	if err != nil {
		t.Fatal(err)
	}
	rc.secret = sec
	if !strings.HasPrefix(sec, "whsec_") || len(sec) < 40 {
		t.Fatalf("secret = %q, want whsec_ and 256 bits", sec)
	}
	if got, want := cfg.URLMasked, rc.srv.URL+"/…XXXX"; got != want {
		t.Errorf("masked URL = %q, want %q", got, want)
	}

	f.svc.OnCrossing([]budget.Crossing{f.crossing(budget.ProjectDaily, budget.FallbackLevel)})
	d := rc.next()
	if d.sigErr != nil {
		t.Fatalf("receiver could not verify the signature: %v (header %q)", d.sigErr, d.header.Get(webhook.SignatureHeader))
	}
	if err := webhook.Verify("whsec_wrong", d.header.Get(webhook.SignatureHeader), []byte(d.raw), f.clock(), 0); err == nil {
		t.Error("a wrong secret verified")
	}
	if err := webhook.Verify(sec, d.header.Get(webhook.SignatureHeader), []byte(d.raw+" "), f.clock(), 0); err == nil {
		t.Error("a changed body verified")
	}
	if err := webhook.Verify(sec, d.header.Get(webhook.SignatureHeader), []byte(d.raw), f.clock().Add(10*time.Minute), 0); err == nil {
		t.Error("a ten-minute-old signature verified")
	}
	if got, want := d.header.Get("X-Tokenguard-Event"), webhook.EventBudgetCrossed; got != want {
		t.Errorf("event header = %q, want %q", got, want)
	}
	data := d.body.Data
	if data == nil {
		t.Fatalf("no data in %s", d.raw)
	}
	want := webhook.Crossing{Scope: "project", WorkspaceID: f.ws, WorkspaceName: data.WorkspaceName, ProjectID: f.proj,
		ProjectName: "chat <!channel>", Budget: "daily", Period: "2026-12-01", Threshold: 80, SpendUSD: 4.2, LimitUSD: 5,
		ResetsAt: "2026-12-02T00:00:00Z", Link: "https://tg.example.com/w/" + itoa(f.ws) + "/projects/" + itoa(f.proj)}
	if *data != want {
		t.Errorf("data = %+v\nwant   %+v", *data, want)
	}
	if !strings.Contains(d.body.Text, "chat &lt;!channel&gt;") || !strings.Contains(d.body.Text, "80% of its daily budget: $4.20 of $5.00") {
		t.Errorf("text = %q: want the escaped project name and the figures", d.body.Text)
	}

	// The same crossing again (a restart, a second request) and a change of URL: no second event,
	// and the secret stays.
	f.svc.OnCrossing([]budget.Crossing{f.crossing(budget.ProjectDaily, budget.FallbackLevel)})
	if _, sec2, err := f.svc.Set(ctx, f.owner, f.ws, rc.srv.URL+"/other", false); err != nil || sec2 != "" {
		t.Fatalf("changing the URL: secret %q, err %v; want the secret kept", sec2, err)
	}
	f.svc.OnCrossing([]budget.Crossing{f.crossing(budget.ProjectDaily, budget.BlockLevel)})
	d = rc.next()
	if d.sigErr != nil || d.body.Data == nil || d.body.Data.Threshold != 100 {
		t.Fatalf("second event: threshold %+v, signature %v; want the 100%% crossing, verified", d.body.Data, d.sigErr)
	}
	_, rotated, err := f.svc.Set(ctx, f.owner, f.ws, rc.srv.URL+"/other", true)
	if err != nil || rotated == "" || rotated == sec {
		t.Fatalf("rotation gave %q, %v; want a new secret", rotated, err)
	}
	rc.mu.Lock()
	rc.secret = rotated
	rc.mu.Unlock()
	if _, err := f.svc.Test(ctx, f.owner, f.ws); err != nil {
		t.Fatal(err)
	}
	if d := rc.next(); d.sigErr != nil || d.body.Event != webhook.EventTest {
		t.Fatalf("test event %q after rotation: signature %v", d.body.Event, d.sigErr)
	}
	f.stop()
	rows := f.deliveries()
	if got, want := len(rows), 3; got != want {
		t.Fatalf("outbox has %d rows, want %d (80%%, 100%%, test)", got, want)
	}
	for _, r := range rows {
		if r.Status != store.WebhookSent || r.Attempts != 1 {
			t.Errorf("delivery %d %s: status %s after %d attempts, want sent after 1", r.ID, r.Event, r.Status, r.Attempts)
		}
	}
}

// TestRetries ensures a receiver's failures are retried with the same event until it answers
// 2xx, that an event is given up after the last attempt, and that a permanent refusal (404, as
// Slack answers for a removed webhook) is not retried.
func TestRetries(t *testing.T) {
	cases := []struct {
		name         string
		script       []int
		wantStatus   string
		wantAttempts int
	}{
		{"retried after 500 until 200", []int{500, 503}, store.WebhookSent, 3},
		{"gives up after N", []int{500, 500, 500, 500}, store.WebhookFailed, 3},
		{"429 is retried", []int{429}, store.WebhookSent, 2},
		{"404 is permanent", []int{404}, store.WebhookFailed, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			rc := newReceiver(t, f.clock, tc.script...)
			f.start(3, 0)
			var err error
			if _, rc.secret, err = f.svc.Set(ctx, f.owner, f.ws, rc.srv.URL, false); err != nil {
				t.Fatal(err)
			}
			f.svc.OnCrossing([]budget.Crossing{f.crossing(budget.WorkspaceMonthly, budget.BlockLevel)})
			var ids []string
			for range tc.wantAttempts {
				d := rc.next()
				if d.sigErr != nil {
					t.Errorf("attempt %d: signature: %v", len(ids)+1, d.sigErr)
				}
				ids = append(ids, d.body.ID)
			}
			// Wait until the worker has recorded the last outcome.
			var row store.WebhookDelivery
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				row = f.deliveries()[0]
				if row.Status != store.WebhookPending {
					break
				}
			}
			f.stop()
			row = f.deliveries()[0]
			if row.Status != tc.wantStatus || row.Attempts != tc.wantAttempts {
				t.Errorf("delivery: %s after %d attempts, want %s after %d (last error %q)", row.Status, row.Attempts,
					tc.wantStatus, tc.wantAttempts, row.LastError)
			}
			rc.mu.Lock()
			if got := len(rc.got); got != tc.wantAttempts {
				t.Errorf("receiver saw %d requests, want %d", got, tc.wantAttempts)
			}
			rc.mu.Unlock()
			for _, id := range ids {
				if id != ids[0] {
					t.Errorf("event ids %v: a retry must repeat the event's id", ids)
				}
			}
			if data := f.deliveries()[0]; !strings.Contains(data.Body, `"scope":"workspace"`) {
				t.Errorf("workspace crossing body: %s", data.Body)
			}
		})
	}
}

// TestRestartResumes ensures the outbox is durable: an event whose first attempt failed is
// delivered by the next process once its retry is due.
func TestRestartResumes(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, f.clock, 500)
	f.start(5, time.Hour)
	var err error
	if _, rc.secret, err = f.svc.Set(ctx, f.owner, f.ws, rc.srv.URL, false); err != nil {
		t.Fatal(err)
	}
	f.svc.OnCrossing([]budget.Crossing{f.crossing(budget.ProjectMonthly, budget.FallbackLevel)})
	first := rc.next()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && f.deliveries()[0].Attempts == 0; {
		time.Sleep(5 * time.Millisecond)
	}
	f.stop()
	f.db.Close()

	f.db = storetest.OpenAt(t, f.path)
	f.advance(time.Hour + time.Second)
	f.accounts, err = account.New(f.db, account.Options{JWTSecret: []byte("test-secret-test-secret-test-secret"), Box: f.box, Now: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	f.start(5, time.Hour)
	second := rc.next()
	if second.sigErr != nil || second.body.ID != first.body.ID {
		t.Fatalf("after restart: event %s (signature %v), want %s again", second.body.ID, second.sigErr, first.body.ID)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && f.deliveries()[0].Status == store.WebhookPending; {
		time.Sleep(5 * time.Millisecond)
	}
	if row := f.deliveries()[0]; row.Status != store.WebhookSent || row.Attempts != 2 {
		t.Errorf("after restart: %s after %d attempts, want sent after 2", row.Status, row.Attempts)
	}
}

// TestSetRefuses ensures only http and https URLs without credentials are taken, only owners and
// admins manage the webhook, and a removed webhook fails its pending events.
func TestSetRefuses(t *testing.T) {
	f := newFixture(t)
	f.start(3, time.Hour)
	for _, u := range []string{"", "ftp://example.com/x", "file:///etc/passwd", "hooks.slack.com/services/x",
		"https://user:pass@example.com/", "https://", "https://example.com/" + strings.Repeat("a", webhook.MaxURLBytes)} {
		if _, _, err := f.svc.Set(ctx, f.owner, f.ws, u, false); err == nil || !strings.Contains(err.Error(), "INVALID_REQUEST") {
			t.Errorf("Set(%.40q) = %v, want INVALID_REQUEST", u, err)
		}
	}
	// A member of the workspace may not see or change it.
	s, err := f.accounts.Signup(ctx, account.SignupInput{Email: "member@example.com", Password: "correct horse battery", Name: "M"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.db.WriteTx(ctx, func(tx *sql.Tx) error { return f.db.InsertMembership(ctx, tx, f.ws, s.User.ID, "member", 1) }); err != nil {
		t.Fatal(err)
	}
	member := account.Actor{UserID: s.User.ID}
	if _, _, err := f.svc.Set(ctx, member, f.ws, "https://example.com/hook", false); err == nil || !strings.Contains(err.Error(), "FORBIDDEN") {
		t.Errorf("member Set = %v, want FORBIDDEN", err)
	}
	if _, err := f.svc.Get(ctx, member, f.ws); err == nil || !strings.Contains(err.Error(), "FORBIDDEN") {
		t.Errorf("member Get = %v, want FORBIDDEN", err)
	}
	if _, _, err := f.svc.Set(ctx, f.owner, f.ws, "https://127.0.0.1:1/hook", false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Test(ctx, f.owner, f.ws); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Delete(ctx, f.owner, f.ws); err != nil {
		t.Fatal(err)
	}
	f.stop()
	for _, action := range []string{webhook.AuditUpdated, webhook.AuditTested, webhook.AuditDeleted} {
		page, err := f.accounts.Audit(ctx, f.owner, f.ws, account.AuditQuery{Action: action})
		if err != nil || len(page.Entries) != 1 {
			t.Errorf("audit %s: %d entries, %v; want 1", action, len(page.Entries), err)
		} else if strings.Contains(string(page.Entries[0].Details), "/hook") {
			t.Errorf("audit %s details %s hold the URL's path", action, page.Entries[0].Details)
		}
	}
	for _, r := range f.deliveries() {
		if r.Status == store.WebhookPending {
			t.Errorf("delivery %d still pending after the webhook was removed", r.ID)
		}
	}
	if _, err := f.svc0().Get(ctx, f.owner, f.ws); err == nil || !strings.Contains(err.Error(), "NOT_FOUND") {
		t.Errorf("Get after Delete = %v, want NOT_FOUND", err)
	}
}

// svc0 restarts the service (stopped by the test) for a read.
func (f *fixture) svc0() *webhook.Service {
	f.start(3, time.Hour)
	return f.svc
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Unless the operator allows internal receivers, the worker connects to public addresses only:
// a webhook set to a loopback receiver (a name resolving there is refused the same way, on the
// address dialled) is never reached, and the delivery fails saying why, without the receiver's
// answer. A host too long to store is refused when set.
func TestInternalReceiversRefused(t *testing.T) {
	f := newFixture(t)
	f.allowPrivate = false
	rc := newReceiver(t, f.clock)
	f.start(1, time.Millisecond)
	if _, _, err := f.svc.Set(ctx, f.owner, f.ws, rc.srv.URL+"/hook", false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Test(ctx, f.owner, f.ws); err != nil {
		t.Fatal(err)
	}
	var last store.WebhookDelivery
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ds := f.deliveries(); len(ds) == 1 && ds[0].Status != store.WebhookPending {
			last = ds[0]
			break
		}
	}
	if last.Status != store.WebhookFailed || !strings.Contains(last.LastError, "not public") {
		t.Errorf("delivery to a loopback receiver: %+v, want failed as not public", last)
	}
	rc.mu.Lock()
	n := len(rc.got)
	rc.mu.Unlock()
	if n != 0 {
		t.Errorf("the loopback receiver got %d requests, want none", n)
	}
	long := "https://" + strings.Repeat("a", webhook.MaxHostBytes) + ".example.com/hook"
	if _, _, err := f.svc.Set(ctx, f.owner, f.ws, long, false); err == nil || !strings.Contains(err.Error(), "INVALID_REQUEST") {
		t.Errorf("Set with a %d-byte host = %v, want INVALID_REQUEST", webhook.MaxHostBytes+12, err)
	}
}
