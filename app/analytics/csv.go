package analytics

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"tokenguard/app/account"
	"tokenguard/store"
)

// RawRowsSinceHeader is set on a CSV export whose range reaches back before the raw usage rows
// retention (USAGE_RETENTION) kept: RFC 3339 UTC, the time the rows are kept from. The file holds
// the rows that are left.
const RawRowsSinceHeader = "X-Tokenguard-Raw-Rows-Since"

// MaxExportRows is the export's row limit (PRODUCT-DOCS: up to 10,000 rows).
const MaxExportRows = 10_000

// CSVHeader is the export's header row, exactly as PRODUCT-DOCS lists the columns.
var CSVHeader = []string{"createdAt", "workspace", "project", "provider", "model", "status", "inputTokens",
	"outputTokens", "totalTokens", "estimatedCostUsd", "latencyMs", "errorCode"}

// UsageLister pages usage rows (*store.DB implements it).
type UsageLister interface {
	ListUsage(ctx context.Context, f store.UsageFilter) ([]store.UsageRow, string, error)
}

// ExportRows reads up to MaxExportRows rows that f selects, newest first, by cursor. It reads
// everything before anything is written, so a failure is an error answer rather than a cut-off
// file. f.Limit and f.Cursor are overwritten.
func ExportRows(ctx context.Context, db UsageLister, f store.UsageFilter) ([]store.UsageRow, error) {
	var rows []store.UsageRow
	f.Cursor = ""
	for len(rows) < MaxExportRows {
		f.Limit = min(store.MaxUsageLimit, MaxExportRows-len(rows))
		page, next, err := db.ListUsage(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("export usage: %w", err)
		}
		rows = append(rows, page...)
		if next == "" {
			break
		}
		f.Cursor = next
	}
	return rows, nil
}

// WriteCSV writes the header and one line per row. Project names come from names (a project
// missing there is shown as "deleted project"). Every cell that a user or a client chose
// (names, models, error codes) is neutralised against spreadsheet formula injection.
func WriteCSV(w io.Writer, workspace string, names map[int64]string, rows []store.UsageRow) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	ws := CSVCell(workspace)
	for _, u := range rows {
		name, ok := names[u.ProjectID]
		if !ok {
			name = "deleted project"
		}
		if err := cw.Write([]string{
			time.UnixMilli(u.CreatedAt).UTC().Format(time.RFC3339), ws, CSVCell(name), CSVCell(u.Provider),
			CSVCell(u.FinalModel), strconv.Itoa(u.Status), strconv.FormatInt(u.InputTokens, 10),
			strconv.FormatInt(u.OutputTokens, 10), strconv.FormatInt(u.TotalTokens, 10),
			strconv.FormatFloat(usd(u.CostNano), 'f', -1, 64), strconv.FormatInt(u.LatencyMs, 10), CSVCell(u.ErrorCode),
		}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// CSVCell defuses spreadsheet formulas: a value starting with =, +, -, @ or a tab or carriage
// return would otherwise run as a formula when the file is opened, so it gets a leading quote.
func CSVCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// Export answers GET /api/analytics/export.csv: it checks the caller and filters, reads the rows
// and records a usage_exported audit event (surface names where it came from: "api" or
// "dashboard"), then writes the CSV to w. The caller sets the response headers first.
func (s *Service) Export(ctx context.Context, actor account.Actor, wsID int64, f Filter, surface string, w io.Writer) (int, error) {
	sc, err := s.open(ctx, actor, wsID, f)
	if err != nil {
		return 0, err
	}
	rows, err := ExportRows(ctx, sc.db, store.UsageFilter{WorkspaceID: wsID, From: sc.f.From, To: sc.f.To,
		ProjectID: f.ProjectID, Provider: f.Provider, Model: f.Model})
	if err != nil {
		return 0, err
	}
	details := map[string]any{"rows": len(rows), "format": "csv", "surface": surface,
		"from": f.From.Format(time.RFC3339), "to": f.To.Format(time.RFC3339)}
	if f.Provider != "" {
		details["provider"] = f.Provider
	}
	if f.ProjectID != 0 {
		details["projectId"] = f.ProjectID
	}
	if f.Model != "" {
		details["model"] = f.Model
	}
	if err := s.acct.Record(ctx, actor, wsID, account.AuditEvent{Action: account.AuditUsageExported,
		TargetType: "workspace", TargetID: wsID, Details: details}); err != nil {
		return 0, err
	}
	names := make(map[int64]string, len(sc.projects))
	for id, p := range sc.projects {
		names[id] = p.Name
	}
	return len(rows), WriteCSV(w, sc.ws.Name, names, rows)
}
