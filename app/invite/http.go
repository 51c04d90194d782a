package invite

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"tokenguard/app/account"
	"tokenguard/app/api"
	"tokenguard/app/apperr"
)

// Routes of the invite API (DESIGN §5). The workspace segment is named :id, like every other
// /api/workspaces/:id route, because httprouter requires one name per path segment.
const (
	RouteList    = "/api/workspaces/:id/invites"
	RouteOne     = "/api/workspaces/:id/invites/:inviteId"
	RouteResend  = "/api/workspaces/:id/invites/:inviteId/resend"
	RoutePreview = "/api/invites/:token"
	RouteAccept  = "/api/invites/:token/accept"
	RouteSignup  = "/api/invites/:token/signup"
)

// Handler serves the invite routes of the JSON API through the API's own adapters (api.Public,
// api.Authed), so they decode, authenticate, answer CORS and render errors exactly like every
// other /api route. Invite tokens are path segments: nothing here logs a path, internal errors
// on token routes are logged without it, and request logs elsewhere use api.RedactPath.
type Handler struct {
	svc *Service
	api *api.API
	log *slog.Logger
}

// NewHandler returns the HTTP face of svc, served through a.
func NewHandler(svc *Service, a *api.API, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{svc: svc, api: a, log: log}
}

// Register adds the invite routes (and their CORS preflights) to r.
func (h *Handler) Register(r *httprouter.Router) {
	pub, auth := h.api.Public, h.api.Authed
	for _, rt := range []struct {
		method, path string
		handle       httprouter.Handle
	}{
		{http.MethodGet, RouteList, auth(h.list)},
		{http.MethodPost, RouteList, auth(h.create)},
		{http.MethodDelete, RouteOne, auth(h.cancel)},
		{http.MethodPost, RouteResend, auth(h.resend)},
		{http.MethodGet, RoutePreview, pub(h.tokenRoute(h.preview))},
		{http.MethodPost, RouteAccept, pub(h.tokenRoute(h.signedIn(h.accept)))},
		{http.MethodPost, RouteSignup, pub(h.tokenRoute(h.signup))},
	} {
		r.Handle(rt.method, rt.path, rt.handle)
	}
	preflight := pub(func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) error {
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	for _, path := range []string{RouteList, RouteOne, RouteResend, RoutePreview, RouteAccept, RouteSignup} {
		r.OPTIONS(path, preflight)
	}
}

// tokenRoute renders internal errors of a route whose path holds a token itself, logging them
// without the path (the API's own error log names the path).
func (h *Handler) tokenRoute(next api.HandlerFunc) api.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
		return h.internalHere(w, r, next(w, r, ps))
	}
}

// signedIn is api.Authed for a token route: the same Bearer-only check, but inside tokenRoute,
// so even an internal error while checking the session is logged without the path.
func (h *Handler) signedIn(next api.AuthedFunc) api.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
		auth := r.Header.Get("Authorization")
		const scheme = "bearer "
		if len(auth) <= len(scheme) || !strings.EqualFold(auth[:len(scheme)], scheme) {
			return apperr.New(apperr.Unauthorized, "Sign in to accept this invite: send Authorization: Bearer <token>")
		}
		u, err := h.svc.accounts.Authenticate(r.Context(), strings.TrimSpace(auth[len(scheme):]))
		if err != nil {
			return err
		}
		return next(w, r, ps, api.Caller{User: u, Actor: account.Actor{UserID: u.ID, IP: api.ClientIP(r)}})
	}
}

func (h *Handler) internalHere(w http.ResponseWriter, r *http.Request, err error) error {
	if err == nil || apperr.Code(err) != apperr.Internal {
		return err
	}
	if !errors.Is(err, context.Canceled) {
		h.log.Error("invite request failed", "method", r.Method, "path", api.RedactPath(r.URL.Path), "err", err)
	}
	apperr.WriteJSON(w, err)
	return nil
}

// inviteJSON is an invite as owners and admins see it.
type inviteJSON struct {
	ID          int64  `json:"id"`
	WorkspaceID int64  `json:"workspaceId"`
	Email       string `json:"email"`
	Role        string `json:"role"`
	InvitedBy   int64  `json:"invitedBy"`
	InviterName string `json:"inviterName"`
	CreatedAt   string `json:"createdAt"`
	ExpiresAt   string `json:"expiresAt"`
	Status      string `json:"status"`
}

func toJSON(inv Invite) inviteJSON {
	return inviteJSON{ID: inv.ID, WorkspaceID: inv.WorkspaceID, Email: inv.Email, Role: string(inv.Role),
		InvitedBy: inv.InvitedBy, InviterName: inv.InviterName, CreatedAt: rfc3339(inv.CreatedAt),
		ExpiresAt: rfc3339(inv.ExpiresAt), Status: inv.Status}
}

type issuedJSON struct {
	Invite    inviteJSON `json:"invite"`
	AcceptURL string     `json:"acceptUrl"`
}

// list: GET /api/workspaces/:id/invites → {"data":[invite…]} (open invites, newest first).
func (h *Handler) list(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c api.Caller) error {
	wsID, err := pathID(ps, "id", "workspace")
	if err != nil {
		return err
	}
	invs, err := h.svc.List(r.Context(), c.Actor, wsID)
	if err != nil {
		return err
	}
	out := make([]inviteJSON, len(invs))
	for i, inv := range invs {
		out[i] = toJSON(inv)
	}
	return api.Reply(w, http.StatusOK, map[string]any{"data": out})
}

// create: POST /api/workspaces/:id/invites {email,role} → 201 {invite,acceptUrl}.
func (h *Handler) create(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c api.Caller) error {
	wsID, err := pathID(ps, "id", "workspace")
	if err != nil {
		return err
	}
	var body struct {
		Email string `json:"email"`
		Role  string `json:"role"`
	}
	if err := h.api.Decode(w, r, &body); err != nil {
		return err
	}
	iss, err := h.svc.Create(r.Context(), c.Actor, wsID, body.Email, body.Role)
	if err != nil {
		return err
	}
	return api.Reply(w, http.StatusCreated, issuedJSON{Invite: toJSON(iss.Invite), AcceptURL: iss.AcceptURL})
}

// resend: POST /api/workspaces/:id/invites/:inviteId/resend → {invite,acceptUrl} with a new link.
func (h *Handler) resend(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c api.Caller) error {
	wsID, invID, err := workspaceAndInvite(ps)
	if err != nil {
		return err
	}
	iss, err := h.svc.Resend(r.Context(), c.Actor, wsID, invID)
	if err != nil {
		return err
	}
	return api.Reply(w, http.StatusOK, issuedJSON{Invite: toJSON(iss.Invite), AcceptURL: iss.AcceptURL})
}

// cancel: DELETE /api/workspaces/:id/invites/:inviteId → 204.
func (h *Handler) cancel(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c api.Caller) error {
	wsID, invID, err := workspaceAndInvite(ps)
	if err != nil {
		return err
	}
	if err := h.svc.Cancel(r.Context(), c.Actor, wsID, invID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// preview: GET /api/invites/:token (no sign-in) → {invite:{workspaceName,inviterName,role,email,expiresAt}}.
func (h *Handler) preview(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	p, err := h.svc.Preview(r.Context(), ps.ByName("token"))
	if err != nil {
		return err
	}
	return api.Reply(w, http.StatusOK, map[string]any{"invite": map[string]any{
		"workspaceName": p.WorkspaceName,
		"inviterName":   p.InviterName,
		"role":          p.Role,
		"email":         p.Email,
		"expiresAt":     rfc3339(p.ExpiresAt),
	}})
}

type workspaceJSON struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	Role string `json:"role"`
}

// accept: POST /api/invites/:token/accept (signed in as the invited email) → {workspace}.
func (h *Handler) accept(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c api.Caller) error {
	ws, err := h.svc.Accept(r.Context(), c.Actor, ps.ByName("token"))
	if err != nil {
		return err
	}
	return api.Reply(w, http.StatusOK, map[string]any{"workspace": workspaceJSON{ID: ws.ID, Name: ws.Name, Role: string(ws.Role)}})
}

// signup: POST /api/invites/:token/signup {password,name} → 201 {token,user,workspace}. It
// creates the invitee's account with the invite's email (even with ALLOW_SIGNUP=false) and
// accepts the invite; the workspace is the one joined.
func (h *Handler) signup(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	var body struct {
		Password string `json:"password"`
		Name     string `json:"name"`
	}
	if err := h.api.Decode(w, r, &body); err != nil {
		return err
	}
	sess, ws, err := h.svc.SignupAndAccept(r.Context(), ps.ByName("token"), SignupInput{Password: body.Password, Name: body.Name}, api.ClientIP(r))
	if err != nil {
		return err
	}
	return api.Reply(w, http.StatusCreated, map[string]any{
		"token": sess.Token,
		"user": map[string]any{"id": sess.User.ID, "email": sess.User.Email, "name": sess.User.Name,
			"createdAt": rfc3339(sess.User.CreatedAt)},
		"workspace": workspaceJSON{ID: ws.ID, Name: ws.Name, Role: string(ws.Role)},
	})
}

func workspaceAndInvite(ps httprouter.Params) (int64, int64, error) {
	wsID, err := pathID(ps, "id", "workspace")
	if err != nil {
		return 0, 0, err
	}
	invID, err := pathID(ps, "inviteId", "invite")
	return wsID, invID, err
}

// pathID parses a positive id; anything else is NOT_FOUND, like an id that does not exist.
func pathID(ps httprouter.Params, name, what string) (int64, error) {
	id, err := strconv.ParseInt(ps.ByName(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, apperr.New(apperr.NotFound, "%s not found", what)
	}
	return id, nil
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }
