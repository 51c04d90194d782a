package account

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"tokenguard/app/apperr"
	"tokenguard/store"
)

// Password length limits. bcrypt reads at most 72 bytes: a longer password would be silently
// truncated, so it is rejected instead.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 72
)

// SignupInput is a new account.
type SignupInput struct {
	Email    string
	Password string
	Name     string
}

// Session is a signed-in user: a bearer token and who it belongs to. Workspace is set by
// Signup (the workspace it created) and left zero by Login.
type Session struct {
	Token     string
	User      User
	Workspace Workspace
}

// Signup creates an account and its first workspace, with the user as owner, and signs them in.
// It returns FORBIDDEN when self-signup is closed (ALLOW_SIGNUP=false), INVALID_REQUEST for a
// bad email, name or password (shorter than 8 or longer than 72 bytes), and CONFLICT when the
// email is already registered.
func (s *Service) Signup(ctx context.Context, in SignupInput, ip string) (Session, error) {
	if !s.allowSignup {
		return Session{}, apperr.New(apperr.Forbidden, "Self-signup is disabled on this server; ask a workspace owner for an invite")
	}
	return s.signup(ctx, in, ip)
}

// SignupInvited is Signup for someone holding an invite: it works when self-signup is closed.
// The caller (the invite-accept flow) must have checked the invite token and that its email is
// in.Email before calling it; it then adds the membership itself.
func (s *Service) SignupInvited(ctx context.Context, in SignupInput, ip string) (Session, error) {
	return s.signup(ctx, in, ip)
}

func (s *Service) signup(ctx context.Context, in SignupInput, ip string) (Session, error) {
	email, err := NormalizeEmail(in.Email)
	if err != nil {
		return Session{}, err
	}
	name := strings.TrimSpace(in.Name)
	if err := checkText("name", name, 0, 100); err != nil {
		return Session{}, err
	}
	if err := checkPassword(in.Password); err != nil {
		return Session{}, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(in.Password), s.cost)
	if err != nil {
		return Session{}, fmt.Errorf("hash password: %w", err)
	}
	now := s.nowMs()
	wsName := "Personal"
	if name != "" {
		wsName = truncateRunes(name, 80) + "'s workspace"
	}
	var user store.User
	var ws store.WorkspaceRole
	err = s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		user = store.User{Email: email, Name: name, PasswordHash: string(hash), CreatedAt: now}
		id, err := s.db.InsertUser(ctx, tx, user)
		if errors.Is(err, store.ErrConflict) {
			return apperr.New(apperr.Conflict, "An account with this email already exists")
		}
		if err != nil {
			return err
		}
		user.ID = id
		ws, err = s.createWorkspaceTx(ctx, tx, Actor{UserID: id, IP: ip}, wsName, now)
		return err
	})
	if err != nil {
		return Session{}, err
	}
	tok, err := s.issue(user.ID, 0)
	if err != nil {
		return Session{}, err
	}
	return Session{Token: tok, User: userFrom(user), Workspace: workspaceFrom(ws)}, nil
}

// errBadLogin is the one answer for an unknown email and a wrong password.
func errBadLogin() error { return apperr.New(apperr.Unauthorized, "Invalid email or password") }

// Login signs a user in. An unknown email and a wrong password get the same UNAUTHORIZED answer
// after the same bcrypt work. Failed attempts are throttled as ThrottleLimits describes: a
// refused attempt (even a correct one) gets TOO_MANY_REQUESTS with a RetryAfter.
func (s *Service) Login(ctx context.Context, email, password, ip string) (Session, error) {
	key := strings.ToLower(strings.TrimSpace(email))
	if err := s.throttle.check(key, ip); err != nil {
		return Session{}, err
	}
	// Oversized input is a failed attempt like any other; bcrypt would reject it anyway.
	if len(password) > MaxPasswordLen || len(key) > 254 {
		bcrypt.CompareHashAndPassword(s.dummyHash, []byte("x"))
		s.throttle.fail(key, ip)
		return Session{}, errBadLogin()
	}
	u, err := s.db.UserByEmail(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		bcrypt.CompareHashAndPassword(s.dummyHash, []byte(password))
		s.throttle.fail(key, ip)
		return Session{}, errBadLogin()
	}
	if err != nil {
		return Session{}, err
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		s.throttle.fail(key, ip)
		return Session{}, errBadLogin()
	}
	s.throttle.succeed(key, ip)
	tok, err := s.issue(u.ID, u.SessionEpoch)
	if err != nil {
		return Session{}, err
	}
	return Session{Token: tok, User: userFrom(u)}, nil
}

// ChangePassword replaces the actor's password after checking the current one, and revokes
// every session issued before (including the one making the call); it returns a fresh session.
// A wrong current password is UNAUTHORIZED and counts as a failed sign-in.
func (s *Service) ChangePassword(ctx context.Context, actor Actor, current, next string) (Session, error) {
	u, err := s.db.UserByID(ctx, actor.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return Session{}, apperr.New(apperr.Unauthorized, "Invalid or expired session")
	}
	if err != nil {
		return Session{}, err
	}
	key := strings.ToLower(u.Email)
	if err := s.throttle.check(key, actor.IP); err != nil {
		return Session{}, err
	}
	if len(current) > MaxPasswordLen || bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(current)) != nil {
		s.throttle.fail(key, actor.IP)
		return Session{}, apperr.New(apperr.Unauthorized, "Current password is wrong")
	}
	if err := checkPassword(next); err != nil {
		return Session{}, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(next), s.cost)
	if err != nil {
		return Session{}, fmt.Errorf("hash password: %w", err)
	}
	var epoch int64
	err = s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		epoch, err = s.db.SetPassword(ctx, tx, u.ID, string(hash))
		return err
	})
	if err != nil {
		return Session{}, err
	}
	tok, err := s.issue(u.ID, epoch)
	if err != nil {
		return Session{}, err
	}
	return Session{Token: tok, User: userFrom(u)}, nil
}

// UserByID returns a user, or NOT_FOUND.
func (s *Service) UserByID(ctx context.Context, id int64) (User, error) {
	u, err := s.db.UserByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return User{}, notFound("user")
	}
	if err != nil {
		return User{}, err
	}
	return userFrom(u), nil
}

func checkPassword(p string) error {
	if len(p) > MaxPasswordLen {
		return apperr.New(apperr.InvalidRequest, "password must be at most %d bytes", MaxPasswordLen)
	}
	if utf8.RuneCountInString(p) < MinPasswordLen {
		return apperr.New(apperr.InvalidRequest, "password must be at least %d characters", MinPasswordLen)
	}
	return nil
}

// NormalizeEmail validates a bare email address ("a@b.example", no display name) and returns it
// trimmed and lower-cased, or INVALID_REQUEST.
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	bad := apperr.New(apperr.InvalidRequest, "email must be a valid address like name@example.com")
	if s == "" || len(s) > 254 {
		return "", bad
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return "", bad
	}
	at := strings.LastIndexByte(s, '@')
	if at < 1 || !strings.Contains(s[at+1:], ".") || strings.ContainsAny(s, " \t\r\n<>\"") {
		return "", bad
	}
	return strings.ToLower(s), nil
}

// checkText validates a user-supplied label: length in runes within [min, max] and no control
// characters.
func checkText(field, v string, min, max int) error {
	if !utf8.ValidString(v) {
		return apperr.New(apperr.InvalidRequest, "%s must be valid UTF-8", field)
	}
	n := utf8.RuneCountInString(v)
	if n < min {
		if min == 1 {
			return apperr.New(apperr.InvalidRequest, "%s is required", field)
		}
		return apperr.New(apperr.InvalidRequest, "%s must be at least %d characters", field, min)
	}
	if n > max {
		return apperr.New(apperr.InvalidRequest, "%s must be at most %d characters", field, max)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return apperr.New(apperr.InvalidRequest, "%s must not contain control characters", field)
		}
	}
	return nil
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}
