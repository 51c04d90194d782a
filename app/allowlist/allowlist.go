// Package allowlist owns a project's model allow-list (DESIGN §7 allowedModels): the rules an
// entry must follow when it is saved, and the match the proxy runs on every request.
//
// An entry is an exact model name ("gpt-4o-mini") or a prefix pattern ending in one "*"
// ("claude-*", which allows every model whose name starts with "claude-"). Matching is
// case-sensitive, as providers' model names are. An empty list allows every model.
package allowlist

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"tokenguard/app/apperr"
)

const (
	// MaxEntries bounds the entries of one list.
	MaxEntries = 100
	// MaxEntryBytes bounds one entry.
	MaxEntryBytes = 128
)

// Normalize validates entries as the allowedModels field and returns them trimmed, without
// duplicates, in their given order; nil for an empty list. It returns INVALID_REQUEST naming
// allowedModels for more than MaxEntries entries, an empty or over-long entry, invalid UTF-8,
// whitespace or control characters, or a "*" anywhere but at the end.
func Normalize(entries []string) ([]string, error) {
	if len(entries) > MaxEntries {
		return nil, apperr.New(apperr.InvalidRequest, "allowedModels must have at most %d entries", MaxEntries)
	}
	var out []string
	seen := make(map[string]struct{}, len(entries))
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if err := check(e); err != nil {
			return nil, err
		}
		if _, dup := seen[e]; dup {
			continue
		}
		seen[e] = struct{}{}
		out = append(out, e)
	}
	return out, nil
}

func check(e string) error {
	switch {
	case e == "":
		return apperr.New(apperr.InvalidRequest, "allowedModels entries must not be empty")
	case len(e) > MaxEntryBytes:
		return apperr.New(apperr.InvalidRequest, "allowedModels entries must be at most %d bytes", MaxEntryBytes)
	case !utf8.ValidString(e):
		return apperr.New(apperr.InvalidRequest, "allowedModels entries must be valid UTF-8")
	case strings.IndexByte(e, '*') >= 0 && strings.IndexByte(e, '*') != len(e)-1:
		return apperr.New(apperr.InvalidRequest, "allowedModels entry %q: \"*\" may only end a pattern, like \"claude-*\"", e)
	}
	for _, r := range e {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return apperr.New(apperr.InvalidRequest, "allowedModels entries must not contain spaces or control characters")
		}
	}
	return nil
}

// List is a compiled allow-list. The zero List allows every model. It is immutable and safe
// for concurrent use.
type List struct {
	exact    map[string]struct{}
	prefixes []string
	any      bool // the list names at least one entry
}

// New compiles entries already accepted by Normalize.
func New(entries []string) List {
	if len(entries) == 0 {
		return List{}
	}
	l := List{any: true}
	for _, e := range entries {
		if p, ok := strings.CutSuffix(e, "*"); ok {
			l.prefixes = append(l.prefixes, p)
			continue
		}
		if l.exact == nil {
			l.exact = make(map[string]struct{}, len(entries))
		}
		l.exact[e] = struct{}{}
	}
	return l
}

// Allows reports whether model may be called: always for an empty list, else when model equals
// an exact entry or starts with a pattern's prefix.
func (l List) Allows(model string) bool {
	if !l.any {
		return true
	}
	if _, ok := l.exact[model]; ok {
		return true
	}
	for _, p := range l.prefixes {
		if strings.HasPrefix(model, p) {
			return true
		}
	}
	return false
}

// Restricts reports whether the list names any entry (an empty list restricts nothing).
func (l List) Restricts() bool { return l.any }
