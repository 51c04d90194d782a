package account

import (
	"context"
	"errors"

	"tokenguard/app/apperr"
	"tokenguard/store"
)

// Role is a member's role in a workspace.
type Role string

// The three roles, from most to least powerful.
const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// Valid reports whether r is one of the three roles.
func (r Role) Valid() bool { return r == RoleOwner || r == RoleAdmin || r == RoleMember }

// Action is something a member may or may not do in a workspace.
type Action int

// The actions of the role matrix (issue 4).
const (
	// ViewWorkspace: see the workspace, its projects, members, usage and analytics.
	ViewWorkspace Action = iota
	// ManageProjects: create, edit, deactivate, activate, delete projects, regenerate keys, set
	// provider keys.
	ManageProjects
	// ManageInvites: invite, resend and cancel invites (with a role no higher than admin).
	ManageInvites
	// ManageMembers: change a member's role or remove a member. Admins may only act on
	// non-owners and never grant owner; ChangeRole and RemoveMember enforce that part.
	ManageMembers
	// ViewAudit: read the audit log.
	ViewAudit
	// UpdateWorkspace: rename the workspace, set its budgets.
	UpdateWorkspace
	// DeleteWorkspace: soft-delete the workspace.
	DeleteWorkspace
	// ManageBilling: change the billing plan.
	ManageBilling
)

// matrix is THE role matrix; every permission check in TokenGuard goes through Can.
var matrix = map[Role]map[Action]bool{
	RoleOwner: {
		ViewWorkspace: true, ManageProjects: true, ManageInvites: true, ManageMembers: true,
		ViewAudit: true, UpdateWorkspace: true, DeleteWorkspace: true, ManageBilling: true,
	},
	RoleAdmin: {
		ViewWorkspace: true, ManageProjects: true, ManageInvites: true, ManageMembers: true,
		ViewAudit: true,
	},
	RoleMember: {
		ViewWorkspace: true,
	},
}

// Can reports whether role may perform a in its workspace.
func Can(role Role, a Action) bool { return matrix[role][a] }

// Authorize returns workspaceID as seen by the actor after checking they may perform a in it.
// It returns NOT_FOUND when the workspace does not exist, is deleted or the actor is not a
// member, and FORBIDDEN when their role does not allow a. The membership is read from the
// database on every call, so a role change or removal applies at once. Other packages (invites,
// analytics, the dashboard) call it before acting on a workspace.
func (s *Service) Authorize(ctx context.Context, actor Actor, workspaceID int64, a Action) (Workspace, error) {
	if actor.UserID == 0 || workspaceID <= 0 {
		return Workspace{}, notFound("workspace")
	}
	w, err := s.db.WorkspaceOfMember(ctx, actor.UserID, workspaceID)
	if errors.Is(err, store.ErrNotFound) {
		return Workspace{}, notFound("workspace")
	}
	if err != nil {
		return Workspace{}, err
	}
	ws := workspaceFrom(w)
	if !Can(ws.Role, a) {
		return Workspace{}, forbidden(ws.Role)
	}
	return ws, nil
}

func forbidden(r Role) error {
	return apperr.New(apperr.Forbidden, "Your role (%s) does not allow this action", r)
}
