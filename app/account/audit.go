package account

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"tokenguard/app/apperr"
	"tokenguard/store"
)

// Audit actions. The first eleven are DESIGN §5's; the rest record key and project life-cycle
// changes and exports.
const (
	AuditWorkspaceCreated    = "workspace_created"
	AuditWorkspaceUpdated    = "workspace_updated"
	AuditWorkspaceDeleted    = "workspace_deleted"
	AuditMemberInvited       = "member_invited"
	AuditInviteAccepted      = "invite_accepted"
	AuditInviteCancelled     = "invite_cancelled"
	AuditMemberRoleChanged   = "member_role_changed"
	AuditMemberRemoved       = "member_removed"
	AuditBillingPlanChanged  = "billing_plan_changed"
	AuditProjectCreated      = "project_created"
	AuditProviderKeysUpdated = "provider_keys_updated"
	AuditKeyRegenerated      = "key_regenerated"
	AuditProjectDeactivated  = "project_deactivated"
	AuditProjectActivated    = "project_activated"
	AuditProjectDeleted      = "project_deleted"
	AuditProjectUpdated      = "project_updated"
	AuditUsageExported       = "usage_exported"
	AuditInviteResent        = "invite_resent"
)

// AuditEntry is one audit log event.
type AuditEntry struct {
	ID          int64
	WorkspaceID int64
	// ActorUserID is 0 for events without a user; ActorEmail is the actor's current email.
	ActorUserID int64
	ActorEmail  string
	Action      string
	TargetType  string
	TargetID    string
	// Details is a JSON object; it never holds a secret.
	Details   json.RawMessage
	IP        string
	CreatedAt time.Time
}

// AuditEvent is an event to append: what happened to which target, with details that must never
// include a secret (no keys, tokens or passwords).
type AuditEvent struct {
	Action     string
	TargetType string
	TargetID   int64
	Details    map[string]any
}

// AppendAudit writes ev to workspaceID's audit log inside tx, so the event commits with the
// action it records. Other packages (invites, exports) use it from their own transactions.
func (s *Service) AppendAudit(ctx context.Context, tx *sql.Tx, actor Actor, workspaceID int64, ev AuditEvent) error {
	details := []byte("{}")
	if len(ev.Details) > 0 {
		b, err := json.Marshal(ev.Details)
		if err != nil {
			return fmt.Errorf("audit %s details: %w", ev.Action, err)
		}
		details = b
	}
	target := ""
	if ev.TargetID != 0 {
		target = strconv.FormatInt(ev.TargetID, 10)
	}
	return s.db.InsertAudit(ctx, tx, store.AuditEntry{
		WorkspaceID: workspaceID, ActorUserID: actor.UserID, Action: ev.Action,
		TargetType: ev.TargetType, TargetID: target, Details: string(details), IP: actor.IP,
		CreatedAt: s.nowMs(),
	})
}

// Record appends one event in its own transaction after checking the actor may view the
// workspace; for actions that change nothing in the database (a CSV export).
func (s *Service) Record(ctx context.Context, actor Actor, workspaceID int64, ev AuditEvent) error {
	if _, err := s.Authorize(ctx, actor, workspaceID, ViewWorkspace); err != nil {
		return err
	}
	return s.db.WriteTx(ctx, func(tx *sql.Tx) error { return s.AppendAudit(ctx, tx, actor, workspaceID, ev) })
}

// AuditQuery filters and pages the audit log. Zero values mean "any".
type AuditQuery struct {
	Action      string
	ActorUserID int64
	From, To    time.Time // From inclusive, To exclusive
	// Cursor is the NextCursor of the previous page.
	Cursor string
	// Limit is the page size: default 50, at most 500.
	Limit int
}

// AuditPage is one page of the audit log, newest first. NextCursor is "" on the last page.
type AuditPage struct {
	Entries    []AuditEntry
	NextCursor string
}

// Audit returns one page of workspaceID's audit log; owners and admins only (FORBIDDEN for
// members, NOT_FOUND for outsiders). A malformed cursor or limit is INVALID_REQUEST.
func (s *Service) Audit(ctx context.Context, actor Actor, workspaceID int64, q AuditQuery) (AuditPage, error) {
	if _, err := s.Authorize(ctx, actor, workspaceID, ViewAudit); err != nil {
		return AuditPage{}, err
	}
	f := store.AuditFilter{WorkspaceID: workspaceID, Action: q.Action, ActorUserID: q.ActorUserID, Limit: q.Limit}
	if q.Limit < 0 || q.Limit > store.MaxAuditLimit {
		return AuditPage{}, apperr.New(apperr.InvalidRequest, "limit must be between 1 and %d", store.MaxAuditLimit)
	}
	if !q.From.IsZero() {
		f.From = q.From.UnixMilli()
	}
	if !q.To.IsZero() {
		f.To = q.To.UnixMilli()
	}
	if q.Cursor != "" {
		id, err := strconv.ParseInt(q.Cursor, 10, 64)
		if err != nil || id <= 0 {
			return AuditPage{}, apperr.New(apperr.InvalidRequest, "cursor is not one this server issued")
		}
		f.Before = id
	}
	rows, next, err := s.db.ListAudit(ctx, f)
	if err != nil {
		return AuditPage{}, err
	}
	page := AuditPage{Entries: make([]AuditEntry, len(rows))}
	for i, r := range rows {
		page.Entries[i] = AuditEntry{
			ID: r.ID, WorkspaceID: r.WorkspaceID, ActorUserID: r.ActorUserID, ActorEmail: r.ActorEmail,
			Action: r.Action, TargetType: r.TargetType, TargetID: r.TargetID,
			Details: json.RawMessage(r.Details), IP: r.IP, CreatedAt: time.UnixMilli(r.CreatedAt).UTC(),
		}
	}
	if next != 0 {
		page.NextCursor = strconv.FormatInt(next, 10)
	}
	return page, nil
}
