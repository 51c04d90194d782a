package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tokenguard/app/webhook"
)

// TestBudgetWebhookThroughTheProxy: the real program and real proxied requests. An admin sets
// the workspace webhook with the API (the secret comes back once); crossing 80% and then 100%
// of the project's daily budget posts one signed event each to the receiver, which verifies
// them as a receiver would, and a 500 from the receiver is retried with the same event. GET
// shows the masked URL and the deliveries, never the secret. Members cannot read it.
func TestBudgetWebhookThroughTheProxy(t *testing.T) {
	type event struct {
		body   webhook.Body
		sigErr error
	}
	events := make(chan event, 10)
	var secret string
	failures := 1 // the first delivery is answered 500
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var e event
		e.sigErr = webhook.Verify(secret, r.Header.Get(webhook.SignatureHeader), raw, time.Now(), 0)
		json.Unmarshal(raw, &e.body)
		if failures > 0 {
			failures--
			w.WriteHeader(http.StatusInternalServerError)
		}
		events <- e
	}))
	t.Cleanup(receiver.Close)
	upstream := httptest.NewServer(numberedUpstream(0))
	t.Cleanup(upstream.Close)
	env := testEnv(filepath.Join(t.TempDir(), "tokenguard.db"), upstream.URL)
	env["WEBHOOK_ALLOW_PRIVATE"] = "true" // the receiver is this test's, on loopback
	app := startApp(t, env)
	o := signUpWithProject(t, app.URL, 0.00035)

	hook := fmt.Sprintf("%s/api/workspaces/%d/webhook", app.URL, o.WorkspaceID)
	var put struct {
		Webhook struct {
			URL string `json:"url"`
		} `json:"webhook"`
		Secret string `json:"secret"`
	}
	if got := apiCall(t, "PUT", hook, o.Token, map[string]any{"url": receiver.URL + "/tokenguard/hook"}, &put); got != 200 || put.Secret == "" {
		t.Fatalf("PUT webhook = %d, secret %q", got, put.Secret)
	}
	secret = put.Secret

	for n := 1; n <= 3; n++ {
		if status, code, _ := proxied(t, app.URL, o.Key, n); status != 200 {
			t.Fatalf("request %d = %d %s, want 200", n, status, code)
		}
	}
	var got []event
	for len(got) < 3 {
		select {
		case e := <-events:
			got = append(got, e)
		case <-time.After(60 * time.Second):
			t.Fatalf("received %d webhook posts, want 3 (80%% refused once with 500, then again, then 100%%)", len(got))
		}
	}
	// The 80% event is refused once and retried after the backoff, so the 100% event (posted
	// meanwhile) may arrive between its two attempts: events are matched by id and threshold.
	byThreshold := map[int][]string{}
	for i, e := range got {
		if e.sigErr != nil {
			t.Errorf("post %d: the receiver could not verify the signature: %v", i+1, e.sigErr)
		}
		d := e.body.Data
		if d == nil || d.ProjectID != o.ProjectID || d.Budget != "daily" {
			t.Fatalf("post %d data = %+v, want the project's daily crossing", i+1, d)
		}
		byThreshold[d.Threshold] = append(byThreshold[d.Threshold], e.body.ID)
	}
	if ids := byThreshold[80]; len(ids) != 2 || ids[0] != ids[1] {
		t.Errorf("80%% event ids %v, want one event posted twice (500, then retried)", ids)
	}
	if ids := byThreshold[100]; len(ids) != 1 {
		t.Errorf("100%% event ids %v, want one", ids)
	}

	var view map[string]any
	if got := apiCall(t, "GET", hook, o.Token, nil, &view); got != 200 {
		t.Fatalf("GET webhook = %d", got)
	}
	raw, _ := json.Marshal(view)
	if strings.Contains(string(raw), secret) || strings.Contains(string(raw), "/tokenguard/hook") {
		t.Errorf("GET webhook shows the secret or the whole URL: %s", raw)
	}
	if !strings.Contains(string(raw), `"status":"sent"`) {
		t.Errorf("GET webhook lists no sent delivery: %s", raw)
	}
	if got := apiCall(t, "POST", hook+"/test", o.Token, nil, nil); got != 202 {
		t.Errorf("POST webhook/test = %d, want 202", got)
	}
	if e := <-events; e.sigErr != nil || e.body.Event != webhook.EventTest {
		t.Errorf("test event %q, signature %v", e.body.Event, e.sigErr)
	}
	if got := apiCall(t, "PUT", hook, o.Token, map[string]any{"url": "gopher://example.com/"}, nil); got != 400 {
		t.Errorf("PUT a gopher URL = %d, want 400", got)
	}
	if got := apiCall(t, "DELETE", hook, o.Token, nil, nil); got != 204 {
		t.Errorf("DELETE webhook = %d, want 204", got)
	}
	if got := apiCall(t, "GET", hook, o.Token, nil, nil); got != 404 {
		t.Errorf("GET after DELETE = %d, want 404", got)
	}
}
