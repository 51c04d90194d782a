package alert_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tokenguard/app/alert"
	"tokenguard/app/budget"
	"tokenguard/app/mail"
	"tokenguard/app/mail/mailtest"
	"tokenguard/app/pricing"
	"tokenguard/store"
	"tokenguard/store/storetest"
)

var ctx = context.Background()

const frontend = "https://tg.example.com"

// app is a ready alerter on a real SQLite file, with a real mailer delivering to a real SMTP
// server, fed by a real budget engine on a clock the test moves.
type app struct {
	t      *testing.T
	path   string
	db     *store.DB
	smtp   *mailtest.Server
	mailer *mail.Mailer
	alerts *alert.Alerter
	engine *budget.Engine

	mu  sync.Mutex
	now time.Time

	ws        int64
	sentinels int
}

func newApp(t *testing.T) *app {
	t.Helper()
	a := &app{t: t, path: filepath.Join(t.TempDir(), "tg.db"), now: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
	a.smtp = mailtest.Start(t, mailtest.Options{})
	a.db = storetest.OpenAt(t, a.path)
	a.engine = budget.New(a.clock)
	a.start()
	err := a.db.WriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		a.ws, err = a.db.InsertWorkspace(ctx, tx, store.Workspace{Name: "Acme <Labs>", CreatedAt: 1})
		if err != nil {
			return err
		}
		for i, m := range []struct{ email, role string }{
			{"owner1@example.com", "owner"}, {"admin@example.com", "admin"}, {"owner2@example.com", "owner"},
		} {
			uid, err := a.db.InsertUser(ctx, tx, store.User{Email: m.email, PasswordHash: "x", CreatedAt: 1})
			if err != nil {
				return err
			}
			if err := a.db.InsertMembership(ctx, tx, a.ws, uid, m.role, int64(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.stop() })
	return a
}

func (a *app) clock() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.now
}

func (a *app) advance(d time.Duration) {
	a.mu.Lock()
	a.now = a.now.Add(d)
	a.mu.Unlock()
}

// start builds the mailer and alerter as main does; stop closes them in main's order.
func (a *app) start() {
	a.t.Helper()
	var err error
	a.mailer, err = mail.New(a.db, mail.Options{SMTP: a.smtp.SMTP(mail.TLSStartTLS), Now: a.clock})
	if err != nil {
		a.t.Fatal(err)
	}
	a.alerts, err = alert.New(alert.Options{DB: a.db, Mailer: a.mailer, FrontendURL: frontend + "/", Now: a.clock})
	if err != nil {
		a.t.Fatal(err)
	}
}

func (a *app) stop() {
	if a.alerts == nil {
		return
	}
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := a.alerts.Close(c); err != nil {
		a.t.Errorf("alerter close: %v", err)
	}
	if err := a.mailer.Close(c); err != nil {
		a.t.Errorf("mailer close: %v", err)
	}
	a.alerts, a.mailer = nil, nil
}

// restart closes the alerter, mailer and database and opens them again on the same file.
func (a *app) restart() {
	a.t.Helper()
	a.stop()
	a.db.Close()
	a.db = storetest.OpenAt(a.t, a.path)
	a.start()
}

// limit is a budget.Limits amount; column is the same amount as a store budget column.
func limit(d float64) *pricing.NanoUSD {
	n := pricing.FromDollars(d)
	return &n
}

func column(d float64) *int64 {
	n := int64(pricing.FromDollars(d))
	return &n
}

// project adds a project to the workspace and returns its id.
func (a *app) project(name, alertEmail, fallback string, daily *int64) int64 {
	a.t.Helper()
	var id int64
	err := a.db.WriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		id, err = a.db.InsertProject(ctx, tx, store.Project{WorkspaceID: a.ws, Name: name, DailyBudgetNano: daily,
			FallbackModel: fallback, AlertEmail: alertEmail, KeyPrefix: "tg_" + name, CreatedAt: 1, UpdatedAt: 1}, "hash")
		return err
	})
	if err != nil {
		a.t.Fatal(err)
	}
	return id
}

// spend runs one request of cost through the engine the way the proxy does: admit, settle, and
// hand any crossings to the alerter.
func (a *app) spend(s budget.Subject, cost float64) []budget.Crossing {
	a.t.Helper()
	tk, d := a.engine.Admit(s, nil)
	if d.Blocked {
		a.t.Fatalf("request blocked: %s", d.Message)
	}
	cr := tk.Settle(a.clock(), pricing.FromDollars(cost))
	a.alerts.OnCrossing(cr)
	return cr
}

// sync makes a fresh project cross a budget and waits for its alert: the alerter and the mailer
// each handle their queue in order, so once the sentinel's mail has arrived every earlier
// crossing has been handled and its mail (if any) delivered. It returns the messages before it.
func (a *app) sync() []mailtest.Received {
	a.t.Helper()
	a.sentinels++
	name := fmt.Sprintf("sentinel%d", a.sentinels)
	id := a.project(name, name+"@example.com", "", column(1))
	a.spend(budget.Subject{ProjectID: id, WorkspaceID: a.ws, Project: budget.Limits{Daily: limit(1)}}, 0.9)
	msgs := a.smtp.Wait(1, 10*time.Second)
	for msgs[len(msgs)-1].To[0] != name+"@example.com" {
		msgs = a.smtp.Wait(len(msgs)+1, 10*time.Second)
	}
	var out []mailtest.Received
	for _, m := range msgs {
		if !strings.HasPrefix(m.To[0], "sentinel") {
			out = append(out, m)
		}
	}
	return out
}

func TestProjectAlertsOncePerThresholdAndPeriod(t *testing.T) {
	a := newApp(t)
	id := a.project("chatbot", "alerts@example.com", "gpt-4o-mini", column(10))
	subject := func(daily float64) budget.Subject {
		return budget.Subject{ProjectID: id, WorkspaceID: a.ws, HasFallback: true, Project: budget.Limits{Daily: limit(daily)}}
	}

	a.spend(subject(10), 7)
	if got := a.sync(); len(got) != 0 {
		t.Fatalf("mail below 80%%: %q", got[0].Subject)
	}

	// Crossing 80% mails the project's alert email once, saying what, how much, when and what next.
	if cr := a.spend(subject(10), 1.5); len(cr) != 1 {
		t.Fatalf("engine reported %d crossings at 85%%, want 1", len(cr))
	}
	got := a.sync()
	if len(got) != 1 {
		t.Fatalf("%d mails after crossing 80%%, want 1", len(got))
	}
	m := got[0]
	if got, want := m.To, []string{"alerts@example.com"}; !slices.Equal(got, want) {
		t.Errorf("To = %v, want %v", got, want)
	}
	if got, want := m.Subject, "TokenGuard: project chatbot reached 80% of its daily budget"; got != want {
		t.Errorf("Subject = %q, want %q", got, want)
	}
	for _, want := range []string{"$8.50 of $10.00 (85%)", "Thursday 26 November 2026 (UTC)", "fallback model gpt-4o-mini",
		"429 BUDGET_EXCEEDED", "27 November 2026", fmt.Sprintf("%s/w/%d/projects/%d", frontend, a.ws, id)} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, m.Text)
		}
	}
	if want := fmt.Sprintf(`href="%s/w/%d/projects/%d"`, frontend, a.ws, id); !strings.Contains(m.HTML, want) {
		t.Errorf("HTML lacks the link %s:\n%s", want, m.HTML)
	}

	// The budget is raised to $20 and spend crosses 80% of it in the same day: the engine reports
	// it again, but the alert for this day and threshold has been sent.
	if cr := a.spend(subject(20), 8); len(cr) != 1 {
		t.Fatalf("engine reported %d crossings at 82.5%% of the raised budget, want 1", len(cr))
	}
	if got := a.sync(); len(got) != 1 {
		t.Fatalf("%d mails after crossing 80%% again the same day, want still 1", len(got))
	}

	// Crossing 100% mails once more, saying requests are now refused.
	if cr := a.spend(subject(20), 4); len(cr) != 1 || cr[0].Threshold != budget.BlockLevel {
		t.Fatalf("crossings at 102.5%% = %+v, want the 100%% one", cr)
	}
	got = a.sync()
	if len(got) != 2 {
		t.Fatalf("%d mails after crossing 100%%, want 2", len(got))
	}
	m = got[1]
	if got, want := m.Subject, "TokenGuard: project chatbot reached 100% of its daily budget"; got != want {
		t.Errorf("Subject = %q, want %q", got, want)
	}
	for _, want := range []string{"$20.50 of $20.00 (102%)", "refused with 429 BUDGET_EXCEEDED"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, m.Text)
		}
	}

	// The next UTC day is a new period: crossing 80% mails again.
	a.advance(24 * time.Hour)
	a.spend(subject(10), 9)
	got = a.sync()
	if len(got) != 3 {
		t.Fatalf("%d mails after crossing 80%% the next day, want 3", len(got))
	}
	if m := got[2]; !strings.Contains(m.Subject, "80%") || !strings.Contains(m.Text, "Friday 27 November 2026") {
		t.Errorf("next day's alert: %q\n%s", m.Subject, m.Text)
	}

	// After a restart (new engine with no memory of the crossing, new alerter on the same
	// database) the same day's crossings do not mail again.
	a.restart()
	a.engine = budget.New(a.clock)
	if cr := a.spend(subject(10), 10); len(cr) != 2 {
		t.Fatalf("fresh engine reported %d crossings, want 80%% and 100%%", len(cr))
	}
	got = a.sync()
	if len(got) != 4 {
		t.Fatalf("%d mails after restart, want 4 (the 100%% of the day only)", len(got))
	}
	if m := got[3]; !strings.Contains(m.Subject, "100%") {
		t.Errorf("after restart got %q, want only the not-yet-sent 100%% alert", m.Subject)
	}
}

func TestMonthlyProjectAlertWithoutFallback(t *testing.T) {
	a := newApp(t)
	id := a.project("batch", "ops@example.com", "", nil)
	s := budget.Subject{ProjectID: id, WorkspaceID: a.ws, Project: budget.Limits{Monthly: limit(0.005)}}
	a.spend(s, 0.0041)
	got := a.sync()
	if len(got) != 1 {
		t.Fatalf("%d mails, want 1", len(got))
	}
	m := got[0]
	if got, want := m.Subject, "TokenGuard: project batch reached 80% of its monthly budget"; got != want {
		t.Errorf("Subject = %q, want %q", got, want)
	}
	for _, want := range []string{"$0.0041 of $0.005 (82%)", "November 2026 (UTC)", "no fallback model is set", "1 December 2026"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, m.Text)
		}
	}
}

func TestNoAlertEmailNoMail(t *testing.T) {
	a := newApp(t)
	id := a.project("quiet", "", "", column(1))
	if cr := a.spend(budget.Subject{ProjectID: id, WorkspaceID: a.ws, Project: budget.Limits{Daily: limit(1)}}, 2); len(cr) != 2 {
		t.Fatalf("engine reported %d crossings, want 2", len(cr))
	}
	if got := a.sync(); len(got) != 0 {
		t.Fatalf("project without alert email got mail to %v: %q", got[0].To, got[0].Subject)
	}
}

func TestWorkspaceCrossingMailsTheOwners(t *testing.T) {
	a := newApp(t)
	id := a.project("chatbot", "alerts@example.com", "", nil)
	s := budget.Subject{ProjectID: id, WorkspaceID: a.ws, Workspace: budget.Limits{Daily: limit(100)}}
	a.spend(s, 90)
	got := a.sync()
	var to []string
	for _, m := range got {
		to = append(to, m.To...)
		if want := "TokenGuard: workspace Acme <Labs> reached 80% of its daily budget"; m.Subject != want {
			t.Errorf("Subject = %q, want %q", m.Subject, want)
		}
		for _, want := range []string{"$90.00 of $100.00 (90%)", "Projects with a fallback model", fmt.Sprintf("%s/w/%d/settings", frontend, a.ws)} {
			if !strings.Contains(m.Text, want) {
				t.Errorf("text lacks %q:\n%s", want, m.Text)
			}
		}
		if !strings.Contains(m.HTML, "Acme &lt;Labs&gt;") {
			t.Errorf("HTML does not escape the workspace name:\n%s", m.HTML)
		}
	}
	slices.Sort(to)
	if want := []string{"owner1@example.com", "owner2@example.com"}; !slices.Equal(to, want) {
		t.Errorf("workspace alert went to %v, want the owners %v (not the admin, not the project's alert email)", to, want)
	}
}

// TestCloseDrainsQueuedCrossings checks that crossings reported just before shutdown are still
// mailed (Close waits for them; the mailer's Close then delivers), and that a crossing reported
// after Close is ignored rather than panicking on a closed queue.
func TestCloseDrainsQueuedCrossings(t *testing.T) {
	a := newApp(t)
	var want []string
	for i := range 5 {
		email := fmt.Sprintf("p%d@example.com", i)
		id := a.project(fmt.Sprintf("p%d", i), email, "", column(1))
		a.spend(budget.Subject{ProjectID: id, WorkspaceID: a.ws, Project: budget.Limits{Daily: limit(1)}}, 1)
		want = append(want, email, email) // 80% and 100%
	}
	alerts := a.alerts
	a.stop()
	alerts.OnCrossing([]budget.Crossing{{Budget: budget.ProjectDaily, Threshold: budget.FallbackLevel, ProjectID: 1, WorkspaceID: a.ws}})
	var got []string
	for _, m := range a.smtp.Messages() {
		got = append(got, m.To...)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("delivered to %v, want %v", got, want)
	}
}
