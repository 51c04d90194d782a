package web

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"tokenguard/app/account"
	"tokenguard/app/apperr"
	"tokenguard/views"
)

// Invites is the invite service the team and invite-accept pages use. Its methods check the
// actor's role themselves (as account.Service does); the dashboard only decides what to show.
type Invites interface {
	// Create invites email with role and returns the accept URL (mailed when SMTP is set).
	Create(ctx context.Context, actor account.Actor, workspaceID int64, email string, role account.Role) (acceptURL string, err error)
	// Pending lists the workspace's invites not yet accepted or cancelled.
	Pending(ctx context.Context, actor account.Actor, workspaceID int64) ([]Invite, error)
	// Resend renews an invite (a new token, a new 7 days), mails it and returns the invitee's
	// email and the new accept URL.
	Resend(ctx context.Context, actor account.Actor, workspaceID, inviteID int64) (email, acceptURL string, err error)
	Cancel(ctx context.Context, actor account.Actor, workspaceID, inviteID int64) error
	// Lookup describes the invite a token belongs to, whatever its state; NOT_FOUND for an
	// unknown token.
	Lookup(ctx context.Context, token string) (Invite, error)
	// Accept adds the actor to the invite's workspace and returns its id.
	Accept(ctx context.Context, actor account.Actor, token string) (workspaceID int64, err error)
}

// Invite is an invite as the dashboard shows it.
type Invite struct {
	ID            int64
	WorkspaceID   int64
	WorkspaceName string
	Email         string
	Role          account.Role
	InvitedBy     string
	ExpiresAt     time.Time
	// State is "pending", "expired", "cancelled" or "used".
	State string
}

func roleChoices(actor account.Role) []string {
	switch actor {
	case account.RoleOwner:
		return []string{"owner", "admin", "member"}
	case account.RoleAdmin:
		return []string{"admin", "member"}
	}
	return nil
}

func inviteRoles(actor account.Role) []string {
	if !account.Can(actor, account.ManageInvites) {
		return nil
	}
	return []string{"member", "admin"}
}

func (s *Server) teamView(r *http.Request, c *reqCtx) (views.Team, error) {
	ms, err := s.opt.Accounts.Members(r.Context(), c.actor(r), c.ws.ID)
	if err != nil {
		return views.Team{}, err
	}
	role := c.ws.Role
	t := views.Team{Now: s.now(), MailConfigured: s.opt.MailConfigured, InviteRole: "member"}
	for _, m := range ms {
		you := m.UserID == c.user.ID
		// The role matrix: owners act on anyone, admins on non-owners, members on nobody.
		mayAct := !you && account.Can(role, account.ManageMembers) && (role == account.RoleOwner || m.Role != account.RoleOwner)
		t.Members = append(t.Members, views.MemberRow{
			UserID: m.UserID, Name: firstNonEmpty(m.Name, m.Email), Email: m.Email, Role: string(m.Role), Joined: m.JoinedAt, You: you,
			CanChange: mayAct, CanRemove: mayAct, RoleChoice: roleChoices(role),
		})
	}
	if s.opt.Invites != nil && account.Can(role, account.ManageInvites) {
		t.InviteRoles = inviteRoles(role)
		invs, err := s.opt.Invites.Pending(r.Context(), c.actor(r), c.ws.ID)
		if err != nil {
			return views.Team{}, err
		}
		now := s.now()
		for _, iv := range invs {
			t.Invites = append(t.Invites, views.InviteRow{ID: iv.ID, Email: iv.Email, Role: string(iv.Role), InvitedBy: iv.InvitedBy,
				Expires: iv.ExpiresAt, Expired: !now.Before(iv.ExpiresAt)})
		}
	}
	return t, nil
}

func (s *Server) teamPage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	t, err := s.teamView(r, c)
	if err != nil {
		return err
	}
	return s.render(w, r, http.StatusOK, views.TeamPage(s.layout(r, c, "Team", "team"), t))
}

func (s *Server) createInvite(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if s.opt.Invites == nil {
		return apperr.New(apperr.NotFound, "invites are not available")
	}
	email := strings.TrimSpace(r.PostFormValue("email"))
	role := account.Role(r.PostFormValue("role"))
	link, err := s.opt.Invites.Create(r.Context(), c.actor(r), c.ws.ID, email, role)
	if err != nil {
		if apperr.Code(err) != apperr.InvalidRequest && apperr.Code(err) != apperr.Conflict {
			return err
		}
		t, terr := s.teamView(r, c)
		if terr != nil {
			return terr
		}
		t.InviteEmail, t.InviteRole = email, string(role)
		t.Errors = views.FieldErrors{"email": apperr.Message(err)}
		return s.render(w, r, apperr.Status(err), views.TeamPage(s.layout(r, c, "Team", "team"), t))
	}
	return s.showInviteLink(w, r, c, email, link, "Invite sent to "+email+".")
}

// showInviteLink renders the team page with the accept link to copy (not a redirect: the link
// holds the token, which must not travel in a URL or a cookie). no-store keeps it out of caches.
func (s *Server) showInviteLink(w http.ResponseWriter, r *http.Request, c *reqCtx, email, link, msg string) error {
	t, err := s.teamView(r, c)
	if err != nil {
		return err
	}
	t.InviteLink, t.InviteLinkEmail = link, email
	l := s.layout(r, c, "Team", "team")
	l.Flash = views.Flash{Kind: "ok", Text: msg}
	l.NoHistory = true
	w.Header().Set("Cache-Control", "no-store")
	return s.render(w, r, http.StatusOK, views.TeamPage(l, t))
}

func (s *Server) resendInvite(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if s.opt.Invites == nil {
		return apperr.New(apperr.NotFound, "invites are not available")
	}
	id, err := idParam(c, "iid")
	if err != nil {
		return err
	}
	email, link, err := s.opt.Invites.Resend(r.Context(), c.actor(r), c.ws.ID, id)
	if err != nil {
		return err
	}
	return s.showInviteLink(w, r, c, email, link, "Invite to "+email+" renewed for 7 days.")
}

func (s *Server) cancelInvite(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if s.opt.Invites == nil {
		return apperr.New(apperr.NotFound, "invites are not available")
	}
	id, err := idParam(c, "iid")
	if err != nil {
		return err
	}
	if err := s.opt.Invites.Cancel(r.Context(), c.actor(r), c.ws.ID, id); err != nil {
		return err
	}
	return s.done(w, r, views.WSPath(c.ws.ID, "/team"), "Invite cancelled.")
}

func (s *Server) changeRole(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	uid, err := idParam(c, "uid")
	if err != nil {
		return err
	}
	m, err := s.opt.Accounts.ChangeRole(r.Context(), c.actor(r), c.ws.ID, uid, account.Role(r.PostFormValue("role")))
	if err != nil {
		return err
	}
	return s.done(w, r, views.WSPath(c.ws.ID, "/team"), m.Email+" is now "+string(m.Role)+".")
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	uid, err := idParam(c, "uid")
	if err != nil {
		return err
	}
	if err := s.opt.Accounts.RemoveMember(r.Context(), c.actor(r), c.ws.ID, uid); err != nil {
		return err
	}
	return s.done(w, r, views.WSPath(c.ws.ID, "/team"), "Member removed.")
}

func idParam(c *reqCtx, name string) (int64, error) {
	id, err := strconv.ParseInt(c.ps.ByName(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, apperr.New(apperr.NotFound, "not found")
	}
	return id, nil
}

func (s *Server) auditPage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	q := r.URL.Query()
	action := q.Get("action")
	page, err := s.opt.Accounts.Audit(r.Context(), c.actor(r), c.ws.ID, account.AuditQuery{Action: action, Cursor: q.Get("cursor"), Limit: 50})
	if err != nil {
		return err
	}
	a := views.Audit{Action: action, Actions: auditActions}
	for _, e := range page.Entries {
		target := e.TargetType
		if e.TargetID != "" {
			target += " " + e.TargetID
		}
		a.Rows = append(a.Rows, views.AuditRow{ID: e.ID, At: e.CreatedAt, Actor: firstNonEmpty(e.ActorEmail, "system"),
			Action: e.Action, Target: target, Details: auditDetails(e.Details), IP: e.IP})
	}
	if page.NextCursor != "" {
		a.NextURL = views.WSPath(c.ws.ID, "/audit?action="+urlQuery(action)+"&cursor="+urlQuery(page.NextCursor))
	}
	return s.render(w, r, http.StatusOK, views.AuditPage(s.layout(r, c, "Audit log", "audit"), a))
}

// auditDetails renders an event's JSON details as "key: value" pairs in key order.
func auditDetails(b json.RawMessage) string {
	var m map[string]any
	if len(b) == 0 || json.Unmarshal(b, &m) != nil {
		return string(b)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		var v string
		switch x := m[k].(type) {
		case string:
			v = x
		case nil:
			v = "none"
		default:
			vb, _ := json.Marshal(x)
			v = string(vb)
		}
		parts = append(parts, k+": "+v)
	}
	return strings.Join(parts, " · ")
}

var auditActions = []string{
	account.AuditWorkspaceCreated, account.AuditWorkspaceUpdated, account.AuditWorkspaceDeleted,
	account.AuditMemberInvited, account.AuditInviteAccepted, account.AuditInviteCancelled,
	account.AuditInviteResent, account.AuditMemberRoleChanged, account.AuditMemberRemoved,
	account.AuditBillingPlanChanged, account.AuditProjectCreated, account.AuditProjectUpdated,
	account.AuditProviderKeysUpdated, account.AuditKeyRegenerated, account.AuditProjectDeactivated,
	account.AuditProjectActivated, account.AuditProjectDeleted, account.AuditUsageExported,
}
