// Package web is TokenGuard's dashboard: server-rendered pages (templ components in package views)
// with HTMX for partial updates, on top of the same service layers the JSON API uses.
//
// Security model: a signed session cookie of the dashboard's own (HttpOnly, SameSite=Lax, Secure
// and __Host- prefixed when FRONTEND_URL is https) that /api and the proxy never accept, and
// that the dashboard accepts as its only credential (never a token in a query string); every
// state-changing request passes Go's cross-origin protection AND carries the session's CSRF token
// (hidden form field, or the X-CSRF-Token header HTMX sends from hx-headers); GET never changes
// state; a strict Content-Security-Policy with no inline script and no eval; and every
// user-supplied string rendered through templ's escaping.
package web

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"tokenguard/app/account"
	"tokenguard/app/analytics"
	"tokenguard/app/api"
	"tokenguard/app/apperr"
	"tokenguard/app/budget"
	"tokenguard/app/pricing"
	"tokenguard/app/webhook"
	"tokenguard/static"
	"tokenguard/store"
)

// Options are the dashboard's dependencies, passed explicitly.
type Options struct {
	// FrontendURL is this server's public base URL (FRONTEND_URL): it decides Secure cookies
	// and is the base URL shown in snippets.
	FrontendURL string
	// JWTSecret keys the session cookie (under its own label, so nothing signed for the API
	// verifies here).
	JWTSecret   string
	AllowSignup bool

	Accounts *account.Service
	// Invites is the invite service; nil hides invites.
	Invites Invites
	Budget  *budget.Engine
	Prices  *pricing.Table
	DB      *store.DB
	Assets  *static.Assets
	// Analytics answers the analytics page's figures (the service /api/analytics uses); one
	// over DB and Accounts when nil.
	Analytics *analytics.Service
	// Webhooks manages the workspaces' budget webhooks; nil hides the settings section.
	Webhooks *webhook.Service
	// MailConfigured says whether invite mail is sent (else the page says to copy the link).
	MailConfigured bool
	// Refresh is how often the projects page re-renders its spend in place; 10s when zero.
	Refresh time.Duration

	Logger *slog.Logger
	Now    func() time.Time
}

// Server is the dashboard.
type Server struct {
	opt     Options
	base    string // FrontendURL without trailing slash
	cookies *cookies
	log     *slog.Logger
	now     func() time.Time
	cop     *http.CrossOriginProtection
	keys    *keyVault
}

// New returns the dashboard. Accounts, Budget, Prices, DB and Assets are required.
func New(o Options) (*Server, error) {
	if o.Accounts == nil || o.Budget == nil || o.Prices == nil || o.DB == nil || o.Assets == nil {
		return nil, errors.New("web: Accounts, Budget, Prices, DB and Assets are required")
	}
	if len(o.JWTSecret) < 16 {
		return nil, errors.New("web: JWT secret must be at least 16 bytes")
	}
	u, err := url.Parse(o.FrontendURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("web: FrontendURL must be an absolute http(s) URL")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Refresh <= 0 {
		o.Refresh = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Analytics == nil {
		o.Analytics = analytics.New(analytics.Options{Store: o.DB, Accounts: o.Accounts, Now: o.Now})
	}
	s := &Server{
		opt:     o,
		base:    strings.TrimRight(o.FrontendURL, "/"),
		cookies: newCookies(o.JWTSecret, u.Scheme == "https", o.Now),
		log:     o.Logger,
		now:     o.Now,
		cop:     http.NewCrossOriginProtection(),
		keys:    &keyVault{tickets: map[string]keyTicket{}, now: o.Now},
	}
	// A reverse proxy may present a different Host than the browser's Origin; the configured
	// public origin is always trusted.
	if err := s.cop.AddTrustedOrigin(u.Scheme + "://" + u.Host); err != nil {
		return nil, err
	}
	s.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.log.Warn("dashboard: cross-origin request refused", "method", r.Method, "path", api.RedactPath(r.URL.Path), "origin", r.Header.Get("Origin"))
		http.Error(w, "Forbidden: cross-origin request refused", http.StatusForbidden)
	}))
	return s, nil
}

// Register adds the dashboard's routes and its static assets to router. The dashboard owns "/",
// "/login", "/signup", "/logout", "/workspaces", "/invites/…", "/w/…" and "/static/…". It also
// answers every path no route matches: the styled 404 page, except under /api/ and /proxy/,
// whose clients read the contract's JSON NOT_FOUND error.
func (s *Server) Register(router *httprouter.Router) {
	for _, rt := range s.routes() {
		router.Handler(rt.method, rt.path, s.wrap(rt))
	}
	notFound := s.wrap(route{http.MethodGet, "", public, s.renderNotFound})
	// Assets are served without the dashboard's middleware (no session read, cacheable); only
	// an unknown name goes through it, to the 404 page.
	assets := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.opt.Assets.Has(r.URL.Path) {
			notFound.ServeHTTP(w, r)
			return
		}
		s.opt.Assets.ServeHTTP(w, r)
	})
	router.Handler(http.MethodGet, static.Prefix+"*file", assets)
	router.Handler(http.MethodHead, static.Prefix+"*file", assets)
	router.NotFound = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == "/api" || strings.HasPrefix(p, "/api/") || p == "/proxy" || strings.HasPrefix(p, "/proxy/") {
			apperr.WriteJSON(w, apperr.New(apperr.NotFound, "no such endpoint"))
			return
		}
		notFound.ServeHTTP(w, r)
	})
}

// Handler returns the dashboard alone on its own router (tests, or mounting under a mux).
func (s *Server) Handler() http.Handler {
	r := httprouter.New()
	s.Register(r)
	return r
}
