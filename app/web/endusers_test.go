package web_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"tokenguard/store"
)

// TestUsageLogEndUser ensures the usage log shows each row's end user, filters on one exactly
// (the rows and the totals), links an end user to their requests, and reports an end user too
// long to exist.
func TestUsageLogEndUser(t *testing.T) {
	app := newApp(t)
	c := app.client(t)
	ws, wsID, projectID := c.signupWithProject()
	now := time.Now().UnixMilli()
	users := []string{"alice", "alice-2", "", "<b>bob</b>", "alice"}
	var rows []store.UsageRow
	for i, u := range users {
		rows = append(rows, store.UsageRow{RequestID: fmt.Sprintf("req-%d", i), CreatedAt: now - int64(i)*60_000, WorkspaceID: wsID,
			ProjectID: projectID, Provider: "openai", OriginalModel: "gpt-4o", FinalModel: "gpt-4o", Status: 200, CostNano: 1_000_000_000, EndUser: u})
	}
	if _, err := app.DB.InsertUsage(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	idRe := regexp.MustCompile(`data-usage-id="\d+"`)
	all := c.get(ws + "/usage")
	if !strings.Contains(all.Body, "&lt;b&gt;bob&lt;/b&gt;") || strings.Contains(all.Body, "<b>bob</b>") {
		t.Error("an end user is not shown escaped")
	}
	if !strings.Contains(all.Body, `href="`+ws+`/usage?endUser=alice"`) {
		t.Error("an end user does not link to their requests")
	}
	page := c.get(ws + "/usage?endUser=alice")
	if got := len(idRe.FindAllString(page.Body, -1)); got != 2 {
		t.Errorf("endUser=alice lists %d rows, want 2 (exact match, not alice-2)", got)
	}
	if totals := totalsOf(t, c, ws+"/usage?endUser=alice"); !strings.Contains(totals, `data-total="requests">2<`) || !strings.Contains(totals, `data-total="cost">$2.00<`) {
		t.Errorf("endUser=alice totals are not alice's two requests and $2.00")
	}
	if !strings.Contains(page.Body, `name="endUser" type="search" value="alice"`) {
		t.Error("the filter box does not show the end user filtered on")
	}
	if bad := c.get(ws + "/usage?endUser=" + strings.Repeat("x", 257)); !strings.Contains(bad.Body, "End user must be at most 256 bytes") {
		t.Error("an over-long end user filter is not reported")
	}
}
