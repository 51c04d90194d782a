package web_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"tokenguard/store/storetest"
)

// BenchmarkPagesVolume renders the dashboard's analytics, projects, project and usage-log pages,
// and a CSV export of 10,000 rows, through the whole handler stack over a database made by
// scripts/genusage, named by TOKENGUARD_BENCH_DB (skipped without it). The file's rows must end
// now, as the dashboard's ranges do:
//
//	go run ./scripts/genusage -db /tmp/big.db -rows 10000000
//	TOKENGUARD_BENCH_DB=/tmp/big.db go test ./app/web -run '^$' -bench PagesVolume -benchtime 3x -count 3
func BenchmarkPagesVolume(b *testing.B) {
	path := os.Getenv("TOKENGUARD_BENCH_DB")
	if path == "" {
		b.Skip("TOKENGUARD_BENCH_DB names no database made by scripts/genusage")
	}
	app := newAppOn(b, storetest.OpenAt(b, path))
	c := app.client(b)
	email := fmt.Sprintf("bench-%d@example.com", time.Now().UnixNano())
	c.signup("Bench", email)
	// genusage's workspace is 1; the new user joins it as an owner.
	ctx := context.Background()
	err := app.DB.WriteTx(ctx, func(tx *sql.Tx) error {
		var uid int64
		if err := tx.QueryRowContext(ctx, `SELECT id FROM users WHERE email = ?`, email).Scan(&uid); err != nil {
			return err
		}
		return app.DB.InsertMembership(ctx, tx, 1, uid, "owner", time.Now().UnixMilli())
	})
	if err != nil {
		b.Fatal(err)
	}
	var project int64
	if err := app.DB.Read.QueryRow(`SELECT min(id) FROM projects WHERE workspace_id = 1`).Scan(&project); err != nil {
		b.Fatal(err)
	}
	u, _ := url.Parse(app.URL)
	cookies := c.http.Jar.Cookies(u)
	handler := app.Server.Config.Handler
	days := func(n int) string { return time.Now().AddDate(0, 0, -n).Format("2006-01-02") }
	for _, p := range []struct{ name, path string }{
		{"analytics", "/w/1/analytics"},
		{"analytics-90d", "/w/1/analytics?range=custom&from=" + days(89) + "&to=" + days(0)},
		{"analytics-90d-project", fmt.Sprintf("/w/1/analytics?range=custom&from=%s&to=%s&projectId=%d", days(89), days(0), project)},
		{"analytics-90d-by-model", "/w/1/analytics?range=custom&from=" + days(89) + "&to=" + days(0) + "&stack=model"},
		{"projects", "/w/1/projects"},
		{"project", fmt.Sprintf("/w/1/projects/%d", project)},
		{"usage-first-page", "/w/1/usage"},
		{"usage-totals-fragment", "/w/1/usage?fragment=totals"},
		{"usage-filter-project", fmt.Sprintf("/w/1/usage?projectId=%d", project)},
	} {
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
			}
		})
	}
	b.Run("csv-export-10000-rows", func(b *testing.B) {
		for b.Loop() {
			r := c.post("/w/1/analytics/export.csv", url.Values{"from": {days(30)}})
			if r.Status != http.StatusOK {
				b.Fatalf("export: status %d: %s", r.Status, r.Body)
			}
			if lines := strings.Count(r.Body, "\n"); lines != 10_001 {
				b.Fatalf("export has %d lines, want 10,001", lines)
			}
		}
	})
}
