// Package account is TokenGuard's team and project management: users and sign-in, sessions,
// workspaces, members and roles, projects and their keys, provider keys, and the audit log.
//
// It is the one service layer under both the JSON API (app/api) and the dashboard: every
// method that acts on a workspace takes the acting user (an Actor), reads their membership from
// the database on that call, and checks the role matrix (Can) itself, so no surface can forget a
// check and a role change takes effect on the member's very next request. Errors are
// *apperr.Error values with contract codes; anything else is internal. A user who is not a
// member of a workspace gets NOT_FOUND for it and everything in it, never FORBIDDEN, so ids of
// other workspaces cannot be probed.
package account

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/crypto/bcrypt"

	"tokenguard/app/apperr"
	"tokenguard/app/pricing"
	"tokenguard/app/secret"
	"tokenguard/store"
)

// KeyCache is the proxy's verified-key cache. The service evicts from it after every change
// that alters what a key may do (regenerate, deactivate, activate, delete, budgets and budget
// modes, fallback, provider keys, workspace budgets and budget mode, workspace delete), so the next proxied request re-reads the
// project from the database.
type KeyCache interface {
	EvictProject(projectID int64)
	EvictWorkspace(workspaceID int64)
}

// Options configures a Service. JWTSecret and Box are required.
type Options struct {
	// JWTSecret signs sessions (HS256).
	JWTSecret []byte
	// Box seals provider keys at rest.
	Box *secret.Box
	// Keys is the proxy's key cache; nil when no proxy runs (tests of this package, tools).
	Keys KeyCache
	// AllowSignup opens self-signup (ALLOW_SIGNUP). When false, only SignupInvited creates
	// accounts.
	AllowSignup bool
	// SessionTTL is how long a session token is valid; DefaultSessionTTL when zero.
	SessionTTL time.Duration
	// PasswordCost is the bcrypt cost of password hashes; bcrypt.DefaultCost when zero. Tests
	// lower it to keep suites fast.
	PasswordCost int
	// Throttle limits failed sign-ins; DefaultThrottle when zero.
	Throttle ThrottleLimits
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives warnings; slog.Default() when nil. Nothing secret is ever logged.
	Logger *slog.Logger
}

// DefaultSessionTTL is the lifetime of a session token: short, so a leaked token is worth
// little; password changes revoke sooner.
const DefaultSessionTTL = 12 * time.Hour

// Service is the account and project service. It is safe for concurrent use.
type Service struct {
	db          *store.DB
	secret      []byte
	box         *secret.Box
	keys        KeyCache
	allowSignup bool
	ttl         time.Duration
	cost        int
	now         func() time.Time
	log         *slog.Logger
	throttle    *throttle
	// dummyHash is compared against when an email is unknown, so an unknown email costs the
	// same bcrypt work as a wrong password and the two cannot be told apart by timing.
	dummyHash []byte
}

// New returns a Service over db.
func New(db *store.DB, o Options) (*Service, error) {
	if db == nil {
		return nil, errors.New("account: nil database")
	}
	if len(o.JWTSecret) < 16 {
		return nil, errors.New("account: JWT secret must be at least 16 bytes")
	}
	if o.Box == nil {
		return nil, errors.New("account: nil secret box")
	}
	s := &Service{
		db: db, secret: o.JWTSecret, box: o.Box, keys: o.Keys, allowSignup: o.AllowSignup,
		ttl: o.SessionTTL, cost: o.PasswordCost, now: o.Now, log: o.Logger,
	}
	if s.ttl <= 0 {
		s.ttl = DefaultSessionTTL
	}
	if s.cost == 0 {
		s.cost = bcrypt.DefaultCost
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.throttle = newThrottle(o.Throttle, s.now)
	h, err := bcrypt.GenerateFromPassword([]byte("tokenguard-dummy-password"), s.cost)
	if err != nil {
		return nil, fmt.Errorf("account: dummy hash: %w", err)
	}
	s.dummyHash = h
	return s, nil
}

// Actor is who performs an action: a signed-in user and the client IP recorded in the audit
// log.
type Actor struct {
	UserID int64
	IP     string
}

// User is an account. The password hash never leaves the service.
type User struct {
	ID        int64
	Email     string
	Name      string
	CreatedAt time.Time
}

// Workspace is a workspace as seen by one member: Role is that member's role.
type Workspace struct {
	ID   int64
	Name string
	Role Role
	// Budgets over all the workspace's projects; nil means no limit.
	DailyBudget   *pricing.NanoUSD
	MonthlyBudget *pricing.NanoUSD
	BudgetMode    BudgetMode
	Plan          string
	CreatedAt     time.Time
	// RPMLimit and TPMLimit are requests and tokens per minute over all its projects; 0 is no
	// limit.
	RPMLimit, TPMLimit int64
}

// Member is one member of a workspace.
type Member struct {
	UserID   int64
	Email    string
	Name     string
	Role     Role
	JoinedAt time.Time
}

// Project is a project as the API and dashboard show it: never its key, only the key's lookup
// prefix, and only masked provider keys.
type Project struct {
	ID            int64
	WorkspaceID   int64
	Name          string
	DailyBudget   *pricing.NanoUSD
	MonthlyBudget *pricing.NanoUSD
	BudgetMode    BudgetMode
	FallbackModel string
	AlertEmail    string
	KeyPrefix     string
	Active        bool
	LastUsedAt    *time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// ProviderKeys maps a provider ("openai", "anthropic", "gemini") to its masked key
	// ("sk-…abcd"); providers without a stored key are absent.
	ProviderKeys map[string]string
	Controls
}

// Providers are the upstreams a project can hold a key for.
var Providers = []string{"openai", "anthropic", "gemini"}

func userFrom(u store.User) User {
	return User{ID: u.ID, Email: u.Email, Name: u.Name, CreatedAt: time.UnixMilli(u.CreatedAt).UTC()}
}

func workspaceFrom(w store.WorkspaceRole) Workspace {
	return Workspace{
		ID: w.ID, Name: w.Name, Role: Role(w.Role),
		DailyBudget: nanoPtr(w.DailyBudgetNano), MonthlyBudget: nanoPtr(w.MonthlyBudgetNano),
		BudgetMode: BudgetMode(w.BudgetMode), Plan: w.Plan, CreatedAt: time.UnixMilli(w.CreatedAt).UTC(),
		RPMLimit: w.RPMLimit, TPMLimit: w.TPMLimit,
	}
}

func projectFrom(p store.Project, masks map[string]string) Project {
	out := Project{
		ID: p.ID, WorkspaceID: p.WorkspaceID, Name: p.Name,
		DailyBudget: nanoPtr(p.DailyBudgetNano), MonthlyBudget: nanoPtr(p.MonthlyBudgetNano),
		BudgetMode: BudgetMode(p.BudgetMode), FallbackModel: p.FallbackModel, AlertEmail: p.AlertEmail, KeyPrefix: p.KeyPrefix,
		Active: p.Active, CreatedAt: time.UnixMilli(p.CreatedAt).UTC(), UpdatedAt: time.UnixMilli(p.UpdatedAt).UTC(),
		ProviderKeys: map[string]string{}, Controls: controlsFrom(p.Controls),
	}
	if p.LastUsedAt != nil {
		t := time.UnixMilli(*p.LastUsedAt).UTC()
		out.LastUsedAt = &t
	}
	for k, v := range masks {
		out.ProviderKeys[k] = v
	}
	return out
}

func nanoPtr(v *int64) *pricing.NanoUSD {
	if v == nil {
		return nil
	}
	n := pricing.NanoUSD(*v)
	return &n
}

func int64Ptr(v *pricing.NanoUSD) *int64 {
	if v == nil {
		return nil
	}
	n := int64(*v)
	return &n
}

// notFound is the one answer for "does not exist" and "not yours".
func notFound(what string) error { return apperr.New(apperr.NotFound, "%s not found", what) }

// evictProject and evictWorkspace run after a commit: evicting before it would let a request
// re-cache the old state in between.
func (s *Service) evictProject(id int64) {
	if s.keys != nil {
		s.keys.EvictProject(id)
	}
}

func (s *Service) evictWorkspace(id int64) {
	if s.keys != nil {
		s.keys.EvictWorkspace(id)
	}
}

func (s *Service) nowMs() int64 { return s.now().UnixMilli() }
