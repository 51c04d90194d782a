package web

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"

	"github.com/a-h/templ"
	"github.com/julienschmidt/httprouter"

	"tokenguard/app/account"
	"tokenguard/app/api"
	"tokenguard/app/apperr"
	"tokenguard/store"
	"tokenguard/views"
)

// access is what a route requires.
type access int

const (
	public    access = iota // anyone; the session is loaded when present
	signedIn                // a valid session
	workspace               // a valid session and membership of the :wid workspace
)

type route struct {
	method string
	path   string
	access access
	h      handlerFunc
}

// handlerFunc handles one dashboard request; a returned error is rendered as an error page.
type handlerFunc func(w http.ResponseWriter, r *http.Request, c *reqCtx) error

// reqCtx is what the middleware learned about a request.
type reqCtx struct {
	ps   httprouter.Params
	sess *session
	user account.User
	// ws is the current workspace (workspace routes), with the user's role in it.
	ws         account.Workspace
	workspaces []account.Workspace
	csrf       string
	flash      views.Flash
	// renew asks for the session cookie to be re-issued if it is past half its life.
	renew bool
}

func (c *reqCtx) actor(r *http.Request) account.Actor {
	return account.Actor{UserID: c.user.ID, IP: clientIP(r)}
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// csp allows only this origin's scripts and styles: no inline script, no eval, no inline style
// attributes, no framing.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func (s *Server) securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	if s.cookies.secure {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	// Pages show spend and team data: never stored by shared caches; revalidated by browsers.
	h.Set("Cache-Control", "private, no-cache")
	h.Add("Vary", "Cookie")
}

// wrap applies, in order: security headers, cross-origin protection for unsafe methods, session
// loading, the route's access check, the CSRF token check for unsafe methods, then the handler.
func (s *Server) wrap(rt route) http.Handler {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.securityHeaders(w)
		c := &reqCtx{ps: httprouter.ParamsFromContext(r.Context())}
		unsafe := r.Method != http.MethodGet && r.Method != http.MethodHead
		if unsafe {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		}
		if err := s.loadSession(r, c); err != nil {
			s.fail(w, r, c, err)
			return
		}
		if c.sess == nil && rt.access != public {
			// A form posted after the session ended cannot be replayed after sign-in (it would
			// need a new CSRF token): send the user to sign in, then back to where they were.
			var next string
			switch {
			case isHTMX(r):
				if u, err := url.Parse(r.Header.Get("HX-Current-URL")); err == nil {
					next = u.RequestURI()
				}
			case !unsafe:
				next = r.URL.RequestURI()
			}
			s.cookies.clearSession(w)
			s.cookies.setFlash(w, "warn", "Please sign in to continue.")
			to := "/login"
			if next = safeNext(next); next != "" {
				to += "?next=" + urlQuery(next)
			}
			s.redirect(w, r, to)
			return
		}
		// Every unsafe request of a signed-in browser must carry the session's token, in
		// addition to passing the Origin/Sec-Fetch-Site check.
		if unsafe && c.sess != nil && !s.cookies.checkCSRF(r, *c.sess) {
			s.log.Warn("dashboard: request without a valid CSRF token refused", "path", api.RedactPath(r.URL.Path))
			s.renderError(w, r, c, http.StatusForbidden, "Request refused", "This form has expired or did not come from this site. Reload the page and try again.")
			return
		}
		if c.renew && rt.path != "/logout" {
			s.cookies.renew(w, *c.sess)
		}
		if rt.access == workspace {
			if err := s.loadWorkspace(r, c); err != nil {
				s.fail(w, r, c, err)
				return
			}
		}
		if !unsafe && !isHTMX(r) {
			if kind, text := s.cookies.takeFlash(w, r); text != "" {
				c.flash = views.Flash{Kind: kind, Text: text}
			}
		}
		if err := rt.h(w, r, c); err != nil {
			s.fail(w, r, c, err)
		}
	})
	return s.cop.Handler(h)
}

// loadSession reads the session cookie and checks it against the user's current session epoch
// (a password change ends every session) and the denylist of signed-out sessions. An invalid
// cookie is cleared, not an error.
func (s *Server) loadSession(r *http.Request, c *reqCtx) error {
	sess, err := s.cookies.readSession(r)
	if err != nil {
		return nil
	}
	if revoked, err := s.opt.DB.SessionRevoked(r.Context(), sess.ID[:]); err != nil || revoked {
		return err
	}
	u, err := s.opt.DB.UserByID(r.Context(), sess.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if u.SessionEpoch != sess.Epoch {
		return nil
	}
	c.sess = &sess
	c.user = account.User{ID: u.ID, Email: u.Email, Name: u.Name}
	c.renew = true
	c.csrf = s.cookies.csrfToken(sess)
	return nil
}

// loadWorkspace resolves :wid to a workspace the user belongs to; anything else is NOT_FOUND.
func (s *Server) loadWorkspace(r *http.Request, c *reqCtx) error {
	id, err := strconv.ParseInt(c.ps.ByName("wid"), 10, 64)
	if err != nil || id <= 0 {
		return apperr.New(apperr.NotFound, "workspace not found")
	}
	ws, err := s.opt.Accounts.Authorize(r.Context(), c.actor(r), id, account.ViewWorkspace)
	if err != nil {
		return err
	}
	c.ws = ws
	return nil
}

func (s *Server) userWorkspaces(ctx context.Context, c *reqCtx) ([]account.Workspace, error) {
	if c.workspaces != nil || c.sess == nil {
		return c.workspaces, nil
	}
	ws, err := s.opt.Accounts.Workspaces(ctx, c.user.ID)
	if err != nil {
		return nil, err
	}
	c.workspaces = ws
	return ws, nil
}

// layout builds the shared page frame.
func (s *Server) layout(r *http.Request, c *reqCtx, title, nav string) views.Layout {
	l := views.Layout{Title: title, Asset: s.opt.Assets.URL, CSRF: c.csrf, Nav: nav, Flash: c.flash}
	if c.sess == nil {
		return l
	}
	l.User = &views.User{ID: c.user.ID, Name: c.user.Name, Email: c.user.Email}
	wss, err := s.userWorkspaces(r.Context(), c)
	if err != nil {
		s.log.Error("dashboard: list workspaces", "err", err)
	}
	for _, w := range wss {
		l.Workspaces = append(l.Workspaces, views.WorkspaceLink{ID: w.ID, Name: w.Name, Role: string(w.Role)})
	}
	if c.ws.ID != 0 {
		l.Workspace = &views.WorkspaceLink{ID: c.ws.ID, Name: c.ws.Name, Role: string(c.ws.Role)}
		role := c.ws.Role
		l.Perm = views.Perm{
			ManageProjects:  account.Can(role, account.ManageProjects),
			Invite:          account.Can(role, account.ManageInvites),
			ManageMembers:   account.Can(role, account.ManageMembers),
			ViewAudit:       account.Can(role, account.ViewAudit),
			RenameWorkspace: account.Can(role, account.UpdateWorkspace),
			DeleteWorkspace: account.Can(role, account.DeleteWorkspace),
			ManageBilling:   account.Can(role, account.ManageBilling),
		}
	}
	return l
}

func isHTMX(r *http.Request) bool { return r.Header.Get("HX-Request") == "true" }

// render writes a component with status.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, comp templ.Component) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := comp.Render(r.Context(), w); err != nil {
		s.log.Error("dashboard: render", "path", api.RedactPath(r.URL.Path), "err", err)
	}
	return nil
}

// redirect answers a full-page request with 303 and an HTMX request with HX-Redirect.
func (s *Server) redirect(w http.ResponseWriter, r *http.Request, to string) {
	if isHTMX(r) {
		w.Header().Set("HX-Redirect", to)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// done redirects after a successful action with a flash message (POST-redirect-GET).
func (s *Server) done(w http.ResponseWriter, r *http.Request, to, msg string) error {
	s.cookies.setFlash(w, "ok", msg)
	s.redirect(w, r, to)
	return nil
}

// fail renders an error from a handler or the middleware as a page with its status.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, c *reqCtx, err error) {
	code := apperr.Code(err)
	switch code {
	case apperr.Internal:
		s.log.Error("dashboard: request failed", "method", r.Method, "path", api.RedactPath(r.URL.Path), "err", err)
		s.renderError(w, r, c, http.StatusInternalServerError, "Something went wrong", "The error was logged. Try again in a moment.")
	case apperr.NotFound:
		s.renderNotFound(w, r, c)
	case apperr.Unauthorized:
		s.redirect(w, r, "/login")
	default:
		s.renderError(w, r, c, apperr.Status(err), "That did not work", apperr.Message(err))
	}
}

// renderNotFound renders the 404 page naming the request's path (bounded, invite tokens
// redacted).
func (s *Server) renderNotFound(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p := api.RedactPath(r.URL.Path)
	if len(p) > 200 {
		p = p[:200] + "…"
	}
	return s.render(w, r, http.StatusNotFound, views.NotFoundPage(s.layout(r, c, "Page not found", ""), p))
}

func (s *Server) renderError(w http.ResponseWriter, r *http.Request, c *reqCtx, status int, heading, msg string) {
	s.render(w, r, status, views.ErrorPage(s.layout(r, c, heading, ""), heading, msg))
}
