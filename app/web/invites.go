package web

import (
	"net/http"
	"strings"

	"tokenguard/app/apperr"
	"tokenguard/views"
)

// invitePage shows an invite to anyone holding its link: signed out, it offers sign-up or
// sign-in with the email prefilled; signed in as the invitee, an Accept button (a POST).
// The page is no-store: its URL holds the token.
func (s *Server) invitePage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	w.Header().Set("Cache-Control", "no-store")
	tok := c.ps.ByName("token")
	v := views.InviteView{Token: tok, State: "invalid"}
	if s.opt.Invites != nil {
		iv, err := s.opt.Invites.Lookup(r.Context(), tok)
		switch {
		case err == nil:
			v = views.InviteView{Token: tok, Workspace: iv.WorkspaceName, InvitedBy: iv.InvitedBy, Email: iv.Email,
				Role: string(iv.Role), Expires: iv.ExpiresAt, State: iv.State}
		case apperr.Code(err) != apperr.NotFound && apperr.Code(err) != apperr.InvalidRequest:
			return err
		}
	}
	if c.sess != nil {
		v.SignedInAs = c.user.Email
		v.WrongUser = !strings.EqualFold(c.user.Email, v.Email)
	}
	l := s.layout(r, c, "Invitation", "")
	l.NoHistory = true
	status := http.StatusOK
	if v.State == "invalid" {
		status = http.StatusNotFound
	}
	return s.render(w, r, status, views.InvitePage(l, v))
}

func (s *Server) acceptInvite(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if s.opt.Invites == nil {
		return apperr.New(apperr.NotFound, "invite not found")
	}
	wsID, err := s.opt.Invites.Accept(r.Context(), c.actor(r), c.ps.ByName("token"))
	if err != nil {
		return err
	}
	c.workspaces = nil
	return s.done(w, r, views.WSPath(wsID, "/projects"), "Welcome! You joined the workspace.")
}

// inviteWorkspaceName names the workspace of the invite a sign-in page is continuing to, if any.
func (s *Server) inviteWorkspaceName(r *http.Request, next string) string {
	tok := inviteTokenFromNext(next)
	if tok == "" || s.opt.Invites == nil {
		return ""
	}
	iv, err := s.opt.Invites.Lookup(r.Context(), tok)
	if err != nil || iv.State != "pending" {
		return ""
	}
	return iv.WorkspaceName
}

func (s *Server) inviteEmailMatches(r *http.Request, tok, email string) bool {
	iv, err := s.opt.Invites.Lookup(r.Context(), tok)
	return err == nil && iv.State == "pending" && strings.EqualFold(strings.TrimSpace(email), iv.Email)
}
