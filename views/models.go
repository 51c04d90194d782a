// Package views holds the dashboard's templ components. Components are pure functions of the view
// models defined here: handlers in app/web build the models, components render them, and HTMX
// partials are fragments of the same page components. Every user-supplied string is rendered
// through templ's escaping; nothing here uses templ.Raw.
//
// Run `go tool templ generate` after editing a .templ file; the generated *_templ.go is
// committed.
package views

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Layout is what every dashboard page shares: the signed-in user, the workspace switcher, the
// active nav entry, a flash message and the CSRF token forms and HTMX requests carry.
type Layout struct {
	Title string
	// Asset maps a logical asset name ("app.css") to its fingerprinted URL.
	Asset func(name string) string
	// CSRF is the session's anti-forgery token; empty when signed out.
	CSRF       string
	User       *User
	Workspaces []WorkspaceLink
	// Workspace is the current workspace (nil on pages outside one).
	Workspace *WorkspaceLink
	Nav       string // "projects", "usage", "analytics", "team", "audit", "settings", "quickstart"
	Flash     Flash
	// NoHistory keeps the page out of HTMX's history cache (the key page).
	NoHistory bool
	// Perm says which workspace sections the user may see.
	Perm Perm
}

// User is the signed-in user.
type User struct {
	ID    int64
	Name  string
	Email string
}

// WorkspaceLink is one entry of the workspace switcher.
type WorkspaceLink struct {
	ID   int64
	Name string
	Role string
}

// Perm is what the current user's role allows in the current workspace. Controls for anything
// false are not rendered at all.
type Perm struct {
	ManageProjects  bool
	Invite          bool
	ManageMembers   bool
	ViewAudit       bool
	RenameWorkspace bool
	DeleteWorkspace bool
	ManageBilling   bool
}

// Flash is a one-shot message shown after an action. Kind is "ok", "error" or "warn".
type Flash struct {
	Kind string
	Text string
}

// FieldErrors maps a form field name to its validation message.
type FieldErrors map[string]string

// WSPath is the URL of a page inside workspace id.
func WSPath(id int64, rest string) string {
	return "/w/" + strconv.FormatInt(id, 10) + rest
}

func (l Layout) ws(rest string) string {
	if l.Workspace == nil {
		return "/"
	}
	return WSPath(l.Workspace.ID, rest)
}

func hxHeaders(csrf string) string {
	b, _ := json.Marshal(map[string]string{"X-CSRF-Token": csrf})
	return string(b)
}

// htmxConfig turns off everything in HTMX that would need eval or inline styles under the CSP, and
// keeps page snapshots out of localStorage.
const htmxConfig = `{"allowEval":false,"allowScriptTags":false,"includeIndicatorStyles":false,"historyCacheSize":0,"refreshOnHistoryMiss":true,"selfRequestsOnly":true}`

// USD formats nano-dollars as dollars: cents for amounts of a cent or more, four decimals below
// that so small test traffic does not read as $0.00.
func USD(nano int64) string {
	neg := nano < 0
	if neg {
		nano = -nano
	}
	var s string
	switch {
	case nano == 0:
		s = "$0.00"
	case nano < 50_000: // would round to $0.0000 and read as free
		s = "<$0.0001"
	case nano < 10_000_000: // under one cent
		s = fmt.Sprintf("$0.%04d", (nano+50_000)/100_000) // rounded half up to 1/10,000 USD
	default:
		cents := (nano + 5_000_000) / 10_000_000
		s = "$" + groupThousands(cents/100) + fmt.Sprintf(".%02d", cents%100)
	}
	if neg {
		return "-" + s
	}
	return s
}

// USDInput formats a budget for an input field ("12.5"), "" for no limit.
func USDInput(nano *int64) string {
	if nano == nil {
		return ""
	}
	return strconv.FormatFloat(float64(*nano)/1e9, 'f', -1, 64)
}

func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	if pre > 0 {
		b.WriteString(s[:pre])
	}
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// Int formats a count with thousands separators.
func Int(n int64) string {
	if n < 0 {
		return "-" + groupThousands(-n)
	}
	return groupThousands(n)
}

// Bar is spend against a budget.
type Bar struct {
	Spend int64
	// Limit is nil when there is no budget.
	Limit *int64
}

// Percent is the spend as a share of the budget, capped at 100 for drawing.
func (b Bar) Percent() int {
	if b.Limit == nil {
		return 0
	}
	if *b.Limit <= 0 {
		return 100 // a zero budget is spent before the first request
	}
	p := int(b.Spend * 100 / *b.Limit)
	return min(max(p, 0), 100)
}

// Level is "ok" under 80%, "warn" from 80%, "over" at or past 100%, "nolimit" without a budget
// — the same thresholds at which the proxy falls back and blocks.
func (b Bar) Level() string {
	if b.Limit == nil {
		return "nolimit"
	}
	if b.Spend >= *b.Limit {
		return "over"
	}
	if b.Spend*5 >= *b.Limit*4 {
		return "warn"
	}
	return "ok"
}

// widthClass is the CSS class drawing the bar's width (the CSP forbids inline styles).
func (b Bar) widthClass() string {
	if b.Limit == nil {
		return "p0"
	}
	return "p" + strconv.Itoa(b.Percent())
}

// Ago renders a past time relative to now ("3 min ago"); zero is "never".
func Ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min ago"
	case d < 24*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " h ago"
	case d < 30*24*time.Hour:
		return strconv.Itoa(int(d/(24*time.Hour))) + " d ago"
	}
	return t.UTC().Format("2 Jan 2006")
}

// Stamp is a UTC timestamp for tables.
func Stamp(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
