package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"syscall"
	"testing"
	"time"

	"tokenguard/store"
)

// BenchmarkAnalyticsPage renders the analytics page (KPIs, three charts, three breakdowns,
// forecast) through the whole handler stack over 1,000,000 usage rows spread across 90 days,
// 20 projects, three providers and 30 models, written by the store's batch insert so the rollups
// are kept as in production. The target is 100 ms per page for the 90-day chart.
//
//	go test ./app/web -run '^$' -bench AnalyticsPage -benchtime 10x
func BenchmarkAnalyticsPage(b *testing.B) {
	app := newApp(b)
	c := app.client(b)
	ws := c.signup("Ada", "ada@example.com")
	var wsID int64
	fmt.Sscanf(ws, "/w/%d", &wsID)
	ctx := context.Background()
	var projects []int64
	for i := range 20 {
		var id int64
		if err := app.DB.Write.QueryRowContext(ctx, `INSERT INTO projects (workspace_id, name, monthly_budget_nano, key_prefix, key_hash,
			created_at, updated_at) VALUES (?, ?, 100000000000, ?, 'x', 0, 0) RETURNING id`, wsID, fmt.Sprint("project-", i), fmt.Sprintf("tg_live_b%03d", i)).Scan(&id); err != nil {
			b.Fatal(err)
		}
		projects = append(projects, id)
	}
	const n, days = 1_000_000, 90
	start := time.Now()
	end := start.UnixMilli()
	step := int64(days*24*time.Hour/time.Millisecond) / n
	providers := []string{"openai", "anthropic", "gemini"}
	rows := make([]store.UsageRow, 0, 5000)
	for i := range n {
		r := store.UsageRow{RequestID: fmt.Sprintf("%032x", i+1), CreatedAt: end - int64(i)*step, WorkspaceID: wsID, ProjectID: projects[i%20],
			Provider: providers[i%3], OriginalModel: fmt.Sprint("model-", i%30), FinalModel: fmt.Sprint("model-", i%30), Status: 200,
			InputTokens: 1200, OutputTokens: 300, TotalTokens: 1500, CostNano: 4_500_000, LatencyMs: 800}
		if i%50 == 0 {
			r.Status, r.ErrorCode = 429, store.BlockedErrorCode
		}
		if rows = append(rows, r); len(rows) == cap(rows) {
			if _, err := app.DB.InsertUsage(ctx, rows); err != nil {
				b.Fatal(err)
			}
			rows = rows[:0]
		}
	}
	app.DB.Write.ExecContext(ctx, `ANALYZE`)
	b.Logf("seeded 1,000,000 usage rows over %d days in %s", days, time.Since(start).Round(time.Millisecond))

	u, _ := url.Parse(app.URL)
	cookies := c.http.Jar.Cookies(u)
	custom := "range=custom&from=" + time.Now().UTC().AddDate(0, 0, -days+1).Format("2006-01-02") + "&to=" + time.Now().UTC().Format("2006-01-02")
	for _, p := range []struct{ name, query string }{
		{"90d-by-provider", custom},
		{"90d-by-model", custom + "&stack=model"},
		{"90d-by-project", custom + "&stack=project"},
		{"90d-one-project", custom + "&projectId=" + strconv.FormatInt(projects[3], 10)},
		{"30d", "range=30d"},
		{"today-hourly", "range=today&stack=model"},
	} {
		b.Run(p.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, ws+"/analytics?"+p.query, nil)
			for _, ck := range cookies {
				req.AddCookie(ck)
			}
			// CPU time is reported beside wall time: on a shared machine the wall time is mostly
			// waiting for a core.
			before := cpuTime()
			for b.Loop() {
				rec := httptest.NewRecorder()
				app.Server.Config.Handler.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
				}
			}
			b.ReportMetric(float64(cpuTime()-before)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		})
	}
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
