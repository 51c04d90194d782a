package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestAuditFilters ensures the audit log filters by who acted, what they did and when, names
// people and projects instead of showing ids, keeps its filters on the next page's link, and
// says what is wrong with a filter instead of ignoring it.
func TestAuditFilters(t *testing.T) {
	app := newApp(t)
	ada := app.client(t)
	ws := ada.signup("Ada", "ada@example.com")
	ada.createProject(ws, url.Values{"name": {"support-bot"}})
	mel := join(t, app, ada, ws, "Mel", "mel@example.com", "admin")
	mel.createProject(ws, url.Values{"name": {"mel-bot"}})
	var adaID, melID string
	app.DB.Read.QueryRow(`SELECT id FROM users WHERE email = 'ada@example.com'`).Scan(&adaID)
	app.DB.Read.QueryRow(`SELECT id FROM users WHERE email = 'mel@example.com'`).Scan(&melID)
	today := time.Now().UTC().Format(time.DateOnly)
	tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
	row := regexp.MustCompile(`<tr data-audit-action="([a-z_]+)">`)

	for _, tc := range []struct {
		name, query string
		// actions are the events listed, newest first; want is text the page must show.
		actions []string
		want    []string
	}{
		{"everything", "", []string{"project_created", "invite_accepted", "member_invited", "project_created", "workspace_created"},
			[]string{"Mel (mel@example.com)", "Ada (ada@example.com)", "project support-bot", "project mel-bot", "Project created", "Member invited"}},
		{"by actor", "actor=" + melID, []string{"project_created", "invite_accepted"}, []string{"project mel-bot"}},
		{"by action", "action=project_created", []string{"project_created", "project_created"}, []string{"Ada (ada@example.com)", "Mel (mel@example.com)"}},
		{"actor and action", "actor=" + adaID + "&action=project_created", []string{"project_created"}, []string{"project support-bot"}},
		{"today", "from=" + today + "&to=" + today, []string{"project_created", "invite_accepted", "member_invited", "project_created", "workspace_created"}, nil},
		{"from tomorrow", "from=" + tomorrow, nil, []string{"No events match."}},
		{"bad dates", "from=yesterday&to=soon", nil, []string{"From must be a date.", "To must be a date."}},
		{"unknown action", "action=drop_tables", nil, []string{"Unknown action."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ada.get(ws + "/audit?" + tc.query)
			if r.Status != http.StatusOK {
				t.Fatalf("status %d", r.Status)
			}
			var got []string
			for _, m := range row.FindAllStringSubmatch(r.Body, -1) {
				got = append(got, m[1])
			}
			if strings.Join(got, ",") != strings.Join(tc.actions, ",") {
				t.Errorf("events %v, want %v", got, tc.actions)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.Body, w) {
					t.Errorf("the page does not show %q", w)
				}
			}
			if regexp.MustCompile(`<td data-label="Target">(project|user) \d+</td>`).MatchString(r.Body) {
				t.Error("a target is shown by id")
			}
		})
	}

	// 60 more events: the next page's link keeps the filters.
	for i := 0; i < 60; i++ {
		if _, err := app.DB.Write.ExecContext(context.Background(), `INSERT INTO audit_log (workspace_id, actor_user_id, action, target_type, target_id, details, ip, created_at)
			SELECT workspace_id, actor_user_id, action, target_type, target_id, details, ip, created_at FROM audit_log WHERE action = 'project_created' LIMIT 1`); err != nil {
			t.Fatal(err)
		}
	}
	r := ada.get(ws + "/audit?action=project_created&from=" + today)
	next := regexp.MustCompile(`href="(/w/\d+/audit\?[^"]+)"`).FindStringSubmatch(r.Body)
	if next == nil {
		t.Fatal("no link to older events")
	}
	link := strings.ReplaceAll(next[1], "&amp;", "&")
	if u, _ := url.Parse(link); u.Query().Get("action") != "project_created" || u.Query().Get("from") != today || u.Query().Get("cursor") == "" {
		t.Errorf("the older-events link %s drops the filters", link)
	}
}
