package api

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"tokenguard/store"
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
