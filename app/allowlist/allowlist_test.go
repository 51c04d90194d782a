package allowlist_test

import (
	"strings"
	"testing"

	"tokenguard/app/allowlist"
	"tokenguard/app/apperr"
)

// TestNormalize ensures what the allowedModels field accepts and refuses, and that accepted
// lists come back trimmed and without duplicates.
func TestNormalize(t *testing.T) {
	many := make([]string, allowlist.MaxEntries+1)
	for i := range many {
		many[i] = "m" + strings.Repeat("x", i)
	}
	cases := []struct {
		name string
		in   []string
		want []string
		bad  string // part of the error message; "" when accepted
	}{
		{name: "empty", in: nil, want: nil},
		{name: "trimmed, deduplicated", in: []string{" gpt-4o ", "claude-*", "gpt-4o"}, want: []string{"gpt-4o", "claude-*"}},
		{name: "bare star", in: []string{"*"}, want: []string{"*"}},
		{name: "limit of entries", in: many[:allowlist.MaxEntries], want: many[:allowlist.MaxEntries]},
		{name: "longest entry", in: []string{strings.Repeat("a", allowlist.MaxEntryBytes)}, want: []string{strings.Repeat("a", allowlist.MaxEntryBytes)}},
		{name: "too many", in: many, bad: "at most 100 entries"},
		{name: "too long", in: []string{strings.Repeat("a", allowlist.MaxEntryBytes+1)}, bad: "at most 128 bytes"},
		{name: "blank entry", in: []string{"gpt-4o", "  "}, bad: "must not be empty"},
		{name: "star inside", in: []string{"gpt-*-mini"}, bad: "may only end a pattern"},
		{name: "two stars", in: []string{"gpt**"}, bad: "may only end a pattern"},
		{name: "leading star", in: []string{"*mini"}, bad: "may only end a pattern"},
		{name: "control character", in: []string{"gpt\x00"}, bad: "control characters"},
		{name: "inner space", in: []string{"gpt 4o"}, bad: "spaces"},
		{name: "invalid UTF-8", in: []string{"gpt\xff"}, bad: "UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := allowlist.Normalize(c.in)
			if c.bad != "" {
				if apperr.Code(err) != apperr.InvalidRequest || !strings.Contains(err.Error(), c.bad) || !strings.Contains(err.Error(), "allowedModels") {
					t.Fatalf("err = %v, want INVALID_REQUEST naming allowedModels with %q", err, c.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") || (got == nil) != (c.want == nil) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// TestAllows ensures exact entries match only themselves, patterns match their prefix, matching
// is case-sensitive, and an empty list allows everything.
func TestAllows(t *testing.T) {
	l := allowlist.New([]string{"gpt-4o-mini", "claude-*", "models/gemini-2.5-*"})
	cases := []struct {
		model string
		want  bool
	}{
		{"gpt-4o-mini", true},
		{"gpt-4o", false},
		{"gpt-4o-mini-2024-07-18", false},
		{"claude-sonnet-4-5", true},
		{"claude-", true},
		{"claude", false},
		{"Claude-sonnet", false},
		{"models/gemini-2.5-flash", true},
		{"gemini-2.5-flash", false},
		{"", false},
	}
	for _, c := range cases {
		if got := l.Allows(c.model); got != c.want {
			t.Errorf("Allows(%q) = %v, want %v", c.model, got, c.want)
		}
	}
	if !l.Restricts() {
		t.Error("a list with entries restricts nothing")
	}
	var none allowlist.List
	if !none.Allows("anything") || none.Restricts() {
		t.Error("the empty list must allow every model")
	}
	if !allowlist.New([]string{"*"}).Allows("anything") {
		t.Error(`"*" must allow every model`)
	}
}

// FuzzNormalize ensures that whatever entries come in, Normalize either refuses them with
// INVALID_REQUEST or returns a list every entry of which obeys the rules and matches itself
// (a pattern, its own prefix).
func FuzzNormalize(f *testing.F) {
	f.Add("gpt-4o-mini\nclaude-*")
	f.Add("*")
	f.Add("a*b\n\x00\n ")
	f.Add(strings.Repeat("m", 129))
	f.Fuzz(func(t *testing.T, joined string) {
		got, err := allowlist.Normalize(strings.Split(joined, "\n"))
		if err != nil {
			if apperr.Code(err) != apperr.InvalidRequest {
				t.Fatalf("error %v is not INVALID_REQUEST", err)
			}
			return
		}
		l := allowlist.New(got)
		for _, e := range got {
			if e == "" || len(e) > allowlist.MaxEntryBytes || strings.ContainsAny(e, " \t\n\r\x00") || strings.Contains(strings.TrimSuffix(e, "*"), "*") {
				t.Fatalf("accepted entry %q", e)
			}
			if !l.Allows(strings.TrimSuffix(e, "*")) {
				t.Fatalf("%q does not allow itself", e)
			}
		}
		if len(got) > allowlist.MaxEntries {
			t.Fatalf("%d entries accepted", len(got))
		}
	})
}
