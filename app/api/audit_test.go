package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"tokenguard/app/account"
)

var fullKey = regexp.MustCompile(`tg_live_[0-9A-Za-z]{20,}`)

type auditEvent struct {
	ID          int64
	ActorUserID *int64
	ActorEmail  string
	Action      string
	TargetType  string
	TargetID    string
	Details     map[string]any
	IP          string
	CreatedAt   time.Time
}

// TestAuditEvents ensures each action writes its audit event, once, with actor, time, target,
// details and client IP.
func TestAuditEvents(t *testing.T) {
	type outcome struct {
		ws           int64
		actor        *user
		targetType   string
		targetID     int64
		detailsCheck func(d map[string]any) bool
	}
	cases := []struct {
		action string
		do     func(a *testApp, tm *team) outcome
	}{
		{"workspace_created", func(a *testApp, tm *team) outcome {
			var out struct{ Workspace struct{ ID int64 } }
			a.mustJSON(tm.admin.call(http.MethodPost, "/api/workspaces", map[string]any{"name": "Fresh"}), 201, &out)
			return outcome{out.Workspace.ID, tm.admin, "workspace", out.Workspace.ID, func(d map[string]any) bool { return d["name"] == "Fresh" }}
		}},
		{"workspace_updated", func(a *testApp, tm *team) outcome {
			a.mustJSON(tm.owner.call(http.MethodPatch, fmt.Sprintf("/api/workspaces/%d", tm.ws), map[string]any{"name": "Renamed", "monthlyBudgetUsd": 9}), 200, nil)
			return outcome{tm.ws, tm.owner, "workspace", tm.ws, func(d map[string]any) bool {
				n, _ := d["name"].(map[string]any)
				m, _ := d["monthlyBudgetUsd"].(map[string]any)
				return n["to"] == "Renamed" && m["to"] == 9.0 && m["from"] == nil
			}}
		}},
		{"workspace_deleted", func(a *testApp, tm *team) outcome {
			a.mustJSON(tm.owner.call(http.MethodDelete, fmt.Sprintf("/api/workspaces/%d", tm.ws), map[string]any{"confirmName": tm.name}), 204, nil)
			return outcome{tm.ws, tm.owner, "workspace", tm.ws, func(d map[string]any) bool { return d["name"] == tm.name }}
		}},
		{"member_role_changed", func(a *testApp, tm *team) outcome {
			a.mustJSON(tm.admin.call(http.MethodPatch, fmt.Sprintf("/api/workspaces/%d/members/%d", tm.ws, tm.member.id), map[string]any{"role": "admin"}), 200, nil)
			return outcome{tm.ws, tm.admin, "user", tm.member.id, func(d map[string]any) bool { return d["from"] == "member" && d["to"] == "admin" }}
		}},
		{"member_removed", func(a *testApp, tm *team) outcome {
			a.mustJSON(tm.owner.call(http.MethodDelete, fmt.Sprintf("/api/workspaces/%d/members/%d", tm.ws, tm.member2.id), nil), 204, nil)
			return outcome{tm.ws, tm.owner, "user", tm.member2.id, func(d map[string]any) bool { return d["role"] == "member" && d["left"] == false }}
		}},
		{"billing_plan_changed", func(a *testApp, tm *team) outcome {
			a.mustJSON(tm.owner.call(http.MethodPut, fmt.Sprintf("/api/workspaces/%d/billing", tm.ws), map[string]any{"plan": "team"}), 200, nil)
			return outcome{tm.ws, tm.owner, "workspace", tm.ws, func(d map[string]any) bool { return d["from"] == "free" && d["to"] == "team" }}
		}},
		{"project_created", func(a *testApp, tm *team) outcome {
			p := tm.admin.createProject(tm.ws, "Bot")
			return outcome{tm.ws, tm.admin, "project", p.Project.ID, func(d map[string]any) bool {
				return d["name"] == "Bot" && d["keyPrefix"] == p.Project.KeyPrefix
			}}
		}},
		{"project_updated", func(a *testApp, tm *team) outcome {
			p := tm.owner.createProject(tm.ws, "Bot")
			a.mustJSON(tm.admin.call(http.MethodPatch, fmt.Sprintf("/api/projects/%d", p.Project.ID), map[string]any{"fallbackModel": "gpt-4o-mini"}), 200, nil)
			return outcome{tm.ws, tm.admin, "project", p.Project.ID, func(d map[string]any) bool {
				f, _ := d["fallbackModel"].(map[string]any)
				return f["from"] == "" && f["to"] == "gpt-4o-mini"
			}}
		}},
		{"provider_keys_updated", func(a *testApp, tm *team) outcome {
			p := tm.owner.createProject(tm.ws, "Bot")
			a.mustJSON(tm.admin.call(http.MethodPut, fmt.Sprintf("/api/projects/%d/provider-keys", p.Project.ID), map[string]any{"gemini": "AIzaSyTOPSECRET00001"}), 200, nil)
			return outcome{tm.ws, tm.admin, "project", p.Project.ID, func(d map[string]any) bool { return fmt.Sprint(d["set"]) == "[gemini]" }}
		}},
		{"key_regenerated", func(a *testApp, tm *team) outcome {
			p := tm.owner.createProject(tm.ws, "Bot")
			var out struct{ Project struct{ KeyPrefix string } }
			a.mustJSON(tm.owner.call(http.MethodPost, fmt.Sprintf("/api/projects/%d/regenerate-key", p.Project.ID), nil), 200, &out)
			return outcome{tm.ws, tm.owner, "project", p.Project.ID, func(d map[string]any) bool {
				return d["oldKeyPrefix"] == p.Project.KeyPrefix && d["keyPrefix"] == out.Project.KeyPrefix
			}}
		}},
		{"project_deactivated", func(a *testApp, tm *team) outcome {
			p := tm.owner.createProject(tm.ws, "Bot")
			a.mustJSON(tm.admin.call(http.MethodPost, fmt.Sprintf("/api/projects/%d/deactivate", p.Project.ID), nil), 200, nil)
			return outcome{tm.ws, tm.admin, "project", p.Project.ID, func(d map[string]any) bool { return d["name"] == "Bot" }}
		}},
		{"project_activated", func(a *testApp, tm *team) outcome {
			p := tm.owner.createProject(tm.ws, "Bot")
			a.mustJSON(tm.owner.call(http.MethodPost, fmt.Sprintf("/api/projects/%d/deactivate", p.Project.ID), nil), 200, nil)
			a.mustJSON(tm.admin.call(http.MethodPost, fmt.Sprintf("/api/projects/%d/activate", p.Project.ID), nil), 200, nil)
			return outcome{tm.ws, tm.admin, "project", p.Project.ID, func(d map[string]any) bool { return d["name"] == "Bot" }}
		}},
		{"project_deleted", func(a *testApp, tm *team) outcome {
			p := tm.owner.createProject(tm.ws, "Bot")
			a.mustJSON(tm.admin.call(http.MethodDelete, fmt.Sprintf("/api/projects/%d", p.Project.ID), nil), 204, nil)
			return outcome{tm.ws, tm.admin, "project", p.Project.ID, func(d map[string]any) bool { return d["name"] == "Bot" }}
		}},
		{"usage_exported", func(a *testApp, tm *team) outcome {
			// Exports are served by the analytics package, which records them through the service.
			err := a.acct.Record(context.Background(), account.Actor{UserID: tm.member.id, IP: "127.0.0.1"}, tm.ws, account.AuditEvent{
				Action: account.AuditUsageExported, TargetType: "workspace", TargetID: tm.ws, Details: map[string]any{"format": "csv", "rows": 3},
			})
			if err != nil {
				a.t.Fatal(err)
			}
			return outcome{tm.ws, tm.member, "workspace", tm.ws, func(d map[string]any) bool { return d["format"] == "csv" }}
		}},
	}
	a := newApp(t)
	owner, admin, member, member2, outsider := a.people()
	for _, tc := range cases {
		t.Run(tc.action, func(t *testing.T) {
			a.t = t
			tm := a.newTeam(owner, admin, member, member2, outsider)
			before := len(a.auditRows(tm.ws, tc.action))
			a.clock.Add(time.Minute)
			o := tc.do(a, tm)
			rows := a.auditRows(o.ws, tc.action)
			if o.ws == tm.ws {
				rows = rows[:len(rows)-before]
			}
			if len(rows) != 1 {
				t.Fatalf("%s events = %d, want 1", tc.action, len(rows))
			}
			e := rows[0]
			if e.ActorUserID != o.actor.id || e.TargetType != o.targetType || e.TargetID != strconv.FormatInt(o.targetID, 10) ||
				e.IP != "127.0.0.1" || e.CreatedAt != a.clock.Now().UnixMilli() {
				t.Errorf("event = %+v; want actor %d, target %s %d, ip 127.0.0.1, time %d", e, o.actor.id, o.targetType, o.targetID, a.clock.Now().UnixMilli())
			}
			var d map[string]any
			if err := json.Unmarshal([]byte(e.Details), &d); err != nil || !o.detailsCheck(d) {
				t.Errorf("details = %s (%v)", e.Details, err)
			}
			// Key prefixes are public (the dashboard shows them); a whole key never is.
			if fullKey.MatchString(e.Details) || strings.Contains(e.Details, "TOPSECRET") {
				t.Errorf("details hold a secret: %s", e.Details)
			}
		})
	}
}

// TestAuditLogAPI ensures the audit log pages by cursor, filters by action, actor and time, and
// that no route edits or deletes its rows (the schema refuses it too).
func TestAuditLogAPI(t *testing.T) {
	a := newApp(t)
	tm := a.newTeam(a.people())
	start := a.clock.Now()
	for i := 0; i < 5; i++ {
		a.clock.Add(time.Hour)
		a.mustJSON(tm.owner.call(http.MethodPatch, fmt.Sprintf("/api/workspaces/%d", tm.ws), map[string]any{"name": fmt.Sprint("Name ", i)}), 200, nil)
	}
	a.mustJSON(tm.admin.call(http.MethodPatch, fmt.Sprintf("/api/workspaces/%d/members/%d", tm.ws, tm.member.id), map[string]any{"role": "admin"}), 200, nil)

	path := fmt.Sprintf("/api/workspaces/%d/audit", tm.ws)
	var page struct {
		Data       []auditEvent
		NextCursor string
	}
	var all []auditEvent
	cursor := ""
	for pages := 0; ; pages++ {
		page.NextCursor, page.Data = "", nil // fresh values: Unmarshal reuses pointers otherwise
		a.mustJSON(tm.admin.call(http.MethodGet, path+"?limit=2&cursor="+cursor, nil), 200, &page)
		all = append(all, page.Data...)
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	// workspace_created + 5 updates + 1 role change, newest first.
	if len(all) != 7 || all[0].Action != "member_role_changed" || all[6].Action != "workspace_created" {
		t.Fatalf("paged log = %+v", all)
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID >= all[i-1].ID {
			t.Fatalf("not newest first at %d", i)
		}
	}
	if all[0].ActorEmail != "admin@example.com" || all[0].ActorUserID == nil || *all[0].ActorUserID != tm.admin.id {
		t.Errorf("actor of the newest = %v %q", all[0].ActorUserID, all[0].ActorEmail)
	}

	count := func(q string) int {
		t.Helper()
		var p struct{ Data []auditEvent }
		a.mustJSON(tm.owner.call(http.MethodGet, path+"?"+q, nil), 200, &p)
		return len(p.Data)
	}
	from := start.Add(90 * time.Minute).Format(time.RFC3339)
	to := start.Add(210 * time.Minute).Format(time.RFC3339)
	for q, want := range map[string]int{
		"action=workspace_updated":              5,
		"actor=" + fmt.Sprint(tm.admin.id):      1,
		"actor=" + fmt.Sprint(tm.owner.id):      6,
		"from=" + from + "&to=" + to:            2, // updates at +2h and +3h
		"action=workspace_updated&from=" + from: 4,
	} {
		if got := count(q); got != want {
			t.Errorf("?%s: %d entries, want %d", q, got, want)
		}
	}
	for _, q := range []string{"cursor=x", "limit=0", "limit=501", "actor=me", "from=tomorrow"} {
		if r := tm.owner.call(http.MethodGet, path+"?"+q, nil); r.status != http.StatusBadRequest {
			t.Errorf("?%s: %s, want 400", q, r)
		}
	}

	// No route changes audit rows.
	total := len(a.auditRows(tm.ws, ""))
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		for _, p := range []string{path, fmt.Sprintf("%s/%d", path, all[0].ID)} {
			r := tm.owner.call(m, p, `{"action":"nothing"}`)
			if r.status != http.StatusMethodNotAllowed && r.status != http.StatusNotFound {
				t.Errorf("%s %s: %s, want 404/405", m, p, r)
			}
		}
	}
	if got := len(a.auditRows(tm.ws, "")); got != total {
		t.Errorf("audit rows %d → %d", total, got)
	}
	// The schema refuses edits even from inside the process.
	if _, err := a.db.Write.Exec(`UPDATE audit_log SET action = 'x'`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("UPDATE audit_log: %v, want append-only error", err)
	}
	if _, err := a.db.Write.Exec(`DELETE FROM audit_log`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("DELETE FROM audit_log: %v, want append-only error", err)
	}
}
