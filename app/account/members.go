package account

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"tokenguard/app/apperr"
	"tokenguard/store"
)

// Members lists a workspace's members (any member may see them; NOT_FOUND for outsiders).
func (s *Service) Members(ctx context.Context, actor Actor, workspaceID int64) ([]Member, error) {
	if _, err := s.Authorize(ctx, actor, workspaceID, ViewWorkspace); err != nil {
		return nil, err
	}
	rows, err := s.db.ListMembers(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	out := make([]Member, len(rows))
	for i, m := range rows {
		out[i] = Member{UserID: m.UserID, Email: m.Email, Name: m.Name, Role: Role(m.Role), JoinedAt: time.UnixMilli(m.JoinedAt).UTC()}
	}
	return out, nil
}

// ChangeRole sets a member's role. Owners may change anyone; admins only non-owners and never to
// owner (FORBIDDEN); members nobody. The last owner cannot be demoted (CONFLICT). NOT_FOUND when
// the user is not a member. Records member_role_changed; takes effect on the member's next
// request.
func (s *Service) ChangeRole(ctx context.Context, actor Actor, workspaceID, userID int64, role Role) (Member, error) {
	if _, err := s.Authorize(ctx, actor, workspaceID, ManageMembers); err != nil {
		return Member{}, err
	}
	if !role.Valid() {
		return Member{}, apperr.New(apperr.InvalidRequest, "role must be owner, admin or member")
	}
	err := s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		// Both roles are read again inside the write transaction, so two concurrent changes
		// cannot both pass the last-owner check.
		actorRole, target, err := s.rolesTx(ctx, tx, workspaceID, actor.UserID, userID)
		if err != nil {
			return err
		}
		if actorRole != RoleOwner && (target == RoleOwner || role == RoleOwner) {
			return apperr.New(apperr.Forbidden, "Only an owner can grant, change or remove the owner role")
		}
		if !Can(actorRole, ManageMembers) {
			return forbidden(actorRole)
		}
		if target == role {
			return nil
		}
		if target == RoleOwner {
			if err := s.keepAnOwner(ctx, tx, workspaceID); err != nil {
				return err
			}
		}
		if err := s.db.SetMemberRole(ctx, tx, workspaceID, userID, string(role)); err != nil {
			return err
		}
		return s.AppendAudit(ctx, tx, actor, workspaceID, AuditEvent{
			Action: AuditMemberRoleChanged, TargetType: "user", TargetID: userID,
			Details: map[string]any{"from": string(target), "to": string(role)},
		})
	})
	if err != nil {
		return Member{}, err
	}
	return s.member(ctx, workspaceID, userID)
}

// RemoveMember removes a member from a workspace, or lets the actor leave when userID is their
// own id (any role may leave). Owners may remove anyone; admins only non-owners (FORBIDDEN
// otherwise); members nobody but themselves. The last owner can neither leave nor be removed
// (CONFLICT). Records member_removed; the member loses access on their next request.
func (s *Service) RemoveMember(ctx context.Context, actor Actor, workspaceID, userID int64) error {
	self := actor.UserID == userID
	need := ManageMembers
	if self {
		need = ViewWorkspace
	}
	if _, err := s.Authorize(ctx, actor, workspaceID, need); err != nil {
		return err
	}
	return s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		actorRole, target, err := s.rolesTx(ctx, tx, workspaceID, actor.UserID, userID)
		if err != nil {
			return err
		}
		if !self {
			if !Can(actorRole, ManageMembers) {
				return forbidden(actorRole)
			}
			if actorRole != RoleOwner && target == RoleOwner {
				return apperr.New(apperr.Forbidden, "Only an owner can remove an owner")
			}
		}
		if target == RoleOwner {
			if err := s.keepAnOwner(ctx, tx, workspaceID); err != nil {
				return err
			}
		}
		if err := s.db.DeleteMembership(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		return s.AppendAudit(ctx, tx, actor, workspaceID, AuditEvent{
			Action: AuditMemberRemoved, TargetType: "user", TargetID: userID,
			Details: map[string]any{"role": string(target), "left": self},
		})
	})
}

// rolesTx reads the actor's and the target's roles inside tx. A vanished actor membership is
// NOT_FOUND for the workspace; a missing target is NOT_FOUND for the member.
func (s *Service) rolesTx(ctx context.Context, tx *sql.Tx, workspaceID, actorID, targetID int64) (Role, Role, error) {
	a, err := s.db.MemberRole(ctx, tx, workspaceID, actorID)
	if errors.Is(err, store.ErrNotFound) {
		return "", "", notFound("workspace")
	}
	if err != nil {
		return "", "", err
	}
	t, err := s.db.MemberRole(ctx, tx, workspaceID, targetID)
	if errors.Is(err, store.ErrNotFound) {
		return "", "", notFound("member")
	}
	if err != nil {
		return "", "", err
	}
	return Role(a), Role(t), nil
}

func (s *Service) keepAnOwner(ctx context.Context, tx *sql.Tx, workspaceID int64) error {
	n, err := s.db.CountOwners(ctx, tx, workspaceID)
	if err != nil {
		return err
	}
	if n <= 1 {
		return apperr.New(apperr.Conflict, "A workspace must keep at least one owner; make someone else owner first")
	}
	return nil
}

func (s *Service) member(ctx context.Context, workspaceID, userID int64) (Member, error) {
	rows, err := s.db.ListMembers(ctx, workspaceID)
	if err != nil {
		return Member{}, err
	}
	for _, m := range rows {
		if m.UserID == userID {
			return Member{UserID: m.UserID, Email: m.Email, Name: m.Name, Role: Role(m.Role), JoinedAt: time.UnixMilli(m.JoinedAt).UTC()}, nil
		}
	}
	return Member{}, notFound("member")
}
