package web_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// BenchmarkPages renders the main dashboard pages, through the whole handler stack (session,
// membership check, queries, templ), against 100 projects and 1,000,000 usage rows. The target
// is under 50 ms per page; the usage log pages by the (workspace_id, created_at, id) index, so a
// deep page costs what the first one does.
//
//	go test ./app/web -run '^$' -bench Pages -benchtime 20x
func BenchmarkPages(b *testing.B) {
	app := newApp(b)
	c := app.client(b)
	ws := c.signup("Ada", "ada@example.com")
	var wsID int64
	fmt.Sscanf(ws, "/w/%d", &wsID)
	ctx := context.Background()
	start := time.Now()
	now := time.Now().UnixMilli()

	// 100 projects (a placeholder key hash: these keys are never used) and 1,000,000 usage rows
	// spread over the last 29 days, in one transaction each.
	_, err := app.DB.Write.ExecContext(ctx, `INSERT INTO projects (workspace_id, name, daily_budget_nano, monthly_budget_nano,
		key_prefix, key_hash, created_at, updated_at, last_used_at)
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
		SELECT ?, 'project-' || i, 5000000000, 100000000000, 'tg_live_b' || printf('%03d', i), 'x', ?, ?, ? FROM n`,
		wsID, now, now, now)
	if err != nil {
		b.Fatal(err)
	}
	var firstProject int64
	app.DB.Read.QueryRow(`SELECT min(id) FROM projects`).Scan(&firstProject)
	_, err = app.DB.Write.ExecContext(ctx, `INSERT INTO usage_logs (request_id, created_at, workspace_id, project_id, provider,
		original_model, final_model, was_fallback, status, input_tokens, output_tokens, total_tokens, cost_nano, latency_ms,
		error_code, stream, usage_estimated, priced_by_default)
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
		SELECT 'bench-' || i, ? - i * 2500, ?, ? + (i % 100),
			CASE i % 3 WHEN 0 THEN 'openai' WHEN 1 THEN 'anthropic' ELSE 'gemini' END,
			CASE i % 3 WHEN 0 THEN 'gpt-4o' WHEN 1 THEN 'claude-sonnet-4-5' ELSE 'gemini-2.0-flash' END,
			CASE WHEN i % 10 = 0 THEN 'gpt-4o-mini' WHEN i % 3 = 0 THEN 'gpt-4o' WHEN i % 3 = 1 THEN 'claude-sonnet-4-5' ELSE 'gemini-2.0-flash' END,
			i % 10 = 0, CASE WHEN i % 50 = 0 THEN 429 ELSE 200 END, 1200, 300, 1500, 4500000, 800 + i % 400,
			CASE WHEN i % 50 = 0 THEN 'BUDGET_EXCEEDED' ELSE '' END, i % 2, 0, 0
		FROM n`, now, wsID, firstProject)
	if err != nil {
		b.Fatal(err)
	}
	app.DB.Write.ExecContext(ctx, `ANALYZE`)
	b.Logf("seeded 100 projects and 1,000,000 usage rows in %s", time.Since(start).Round(time.Millisecond))

	// A cursor half-way down the log: the 500,000th row.
	var at, id int64
	app.DB.Read.QueryRow(`SELECT created_at, id FROM usage_logs WHERE request_id = 'bench-500000'`).Scan(&at, &id)
	deep := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("%d.%d", at, id)))

	u, _ := url.Parse(app.URL)
	cookies := c.http.Jar.Cookies(u)
	handler := app.Server.Config.Handler
	project := fmt.Sprintf("%s/projects/%d", ws, firstProject+42)
	pages := []struct{ name, path string }{
		{"projects", ws + "/projects"},
		{"project", project},
		{"usage", ws + "/usage"},
		{"usage-deep-cursor", ws + "/usage?cursor=" + deep},
		{"usage-filter-project", fmt.Sprintf("%s/usage?projectId=%d", ws, firstProject+7)},
		{"usage-filter-provider-status", ws + "/usage?provider=gemini&status=429"},
		{"usage-filter-model", ws + "/usage?model=mini"},
		{"usage-filter-dates", ws + "/usage?from=" + time.Now().AddDate(0, 0, -10).Format("2006-01-02") + "&to=" + time.Now().AddDate(0, 0, -9).Format("2006-01-02")},
		{"usage-filter-no-match", ws + "/usage?status=503"},
		{"analytics", ws + "/analytics"},
		{"new-project", ws + "/new-project"},
		{"team", ws + "/team"},
		{"audit", ws + "/audit"},
		{"settings", ws + "/settings"},
	}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, p.path, nil)
			for _, ck := range cookies {
				req.AddCookie(ck)
			}
			for b.Loop() {
				rec := httptest.NewRecorder()
				handler.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: status %d: %s", p.path, rec.Code, rec.Body.String())
				}
				if strings.HasPrefix(p.name, "usage") && !strings.HasSuffix(p.name, "no-match") && !strings.Contains(rec.Body.String(), "data-usage-id") {
					b.Fatalf("%s shows no rows", p.path)
				}
			}
		})
	}
}
