package web

import (
	"context"
	"strings"

	"tokenguard/app/account"
	"tokenguard/app/apperr"
	"tokenguard/app/invite"
)

// InviteService adapts the invite service to what the dashboard shows.
func InviteService(svc *invite.Service) Invites { return inviteAdapter{svc} }

type inviteAdapter struct{ svc *invite.Service }

func (a inviteAdapter) Create(ctx context.Context, actor account.Actor, workspaceID int64, email string, role account.Role) (string, error) {
	is, err := a.svc.Create(ctx, actor, workspaceID, email, string(role))
	return is.AcceptURL, err
}

func (a inviteAdapter) Pending(ctx context.Context, actor account.Actor, workspaceID int64) ([]Invite, error) {
	list, err := a.svc.List(ctx, actor, workspaceID)
	if err != nil {
		return nil, err
	}
	out := make([]Invite, len(list))
	for i, iv := range list {
		out[i] = Invite{ID: iv.ID, WorkspaceID: iv.WorkspaceID, Email: iv.Email, Role: iv.Role,
			InvitedBy: iv.InviterName, ExpiresAt: iv.ExpiresAt, State: iv.Status}
	}
	return out, nil
}

func (a inviteAdapter) Resend(ctx context.Context, actor account.Actor, workspaceID, inviteID int64) (string, string, error) {
	is, err := a.svc.Resend(ctx, actor, workspaceID, inviteID)
	return is.Email, is.AcceptURL, err
}

func (a inviteAdapter) Cancel(ctx context.Context, actor account.Actor, workspaceID, inviteID int64) error {
	return a.svc.Cancel(ctx, actor, workspaceID, inviteID)
}

// Lookup turns the invite service's answers into a state: Preview succeeds only for a usable
// invite and says in a CONFLICT why one is not.
func (a inviteAdapter) Lookup(ctx context.Context, token string) (Invite, error) {
	p, err := a.svc.Preview(ctx, token)
	if err == nil {
		return Invite{WorkspaceName: p.WorkspaceName, Email: p.Email, Role: p.Role, InvitedBy: p.InviterName,
			ExpiresAt: p.ExpiresAt, State: "pending"}, nil
	}
	if apperr.Code(err) != apperr.Conflict {
		return Invite{}, err
	}
	msg := strings.ToLower(apperr.Message(err))
	switch {
	case strings.Contains(msg, "expired"):
		return Invite{State: "expired"}, nil
	case strings.Contains(msg, "cancelled"):
		return Invite{State: "cancelled"}, nil
	}
	return Invite{State: "used"}, nil
}

func (a inviteAdapter) Accept(ctx context.Context, actor account.Actor, token string) (int64, error) {
	ws, err := a.svc.Accept(ctx, actor, token)
	return ws.ID, err
}
