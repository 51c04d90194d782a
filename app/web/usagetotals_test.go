package web_test

import (
	"context"
	"fmt"
	"html"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"tokenguard/store"
)

// totalsOf is the usage log's totals for page: the fragment the page loads once shown, from the
// URL the page names.
func totalsOf(t *testing.T, c *client, page string) string {
	t.Helper()
	m := regexp.MustCompile(`hx-get="([^"]+)" hx-trigger="load"`).FindStringSubmatch(c.get(page).Body)
	if m == nil {
		t.Fatalf("%s loads no totals", page)
	}
	return c.get(html.UnescapeString(m[1])).Body
}

// TestUsageTotalsAndPresets ensures the usage log's totals sum every request its filters select,
// not the page on screen, and follow each filter; and that the date presets set the range while
// keeping the other filters, the current one marked.
func TestUsageTotalsAndPresets(t *testing.T) {
	app := newApp(t)
	c := app.client(t)
	ws, wsID, projectID := c.signupWithProject()
	now := time.Now().UTC()
	// 130 rows today (more than a page): 100 OpenAI at $0.001, 30 Anthropic at $0.01; and 20
	// OpenAI rows 10 days ago.
	var rows []store.UsageRow
	for i := range 150 {
		r := store.UsageRow{RequestID: fmt.Sprintf("req-%03d", i), CreatedAt: now.Add(-time.Duration(i) * time.Second).UnixMilli(),
			WorkspaceID: wsID, ProjectID: projectID, Provider: "openai", OriginalModel: "gpt-4o", FinalModel: "gpt-4o",
			Status: 200, InputTokens: 10, OutputTokens: 5, TotalTokens: 15, CostNano: 1_000_000}
		switch {
		case i >= 130:
			r.CreatedAt = now.AddDate(0, 0, -10).UnixMilli()
		case i >= 100:
			r.Provider, r.OriginalModel, r.FinalModel, r.CostNano = "anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5", 10_000_000
		}
		rows = append(rows, r)
	}
	if _, err := app.DB.InsertUsage(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	today := now.Format(time.DateOnly)
	total := func(body, name string) string {
		m := regexp.MustCompile(`data-total="` + name + `">([^<]+)<`).FindStringSubmatch(body)
		if m == nil {
			return ""
		}
		return strings.Join(strings.Fields(m[1]), " ")
	}
	for _, tc := range []struct {
		query                  string
		requests, tokens, cost string
	}{
		{"", "150", "1,500 / 750", "$0.42"},
		{"?provider=openai", "120", "1,200 / 600", "$0.12"},
		{"?provider=anthropic", "30", "300 / 150", "$0.30"},
		{"?from=" + today + "&to=" + today, "130", "1,300 / 650", "$0.40"},
		{"?model=claude", "30", "300 / 150", "$0.30"},
	} {
		body := totalsOf(t, c, ws+"/usage"+tc.query)
		if got := total(body, "requests"); got != tc.requests {
			t.Errorf("%q: requests total %q, want %q", tc.query, got, tc.requests)
		}
		if got := total(body, "tokens"); got != tc.tokens {
			t.Errorf("%q: tokens total %q, want %q", tc.query, got, tc.tokens)
		}
		if got := total(body, "cost"); got != tc.cost {
			t.Errorf("%q: cost total %q, want %q", tc.query, got, tc.cost)
		}
	}
	if body := totalsOf(t, c, ws+"/usage?status=200&provider=anthropic"); total(body, "requests") != "30" || total(body, "cost") != "$0.30" {
		t.Errorf("status 200, Anthropic: totals %s requests, %s", total(body, "requests"), total(body, "cost"))
	}
	if body := totalsOf(t, c, ws+"/usage?status=429"); total(body, "requests") != "0" {
		t.Errorf("status 429: totals %s requests, want 0", total(body, "requests"))
	}

	// Presets: Today keeps the provider filter and sets both days; once applied it is current.
	body := c.get(ws + "/usage?provider=openai").Body
	m := regexp.MustCompile(`<a class="preset[^"]*" href="([^"]+)" data-range="today"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no Today preset")
	}
	u, _ := url.Parse(strings.ReplaceAll(m[1], "&amp;", "&"))
	if q := u.Query(); q.Get("from") != today || q.Get("to") != today || q.Get("provider") != "openai" {
		t.Errorf("the Today preset links to %s", u)
	}
	body = c.get(u.RequestURI()).Body
	if !regexp.MustCompile(`class="preset current" href="[^"]+" data-range="today" aria-current`).MatchString(body) {
		t.Error("after following Today, it is not marked current")
	}
	if got := total(totalsOf(t, c, u.RequestURI()), "requests"); got != "100" {
		t.Errorf("Today, OpenAI: %s requests, want 100", got)
	}
}
