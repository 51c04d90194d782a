package main

import (
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"tokenguard/app/mail/mailtest"
)

// TestBudgetAlertsMailedThroughTheProxy: the real program, a real SMTP server and real proxied
// requests. A project's daily budget crossed at 80% and then at 100% mails its alert email once
// each, with the spend, the budget and a link to the project's page; the request after that is
// refused, and nothing is mailed twice.
func TestBudgetAlertsMailedThroughTheProxy(t *testing.T) {
	smtp := mailtest.Start(t, mailtest.Options{})
	upstream := httptest.NewServer(numberedUpstream(0))
	t.Cleanup(upstream.Close)
	env := testEnv(filepath.Join(t.TempDir(), "tokenguard.db"), upstream.URL)
	host, port, _ := strings.Cut(smtp.Addr(), ":")
	env["SMTP_HOST"], env["SMTP_PORT"], env["SMTP_FROM"] = host, port, "TokenGuard <noreply@tokenguard.test>"
	env["FRONTEND_URL"] = "https://tg.example.com"
	app := startApp(t, env)
	o := signUpWithProject(t, app.URL, 0)

	// Each request costs about $0.000152 (1000+n prompt tokens of gpt-4o-mini): the second
	// request takes spend to ~87% of $0.00035, the third to ~130%, the fourth is refused.
	if got, want := apiCall(t, "PATCH", fmt.Sprintf("%s/api/projects/%d", app.URL, o.ProjectID), o.Token,
		map[string]any{"dailyBudgetUsd": 0.00035, "alertEmail": "alerts@example.com"}, nil), 200; got != want {
		t.Fatalf("set budget and alert email: status %d, want %d", got, want)
	}
	for n := 1; n <= 3; n++ {
		if status, code, _ := proxied(t, app.URL, o.Key, n); status != 200 {
			t.Fatalf("request %d = %d %s, want 200", n, status, code)
		}
		if n == 2 {
			msgs := smtp.Wait(1, 10*time.Second)
			if got, want := msgs[0].Subject, "TokenGuard: project checkout-bot reached 80% of its daily budget"; got != want {
				t.Errorf("first alert subject = %q, want %q", got, want)
			}
		}
	}
	if status, code, _ := proxied(t, app.URL, o.Key, 4); status != 429 || code != "BUDGET_EXCEEDED" {
		t.Fatalf("request 4 = %d %s, want 429 BUDGET_EXCEEDED", status, code)
	}
	smtp.Wait(2, 10*time.Second)
	// Closing the program flushes every queue: anything sent twice would be here now.
	if err := app.close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	msgs := smtp.Messages()
	var subjects []string
	for _, m := range msgs {
		subjects = append(subjects, m.Subject)
		if got, want := m.To, []string{"alerts@example.com"}; !slices.Equal(got, want) {
			t.Errorf("alert went to %v, want %v", got, want)
		}
		link := "https://tg.example.com/w/" + strconv.FormatInt(o.WorkspaceID, 10) + "/projects/" + strconv.FormatInt(o.ProjectID, 10)
		if !strings.Contains(m.Text, link) || !strings.Contains(m.Text, "of $0.00035 (") {
			t.Errorf("alert text lacks the link %s or the budget:\n%s", link, m.Text)
		}
	}
	if want := []string{
		"TokenGuard: project checkout-bot reached 80% of its daily budget",
		"TokenGuard: project checkout-bot reached 100% of its daily budget",
	}; !slices.Equal(subjects, want) {
		t.Errorf("alerts = %q, want %q", subjects, want)
	}
}
