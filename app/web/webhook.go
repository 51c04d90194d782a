package web

import (
	"net/http"

	"tokenguard/app/account"
	"tokenguard/app/apperr"
	"tokenguard/views"
)

// webhookSettings is the settings page's webhook section: nil when webhooks are off or the
// actor may not manage them (members), empty when none is set.
func (s *Server) webhookSettings(r *http.Request, c *reqCtx) (*views.WebhookSettings, error) {
	if s.opt.Webhooks == nil || !account.Can(c.ws.Role, account.ManageProjects) {
		return nil, nil
	}
	cfg, err := s.opt.Webhooks.Get(r.Context(), c.actor(r), c.ws.ID)
	if apperr.Code(err) == apperr.NotFound {
		return &views.WebhookSettings{}, nil
	}
	if err != nil {
		return nil, err
	}
	v := &views.WebhookSettings{URL: cfg.URLMasked, Deliveries: make([]views.WebhookDelivery, len(cfg.Recent))}
	for i, d := range cfg.Recent {
		v.Deliveries[i] = views.WebhookDelivery{ID: d.ID, Event: d.Event, Status: d.Status, Attempts: d.Attempts,
			LastStatus: d.LastStatus, LastError: d.LastError, At: d.CreatedAt}
	}
	return v, nil
}

// saveWebhook sets the webhook's URL (rotating the secret when asked). The secret of a new or
// rotated webhook is shown on this response alone, never stored where a reload would find it.
func (s *Server) saveWebhook(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if s.opt.Webhooks == nil {
		return apperr.New(apperr.NotFound, "webhooks are not available")
	}
	_, secret, err := s.opt.Webhooks.Set(r.Context(), c.actor(r), c.ws.ID, r.PostFormValue("url"), r.PostFormValue("rotateSecret") != "")
	if err != nil && apperr.Code(err) != apperr.InvalidRequest {
		return err
	}
	if err == nil && secret == "" {
		return s.done(w, r, views.WSPath(c.ws.ID, "/settings#webhook"), "Webhook saved; its signing secret is unchanged.")
	}
	v, verr := s.settingsView(r, c)
	if verr != nil {
		return verr
	}
	status := http.StatusOK
	if err != nil {
		status, v.Webhook.Error = http.StatusBadRequest, apperr.Message(err)
	} else {
		v.Webhook.Secret = secret
		w.Header().Set("Cache-Control", "no-store")
	}
	return s.render(w, r, status, views.SettingsPage(s.layout(r, c, "Settings", "settings"), v))
}

func (s *Server) testWebhook(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if s.opt.Webhooks == nil {
		return apperr.New(apperr.NotFound, "webhooks are not available")
	}
	if _, err := s.opt.Webhooks.Test(r.Context(), c.actor(r), c.ws.ID); err != nil {
		return err
	}
	return s.done(w, r, views.WSPath(c.ws.ID, "/settings#webhook"), "Test event queued; reload to see how it went.")
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if s.opt.Webhooks == nil {
		return apperr.New(apperr.NotFound, "webhooks are not available")
	}
	if err := s.opt.Webhooks.Delete(r.Context(), c.actor(r), c.ws.ID); err != nil {
		return err
	}
	return s.done(w, r, views.WSPath(c.ws.ID, "/settings"), "Webhook removed.")
}
