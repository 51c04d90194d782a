// Package apperr is TokenGuard's one error type. Domain code returns an *Error with a contract
// code; each surface (proxy, JSON API, dashboard) renders it, and Status is the single map from
// code to HTTP status.
package apperr

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Contract codes. The proxy codes are fixed by DESIGN §3; outside clients match on them.
const (
	MissingKey          = "MISSING_KEY"
	InvalidKey          = "INVALID_KEY"
	KeyDeactivated      = "KEY_DEACTIVATED"
	BudgetExceeded      = "BUDGET_EXCEEDED"
	NoProviderKey       = "NO_PROVIDER_KEY"
	InvalidRequest      = "INVALID_REQUEST"
	PayloadTooLarge     = "PAYLOAD_TOO_LARGE"
	UpstreamUnavailable = "UPSTREAM_UNAVAILABLE"
	UpstreamTimeout     = "UPSTREAM_TIMEOUT"
	// StorageUnavailable (503): usage cannot be recorded (the database is failing and the
	// bounded usage queue is full), so metered requests fail closed (DESIGN §7).
	StorageUnavailable = "STORAGE_UNAVAILABLE"
	// RateLimited (429): a project's or workspace's requests- or tokens-per-minute limit;
	// ModelNotAllowed (403): the model is outside the project's allow-list (DESIGN §7).
	RateLimited     = "RATE_LIMITED"
	ModelNotAllowed = "MODEL_NOT_ALLOWED"

	Unauthorized     = "UNAUTHORIZED"
	Forbidden        = "FORBIDDEN"
	NotFound         = "NOT_FOUND"
	Conflict         = "CONFLICT"
	MethodNotAllowed = "METHOD_NOT_ALLOWED"
	TooManyRequests  = "TOO_MANY_REQUESTS"
	Internal         = "INTERNAL"
)

var statuses = map[string]int{
	MissingKey:          http.StatusUnauthorized,
	InvalidKey:          http.StatusUnauthorized,
	KeyDeactivated:      http.StatusUnauthorized,
	BudgetExceeded:      http.StatusTooManyRequests,
	NoProviderKey:       http.StatusBadRequest,
	InvalidRequest:      http.StatusBadRequest,
	PayloadTooLarge:     http.StatusRequestEntityTooLarge,
	UpstreamUnavailable: http.StatusBadGateway,
	UpstreamTimeout:     http.StatusGatewayTimeout,
	StorageUnavailable:  http.StatusServiceUnavailable,
	RateLimited:         http.StatusTooManyRequests,
	ModelNotAllowed:     http.StatusForbidden,
	Unauthorized:        http.StatusUnauthorized,
	Forbidden:           http.StatusForbidden,
	NotFound:            http.StatusNotFound,
	Conflict:            http.StatusConflict,
	MethodNotAllowed:    http.StatusMethodNotAllowed,
	TooManyRequests:     http.StatusTooManyRequests,
	Internal:            http.StatusInternalServerError,
}

// Error is an error a user can act on: a contract code and a message safe to show them.
type Error struct {
	Code    string
	Message string
	// RetryAfter, when positive, is sent as the Retry-After header (whole seconds, rounded up):
	// how long until a retry can succeed.
	RetryAfter time.Duration
	// ResetAt, when set, is sent as error.resetAt: when the budget or limit that refused the
	// request resets.
	ResetAt time.Time
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// New returns an *Error with the given code and a formatted message.
func New(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Code returns the contract code of err, or Internal when err carries none.
func Code(err error) string {
	if e := (*Error)(nil); errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// Message returns the user-facing message of err; errors without a code get a generic text so
// internals never leak to a client.
func Message(err error) string {
	if e := (*Error)(nil); errors.As(err, &e) {
		return e.Message
	}
	return "Internal error"
}

// Status returns the HTTP status for err's code.
func Status(err error) int {
	if s, ok := statuses[Code(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Body is the contract's error body: {"error":{"code":…,"message":…}}.
type Body struct {
	Error BodyError `json:"error"`
}

// BodyError is the inside of Body.
type BodyError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// ResetAt is RFC 3339 UTC, present when the refusal has a reset time.
	ResetAt string `json:"resetAt,omitempty"`
}

// WriteJSON writes err as the contract's error body with its status. Callers log errors whose
// Code is Internal before calling it; the client only ever sees the generic message.
func WriteJSON(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	body := BodyError{Code: Code(err), Message: Message(err)}
	if e := (*Error)(nil); errors.As(err, &e) {
		if e.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.FormatInt(int64((e.RetryAfter+time.Second-1)/time.Second), 10))
		}
		if !e.ResetAt.IsZero() {
			body.ResetAt = e.ResetAt.UTC().Format(time.RFC3339)
		}
	}
	w.WriteHeader(Status(err))
	json.NewEncoder(w).Encode(Body{Error: body})
}
