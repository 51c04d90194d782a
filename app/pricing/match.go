package pricing

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ruleFile is a match rule as the data writes it: exactly one of its fields is set.
type ruleFile struct {
	Or         []ruleFile `json:"or,omitempty"`
	And        []ruleFile `json:"and,omitempty"`
	Not        *ruleFile  `json:"not,omitempty"`
	Equals     *string    `json:"equals,omitempty"`
	StartsWith *string    `json:"starts_with,omitempty"`
	EndsWith   *string    `json:"ends_with,omitempty"`
	Contains   *string    `json:"contains,omitempty"`
	Regex      *string    `json:"regex,omitempty"`
}

// maxRuleDepth bounds how deeply a snapshot may nest its rules.
const maxRuleDepth = 8

type ruleKind uint8

const (
	ruleOr ruleKind = iota
	ruleAnd
	ruleNot
	ruleEquals
	ruleStartsWith
	ruleEndsWith
	ruleContains
	ruleRegex
)

// rule is a compiled match rule. Names are matched lower-cased, as genai-prices matches them.
type rule struct {
	kind ruleKind
	s    string
	re   *regexp.Regexp
	subs []*rule
	text string // the rule as JSON, for `tokenguard prices`
}

func (f ruleFile) compile(depth int) (*rule, error) {
	if depth > maxRuleDepth {
		return nil, fmt.Errorf("rules nested over %d deep", maxRuleDepth)
	}
	r := &rule{}
	n := 0
	subs := func(fs []ruleFile) error {
		if len(fs) == 0 {
			return errors.New("empty and/or")
		}
		for _, sf := range fs {
			s, err := sf.compile(depth + 1)
			if err != nil {
				return err
			}
			r.subs = append(r.subs, s)
		}
		return nil
	}
	str := func(k ruleKind, s *string) {
		if s != nil {
			n++
			r.kind, r.s = k, strings.ToLower(*s)
		}
	}
	str(ruleEquals, f.Equals)
	str(ruleStartsWith, f.StartsWith)
	str(ruleEndsWith, f.EndsWith)
	str(ruleContains, f.Contains)
	if f.Regex != nil {
		n++
		re, err := regexp.Compile(*f.Regex)
		if err != nil {
			return nil, fmt.Errorf("regex %q: %w", *f.Regex, err)
		}
		r.kind, r.re = ruleRegex, re
	}
	if f.Or != nil {
		n++
		r.kind = ruleOr
		if err := subs(f.Or); err != nil {
			return nil, err
		}
	}
	if f.And != nil {
		n++
		r.kind = ruleAnd
		if err := subs(f.And); err != nil {
			return nil, err
		}
	}
	if f.Not != nil {
		n++
		r.kind = ruleNot
		if err := subs([]ruleFile{*f.Not}); err != nil {
			return nil, err
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("a rule needs exactly one of or, and, not, equals, starts_with, ends_with, contains, regex (has %d)", n)
	}
	if depth == 0 {
		b, _ := json.Marshal(f)
		r.text = string(b)
	}
	return r, nil
}

func (r *rule) matches(name string) bool {
	switch r.kind {
	case ruleOr:
		for _, s := range r.subs {
			if s.matches(name) {
				return true
			}
		}
		return false
	case ruleAnd:
		for _, s := range r.subs {
			if !s.matches(name) {
				return false
			}
		}
		return true
	case ruleNot:
		return !r.subs[0].matches(name)
	case ruleEquals:
		return name == r.s
	case ruleStartsWith:
		return strings.HasPrefix(name, r.s)
	case ruleEndsWith:
		return strings.HasSuffix(name, r.s)
	case ruleContains:
		return strings.Contains(name, r.s)
	}
	return r.re.MatchString(name)
}

// equalsNames lists the exact names a rule accepts through its top-level equals and or
// branches: the data's aliases, resolved once when a table is built.
func (r *rule) equalsNames(out []string) []string {
	switch r.kind {
	case ruleEquals:
		return append(out, r.s)
	case ruleOr:
		for _, s := range r.subs {
			out = s.equalsNames(out)
		}
	}
	return out
}

// normalize lower-cases a model name and drops the "models/" resource prefix that Gemini
// clients send. It does not allocate for a name that is already lower-case.
func normalize(model string) string {
	m := strings.ToLower(strings.TrimSpace(model))
	return strings.TrimPrefix(m, "models/")
}

// entry is one priced model: a data model, an override, or the default.
type entry struct {
	id            string
	provider      string
	match         *rule // nil for overrides and the default
	contextWindow int64
	comments      string
	maxOutput     int64 // 0: by the requested name's family (names of no data model)
	periods       []period
}

// period is a model's prices from a day on (from: Unix seconds; 0 for the first).
type period struct {
	from  int64
	tiers []tier
}

// tier is a model's prices for a prompt of more than above tokens.
type tier struct {
	above int64
	label string
	price Price
}

// tier returns the prices for a prompt of promptTokens on the current day. The clock is read
// only for a model whose price changes on a date.
func (e *entry) tier(now func() time.Time, promptTokens int64) *tier {
	ts := e.periods[0].tiers
	if len(e.periods) > 1 {
		at := now().Unix()
		for i := len(e.periods) - 1; i > 0; i-- {
			if at >= e.periods[i].from {
				ts = e.periods[i].tiers
				break
			}
		}
	}
	for i := len(ts) - 1; i > 0; i-- {
		if promptTokens > ts[i].above {
			return &ts[i]
		}
	}
	return &ts[0]
}

func single(id, provider string, p Price) *entry {
	return &entry{id: id, provider: provider, periods: []period{{tiers: []tier{{label: "base", price: p}}}}}
}

// hit is how one normalized name resolved.
type hit struct {
	name      string
	e         *entry
	rule      string
	byDefault bool
	used      atomic.Bool // looked up since the table was built: a model in use (Swap)
}

// maxCached bounds the names remembered beyond the data's own: each is at most maxCachedName
// bytes, so a flood of made-up names costs a bounded amount of memory and, past it, only the
// slow path.
const (
	maxCached     = 4096
	maxCachedName = 256
)

// state is one snapshot compiled with the table's overrides. Everything but the cache and the
// used flags is immutable.
type state struct {
	version   string
	snap      *Snapshot
	def       *entry
	overrides map[string]*entry // by name
	byModel   map[string]*entry // overrides by the data model their name matches
	prefixes  map[string]*entry // overrides whose name matches no data model
	known     map[string]*hit   // every data id, alias and override name
	models    []string

	mu    sync.RWMutex
	cache map[string]*hit
}

// build compiles s with t's overrides and default.
func (t *Table) build(s *Snapshot) *state {
	st := &state{version: s.version, snap: s, def: single("", "", t.def),
		overrides: map[string]*entry{}, byModel: map[string]*entry{}, prefixes: map[string]*entry{},
		known: map[string]*hit{}, cache: map[string]*hit{}}
	names := map[string]bool{}
	for _, p := range s.providers {
		for _, e := range p.models {
			names[e.id] = true
		}
	}
	for key, p := range t.overrides {
		m, _ := st.matchData(key)
		o := single(key, familyProvider(key), p)
		if m != nil {
			o.provider, o.maxOutput = m.provider, m.maxOutput
			st.byModel[m.id] = o
		} else {
			st.prefixes[key] = o
		}
		st.overrides[key] = o
		names[key] = true
	}
	for n := range names {
		st.models = append(st.models, n)
	}
	sort.Strings(st.models)
	for _, p := range s.providers {
		for _, e := range p.models {
			for _, n := range e.match.equalsNames([]string{e.id}) {
				st.known[n] = st.resolveSlow(n)
			}
		}
	}
	for key := range t.overrides {
		st.known[key] = st.resolveSlow(key)
	}
	return st
}

// resolve finds how name is priced: a name of the data or an override from the precomputed
// map, any other from the bounded cache, filled by the slow path on first sight.
func (st *state) resolve(name string) *hit {
	n := normalize(name)
	h, ok := st.known[n]
	if !ok {
		st.mu.RLock()
		h, ok = st.cache[n]
		st.mu.RUnlock()
		if !ok {
			h = st.resolveSlow(n)
			if len(n) <= maxCachedName {
				st.mu.Lock()
				if old, ok := st.cache[n]; ok {
					h = old
				} else if len(st.cache) < maxCached {
					st.cache[n] = h
				}
				st.mu.Unlock()
			}
		}
	}
	if !h.used.Load() {
		h.used.Store(true)
	}
	return h
}

// resolveSlow applies the matching rules in order: an override of the name, an override of
// the data model the name matches, an override whose name (matching no data model) the name
// starts with, the data model, and the default.
func (st *state) resolveSlow(n string) *hit {
	m, rule := st.matchData(n)
	h := &hit{name: n}
	if o, ok := st.overrides[n]; ok {
		h.e, h.rule = o, RuleOverride
	} else if o := st.modelOverride(m); o != nil {
		h.e, h.rule = o, RuleOverride
	} else if o := st.prefixOverride(n); o != nil {
		h.e, h.rule = o, RuleOverridePrefix
	} else if m != nil {
		h.e, h.rule = m, rule
	} else {
		h.e, h.rule, h.byDefault = st.def, RuleDefault, true
	}
	return h
}

func (st *state) modelOverride(m *entry) *entry {
	if m == nil {
		return nil
	}
	return st.byModel[m.id]
}

// prefixOverride is the longest override that n starts with, up to a '-', '@' or ':' (so an
// override for ft:gpt-4o-mini prices ft:gpt-4o-mini:acme::id, never ft:gpt-4o-minix).
func (st *state) prefixOverride(n string) *entry {
	for i := len(n) - 1; i > 0 && len(st.prefixes) > 0; i-- {
		if c := n[i]; c == '-' || c == '@' || c == ':' {
			if o, ok := st.prefixes[n[:i]]; ok {
				return o
			}
		}
	}
	return nil
}

// matchData finds the data model for n as genai-prices does — the providers whose own rule
// accepts the name first, in the data's order, then the others; the first model whose match
// rule accepts it; failing that, the same name with a compact date (-20250929) written with
// dashes — and then as TokenGuard adds: the name without a trailing date or version suffix.
func (st *state) matchData(n string) (*entry, string) {
	if m := st.matchRules(n); m != nil {
		if n == m.id {
			return m, RuleName
		}
		return m, RuleMatch
	}
	if d := dashDates(n); d != n {
		if m := st.matchRules(d); m != nil {
			return m, RuleSuffix
		}
	}
	for s, i := n, 0; i < 3; i++ {
		k := versionSuffix(s)
		if k == 0 {
			break
		}
		s = s[:len(s)-k]
		if m := st.matchRules(s); m != nil {
			return m, RuleSuffix
		}
	}
	return nil, ""
}

func (st *state) matchRules(n string) *entry {
	for pass := range 2 {
		for _, p := range st.snap.providers {
			if p.match.matches(n) != (pass == 0) {
				continue
			}
			for _, e := range p.models {
				if e.match.matches(n) {
					return e
				}
			}
		}
	}
	return nil
}

// dashDates rewrites every compact date (-YYYYMMDD followed by '-', ':' or the end) as
// -YYYY-MM-DD, as genai-prices does before its second try.
func dashDates(n string) string {
	var b strings.Builder
	last := 0
	for i := 0; i+9 <= len(n); i++ {
		if n[i] != '-' || !digits(n[i+1:i+9]) || !validDate(n[i+1:i+5], n[i+5:i+7], n[i+7:i+9]) {
			continue
		}
		if j := i + 9; j < len(n) && n[j] != '-' && n[j] != ':' {
			continue
		}
		b.WriteString(n[last : i+1])
		b.WriteString(n[i+1:i+5] + "-" + n[i+5:i+7] + "-" + n[i+7:i+9])
		last = i + 9
	}
	if last == 0 {
		return n
	}
	b.WriteString(n[last:])
	return b.String()
}

// versionSuffix is the length of the date or version suffix n ends with, 0 if none: -latest or
// @latest, -YYYY-MM-DD, -YYYYMMDD or @YYYYMMDD, -MM-YYYY, -MM-DD, -MMDD (OpenAI's old
// snapshots), -NNN (Gemini's stable versions). Anything else (-x, -pro, -mini) is part of the
// name: another model, never a variant of this one.
func versionSuffix(n string) int {
	tail := func(k int, sep string) (string, bool) {
		if len(n) <= k || !strings.Contains(sep, n[len(n)-k:len(n)-k+1]) {
			return "", false
		}
		return n[len(n)-k+1:], true
	}
	if t, ok := tail(7, "-@"); ok && t == "latest" {
		return 7
	}
	if t, ok := tail(11, "-"); ok && len(t) == 10 && t[4] == '-' && t[7] == '-' && digits(t[:4]+t[5:7]+t[8:]) && validDate(t[:4], t[5:7], t[8:]) {
		return 11
	}
	if t, ok := tail(9, "-@"); ok && digits(t) && validDate(t[:4], t[4:6], t[6:]) {
		return 9
	}
	if t, ok := tail(8, "-"); ok && t[2] == '-' && digits(t[:2]+t[3:]) && validDate(t[3:], t[:2], "01") {
		return 8
	}
	if t, ok := tail(6, "-"); ok && t[2] == '-' && digits(t[:2]+t[3:]) && validDate("2000", t[:2], t[3:]) {
		return 6
	}
	if t, ok := tail(5, "-"); ok && digits(t) && validDate("2000", t[:2], t[2:]) {
		return 5
	}
	if t, ok := tail(4, "-"); ok && digits(t) {
		return 4
	}
	return 0
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// validDate reports whether year, month and day (all digits) name a real day of 2000-2099.
func validDate(year, month, day string) bool {
	if year[:2] != "20" {
		return false
	}
	t, err := time.Parse(time.DateOnly, year+"-"+month+"-"+day)
	return err == nil && t.Format("01-02") == month+"-"+day
}
