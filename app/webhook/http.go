package webhook

import (
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"

	"tokenguard/app/api"
	"tokenguard/app/apperr"
)

// Routes of the webhook API; owners and admins only.
const (
	RouteWebhook = "/api/workspaces/:id/webhook"
	RouteTest    = "/api/workspaces/:id/webhook/test"
)

// Handler serves the webhook routes through the API's own adapters (api.Authed), so they
// authenticate, answer CORS and render errors like every other /api route.
type Handler struct {
	svc *Service
	api *api.API
}

// NewHandler returns the HTTP face of svc, served through a.
func NewHandler(svc *Service, a *api.API) *Handler { return &Handler{svc: svc, api: a} }

// Register adds the webhook routes (and their CORS preflights) to r.
func (h *Handler) Register(r *httprouter.Router) {
	auth := h.api.Authed
	r.GET(RouteWebhook, auth(h.get))
	r.PUT(RouteWebhook, auth(h.put))
	r.DELETE(RouteWebhook, auth(h.delete))
	r.POST(RouteTest, auth(h.test))
	preflight := h.api.Public(func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) error {
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	r.OPTIONS(RouteWebhook, preflight)
	r.OPTIONS(RouteTest, preflight)
}

type deliveryJSON struct {
	ID         int64  `json:"id"`
	Event      string `json:"event"`
	Status     string `json:"status"`
	Attempts   int    `json:"attempts"`
	LastStatus int    `json:"lastStatus,omitempty"`
	LastError  string `json:"lastError,omitempty"`
	NextAt     string `json:"nextAttemptAt,omitempty"`
	CreatedAt  string `json:"createdAt"`
	UpdatedAt  string `json:"updatedAt"`
}

type webhookJSON struct {
	WorkspaceID int64          `json:"workspaceId"`
	URL         string         `json:"url"`
	CreatedAt   string         `json:"createdAt"`
	UpdatedAt   string         `json:"updatedAt"`
	Deliveries  []deliveryJSON `json:"deliveries"`
}

func deliveryView(d Delivery) deliveryJSON {
	out := deliveryJSON{ID: d.ID, Event: d.Event, Status: d.Status, Attempts: d.Attempts, LastStatus: d.LastStatus,
		LastError: d.LastError, CreatedAt: d.CreatedAt.Format(time.RFC3339), UpdatedAt: d.UpdatedAt.Format(time.RFC3339)}
	if d.Status == "pending" {
		out.NextAt = d.NextAt.Format(time.RFC3339)
	}
	return out
}

func webhookView(c Config) webhookJSON {
	out := webhookJSON{WorkspaceID: c.WorkspaceID, URL: c.URLMasked, CreatedAt: c.CreatedAt.Format(time.RFC3339),
		UpdatedAt: c.UpdatedAt.Format(time.RFC3339), Deliveries: make([]deliveryJSON, len(c.Recent))}
	for i, d := range c.Recent {
		out.Deliveries[i] = deliveryView(d)
	}
	return out
}

func workspaceID(ps httprouter.Params) (int64, error) {
	id, err := strconv.ParseInt(ps.ByName("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, apperr.New(apperr.NotFound, "workspace not found")
	}
	return id, nil
}

// get: GET /api/workspaces/:id/webhook → {webhook:{workspaceId,url (masked),createdAt,updatedAt,deliveries}}.
func (h *Handler) get(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c api.Caller) error {
	id, err := workspaceID(ps)
	if err != nil {
		return err
	}
	cfg, err := h.svc.Get(r.Context(), c.Actor, id)
	if err != nil {
		return err
	}
	return api.Reply(w, http.StatusOK, map[string]any{"webhook": webhookView(cfg)})
}

// put: PUT /api/workspaces/:id/webhook {url,rotateSecret} → {webhook,secret}; secret only when
// the webhook is new or rotateSecret is true: the one time it is shown.
func (h *Handler) put(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c api.Caller) error {
	id, err := workspaceID(ps)
	if err != nil {
		return err
	}
	var body struct {
		URL          string `json:"url"`
		RotateSecret bool   `json:"rotateSecret"`
	}
	if err := h.api.Decode(w, r, &body); err != nil {
		return err
	}
	cfg, secret, err := h.svc.Set(r.Context(), c.Actor, id, body.URL, body.RotateSecret)
	if err != nil {
		return err
	}
	out := map[string]any{"webhook": webhookView(cfg)}
	if secret != "" {
		out["secret"] = secret
	}
	return api.Reply(w, http.StatusOK, out)
}

// delete: DELETE /api/workspaces/:id/webhook → 204.
func (h *Handler) delete(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c api.Caller) error {
	id, err := workspaceID(ps)
	if err != nil {
		return err
	}
	if err := h.svc.Delete(r.Context(), c.Actor, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// test: POST /api/workspaces/:id/webhook/test → 202 {delivery}; the outcome shows in GET's
// deliveries.
func (h *Handler) test(w http.ResponseWriter, r *http.Request, ps httprouter.Params, c api.Caller) error {
	id, err := workspaceID(ps)
	if err != nil {
		return err
	}
	d, err := h.svc.Test(r.Context(), c.Actor, id)
	if err != nil {
		return err
	}
	return api.Reply(w, http.StatusAccepted, map[string]any{"delivery": deliveryView(d)})
}
