// Package invite lets owners and admins bring people into a workspace by email. An invite is a
// random token (256 bits from crypto/rand) of which only the SHA-256 is stored; the token travels
// only in the accept link, which the inviter gets in the API response (so invites work without
// SMTP) and the invitee gets by mail. An invite expires after 7 days; resend replaces the token
// and the expiry, so the old link dies; cancel kills it; accept adds the signed-in user whose
// email matches, exactly once even when two accepts race.
//
// Permissions come from account.Service.Authorize (the one role matrix) and every change is
// written to the audit log in the transaction that makes it.
//
// Rejections, chosen so a client can tell them apart:
//   - NOT_FOUND (404): an unknown or malformed token, a token replaced by a resend, an invite of
//     a deleted workspace, an invite id of another workspace, or a workspace the actor is not in.
//   - CONFLICT (409): the invite expired, was cancelled or was already accepted; the user is
//     already a member; an open invite for the email already exists (resend it instead).
//   - FORBIDDEN (403): the signed-in user's email is not the invited one; a member tries to
//     manage invites; the invited role is owner or above the inviter's own role.
//   - INVALID_REQUEST (400): a malformed email or an unknown role.
package invite

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"tokenguard/app/account"
	"tokenguard/app/apperr"
	"tokenguard/app/mail"
	"tokenguard/store"
)

// TTL is how long an invite link stays valid.
const TTL = 7 * 24 * time.Hour

// tokenBytes is the token's entropy: 256 bits, well above the 128 required.
const tokenBytes = 32

// Sender queues an email; *mail.Mailer is the real one.
type Sender interface {
	Send(mail.Message) error
}

// Options configures a Service.
type Options struct {
	// FrontendURL is the base of accept links (FRONTEND_URL), without a trailing slash.
	FrontendURL string
	// Mailer sends invite mails; nil sends none (the accept URL is still returned).
	Mailer Sender
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Log receives warnings; nothing secret (no token, no link) is ever logged. Discarded when nil.
	Log *slog.Logger
}

// Service manages invites.
type Service struct {
	db       *store.DB
	accounts *account.Service
	mailer   Sender
	frontend string
	now      func() time.Time
	log      *slog.Logger
}

// New returns a Service over db that checks permissions and writes audit events through
// accounts.
func New(db *store.DB, accounts *account.Service, o Options) *Service {
	s := &Service{db: db, accounts: accounts, mailer: o.Mailer,
		frontend: strings.TrimRight(o.FrontendURL, "/"), now: o.Now, log: o.Log}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Status of an invite as listed: open invites are pending until they expire.
const (
	StatusPending = "pending"
	StatusExpired = "expired"
)

// Invite is an open invite as the workspace's owners and admins see it.
type Invite struct {
	ID          int64
	WorkspaceID int64
	Email       string
	Role        account.Role
	InvitedBy   int64
	InviterName string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	Status      string
}

// Issued is an invite with its accept link, returned only to the inviter by Create and Resend.
// The token is not kept anywhere after this.
type Issued struct {
	Invite
	AcceptURL string
}

// Preview is what an invitee is told about an invite before accepting it — nothing more.
type Preview struct {
	WorkspaceName string
	InviterName   string
	Role          account.Role
	Email         string
	ExpiresAt     time.Time
}

// Create invites email into workspaceID with role (admin or member). The actor must be an owner
// or admin (FORBIDDEN for members, NOT_FOUND for outsiders) and may not grant a role above their
// own, nor owner (FORBIDDEN). An existing member or an open invite for the same email is
// CONFLICT. The mail is queued after the commit; its fate never fails the call.
func (s *Service) Create(ctx context.Context, actor account.Actor, workspaceID int64, email, role string) (Issued, error) {
	ws, err := s.accounts.Authorize(ctx, actor, workspaceID, account.ManageInvites)
	if err != nil {
		return Issued{}, err
	}
	addr, err := account.NormalizeEmail(email)
	if err != nil {
		return Issued{}, err
	}
	r, err := grantable(ws.Role, role)
	if err != nil {
		return Issued{}, err
	}
	token, hash, err := newToken()
	if err != nil {
		return Issued{}, err
	}
	now := s.now()
	inv := store.Invite{WorkspaceID: workspaceID, Email: addr, Role: string(r), TokenHash: hash,
		InvitedBy: actor.UserID, CreatedAt: now.UnixMilli(), ExpiresAt: now.Add(TTL).UnixMilli()}
	err = s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		if member, err := s.db.IsMemberByEmail(ctx, tx, workspaceID, addr); err != nil {
			return err
		} else if member {
			return apperr.New(apperr.Conflict, "%s is already a member of this workspace", addr)
		}
		if open, err := s.db.OpenInviteExists(ctx, tx, workspaceID, addr); err != nil {
			return err
		} else if open {
			return apperr.New(apperr.Conflict, "%s already has an open invite; resend or cancel it", addr)
		}
		id, err := s.db.InsertInvite(ctx, tx, inv)
		if err != nil {
			return err
		}
		inv.ID = id
		return s.accounts.AppendAudit(ctx, tx, actor, workspaceID, account.AuditEvent{
			Action: account.AuditMemberInvited, TargetType: "invite", TargetID: id,
			Details: map[string]any{"email": addr, "role": string(r)},
		})
	})
	if err != nil {
		return Issued{}, err
	}
	return s.issued(ctx, actor, ws.Name, inv, token), nil
}

// Resend gives open invite inviteID of workspaceID a fresh token and a fresh 7-day expiry (an
// expired invite can be resent), so the previous link stops working, and mails the new link.
// Permissions are those of Create; a cancelled or accepted invite is CONFLICT, an id of another
// workspace NOT_FOUND. The inviter's role ceiling still applies: an admin cannot resend an invite
// an owner made for a role above admin (none exists today; owner invites are refused).
func (s *Service) Resend(ctx context.Context, actor account.Actor, workspaceID, inviteID int64) (Issued, error) {
	ws, err := s.accounts.Authorize(ctx, actor, workspaceID, account.ManageInvites)
	if err != nil {
		return Issued{}, err
	}
	token, hash, err := newToken()
	if err != nil {
		return Issued{}, err
	}
	now := s.now()
	var inv store.Invite
	err = s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		inv, err = s.openInvite(ctx, tx, workspaceID, inviteID)
		if err != nil {
			return err
		}
		if _, err := grantable(ws.Role, inv.Role); err != nil {
			return err
		}
		inv.TokenHash, inv.ExpiresAt = hash, now.Add(TTL).UnixMilli()
		if err := s.db.RenewInvite(ctx, tx, workspaceID, inviteID, hash, inv.ExpiresAt); err != nil {
			return err
		}
		return s.accounts.AppendAudit(ctx, tx, actor, workspaceID, account.AuditEvent{
			Action: account.AuditInviteResent, TargetType: "invite", TargetID: inviteID,
			Details: map[string]any{"email": inv.Email, "role": inv.Role},
		})
	})
	if err != nil {
		return Issued{}, err
	}
	return s.issued(ctx, actor, ws.Name, inv, token), nil
}

// Cancel kills open invite inviteID of workspaceID: its link stops working at once.
// Permissions are those of Create; an invite already cancelled or accepted is CONFLICT.
func (s *Service) Cancel(ctx context.Context, actor account.Actor, workspaceID, inviteID int64) error {
	if _, err := s.accounts.Authorize(ctx, actor, workspaceID, account.ManageInvites); err != nil {
		return err
	}
	now := s.now().UnixMilli()
	return s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		inv, err := s.openInvite(ctx, tx, workspaceID, inviteID)
		if err != nil {
			return err
		}
		if err := s.db.CancelInvite(ctx, tx, workspaceID, inviteID, now); err != nil {
			return err
		}
		return s.accounts.AppendAudit(ctx, tx, actor, workspaceID, account.AuditEvent{
			Action: account.AuditInviteCancelled, TargetType: "invite", TargetID: inviteID,
			Details: map[string]any{"email": inv.Email, "role": inv.Role},
		})
	})
}

// List returns workspaceID's open invites (expired ones marked so), newest first; owners and
// admins only.
func (s *Service) List(ctx context.Context, actor account.Actor, workspaceID int64) ([]Invite, error) {
	if _, err := s.accounts.Authorize(ctx, actor, workspaceID, account.ManageInvites); err != nil {
		return nil, err
	}
	rows, err := s.db.OpenInvites(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	out := make([]Invite, len(rows))
	for i, r := range rows {
		out[i] = s.invite(r)
	}
	return out, nil
}

// Preview tells the holder of token what they are invited to. It needs no sign-in: the token is
// the credential. An unknown, replaced or malformed token, or a deleted workspace, is
// NOT_FOUND; an expired, cancelled or accepted invite is CONFLICT with a message saying which.
func (s *Service) Preview(ctx context.Context, token string) (Preview, error) {
	hash, ok := hashToken(token)
	if !ok {
		return Preview{}, errNoInvite()
	}
	inv, err := s.db.InviteByTokenHash(ctx, nil, hash)
	if err != nil {
		return Preview{}, mapNotFound(err)
	}
	if err := s.usable(inv, s.now().UnixMilli()); err != nil {
		return Preview{}, err
	}
	return Preview{WorkspaceName: inv.WorkspaceName, InviterName: inviterName(inv), Role: account.Role(inv.Role),
		Email: inv.Email, ExpiresAt: time.UnixMilli(inv.ExpiresAt).UTC()}, nil
}

// Accept adds the signed-in actor to the invite's workspace with the invited role, at once. The
// actor's email must be the invited one (FORBIDDEN otherwise). The invite is marked accepted by
// a conditional UPDATE in the same transaction as the membership insert, so of two racing
// accepts exactly one succeeds; the other gets CONFLICT. It returns the workspace as the new
// member sees it.
func (s *Service) Accept(ctx context.Context, actor account.Actor, token string) (account.Workspace, error) {
	hash, ok := hashToken(token)
	if !ok {
		return account.Workspace{}, errNoInvite()
	}
	user, err := s.accounts.UserByID(ctx, actor.UserID)
	if err != nil {
		return account.Workspace{}, apperr.New(apperr.Unauthorized, "Sign in to accept this invite")
	}
	var wsID int64
	err = s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		inv, err := s.db.InviteByTokenHash(ctx, tx, hash)
		if err != nil {
			return mapNotFound(err)
		}
		now := s.now().UnixMilli()
		if inv.WorkspaceDeleted {
			return errNoInvite()
		}
		if !strings.EqualFold(inv.Email, user.Email) {
			return apperr.New(apperr.Forbidden, "This invite was sent to a different email address; sign in with the invited account")
		}
		if err := s.db.AcceptInvite(ctx, tx, inv.ID, actor.UserID, now); errors.Is(err, store.ErrNotFound) {
			// The conditional UPDATE changed nothing: say why (a racing accept shows as accepted).
			if err := s.usable(inv, now); err != nil {
				return err
			}
			return errAccepted()
		} else if err != nil {
			return err
		}
		err = s.db.InsertMembership(ctx, tx, inv.WorkspaceID, actor.UserID, inv.Role, now)
		if errors.Is(err, store.ErrConflict) {
			return apperr.New(apperr.Conflict, "You are already a member of %s", inv.WorkspaceName)
		}
		if err != nil {
			return err
		}
		wsID = inv.WorkspaceID
		return s.accounts.AppendAudit(ctx, tx, actor, inv.WorkspaceID, account.AuditEvent{
			Action: account.AuditInviteAccepted, TargetType: "invite", TargetID: inv.ID,
			Details: map[string]any{"email": inv.Email, "role": inv.Role, "userId": actor.UserID},
		})
	})
	if err != nil {
		return account.Workspace{}, err
	}
	return s.accounts.Workspace(ctx, actor, wsID)
}

// SignupInput is the new account of an invitee: the email is the invite's.
type SignupInput struct {
	Password string
	Name     string
}

// SignupAndAccept creates an account for the invitee of token (with the invite's email) and
// accepts the invite with it. It works when self-signup is closed (ALLOW_SIGNUP=false): holding
// a valid invite is the permission. Errors are Preview's, then those of account signup
// (CONFLICT when the email is already registered: sign in and accept instead), then Accept's.
func (s *Service) SignupAndAccept(ctx context.Context, token string, in SignupInput, ip string) (account.Session, account.Workspace, error) {
	p, err := s.Preview(ctx, token)
	if err != nil {
		return account.Session{}, account.Workspace{}, err
	}
	sess, err := s.accounts.SignupInvited(ctx, account.SignupInput{Email: p.Email, Password: in.Password, Name: in.Name}, ip)
	if err != nil {
		return account.Session{}, account.Workspace{}, err
	}
	ws, err := s.Accept(ctx, account.Actor{UserID: sess.User.ID, IP: ip}, token)
	if err != nil {
		return account.Session{}, account.Workspace{}, err
	}
	return sess, ws, nil
}

// openInvite reads invite id of workspaceID in tx and checks it is still open.
func (s *Service) openInvite(ctx context.Context, tx *sql.Tx, workspaceID, id int64) (store.Invite, error) {
	inv, err := s.db.InviteInWorkspace(ctx, tx, workspaceID, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Invite{}, apperr.New(apperr.NotFound, "invite not found")
	}
	if err != nil {
		return store.Invite{}, err
	}
	switch {
	case inv.AcceptedAt != nil:
		return store.Invite{}, errAccepted()
	case inv.CancelledAt != nil:
		return store.Invite{}, errCancelled()
	}
	return inv, nil
}

// usable explains why inv cannot be accepted at now, or returns nil.
func (s *Service) usable(inv store.Invite, now int64) error {
	switch {
	case inv.WorkspaceDeleted:
		return errNoInvite()
	case inv.AcceptedAt != nil:
		return errAccepted()
	case inv.CancelledAt != nil:
		return errCancelled()
	case inv.ExpiresAt <= now:
		return apperr.New(apperr.Conflict, "This invite expired on %s; ask %s to resend it",
			time.UnixMilli(inv.ExpiresAt).UTC().Format("2 Jan 2006 15:04 MST"), inviterName(inv))
	}
	return nil
}

func errNoInvite() error {
	return apperr.New(apperr.NotFound, "Invite not found: the link is wrong or was replaced by a newer invite")
}
func errAccepted() error  { return apperr.New(apperr.Conflict, "This invite has already been accepted") }
func errCancelled() error { return apperr.New(apperr.Conflict, "This invite was cancelled") }

func mapNotFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errNoInvite()
	}
	return err
}

// rank orders roles by power.
var rank = map[account.Role]int{account.RoleMember: 1, account.RoleAdmin: 2, account.RoleOwner: 3}

// grantable checks that an inviter with role by may invite with role want (admin or member, and
// not above their own).
func grantable(by account.Role, want string) (account.Role, error) {
	r := account.Role(strings.ToLower(strings.TrimSpace(want)))
	switch r {
	case account.RoleAdmin, account.RoleMember:
	case account.RoleOwner:
		return "", apperr.New(apperr.Forbidden, "Invites grant admin or member; an owner can promote a member to owner afterwards")
	default:
		return "", apperr.New(apperr.InvalidRequest, "role must be admin or member")
	}
	if rank[r] > rank[by] {
		return "", apperr.New(apperr.Forbidden, "Your role (%s) cannot invite a %s", by, r)
	}
	return r, nil
}

// newToken returns a fresh accept token and its SHA-256.
func newToken() (string, []byte, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("invite token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	return token, sum[:], nil
}

// hashToken checks token's shape (so junk never reaches the database) and returns its SHA-256.
func hashToken(token string) ([]byte, bool) {
	if len(token) != base64.RawURLEncoding.EncodedLen(tokenBytes) {
		return nil, false
	}
	if _, err := base64.RawURLEncoding.DecodeString(token); err != nil {
		return nil, false
	}
	sum := sha256.Sum256([]byte(token))
	return sum[:], true
}

func inviterName(inv store.Invite) string {
	if inv.InviterName != "" {
		return inv.InviterName
	}
	if inv.InviterEmail != "" {
		return inv.InviterEmail
	}
	return "a workspace admin"
}

func (s *Service) invite(r store.Invite) Invite {
	status := StatusPending
	if r.ExpiresAt <= s.now().UnixMilli() {
		status = StatusExpired
	}
	return Invite{ID: r.ID, WorkspaceID: r.WorkspaceID, Email: r.Email, Role: account.Role(r.Role),
		InvitedBy: r.InvitedBy, InviterName: inviterName(r),
		CreatedAt: time.UnixMilli(r.CreatedAt).UTC(), ExpiresAt: time.UnixMilli(r.ExpiresAt).UTC(), Status: status}
}

// issued builds the inviter's answer and queues the invite mail (after the commit: a failed or
// slow mail never undoes or delays the invite).
func (s *Service) issued(ctx context.Context, actor account.Actor, workspaceName string, inv store.Invite, token string) Issued {
	inviter := ""
	if u, err := s.accounts.UserByID(ctx, actor.UserID); err == nil {
		inviter = u.Name
		if inviter == "" {
			inviter = u.Email
		}
		inv.InviterName, inv.InviterEmail = u.Name, u.Email
	}
	inv.WorkspaceName = workspaceName
	out := Issued{Invite: s.invite(inv), AcceptURL: s.AcceptURL(token)}
	if s.mailer != nil {
		msg, err := inviteMail(mailData{
			Inviter: inviter, Workspace: workspaceName, Role: inv.Role, Email: inv.Email,
			AcceptURL: out.AcceptURL, ExpiresAt: out.ExpiresAt,
		})
		if err == nil {
			err = s.mailer.Send(msg)
		}
		if err != nil {
			s.log.Warn("invite mail not queued", "invite", inv.ID, "workspace", inv.WorkspaceID, "err", err)
		}
	}
	return out
}

// AcceptURL is the dashboard page where the invitee of token accepts it.
func (s *Service) AcceptURL(token string) string { return s.frontend + "/invites/" + token }
