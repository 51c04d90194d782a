package pricing

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// snapshotWith returns the embedded snapshot's JSON changed by edit.
func snapshotWith(t testing.TB, edit func(s map[string]any)) []byte {
	t.Helper()
	var s map[string]any
	if err := json.Unmarshal(embedded, &s); err != nil {
		t.Fatal(err)
	}
	edit(s)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// model returns the data model id of provider in the generic form of a snapshot.
func model(s map[string]any, provider, id string) map[string]any {
	for _, p := range s["providers"].([]any) {
		p := p.(map[string]any)
		if p["id"] != provider {
			continue
		}
		for _, m := range p["models"].([]any) {
			if m := m.(map[string]any); m["id"] == id {
				return m
			}
		}
	}
	panic("no model " + provider + "/" + id)
}

func firstPrices(s map[string]any, provider, id string) map[string]any {
	return model(s, provider, id)["prices"].([]any)[0].(map[string]any)["prices"].(map[string]any)
}

// dropModel removes a model from the snapshot.
func dropModel(s map[string]any, provider, id string) {
	for _, p := range s["providers"].([]any) {
		p := p.(map[string]any)
		if p["id"] != provider {
			continue
		}
		var kept []any
		for _, m := range p["models"].([]any) {
			if m.(map[string]any)["id"] != id {
				kept = append(kept, m)
			}
		}
		p["models"] = kept
	}
}

// A snapshot that is broken in any way the loader can tell is refused with an error naming
// the problem, rather than priced from.
func TestParseSnapshotRefuses(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"not JSON", []byte("{"), "snapshot"},
		{"trailing data", append(append([]byte{}, embedded...), []byte("{}")...), "after the JSON"},
		{"too large", bytes.Repeat([]byte(" "), MaxSnapshotBytes+1), "limit"},
		{"schema 2", snapshotWith(t, func(s map[string]any) { s["schema"] = 2 }), "schema"},
		{"no release", snapshotWith(t, func(s map[string]any) { s["release"] = "" }), "release"},
		{"unknown field", snapshotWith(t, func(s map[string]any) { s["surprise"] = 1 }), "unknown field"},
		{"provider missing", snapshotWith(t, func(s map[string]any) { s["providers"] = s["providers"].([]any)[1:] }), "missing"},
		{"negative price", snapshotWith(t, func(s map[string]any) { firstPrices(s, "openai", "gpt-4o")["output_mtok"] = -1 }), "not between"},
		{"absurd price", snapshotWith(t, func(s map[string]any) { firstPrices(s, "openai", "gpt-4o")["input_mtok"] = 2.5e6 }), "not between"},
		{"free model", snapshotWith(t, func(s map[string]any) { delete(firstPrices(s, "openai", "gpt-4o"), "input_mtok") }), "input_mtok"},
		{"unknown price key", snapshotWith(t, func(s map[string]any) { firstPrices(s, "openai", "gpt-4o")["input_gold_mtok"] = 1 }), "unknown price key"},
		{"tiers out of order", snapshotWith(t, func(s map[string]any) {
			firstPrices(s, "google", "gemini-2.5-pro")["input_mtok"] = map[string]any{"base": 1.25,
				"tiers": []any{map[string]any{"start": 200000, "price": 2.5}, map[string]any{"start": 100000, "price": 3}}}
		}), "tier starts"},
		{"dated prices out of order", snapshotWith(t, func(s map[string]any) {
			m := model(s, "openai", "o3")
			ps := m["prices"].([]any)
			later := map[string]any{"from": "2025-01-01", "prices": map[string]any{"input_mtok": 1}}
			m["prices"] = append(ps, later)
		}), "starts before"},
		{"regex that does not compile", snapshotWith(t, func(s map[string]any) {
			model(s, "openai", "gpt-4o")["match"] = map[string]any{"regex": "^(?!gpt)"}
		}), "regex"},
		{"rule with two kinds", snapshotWith(t, func(s map[string]any) {
			model(s, "openai", "gpt-4o")["match"] = map[string]any{"equals": "a", "contains": "b"}
		}), "exactly one"},
		{"model listed twice", snapshotWith(t, func(s map[string]any) {
			model(s, "openai", "gpt-4o-mini")["id"] = "gpt-4o"
		}), "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSnapshot(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseSnapshot error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	s, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	if s.Release != "0.1.8" || !strings.Contains(s.License, "MIT") || !strings.HasPrefix(s.Version(), "genai-prices@0.1.8+") {
		t.Errorf("embedded snapshot: release %q, version %q, licence kept %v", s.Release, s.Version(), strings.Contains(s.License, "MIT"))
	}
}

// A newer snapshot is applied to the next request without a new table; one that would leave a
// model in use unpriced is refused and the prices in use keep serving.
func TestSwap(t *testing.T) {
	tab := mustTable(t, nil)
	u := Usage{Input: 1_000_000, Output: 1_000_000}
	before := mustCost(t, tab, "gpt-4o-2024-08-06", u) // in use now
	oldVersion := tab.Version()

	lossy, err := ParseSnapshot(snapshotWith(t, func(s map[string]any) {
		s["release"] = "0.1.9"
		dropModel(s, "openai", "gpt-4o")
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Swap(lossy); err == nil || !strings.Contains(err.Error(), "gpt-4o-2024-08-06") {
		t.Fatalf("Swap of a snapshot without a model in use: %v, want a refusal naming it", err)
	}
	if got := mustCost(t, tab, "gpt-4o-2024-08-06", u); got != before || tab.Version() != oldVersion {
		t.Fatalf("after a refused swap: cost %d (was %d), version %s (was %s)", got, before, tab.Version(), oldVersion)
	}

	newer, err := ParseSnapshot(snapshotWith(t, func(s map[string]any) {
		s["release"] = "0.1.9"
		firstPrices(s, "openai", "gpt-4o")["input_mtok"] = 2.0
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Swap(newer); err != nil {
		t.Fatalf("Swap: %v", err)
	}
	if got, want := mustCost(t, tab, "gpt-4o-2024-08-06", u), FromDollars(2+10); got != want {
		t.Errorf("after the swap: cost %d, want %d", got, want)
	}
	if got := tab.Quote("gpt-4o", u).Version; got != newer.Version() || got == oldVersion {
		t.Errorf("Quote.Version = %s, want %s", got, newer.Version())
	}
	// The name in use is still checked at the next swap.
	if err := tab.Swap(lossy); err == nil {
		t.Error("a second swap dropped a model in use")
	}
}

// logRecords is a slog handler that hands each record's message and error to a channel.
type logRecords chan string

func (l logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l logRecords) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l logRecords) WithGroup(string) slog.Handler            { return l }
func (l logRecords) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			msg += ": " + a.Value.String()
		}
		return true
	})
	l <- msg
	return nil
}

// WatchFile refuses a bad file (the old prices keep serving) and applies a good one to the
// next request, without a restart.
func TestWatchFile(t *testing.T) {
	tab := mustTable(t, nil)
	path := filepath.Join(t.TempDir(), "prices.json")
	if err := os.WriteFile(path, embedded, 0o600); err != nil {
		t.Fatal(err)
	}
	logs := make(logRecords, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tab.WatchFile(ctx, path, 5*time.Millisecond, slog.New(logs)); close(done) }()
	defer func() { cancel(); <-done }()
	next := func() string {
		select {
		case m := <-logs:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("WatchFile logged nothing")
			return ""
		}
	}
	u := Usage{Input: 1_000_000, Output: 1_000_000}
	before, version := mustCost(t, tab, "gpt-4o", u), tab.Version()

	write := func(data []byte) {
		t.Helper()
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(snapshotWith(t, func(s map[string]any) { firstPrices(s, "openai", "gpt-4o")["input_mtok"] = -2.5 }))
	if m := next(); !strings.Contains(m, "refused") || !strings.Contains(m, "not between") {
		t.Fatalf("log after a bad file: %q", m)
	}
	if got := mustCost(t, tab, "gpt-4o", u); got != before || tab.Version() != version {
		t.Fatalf("a bad file changed the prices: cost %d (was %d)", got, before)
	}

	write(snapshotWith(t, func(s map[string]any) {
		s["release"] = "0.1.9"
		firstPrices(s, "openai", "gpt-4o")["output_mtok"] = 8.0
	}))
	if m := next(); m != "prices updated" {
		t.Fatalf("log after a good file: %q", m)
	}
	if got, want := mustCost(t, tab, "gpt-4o", u), FromDollars(2.5+8); got != want {
		t.Errorf("after a good file: cost %d, want %d", got, want)
	}
	if !strings.HasPrefix(tab.Version(), "genai-prices@0.1.9+") {
		t.Errorf("Version = %s", tab.Version())
	}
}

// Explain says how a name is priced, with the data's rule and every dated price.
func TestExplain(t *testing.T) {
	tab := mustTable(t, nil)
	x := tab.Explain("o3-2025-04-16")
	if x.Model != "o3" || x.Rule != RuleMatch || !strings.Contains(x.MatchRule, `"equals":"o3-2025-04-16"`) ||
		len(x.Periods) != 2 || x.Periods[1].From.Format(time.DateOnly) != "2025-06-10" || x.MaxOutput != 100_000 {
		t.Errorf("Explain(o3-2025-04-16) = %+v", x)
	}
	if x := tab.Explain("nope"); !x.ByDefault || x.MatchRule != "" || len(x.Periods) != 1 {
		t.Errorf("Explain(nope) = %+v", x)
	}
}
