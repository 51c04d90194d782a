package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
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

// auditPage lists the workspace's audit events, filtered by actor, action and a date range,
// naming people, projects and the workspace instead of showing their ids.
func (s *Server) auditPage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	ctx, actor := r.Context(), c.actor(r)
	q := r.URL.Query()
	a := views.Audit{Action: q.Get("action"), From: q.Get("from"), To: q.Get("to"), Actions: auditActions}
	var problems []string
	aq := account.AuditQuery{Cursor: q.Get("cursor"), Limit: 50}
	aq.From, aq.To, problems = dayRange(a.From, a.To)
	if a.Action != "" && !slices.Contains(auditActions, a.Action) {
		problems, a.Action = append(problems, "Unknown action."), ""
	}
	aq.Action = a.Action
	if v := q.Get("actor"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			problems = append(problems, "Unknown person.")
		} else {
			aq.ActorUserID, a.Actor = id, id
		}
	}
	members, err := s.opt.Accounts.Members(ctx, actor, c.ws.ID)
	if err != nil {
		return err
	}
	projects, err := s.opt.Accounts.Projects(ctx, actor, c.ws.ID)
	if err != nil {
		return err
	}
	people := make(map[int64]string, len(members))
	for _, m := range members {
		people[m.UserID] = personName(m.Name, m.Email)
		a.Actors = append(a.Actors, views.ProjectOption{ID: m.UserID, Name: people[m.UserID]})
	}
	names := map[string]map[int64]string{"user": people, "project": {}, "workspace": {c.ws.ID: c.ws.Name}}
	for _, p := range projects {
		names["project"][p.ID] = p.Name
	}
	if a.Error = strings.Join(problems, " "); a.Error != "" {
		return s.render(w, r, http.StatusOK, views.AuditPage(s.layout(r, c, "Audit log", "audit"), a))
	}
	page, err := s.opt.Accounts.Audit(ctx, actor, c.ws.ID, aq)
	if err != nil {
		return err
	}
	for _, e := range page.Entries {
		who := "system"
		if e.ActorUserID != 0 {
			who = firstNonEmpty(people[e.ActorUserID], firstNonEmpty(e.ActorEmail, "a removed user"))
		}
		a.Rows = append(a.Rows, views.AuditRow{ID: e.ID, At: e.CreatedAt, Actor: who, Action: e.Action,
			Target: auditTarget(e, names), Details: auditDetails(e.Details), IP: e.IP})
	}
	if page.NextCursor != "" {
		nq := url.Values{}
		for _, k := range []string{"action", "actor", "from", "to"} {
			if v := q.Get(k); v != "" {
				nq.Set(k, v)
			}
		}
		nq.Set("cursor", page.NextCursor)
		a.NextURL = views.WSPath(c.ws.ID, "/audit?"+nq.Encode())
	}
	return s.render(w, r, http.StatusOK, views.AuditPage(s.layout(r, c, "Audit log", "audit"), a))
}

// personName is how the dashboard names a user: "Name (email)", or the email alone.
func personName(name, email string) string {
	if name == "" {
		return email
	}
	return name + " (" + email + ")"
}

// auditTarget names an event's target: a project, person or workspace by its current name (a
// deleted project by the name its event recorded), anything else by type and id.
func auditTarget(e account.AuditEntry, names map[string]map[int64]string) string {
	id, err := strconv.ParseInt(e.TargetID, 10, 64)
	if name := names[e.TargetType][id]; err == nil && name != "" {
		return e.TargetType + " " + name
	}
	var d struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(e.Details, &d) == nil && d.Name != "" && e.TargetType == "project" {
		return "project " + d.Name + " (deleted)"
	}
	return strings.TrimSpace(e.TargetType + " " + e.TargetID)
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
