package api

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"tokenguard/app/account"
	"tokenguard/store"
	"tokenguard/store/storetest"
)

// BenchmarkAnalytics is each analytics endpoint end to end over loopback HTTP on a workspace
// with 100,000 usage rows in the default 30-day range.
func BenchmarkAnalytics(b *testing.B) {
	a := newApp(b)
	alice := a.signup("alice@example.com")
	var projects []int64
	for i := 0; i < 5; i++ {
		projects = append(projects, alice.createProject(alice.ws, fmt.Sprint("project ", i)).Project.ID)
	}
	providers := []string{"openai", "anthropic", "gemini"}
	end := a.clock.Now().UnixMilli()
	span := int64(29 * 24 * time.Hour / time.Millisecond)
	const n = 100_000
	rows := make([]store.UsageRow, 0, 5000)
	for i := 0; i < n; i++ {
		rows = append(rows, store.UsageRow{RequestID: fmt.Sprint("r", i), CreatedAt: end - span + int64(i)*span/n, WorkspaceID: alice.ws,
			ProjectID: projects[i%5], Provider: providers[i%3], OriginalModel: fmt.Sprint("model-", i%40), FinalModel: fmt.Sprint("model-", i%40),
			Status: 200, InputTokens: 100, OutputTokens: 50, TotalTokens: 150, CostNano: 1000, LatencyMs: 200})
		if len(rows) == cap(rows) {
			if _, err := a.db.InsertUsage(context.Background(), rows); err != nil {
				b.Fatal(err)
			}
			rows = rows[:0]
		}
	}
	for _, ep := range []string{"overview", "trends", "providers", "models", "projects", "export.csv"} {
		b.Run(ep, func(b *testing.B) {
			for b.Loop() {
				if r := alice.call(http.MethodGet, "/api/analytics/"+ep, nil); r.status != http.StatusOK {
					b.Fatal(r)
				}
			}
		})
	}
}

// BenchmarkAnalyticsVolume is the analytics endpoints end to end over a database made by
// scripts/genusage, named by TOKENGUARD_BENCH_DB (skipped without it), for 30 and 90 days, with
// and without each filter. The file's rows must end at the test clock's now:
//
//	go run ./scripts/genusage -db /tmp/big.db -rows 1000000 -end 2026-11-26T12:00:00Z
//	TOKENGUARD_BENCH_DB=/tmp/big.db go test ./app/api -run '^$' -bench AnalyticsVolume -benchtime 3x -count 3
func BenchmarkAnalyticsVolume(b *testing.B) {
	path := os.Getenv("TOKENGUARD_BENCH_DB")
	if path == "" {
		b.Skip("TOKENGUARD_BENCH_DB names no database made by scripts/genusage")
	}
	a := newAppOn(b, storetest.OpenAt(b, path))
	// genusage's first workspace is 1; a member signs up to read it.
	alice := a.signup(fmt.Sprintf("bench-%d@example.com", time.Now().UnixNano()))
	a.addMember(1, alice, account.RoleOwner)
	filters := []struct{ name, query string }{{"all", ""}, {"project", "&projectId=3"}, {"provider", "&provider=anthropic"}, {"model", "&model=mini"}}
	for _, ep := range []string{"overview", "trends", "providers", "models", "projects"} {
		for _, days := range []int{30, 90} {
			for _, f := range filters {
				from := a.clock.Now().AddDate(0, 0, -days).Format(time.RFC3339)
				target := "/api/analytics/" + ep + "?from=" + from + f.query
				b.Run(fmt.Sprintf("%s/%dd/%s", ep, days, f.name), func(b *testing.B) {
					for b.Loop() {
						if r := a.call(alice.token, http.MethodGet, target, nil, "X-Workspace-Id", "1"); r.status != http.StatusOK {
							b.Fatal(r)
						}
					}
				})
			}
		}
	}
}
