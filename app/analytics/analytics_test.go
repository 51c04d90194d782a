package analytics

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
	"time"

	"tokenguard/app/apperr"
	"tokenguard/store"
)

func TestParseFilter(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	day := func(s string) time.Time { d, _ := time.Parse("2006-01-02", s); return d }
	tests := []struct {
		query    string
		want     Filter
		badField string // non-empty: INVALID_REQUEST naming this
	}{
		{"", Filter{From: now.Add(-30 * 24 * time.Hour), To: now}, ""},
		{"from=2026-11-01&to=2026-11-02", Filter{From: day("2026-11-01"), To: day("2026-11-03")}, ""},
		{"from=2026-11-01T10:00:00%2B02:00", Filter{From: time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC), To: now}, ""},
		{"provider=anthropic&projectId=7&model=+claude+", Filter{From: now.Add(-30 * 24 * time.Hour), To: now, Provider: "anthropic", ProjectID: 7, Model: "claude"}, ""},
		{"from=2026-11-31", Filter{}, "from"},
		{"to=26-11-2026", Filter{}, "to"},
		{"from=2026-11-05&to=2026-11-04", Filter{}, "before"},
		{"from=2026-11-27", Filter{}, "before"}, // after the default "to" (now)
		{"provider=OpenAI", Filter{}, "provider"},
		{"projectId=0", Filter{}, "projectId"},
		{"projectId=1e3", Filter{}, "projectId"},
		{"model=" + strings.Repeat("x", 201), Filter{}, "model"},
	}
	for _, tt := range tests {
		q, err := url.ParseQuery(tt.query)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseFilter(q, now)
		if tt.badField != "" {
			if apperr.Code(err) != apperr.InvalidRequest || !strings.Contains(err.Error(), tt.badField) {
				t.Errorf("%q: err %v, want INVALID_REQUEST about %s", tt.query, err, tt.badField)
			}
			continue
		}
		if err != nil || !got.From.Equal(tt.want.From) || !got.To.Equal(tt.want.To) || got.Provider != tt.want.Provider ||
			got.ProjectID != tt.want.ProjectID || got.Model != tt.want.Model {
			t.Errorf("%q: %+v, %v; want %+v", tt.query, got, err, tt.want)
		}
	}
}

func TestCSVCell(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "",
		"Web app":           "Web app",
		"=HYPERLINK(\"x\")": "'=HYPERLINK(\"x\")",
		"+1":                "'+1",
		"-1":                "'-1",
		"@SUM(A1)":          "'@SUM(A1)",
		"\tcmd":             "'\tcmd",
		"\rcmd":             "'\rcmd",
		"a=b":               "a=b",
	} {
		if got := CSVCell(in); got != want {
			t.Errorf("CSVCell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteCSV(t *testing.T) {
	rows := []store.UsageRow{
		{CreatedAt: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC).UnixMilli(), ProjectID: 1, Provider: "openai", FinalModel: "gpt-4o",
			Status: 200, InputTokens: 10, OutputTokens: 5, TotalTokens: 15, CostNano: 1_234_567, LatencyMs: 120},
		{CreatedAt: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC).UnixMilli(), ProjectID: 9, Provider: "gemini", FinalModel: "-x",
			Status: 429, ErrorCode: "BUDGET_EXCEEDED", LatencyMs: 1},
	}
	var b bytes.Buffer
	if err := WriteCSV(&b, "@Acme, Inc.", map[int64]string{1: "Web \"app\""}, rows); err != nil {
		t.Fatal(err)
	}
	want := "createdAt,workspace,project,provider,model,status,inputTokens,outputTokens,totalTokens,estimatedCostUsd,latencyMs,errorCode\n" +
		"2026-11-26T10:00:00Z,\"'@Acme, Inc.\",\"Web \"\"app\"\"\",openai,gpt-4o,200,10,5,15,0.001234567,120,\n" +
		"2026-11-25T00:00:00Z,\"'@Acme, Inc.\",deleted project,gemini,'-x,429,0,0,0,0,1,BUDGET_EXCEEDED\n"
	if got := b.String(); got != want {
		t.Errorf("csv:\n%s\nwant:\n%s", got, want)
	}
}

func TestRecommend(t *testing.T) {
	tests := []struct {
		name string
		d    Digest
		want string
	}{
		{"over budget first", Digest{Blocked: 3, TotalRequests: 9, BudgetWarnings: []BudgetRisk{
			{Name: "a", Period: "monthly", UtilizationPct: 85}, {Name: "b", Period: "daily", UtilizationPct: 120}}}, `Project "b" has used 120.0% of its daily budget`},
		{"near budget", Digest{TotalRequests: 9, BudgetWarnings: []BudgetRisk{{Name: "a", Period: "monthly", UtilizationPct: 85}}}, `Project "a" is at 85.0% of its monthly budget`},
		{"blocked", Digest{Blocked: 2, TotalRequests: 9}, "2 requests were blocked"},
		{"no traffic", Digest{}, "No requests went through TokenGuard"},
		{"one dominant model", Digest{TotalRequests: 9, TotalSpendUSD: 10, TopModel: &Ranked{Name: "gpt-4o", SpendUSD: 6}}, "gpt-4o accounts for most"},
		{"all fine", Digest{TotalRequests: 9, TotalSpendUSD: 10, TopModel: &Ranked{Name: "gpt-4o", SpendUSD: 4}}, "no action needed"},
	}
	for _, tt := range tests {
		if got := recommend(tt.d); !strings.Contains(got, tt.want) {
			t.Errorf("%s: %q, want it to contain %q", tt.name, got, tt.want)
		}
	}
}

func TestPct(t *testing.T) {
	for _, tt := range []struct {
		spent, budget int64
		want          float64
	}{{4_700_000_000, 5_000_000_000, 94}, {1, 3, 33.3}, {2, 3, 66.7}, {0, 5, 0}, {5, 0, 0}, {12, 10, 120}} {
		if got := pct(tt.spent, tt.budget); got != tt.want {
			t.Errorf("pct(%d, %d) = %v, want %v", tt.spent, tt.budget, got, tt.want)
		}
	}
}

// The overview and digest rank providers from the model breakdown exactly as a provider
// breakdown would rank them: cost, then requests, descending, then name.
func TestTops(t *testing.T) {
	m := func(model, provider string, cost, requests int64) store.UsageAggregate {
		return store.UsageAggregate{Key: model, Provider: provider, CostNano: cost, Requests: requests}
	}
	tests := []struct {
		name            string
		byModel         []store.UsageAggregate
		model, provider string
		providerCost    int64
	}{
		{"empty", nil, "", "", 0},
		{"summed over models", []store.UsageAggregate{m("claude", "anthropic", 50, 1), m("gpt-4o", "openai", 40, 1), m("gpt-4o-mini", "openai", 20, 1)}, "claude", "openai", 60},
		{"cost tie: requests", []store.UsageAggregate{m("a", "openai", 10, 1), m("b", "gemini", 10, 3)}, "a", "gemini", 10},
		{"full tie: name", []store.UsageAggregate{m("a", "openai", 10, 1), m("b", "gemini", 10, 1)}, "a", "gemini", 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			model, provider := tops(tt.byModel)
			if tt.model == "" {
				if model != nil || provider != nil {
					t.Fatalf("tops of nothing = %v, %v", model, provider)
				}
				return
			}
			if model.Name != tt.model || provider.Name != tt.provider || provider.SpendUSD != usd(tt.providerCost) {
				t.Errorf("tops = %+v, %+v; want model %s, provider %s at %d nano", model, provider, tt.model, tt.provider, tt.providerCost)
			}
		})
	}
}
