// Package api is TokenGuard's JSON management API (DESIGN §5): thin HTTP handlers over the
// account service. Every route is listed in routes.go; handlers decode strictly, call one
// service method and encode the result. Authorization happens in the service, so the dashboard
// gets exactly the same checks; the API only resolves who is calling (a Bearer JWT, never a
// cookie) and in which workspace.
package api

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/julienschmidt/httprouter"

	"tokenguard/app/account"
	"tokenguard/app/analytics"
	"tokenguard/app/apperr"
	"tokenguard/store"
)

// UsageStore is the usage query GET /api/usage pages through (*store.DB implements it).
type UsageStore interface {
	ListUsage(ctx context.Context, f store.UsageFilter) ([]store.UsageRow, string, error)
	// Retained says from when on raw usage rows are kept (USAGE_RETENTION).
	Retained(ctx context.Context) (store.Retained, error)
}

// Deps are the API's dependencies. Accounts is required.
type Deps struct {
	Accounts *account.Service
	// Usage backs GET /api/usage; the route answers 404 when nil.
	Usage UsageStore
	// Analytics backs /api/analytics/*; those routes answer 404 when nil.
	Analytics *analytics.Service
	// Logger receives internal errors (never secrets); slog.Default() when nil.
	Logger *slog.Logger
	// CORSOrigin is the one origin allowed to call /api from a browser (CORS_ORIGIN); empty
	// means same-origin only (no CORS headers at all).
	CORSOrigin string
	// MaxBodyBytes bounds a request body; DefaultMaxBodyBytes when zero.
	MaxBodyBytes int64
}

// DefaultMaxBodyBytes bounds management request bodies: they are small JSON objects.
const DefaultMaxBodyBytes = 64 << 10

// API serves /api/*. Create it with New and add its routes with Register.
type API struct {
	acct      *account.Service
	usage     UsageStore
	analytics *analytics.Service
	log       *slog.Logger
	origin    string
	maxBody   int64
}

// New returns an API over its dependencies.
func New(d Deps) *API {
	a := &API{acct: d.Accounts, usage: d.Usage, analytics: d.Analytics, log: d.Logger, origin: d.CORSOrigin, maxBody: d.MaxBodyBytes}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.maxBody <= 0 {
		a.maxBody = DefaultMaxBodyBytes
	}
	return a
}

// Caller is the signed-in user of a request. Actor carries the client IP for the audit log.
type Caller struct {
	User  account.User
	Actor account.Actor
}

// HandlerFunc is an API handler: it writes a success response itself and returns errors for the
// API to render in the contract's shape.
type HandlerFunc func(w http.ResponseWriter, r *http.Request, p httprouter.Params) error

// AuthedFunc is an API handler for a signed-in caller.
type AuthedFunc func(w http.ResponseWriter, r *http.Request, p httprouter.Params, c Caller) error

// Public adapts h to httprouter: CORS headers, error rendering. Other packages (invites) use it
// to add routes that behave like this package's.
func (a *API) Public(h HandlerFunc) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
		a.cors(w, r)
		w.Header().Set("Cache-Control", "no-store")
		if err := h(w, r, p); err != nil {
			a.fail(w, r, err)
		}
	}
}

// Authed is Public for handlers that need a signed-in user: it accepts only
// "Authorization: Bearer <JWT>" (never a cookie, so a browser cannot be tricked into sending
// it) and answers 401 UNAUTHORIZED otherwise.
func (a *API) Authed(h AuthedFunc) httprouter.Handle {
	return a.Public(func(w http.ResponseWriter, r *http.Request, p httprouter.Params) error {
		tok, ok := bearer(r)
		if !ok {
			return apperr.New(apperr.Unauthorized, "Sign in: send Authorization: Bearer <token>")
		}
		u, err := a.acct.Authenticate(r.Context(), tok)
		if err != nil {
			return err
		}
		return h(w, r, p, Caller{User: u, Actor: account.Actor{UserID: u.ID, IP: ClientIP(r)}})
	})
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	return strings.TrimSpace(h[len(scheme):]), true
}

// ClientIP is the address of the connection's peer. Forwarding headers are not trusted: they
// are set by whoever sends the request.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// fail renders err; internal errors are logged with the route (never the body) and reach the
// client as a generic INTERNAL.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	if apperr.Code(err) == apperr.Internal {
		a.log.Error("api request failed", "method", r.Method, "path", RedactPath(r.URL.Path), "err", err)
	}
	apperr.WriteJSON(w, err)
}

// RedactPath returns path with an invite token replaced by "REDACTED", for request logs:
// /api/invites/<token>[/accept|/signup] and the dashboard's /invites/<token>.
func RedactPath(path string) string {
	for _, prefix := range []string{"/api/invites/", "/invites/"} {
		if rest, ok := strings.CutPrefix(path, prefix); ok && rest != "" {
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				return prefix + "REDACTED" + rest[i:]
			}
			return prefix + "REDACTED"
		}
	}
	return path
}

// cors allows the configured origin only; without one, browsers fall back to same-origin.
func (a *API) cors(w http.ResponseWriter, r *http.Request) {
	if a.origin == "" {
		return
	}
	w.Header().Add("Vary", "Origin")
	if r.Header.Get("Origin") != a.origin {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", a.origin)
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Workspace-Id")
	h.Set("Access-Control-Max-Age", "600")
}

// preflight answers a CORS preflight for a route.
func (a *API) preflight(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	a.cors(w, r)
	w.WriteHeader(http.StatusNoContent)
}

// workspace resolves the workspace a request acts on: the X-Workspace-Id header, else the
// workspaceId query parameter, else the caller's first workspace. Membership is checked by the
// service call that follows (NOT_FOUND for outsiders).
func (a *API) workspace(r *http.Request, c Caller) (int64, error) {
	raw := r.Header.Get("X-Workspace-Id")
	if raw == "" {
		raw = r.URL.Query().Get("workspaceId")
	}
	if raw == "" {
		ws, err := a.acct.DefaultWorkspace(r.Context(), c.User.ID)
		if err != nil {
			return 0, err
		}
		return ws.ID, nil
	}
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return 0, apperr.New(apperr.InvalidRequest, "X-Workspace-Id must be a workspace id")
	}
	return id, nil
}

// pathID parses a numeric path parameter; a malformed id is NOT_FOUND like an unknown one.
func pathID(p httprouter.Params, name, what string) (int64, error) {
	id, err := strconv.ParseInt(p.ByName(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, apperr.New(apperr.NotFound, "%s not found", what)
	}
	return id, nil
}
