package usage_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"tokenguard/app/budget"
	"tokenguard/app/pricing"
	"tokenguard/app/usage"
	"tokenguard/store"
)

// The metering life of one proxied request, as the proxy runs it: gate and reserve, call the
// upstream with the chosen model, price the real usage, settle the reservation, log the row.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "tg-example")
	defer os.RemoveAll(dir)
	schema, _ := os.ReadFile(filepath.Join("..", "..", "schema.sql"))
	db, err := store.Open(ctx, filepath.Join(dir, "tg.db"), string(schema))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()

	// Start-up (main.go): table, engine with persisted counters, writer.
	now := func() time.Time { return time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC) }
	prices, _ := pricing.New(nil, pricing.DefaultUnknownPrice())
	engine := budget.New(now)
	if err := usage.LoadCounters(ctx, db, engine, now()); err != nil {
		fmt.Println("refusing to start:", err) // fail closed
		return
	}
	writer := usage.NewWriter(db, slog.New(slog.NewTextHandler(io.Discard, nil)), usage.WriterOptions{})

	// A request: project 1 in workspace 1, $1/day budget, $0.85 already spent, fallback set.
	spent := pricing.FromDollars(0.85)
	warm, _ := engine.Admit(budget.Subject{ProjectID: 1, WorkspaceID: 1}, nil)
	warm.Settle(now(), spent)

	daily := pricing.FromDollars(1)
	subject := budget.Subject{ProjectID: 1, WorkspaceID: 1, Project: budget.Limits{Daily: &daily}, HasFallback: true}
	requested, fallback := "gpt-4o", "gpt-4o-mini"
	start := now()
	model := requested
	ticket, decision := engine.Admit(subject, func(useFallback bool) pricing.NanoUSD {
		if useFallback {
			model = fallback
		}
		return prices.WorstCase(model, 1200, 0, 1) // input estimate; no max_tokens in the request
	})
	if decision.Blocked {
		fmt.Println(429, decision.Message) // and log a row with cost 0, errorCode BUDGET_EXCEEDED
		return
	}
	// … relay to the upstream with `model`; read its usage …
	u := pricing.Usage{Input: 1000, CacheRead: 200, Output: 300}
	cost, byDefault := prices.Cost(model, u)
	crossings := ticket.Settle(start, cost) // always, whatever the outcome (0 if nothing billed)
	writer.Add(usage.Record{
		CreatedAt: start, WorkspaceID: 1, ProjectID: 1, Provider: prices.Provider(model),
		OriginalModel: requested, FinalModel: model, WasFallback: decision.Fallback, Status: 200,
		InputTokens: u.Input + u.CacheRead, OutputTokens: u.Output, TotalTokens: 1500,
		Cost: cost, LatencyMs: 350, PricedByDefault: byDefault,
	})

	// Shutdown (after the HTTP server drained): every row and counter is stored.
	if err := writer.Close(ctx); err != nil {
		fmt.Println(err)
	}
	rows, _, _ := db.ListUsage(ctx, store.UsageFilter{WorkspaceID: 1})
	r := usage.FromRow(rows[0])
	fmt.Printf("level %.2f → %s (fallback %v), cost $%.7f, crossings %d\n", decision.Level, r.FinalModel, r.WasFallback, r.Cost.Dollars(), len(crossings))
	fmt.Printf("today $%.7f\n", engine.Spend(budget.ProjectScope, 1).Day.Dollars())
	// Output:
	// level 0.85 → gpt-4o-mini (fallback true), cost $0.0003450, crossings 0
	// today $0.8503450
}
