package store_test

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tokenguard/store"
	"tokenguard/store/storetest"
)

// upgradedWith is a database made by the schema before migration n, with insert run in it, then
// opened (and so upgraded) by the current one.
func upgradedWith(t *testing.T, n, insert string, args ...any) *store.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := store.Open(ctx, path, schemaBefore(t, n))
	if err != nil {
		t.Fatal(err)
	}
	if err := old.WriteTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(insert, args...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	old.Close()
	return storetest.OpenAt(t, path)
}

// Each usage row keeps the version of the prices its cost was computed from; rows written
// before migration 4 read back with an empty version and their cost unchanged; a version over
// 64 bytes is refused rather than stored.
func TestUsagePricesVersion(t *testing.T) {
	storetest.SQLiteOnly(t)
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	db := upgradedWith(t, "4", `INSERT INTO usage_logs (request_id, created_at, workspace_id, project_id, provider,
		original_model, final_model, was_fallback, status, input_tokens, output_tokens, total_tokens,
		cost_nano, latency_ms, error_code, stream, usage_estimated, priced_by_default)
		VALUES ('before', ?, 1, 10, 'openai', 'gpt-4o', 'gpt-4o', 0, 200, 1, 1, 2, 1234, 1, '', 0, 0, 0)`, at.UnixMilli())
	row := usageRow("after", at.Add(time.Second), 1, 10, 500)
	row.PricesVersion = "genai-prices@0.1.8+ac450c11"
	if _, err := db.InsertUsage(ctx, []store.UsageRow{row}); err != nil {
		t.Fatal(err)
	}
	rows, _, err := db.ListUsage(ctx, store.UsageFilter{WorkspaceID: 1})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]store.UsageRow{}
	for _, r := range rows {
		got[r.RequestID] = r
	}
	if r := got["after"]; r.PricesVersion != row.PricesVersion || r.CostNano != 500 {
		t.Errorf("new row: version %q cost %d, want %q 500", r.PricesVersion, r.CostNano, row.PricesVersion)
	}
	if r := got["before"]; r.PricesVersion != "" || r.CostNano != 1234 {
		t.Errorf("migrated row: version %q cost %d, want \"\" 1234", r.PricesVersion, r.CostNano)
	}

	long := usageRow("long", at.Add(2*time.Second), 1, 10, 1)
	long.PricesVersion = strings.Repeat("v", 65)
	if _, err := db.InsertUsage(ctx, []store.UsageRow{long}); err == nil {
		t.Error("a 65-byte prices version was stored")
	}
}
