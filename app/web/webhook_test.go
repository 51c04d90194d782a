package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"tokenguard/app/webhook"
)

// TestWebhookSettings ensures an owner sets the workspace webhook from the settings page, sees
// its signing secret on that one response only, can send a test event that the receiver
// verifies with it, and that a URL the service refuses is reported on the form.
func TestWebhookSettings(t *testing.T) {
	got := make(chan error, 4)
	var secret string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- webhook.Verify(secret, r.Header.Get(webhook.SignatureHeader), body, time.Now(), 0)
	}))
	t.Cleanup(recv.Close)

	app := newApp(t)
	c := app.client(t)
	ws := c.signup("Ada", "ada@example.com")
	if page := c.get(ws + "/settings"); !strings.Contains(page.Body, `id="webhook-h"`) {
		t.Fatal("the owner's settings page has no webhook section")
	}
	if bad := c.post(ws+"/settings/webhook", url.Values{"url": {"ftp://example.com/x"}}); bad.Status != http.StatusBadRequest ||
		!strings.Contains(bad.Body, "http or https") {
		t.Errorf("an ftp URL: %d, want 400 saying http or https", bad.Status)
	}
	saved := c.post(ws+"/settings/webhook", url.Values{"url": {recv.URL + "/hooks/T0/B0/abcdefghijkl"}})
	m := regexp.MustCompile(`<code class="mono">(whsec_[A-Za-z0-9_-]+)</code>`).FindStringSubmatch(saved.Body)
	if saved.Status != http.StatusOK || m == nil || saved.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("saving the webhook: %d, secret shown %v, Cache-Control %q", saved.Status, m != nil, saved.Header.Get("Cache-Control"))
	}
	secret = m[1]
	again := c.get(ws + "/settings")
	if strings.Contains(again.Body, secret) || strings.Contains(again.Body, "abcdefghijkl") {
		t.Error("the settings page shows the secret or the whole URL again")
	}
	if !strings.Contains(again.Body, recv.URL+"/…ijkl") {
		t.Error("the settings page does not show the masked URL")
	}
	c.post(ws+"/settings/webhook/test", nil)
	select {
	case err := <-got:
		if err != nil {
			t.Errorf("the receiver could not verify the test event: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no test event arrived")
	}
	c.post(ws+"/settings/webhook/delete", nil)
	if page := c.get(ws + "/settings"); strings.Contains(page.Body, recv.URL) {
		t.Error("the removed webhook is still shown")
	}
}
