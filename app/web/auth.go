package web

import (
	"net/http"
	"net/url"
	"strings"

	"tokenguard/app/account"
	"tokenguard/app/apperr"
	"tokenguard/views"
)

func urlQuery(s string) string { return url.QueryEscape(s) }

// safeNext keeps a post-sign-in redirect on this site: only a local absolute path, never
// "//host" or a scheme.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return ""
	}
	if u, err := url.Parse(next); err != nil || u.Host != "" || u.Scheme != "" {
		return ""
	}
	return next
}

// home sends a signed-in user to their first workspace's projects, others to sign in.
func (s *Server) home(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if r.URL.Path != "/" {
		return apperr.New(apperr.NotFound, "page not found")
	}
	if c.sess == nil {
		s.redirect(w, r, "/login")
		return nil
	}
	wss, err := s.userWorkspaces(r.Context(), c)
	if err != nil {
		return err
	}
	if len(wss) == 0 {
		return s.render(w, r, http.StatusOK, views.NoWorkspacePage(s.layout(r, c, "No workspace", "")))
	}
	s.redirect(w, r, views.WSPath(wss[0].ID, "/projects"))
	return nil
}

func (s *Server) authForm(r *http.Request, signup bool) views.AuthForm {
	q := r.URL.Query()
	return views.AuthForm{Signup: signup, AllowSignup: s.opt.AllowSignup, Email: q.Get("email"), Next: safeNext(q.Get("next"))}
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if c.sess != nil {
		s.redirect(w, r, firstNonEmpty(safeNext(r.URL.Query().Get("next")), "/"))
		return nil
	}
	f := s.authForm(r, false)
	f.Invite = s.inviteWorkspaceName(r, f.Next)
	return s.render(w, r, http.StatusOK, views.AuthPage(s.layout(r, c, "Sign in", ""), f))
}

func (s *Server) signupPage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if c.sess != nil {
		s.redirect(w, r, firstNonEmpty(safeNext(r.URL.Query().Get("next")), "/"))
		return nil
	}
	f := s.authForm(r, true)
	f.Invite = s.inviteWorkspaceName(r, f.Next)
	if !s.opt.AllowSignup && f.Invite == "" {
		return s.render(w, r, http.StatusForbidden, views.ErrorPage(s.layout(r, c, "Sign-up closed", ""), "Sign-up is closed",
			"This server does not allow self-signup. Ask a workspace owner for an invite."))
	}
	return s.render(w, r, http.StatusOK, views.AuthPage(s.layout(r, c, "Create account", ""), f))
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	f := views.AuthForm{AllowSignup: s.opt.AllowSignup, Email: strings.TrimSpace(r.PostFormValue("email")), Next: safeNext(r.PostFormValue("next"))}
	sess, err := s.opt.Accounts.Login(r.Context(), f.Email, r.PostFormValue("password"), clientIP(r))
	if err != nil {
		if apperr.Code(err) == apperr.Internal {
			return err
		}
		f.Error = apperr.Message(err)
		f.Invite = s.inviteWorkspaceName(r, f.Next)
		return s.render(w, r, apperr.Status(err), views.AuthPage(s.layout(r, c, "Sign in", ""), f))
	}
	if err := s.startSession(w, r, sess.User.ID); err != nil {
		return err
	}
	s.redirect(w, r, firstNonEmpty(f.Next, "/"))
	return nil
}

func (s *Server) signup(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	f := views.AuthForm{Signup: true, AllowSignup: s.opt.AllowSignup, Name: strings.TrimSpace(r.PostFormValue("name")),
		Email: strings.TrimSpace(r.PostFormValue("email")), Next: safeNext(r.PostFormValue("next"))}
	in := account.SignupInput{Email: f.Email, Password: r.PostFormValue("password"), Name: f.Name}
	var (
		sess account.Session
		err  error
	)
	// Someone following an invite link may create an account even when self-signup is closed,
	// but only with the invited email.
	if tok := inviteTokenFromNext(f.Next); tok != "" && s.opt.Invites != nil && s.inviteEmailMatches(r, tok, f.Email) {
		sess, err = s.opt.Accounts.SignupInvited(r.Context(), in, clientIP(r))
	} else {
		sess, err = s.opt.Accounts.Signup(r.Context(), in, clientIP(r))
	}
	if err != nil {
		if apperr.Code(err) == apperr.Internal {
			return err
		}
		f.Errors = signupFieldErrors(err)
		if len(f.Errors) == 0 {
			f.Error = apperr.Message(err)
		}
		f.Invite = s.inviteWorkspaceName(r, f.Next)
		return s.render(w, r, apperr.Status(err), views.AuthPage(s.layout(r, c, "Create account", ""), f))
	}
	if err := s.startSession(w, r, sess.User.ID); err != nil {
		return err
	}
	if f.Next != "" {
		s.redirect(w, r, f.Next)
		return nil
	}
	s.cookies.setFlash(w, "ok", "Welcome to TokenGuard. Create your first project to get a key.")
	s.redirect(w, r, views.WSPath(sess.Workspace.ID, "/projects"))
	return nil
}

// signupFieldErrors places the service's validation message next to the field it names.
func signupFieldErrors(err error) views.FieldErrors {
	if apperr.Code(err) == apperr.Conflict {
		return views.FieldErrors{"email": apperr.Message(err)}
	}
	if apperr.Code(err) != apperr.InvalidRequest {
		return nil
	}
	msg := apperr.Message(err)
	low := strings.ToLower(msg)
	for _, f := range []string{"password", "email", "name"} {
		if strings.Contains(low, f) {
			return views.FieldErrors{f: msg}
		}
	}
	return nil
}

// startSession issues the dashboard cookie for a user who just proved who they are.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, userID int64) error {
	u, err := s.opt.DB.UserByID(r.Context(), userID)
	if err != nil {
		return err
	}
	sess, err := s.cookies.newSession(u.ID, u.SessionEpoch)
	if err != nil {
		return err
	}
	return s.cookies.setSession(w, sess)
}

// logout ends the session on the server as well as in the browser: its id goes on the denylist
// until every cookie carrying it would have expired (a renewed cookie lives at most sessionTTL
// from now), so a copy of the cookie taken before signing out opens nothing afterwards.
func (s *Server) logout(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	now := s.now()
	if err := s.opt.DB.RevokeSession(r.Context(), c.sess.ID[:], now.Add(sessionTTL), now); err != nil {
		return err
	}
	s.cookies.clearSession(w)
	s.cookies.setFlash(w, "ok", "You are signed out.")
	s.redirect(w, r, "/login")
	return nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func inviteTokenFromNext(next string) string {
	rest, ok := strings.CutPrefix(next, "/invites/")
	if !ok || rest == "" || strings.ContainsAny(rest, "/?#") {
		return ""
	}
	return rest
}
