// Package usage is TokenGuard's usage log: the record every proxied (or budget-blocked) request
// leaves behind, a batch Writer that takes records off the request path and stores them — with
// the spend counters they add to — in one SQLite transaction per batch, and the start-up
// loader that puts the persisted counters back into the budget engine.
package usage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"tokenguard/app/budget"
	"tokenguard/app/pricing"
	"tokenguard/store"
)

// Record is one usage row as the API and CSV export show it (DESIGN §4 names).
type Record struct {
	ID int64 `json:"id"`
	// RequestID is unique per request and time-ordered (see NewRequestID); the writer fills it
	// in when empty.
	RequestID   string    `json:"requestId"`
	CreatedAt   time.Time `json:"createdAt"` // the request's start, UTC
	WorkspaceID int64     `json:"workspaceId"`
	ProjectID   int64     `json:"projectId"`
	Provider    string    `json:"provider"`
	// OriginalModel is what the client asked for, FinalModel what was sent upstream (and priced).
	OriginalModel string `json:"originalModel"`
	FinalModel    string `json:"finalModel"`
	WasFallback   bool   `json:"wasFallback"`
	Status        int    `json:"status"` // HTTP status returned to the client
	InputTokens   int64  `json:"inputTokens"`
	OutputTokens  int64  `json:"outputTokens"`
	TotalTokens   int64  `json:"totalTokens"`
	// Cost is the estimated cost; JSON shows it as estimatedCostUsd, a number of dollars.
	Cost            pricing.NanoUSD `json:"-"`
	LatencyMs       int64           `json:"latencyMs"`
	ErrorCode       string          `json:"errorCode"` // "" when none
	Stream          bool            `json:"stream"`
	UsageEstimated  bool            `json:"usageEstimated"`
	PricedByDefault bool            `json:"pricedByDefault"`
	// PricesVersion names the prices Cost was computed from (pricing.Table.Version); a row
	// keeps its cost when prices change.
	PricesVersion string `json:"pricesVersion"`
	// The parts of the tokens above the provider reported separately (0 when it did not): cache
	// reads and writes among the input tokens, reasoning among the output tokens.
	CacheReadTokens  int64 `json:"cacheReadTokens"`
	CacheWriteTokens int64 `json:"cacheWriteTokens"`
	ReasoningTokens  int64 `json:"reasoningTokens"`
	// TTFBMs is the time from the request's start to the first byte of a streamed answer (0
	// when not streamed).
	TTFBMs int64 `json:"ttfbMs"`
	// ErrorMessage is the provider's own error message, redacted and at most
	// store.MaxErrorMessage bytes ("" when none).
	ErrorMessage string `json:"errorMessage"`
	// EndUser is who the request was for (the x-tokenguard-user header or the request's own
	// user field), at most store.MaxEndUser bytes.
	EndUser string `json:"endUser"`

	// SliceID and SliceNano name the headroom slice a cluster replica admitted the request from
	// and the worst case it took there (app/ledger), so the batch storing the row takes it off
	// the slice; not stored, not shown.
	SliceID   string `json:"-"`
	SliceNano int64  `json:"-"`
}

type recordJSON Record // same fields, without the methods

// MarshalJSON writes the contract shape: estimatedCostUsd in dollars and createdAt in RFC 3339
// UTC.
func (r Record) MarshalJSON() ([]byte, error) {
	r.CreatedAt = r.CreatedAt.UTC()
	return json.Marshal(struct {
		recordJSON
		EstimatedCostUsd float64 `json:"estimatedCostUsd"`
	}{recordJSON(r), r.Cost.Dollars()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Record) UnmarshalJSON(b []byte) error {
	var v struct {
		recordJSON
		EstimatedCostUsd float64 `json:"estimatedCostUsd"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = Record(v.recordJSON)
	r.Cost = pricing.FromDollars(v.EstimatedCostUsd)
	return nil
}

// FromRow converts a stored row to a Record.
func FromRow(s store.UsageRow) Record {
	return Record{
		ID:               s.ID,
		RequestID:        s.RequestID,
		CreatedAt:        time.UnixMilli(s.CreatedAt).UTC(),
		WorkspaceID:      s.WorkspaceID,
		ProjectID:        s.ProjectID,
		Provider:         s.Provider,
		OriginalModel:    s.OriginalModel,
		FinalModel:       s.FinalModel,
		WasFallback:      s.WasFallback,
		Status:           s.Status,
		InputTokens:      s.InputTokens,
		OutputTokens:     s.OutputTokens,
		TotalTokens:      s.TotalTokens,
		Cost:             pricing.NanoUSD(s.CostNano),
		LatencyMs:        s.LatencyMs,
		ErrorCode:        s.ErrorCode,
		Stream:           s.Stream,
		UsageEstimated:   s.UsageEstimated,
		PricedByDefault:  s.PricedByDefault,
		PricesVersion:    s.PricesVersion,
		CacheReadTokens:  s.CacheReadTokens,
		CacheWriteTokens: s.CacheWriteTokens,
		ReasoningTokens:  s.ReasoningTokens,
		TTFBMs:           s.TTFBMs,
		ErrorMessage:     s.ErrorMessage,
		EndUser:          s.EndUser,
	}
}

// FromRows converts a page of stored rows (as store.ListUsage returns them) to Records.
func FromRows(rows []store.UsageRow) []Record {
	out := make([]Record, len(rows))
	for i, r := range rows {
		out[i] = FromRow(r)
	}
	return out
}

func (r Record) row() store.UsageRow {
	return store.UsageRow{
		ID:               r.ID,
		RequestID:        r.RequestID,
		CreatedAt:        r.CreatedAt.UnixMilli(),
		WorkspaceID:      r.WorkspaceID,
		ProjectID:        r.ProjectID,
		Provider:         r.Provider,
		OriginalModel:    r.OriginalModel,
		FinalModel:       r.FinalModel,
		WasFallback:      r.WasFallback,
		Status:           r.Status,
		InputTokens:      r.InputTokens,
		OutputTokens:     r.OutputTokens,
		TotalTokens:      r.TotalTokens,
		CostNano:         int64(r.Cost),
		LatencyMs:        r.LatencyMs,
		ErrorCode:        r.ErrorCode,
		Stream:           r.Stream,
		UsageEstimated:   r.UsageEstimated,
		PricedByDefault:  r.PricedByDefault,
		PricesVersion:    r.PricesVersion,
		CacheReadTokens:  r.CacheReadTokens,
		CacheWriteTokens: r.CacheWriteTokens,
		ReasoningTokens:  r.ReasoningTokens,
		TTFBMs:           r.TTFBMs,
		ErrorMessage:     r.ErrorMessage,
		EndUser:          r.EndUser,
		SliceID:          r.SliceID,
		SliceNano:        r.SliceNano,
	}
}

// NewRequestID returns a unique request id that sorts by time: 12 hex digits of the unix
// millisecond t, then 80 random bits. Time order keeps inserts at the end of the unique index
// instead of scattering them through it.
func NewRequestID(t time.Time) string {
	var b [16]byte
	ms := uint64(t.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	rand.Read(b[6:]) // never fails (crypto/rand panics rather than return an error)
	return hex.EncodeToString(b[:])
}

// LoadCounters reads the persisted spend counters of the current UTC day and month (at now) and
// loads them into e. The caller must refuse to start when it fails: without the counters every
// budget would look unspent.
func LoadCounters(ctx context.Context, db *store.DB, e *budget.Engine, now time.Time) error {
	rows, err := db.SpendCounters(ctx, budget.DayKey(now), budget.MonthKey(now))
	if err != nil {
		return fmt.Errorf("load spend counters: %w", err)
	}
	counters := make([]budget.Counter, len(rows))
	for i, r := range rows {
		counters[i] = budget.Counter{Scope: budget.Scope(r.Scope), ID: r.ScopeID, Period: r.Period, Spend: pricing.NanoUSD(r.SpendNano)}
	}
	if err := e.Load(counters); err != nil {
		return fmt.Errorf("load spend counters: %w", err)
	}
	return nil
}
