package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestProjectFormShowsEveryError ensures the project form reports every problem of a submit at
// once, each beside its field and in the words of the form's labels, and that a fallback model
// TokenGuard has no price for is warned about once and accepted when saved again.
func TestProjectFormShowsEveryError(t *testing.T) {
	app := newApp(t)
	c := app.client(t)
	ws := c.signup("Ada", "ada@example.com")
	c.get(ws + "/new-project")
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		want   []string
	}{
		{"everything wrong", url.Values{"name": {""}, "dailyBudgetUsd": {"abc"}, "monthlyBudgetUsd": {"-5"},
			"fallbackModel": {"gpt-4o-mnii"}, "alertEmail": {"nope"}}, http.StatusBadRequest, []string{
			`id="name-err"`, "Give the project a name.",
			`id="dailyBudgetUsd-err"`, "Enter an amount in USD",
			`id="monthlyBudgetUsd-err"`, "Monthly budget",
			`id="fallbackModel-err"`, "no price for “gpt-4o-mnii”",
			`id="alertEmail-err"`, "Alert email must be a valid address",
			`name="confirmFallback" value="gpt-4o-mnii"`,
		}},
		{"a bad fallback name", url.Values{"name": {"bot"}, "fallbackModel": {"gpt 4o"}}, http.StatusBadRequest,
			[]string{"Fallback model must be a model name without spaces"}},
		{"unknown fallback, once", url.Values{"name": {"bot"}, "fallbackModel": {"my-finetune-v2"}}, http.StatusBadRequest,
			[]string{"no price for “my-finetune-v2”", "Save again to use it anyway"}},
		{"unknown fallback, confirmed", url.Values{"name": {"bot"}, "fallbackModel": {"my-finetune-v2"}, "confirmFallback": {"my-finetune-v2"}},
			http.StatusSeeOther, nil},
		{"known fallback", url.Values{"name": {"bot2"}, "fallbackModel": {"gpt-4o-mini"}}, http.StatusSeeOther, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.post(ws+"/projects", tc.form)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Body)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.Body, w) {
					t.Errorf("the form does not show %q", w)
				}
			}
			for _, id := range []string{"dailyBudgetUsd must", "monthlyBudgetUsd must", "fallbackModel must", "alertEmail must"} {
				if strings.Contains(r.Body, id) {
					t.Errorf("a message names the field by its id: %q", id)
				}
			}
		})
	}
	var fallback string
	app.DB.Read.QueryRow(`SELECT fallback_model FROM projects WHERE name = 'bot'`).Scan(&fallback)
	if fallback != "my-finetune-v2" {
		t.Errorf("the confirmed fallback model is %q", fallback)
	}
}
