package cluster_test

// The "once" properties of a cluster: what every replica could do, exactly one does. Each test
// runs three replicas — real stores on one PostgreSQL schema with their own workers — racing
// for the same work.

import (
	"context"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"tokenguard/app/account"
	"tokenguard/app/alert"
	"tokenguard/app/budget"
	"tokenguard/app/mail"
	"tokenguard/app/mail/mailtest"
	"tokenguard/app/pricing"
	"tokenguard/app/secret"
	"tokenguard/app/webhook"
	"tokenguard/store"
	"tokenguard/store/storetest"
)

const hexKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

// A budget crossing seen by every replica at once (each settles requests of the same project)
// is mailed once per threshold: the claim in budget_alerts is one statement, across replicas.
func TestBudgetAlertMailedOnceAcrossReplicas(t *testing.T) {
	_, dbs := storetest.Replicas(t, 3)
	smtp := mailtest.Start(t, mailtest.Options{})
	var ws, proj int64
	err := dbs[0].WriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		if ws, err = dbs[0].InsertWorkspace(ctx, tx, store.Workspace{Name: "Acme", CreatedAt: 1}); err != nil {
			return err
		}
		daily := int64(pricing.FromDollars(10))
		proj, err = dbs[0].InsertProject(ctx, tx, store.Project{WorkspaceID: ws, Name: "chat", DailyBudgetNano: &daily,
			AlertEmail: "alerts@example.com", KeyPrefix: "tg_chat", CreatedAt: 1, UpdatedAt: 1}, "hash")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	crossings := []budget.Crossing{
		{Budget: budget.ProjectDaily, Threshold: 0.8, ProjectID: proj, WorkspaceID: ws, Spend: pricing.FromDollars(8.5), Limit: pricing.FromDollars(10), At: at},
		{Budget: budget.ProjectDaily, Threshold: budget.BlockLevel, ProjectID: proj, WorkspaceID: ws, Spend: pricing.FromDollars(10.2), Limit: pricing.FromDollars(10), At: at},
	}
	type worker struct {
		mailer *mail.Mailer
		alerts *alert.Alerter
	}
	workers := make([]worker, len(dbs))
	for i, db := range dbs {
		m, err := mail.New(db, mail.Options{SMTP: smtp.SMTP(mail.TLSStartTLS)})
		if err != nil {
			t.Fatal(err)
		}
		a, err := alert.New(alert.Options{DB: db, Mailer: m, FrontendURL: "https://tg.example.com"})
		if err != nil {
			t.Fatal(err)
		}
		workers[i] = worker{m, a}
	}
	var wg sync.WaitGroup
	for _, w := range workers {
		for range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.alerts.OnCrossing(crossings)
			}()
		}
	}
	wg.Wait()
	// Closing drains each alerter's queue into its mailer and each mailer's into the server.
	c, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for _, w := range workers {
		if err := w.alerts.Close(c); err != nil {
			t.Fatal(err)
		}
		if err := w.mailer.Close(c); err != nil {
			t.Fatal(err)
		}
	}
	msgs := smtp.Messages()
	if len(msgs) != 2 {
		var subjects []string
		for _, m := range msgs {
			subjects = append(subjects, m.Subject)
		}
		t.Fatalf("%d alert mails across 3 replicas, want 2 (80%% and 100%% once each): %q", len(msgs), subjects)
	}
}

// Three replicas' webhook workers find the same deliveries due; each is posted once.
func TestWebhookDeliveredOnceAcrossReplicas(t *testing.T) {
	_, dbs := storetest.Replicas(t, 3)
	box, err := secret.NewBox(hexKey)
	if err != nil {
		t.Fatal(err)
	}
	accounts := make([]*account.Service, len(dbs))
	for i, db := range dbs {
		if accounts[i], err = account.New(db, account.Options{JWTSecret: []byte("test-secret-test-secret-test-secret"), Box: box,
			AllowSignup: true, PasswordCost: 4}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := accounts[0].Signup(ctx, account.SignupInput{Email: "owner@example.com", Password: "correct horse battery", Name: "Owner"}, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	owner, ws := account.Actor{UserID: s.User.ID, IP: "127.0.0.1"}, s.Workspace.ID

	var mu sync.Mutex
	posts := map[string]int{}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Slow enough that the replicas' passes overlap.
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		posts[r.Header.Get("X-Tokenguard-Delivery")]++
		mu.Unlock()
	}))
	defer receiver.Close()

	start := func(i int) *webhook.Service {
		svc, err := webhook.New(webhook.Options{DB: dbs[i], Box: box, Accounts: accounts[i], FrontendURL: "https://tg.example.com",
			AllowPrivate: true, Backoff: func(int) time.Duration { return 50 * time.Millisecond }})
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	setup := start(0)
	if _, _, err := setup.Set(ctx, owner, ws, receiver.URL+"/hook", false); err != nil {
		t.Fatal(err)
	}
	if err := setup.Close(ctx); err != nil {
		t.Fatal(err)
	}
	const events = 30
	now := time.Now().UnixMilli()
	for range events {
		if id, err := dbs[0].EnqueueWebhook(ctx, store.WebhookDelivery{WorkspaceID: ws, Event: "test", Body: `{"text":"hi"}`,
			NextAt: now, CreatedAt: now}, 1000); err != nil || id == 0 {
			t.Fatalf("enqueue: id %d, %v", id, err)
		}
	}
	// Each worker's first pass runs as it starts: all three find the 30 due at once.
	svcs := []*webhook.Service{start(0), start(1), start(2)}
	defer func() {
		for _, svc := range svcs {
			svc.Close(ctx)
		}
	}()

	deadline := time.Now().Add(within)
	for {
		rows, err := dbs[0].RecentWebhooks(ctx, ws, 1000)
		if err != nil {
			t.Fatal(err)
		}
		sent := 0
		for _, d := range rows {
			if d.Status == store.WebhookSent {
				sent++
			}
		}
		if sent == events {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d deliveries sent within %v", sent, events, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A duplicate post could still be in flight when the row reads sent: let the workers go
	// quiet before counting.
	for _, svc := range svcs {
		svc.Close(ctx)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(posts) != events {
		t.Errorf("%d distinct deliveries posted, want %d", len(posts), events)
	}
	for id, n := range posts {
		if n != 1 {
			t.Errorf("delivery %s posted %d times", id, n)
		}
	}
}
