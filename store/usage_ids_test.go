package store_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"tokenguard/store"
	"tokenguard/store/storetest"
)

// A database from before migration 7 upgrades in place: its rows keep their text request ids and
// prices versions, new rows store the id as 16 bytes and the version as a small id, and both read
// back and are found by request id in the same text form. A retried id is still skipped, and
// another workspace's id is not found.
func TestUsageCompactForms(t *testing.T) {
	storetest.SQLiteOnly(t) // the forms of rows an older SQLite release wrote
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	oldID := fmt.Sprintf("%032x", 1)
	db := upgradedWith(t, "7", `INSERT INTO usage_logs (request_id, created_at, workspace_id, project_id, provider,
		original_model, final_model, was_fallback, status, input_tokens, output_tokens, total_tokens,
		cost_nano, latency_ms, error_code, stream, usage_estimated, priced_by_default, prices_version)
		VALUES (?, ?, 1, 10, 'openai', 'gpt-4o', 'gpt-4o', 0, 200, 1, 1, 2, 1234, 1, '', 0, 0, 0, 'v-old')`,
		oldID, at.UnixMilli())
	newID := "01a06367984e7f16b17d1a8acab33de6"
	row := usageRow(newID, at.Add(time.Second), 1, 10, 500)
	row.PricesVersion = "genai-prices@0.1.8+ac450c11"
	row.CacheReadTokens, row.CacheWriteTokens, row.ReasoningTokens, row.TTFBMs = 7, 3, 2, 180
	row.ErrorMessage, row.EndUser = "overloaded", "user-42"
	other := usageRow("Not-Hex-"+strings.Repeat("x", 24), at.Add(2*time.Second), 2, 20, 1)
	if n, err := db.InsertUsage(ctx, []store.UsageRow{row, other}); err != nil || n != 2 {
		t.Fatalf("insert: %d, %v", n, err)
	}
	retry := row
	retry.CostNano = 999
	if n, err := db.InsertUsage(ctx, []store.UsageRow{retry}); err != nil || n != 0 {
		t.Fatalf("retried id: inserted %d, %v; want 0", n, err)
	}

	var kind, text string
	var versionID int64
	if err := db.Read.QueryRow(`SELECT typeof(request_id), prices_version, prices_version_id FROM usage_logs
		WHERE cost_nano = 500`).Scan(&kind, &text, &versionID); err != nil {
		t.Fatal(err)
	}
	if kind != "blob" || text != "" || versionID == 0 {
		t.Errorf("new row stores id as %s, version text %q, version id %d; want blob, \"\", an id", kind, text, versionID)
	}

	for _, c := range []struct {
		ws             int64
		id             string
		found          bool
		version        string
		cost           int64
		cache, reasons int64
	}{
		{1, newID, true, row.PricesVersion, 500, 7, 2},
		{1, oldID, true, "v-old", 1234, 0, 0},
		{2, other.RequestID, true, "", 1, 0, 0},
		{2, newID, false, "", 0, 0, 0}, // workspace 1's request
		{1, strings.ToUpper(newID), false, "", 0, 0, 0},
	} {
		got, ok, err := db.UsageByRequestID(ctx, c.ws, c.id)
		if err != nil || ok != c.found {
			t.Errorf("UsageByRequestID(%d, %s) = found %v, %v; want %v", c.ws, c.id, ok, err, c.found)
			continue
		}
		if ok && (got.RequestID != c.id || got.PricesVersion != c.version || got.CostNano != c.cost ||
			got.CacheReadTokens != c.cache || got.ReasoningTokens != c.reasons) {
			t.Errorf("UsageByRequestID(%d, %s) = %+v", c.ws, c.id, got)
		}
	}
	got, _, err := db.UsageByRequestID(ctx, 1, newID)
	if err != nil || got.CacheWriteTokens != 3 || got.TTFBMs != 180 || got.ErrorMessage != "overloaded" || got.EndUser != "user-42" {
		t.Errorf("new fields: %+v, %v", got, err)
	}
	rows, _, err := db.ListUsage(ctx, store.UsageFilter{WorkspaceID: 1})
	if err != nil || len(rows) != 2 || rows[0].RequestID != newID || rows[1].RequestID != oldID {
		t.Errorf("ListUsage = %+v, %v", rows, err)
	}

	long := usageRow("long", at.Add(3*time.Second), 1, 10, 1)
	long.ErrorMessage = strings.Repeat("e", store.MaxErrorMessage+1)
	if _, err := db.InsertUsage(ctx, []store.UsageRow{long}); err == nil {
		t.Error("an over-long error message was stored")
	}
}
