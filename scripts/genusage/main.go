// Command genusage fills a TokenGuard database with synthetic usage, through the real store code
// (store.Open's migrations, store.InsertUsage's batches, counters and rollups), so that anyone
// can reproduce the figures of the analytics benchmarks at production volume:
//
//	go run ./scripts/genusage -db /tmp/big.db -rows 1000000
//
// It makes one owner, one workspace (id 1 in a new file) of -projects projects, and a second
// workspace with a tenth as many rows that queries of the first must skip; then -rows rows over
// the -days days before -end, in time order and in batches of the usage writer's default size:
// three providers and their current models (each project uses a few), 40% streamed, about 5%
// fallbacks, 3% blocked by budgets, 4% provider or client errors, 2% estimated usage, with a
// daily rhythm; a third of prompts partly cached, reasoning on reasoning models, time to first
// byte on streams and the provider's message on its errors. Request ids are the proxy's own (usage.NewRequestID: time first, so the unique
// index grows at its end as it does in production); the same -seed makes the same rows but for
// their ids.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"tokenguard/app/usage"
	"tokenguard/store"
)

// batch is the usage writer's default MaxBatch.
const batch = 2000

type model struct {
	provider, name      string
	inNano, outNano     int64 // nano-dollars per token ($ per million tokens × 1000)
	latencyMs, spreadMs int64
	cheaper             string // the fallback a budget switches to
}

var models = []model{
	{"openai", "gpt-4o", 2500, 10000, 900, 2500, "gpt-4o-mini"},
	{"openai", "gpt-4o-mini", 150, 600, 500, 1200, ""},
	{"openai", "gpt-4.1", 2000, 8000, 1100, 3000, "gpt-4.1-mini"},
	{"openai", "gpt-4.1-mini", 400, 1600, 600, 1500, ""},
	{"openai", "o4-mini", 1100, 4400, 4000, 9000, "gpt-4o-mini"},
	{"openai", "gpt-5", 1250, 10000, 6000, 15000, "gpt-5-mini"},
	{"openai", "gpt-5-mini", 250, 2000, 2500, 6000, ""},
	{"anthropic", "claude-sonnet-4-5-20250929", 3000, 15000, 2000, 6000, "claude-haiku-4-5-20251001"},
	{"anthropic", "claude-haiku-4-5-20251001", 1000, 5000, 900, 2500, ""},
	{"anthropic", "claude-opus-4-1-20250805", 15000, 75000, 4000, 12000, "claude-sonnet-4-5-20250929"},
	{"gemini", "gemini-2.5-pro", 1250, 10000, 3000, 9000, "gemini-2.5-flash"},
	{"gemini", "gemini-2.5-flash", 300, 2500, 800, 2500, "gemini-2.5-flash-lite"},
	{"gemini", "gemini-2.5-flash-lite", 100, 400, 400, 1000, ""},
}

func main() {
	dbPath := flag.String("db", "", "database file to fill (created if missing)")
	rows := flag.Int("rows", 1_000_000, "usage rows of the first workspace (the second gets a tenth)")
	days := flag.Int("days", 90, "days the rows span, ending at -end")
	projects := flag.Int("projects", 40, "projects of the first workspace")
	endFlag := flag.String("end", "", "RFC 3339 end of the span (default now)")
	schemaPath := flag.String("schema", "schema.sql", "schema file (run from the repository root)")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if *dbPath == "" || *rows <= 0 || *days <= 0 || *projects <= 0 || *rows > 1_000_000_000 || *days > 3660 || *projects > 10_000 {
		flag.Usage()
		os.Exit(2)
	}
	end := time.Now().UTC()
	if *endFlag != "" {
		t, err := time.Parse(time.RFC3339, *endFlag)
		if err != nil {
			log.Fatalf("-end: %v", err)
		}
		end = t.UTC()
	}
	schema, err := os.ReadFile(*schemaPath)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	db, err := store.Open(ctx, *dbPath, string(schema))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	rng := rand.New(rand.NewPCG(*seed, 0x9e3779b97f4a7c15))
	started := time.Now()
	total := 0
	for ws, n := range []struct{ rows, projects int }{{*rows, *projects}, {max(*rows/10, 1), max(*projects/4, 1)}} {
		wsID, ids, err := setup(ctx, db, ws, n.projects, end)
		if err != nil {
			log.Fatal(err)
		}
		written, err := fill(ctx, db, rng, wsID, ids, n.rows, end.Add(-time.Duration(*days)*24*time.Hour), end)
		if err != nil {
			log.Fatal(err)
		}
		total += written
		log.Printf("workspace %d: %d projects, %d rows", wsID, len(ids), written)
	}
	took := time.Since(started)
	log.Printf("%d rows in %s (%.0f rows/s)", total, took.Round(time.Millisecond), float64(total)/took.Seconds())
}

// setup makes the owner, workspace and projects of workspace number ws (0-based).
func setup(ctx context.Context, db *store.DB, ws, projects int, end time.Time) (int64, []int64, error) {
	var wsID int64
	var ids []int64
	at := end.AddDate(0, -6, 0).UnixMilli()
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		uid, err := db.InsertUser(ctx, tx, store.User{Email: fmt.Sprintf("owner%d-%d@genusage.invalid", ws, at),
			Name: "genusage", PasswordHash: "!", CreatedAt: at})
		if err != nil {
			return err
		}
		if wsID, err = db.InsertWorkspace(ctx, tx, store.Workspace{Name: fmt.Sprintf("genusage %d", ws), Plan: "free", CreatedAt: at}); err != nil {
			return err
		}
		if err := db.InsertMembership(ctx, tx, wsID, uid, "owner", at); err != nil {
			return err
		}
		for p := 0; p < projects; p++ {
			id, err := db.InsertProject(ctx, tx, store.Project{WorkspaceID: wsID, Name: fmt.Sprintf("service-%02d", p),
				KeyPrefix: fmt.Sprintf("tg_gen_%d_%d_%d", at, ws, p), Active: true, CreatedAt: at, UpdatedAt: at}, "!")
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	return wsID, ids, err
}

// fill writes n rows of workspace wsID between from and to, in time order.
func fill(ctx context.Context, db *store.DB, rng *rand.Rand, wsID int64, projects []int64, n int, from, to time.Time) (int, error) {
	// Each project mostly uses its own two to four models.
	uses := make([][]model, len(projects))
	for i := range uses {
		for k := 2 + rng.IntN(3); k > 0; k-- {
			uses[i] = append(uses[i], models[rng.IntN(len(models))])
		}
	}
	byName := map[string]model{}
	for _, m := range models {
		byName[m.name] = m
	}
	span := float64(to.Sub(from).Milliseconds())
	buf := make([]store.UsageRow, 0, batch)
	written := 0
	for i := 0; i < n; i++ {
		// A daily rhythm: more traffic in working hours (UTC), never none.
		at := from.UnixMilli() + int64(span*float64(i)/float64(n))
		hour := float64(at%86_400_000) / 3_600_000
		at += int64(1800_000 * math.Sin(hour/24*2*math.Pi) * rng.Float64())
		at = min(max(at, from.UnixMilli()), to.UnixMilli()-1)

		p := rng.IntN(len(projects))
		m := uses[p][rng.IntN(len(uses[p]))]
		r := store.UsageRow{RequestID: usage.NewRequestID(time.UnixMilli(at)), CreatedAt: at,
			WorkspaceID: wsID, ProjectID: projects[p], Provider: m.provider, OriginalModel: m.name, FinalModel: m.name,
			Status: 200, Stream: rng.IntN(10) < 4, PricesVersion: "genai-prices@0.1.8+ac450c11"}
		if m.cheaper != "" && rng.IntN(100) < 8 {
			m = byName[m.cheaper]
			r.FinalModel, r.WasFallback = m.name, true
		}
		r.InputTokens = int64(50 + rng.ExpFloat64()*1500)
		r.OutputTokens = int64(10 + rng.ExpFloat64()*400)
		r.LatencyMs = m.latencyMs + int64(rng.Float64()*float64(m.spreadMs))
		// About a third of prompts hit the provider's cache; reasoning models think.
		if rng.IntN(3) == 0 {
			r.CacheReadTokens = r.InputTokens / 2
		}
		if strings.HasPrefix(m.name, "o") || strings.Contains(m.name, "2.5") {
			r.ReasoningTokens = r.OutputTokens / 3
		}
		if r.Stream {
			r.TTFBMs = r.LatencyMs / 5
		}
		switch k := rng.IntN(100); {
		case k < 3:
			r.Status, r.ErrorCode, r.OutputTokens, r.InputTokens, r.LatencyMs = 429, store.BlockedErrorCode, 0, 0, 1
		case k < 5:
			r.Status, r.ErrorCode, r.OutputTokens = 502, "UPSTREAM_ERROR", 0
			r.ErrorMessage = "The server had an error while processing your request. Sorry about that!"
		case k < 6:
			r.Status, r.ErrorCode, r.OutputTokens = 429, "RATE_LIMITED", 0
		case k < 7:
			r.Status, r.ErrorCode, r.OutputTokens, r.InputTokens = 400, "INVALID_REQUEST", 0, 0
		case k < 9 && r.Stream:
			r.UsageEstimated = true // a stream cut before its usage event
		}
		r.TotalTokens = r.InputTokens + r.OutputTokens
		r.CostNano = r.InputTokens*m.inNano + r.OutputTokens*m.outNano
		buf = append(buf, r)
		if len(buf) == batch || i == n-1 {
			k, err := db.InsertUsage(ctx, buf)
			if err != nil {
				return written, err
			}
			written += k
			buf = buf[:0]
		}
	}
	return written, nil
}
