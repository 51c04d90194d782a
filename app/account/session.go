package account

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/golang-jwt/jwt/v5"

	"tokenguard/app/apperr"
	"tokenguard/store"
)

// sessionClaims are the claims of a session token. The epoch must equal users.session_epoch:
// bumping it (password change) revokes every older token at once.
type sessionClaims struct {
	SessionEpoch int64 `json:"session_epoch"`
	jwt.RegisteredClaims
}

const issuer = "tokenguard"

func (s *Service) issue(userID, epoch int64) (string, error) {
	now := s.now()
	c := sessionClaims{
		SessionEpoch: epoch,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   strconv.FormatInt(userID, 10),
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.ttl)),
		},
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.secret)
	if err != nil {
		return "", fmt.Errorf("sign session: %w", err)
	}
	return tok, nil
}

func errSession() error { return apperr.New(apperr.Unauthorized, "Invalid or expired session") }

// Authenticate checks a session token and returns its user. The algorithm is pinned to HS256
// (so "none" and any other algorithm fail), exp is required, and the token's session epoch must
// match the user's current one. Every failure is UNAUTHORIZED with the same message.
func (s *Service) Authenticate(ctx context.Context, token string) (User, error) {
	if token == "" || len(token) > 4096 {
		return User{}, errSession()
	}
	var c sessionClaims
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(issuer),
		jwt.WithTimeFunc(s.now),
	)
	_, err := parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return s.secret, nil })
	if err != nil {
		return User{}, errSession()
	}
	id, err := strconv.ParseInt(c.Subject, 10, 64)
	if err != nil || id <= 0 {
		return User{}, errSession()
	}
	u, err := s.db.UserByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return User{}, errSession()
	}
	if err != nil {
		return User{}, err
	}
	if u.SessionEpoch != c.SessionEpoch {
		return User{}, errSession()
	}
	return userFrom(u), nil
}
